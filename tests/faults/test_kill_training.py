"""finetune killed with SIGKILL at random points (inside a step, inside a checkpoint save,
between the two renames of a swap): the last complete checkpoint loads, ``--resume`` finishes
the run, and no half-written folder is ever visible.

One chain per test run: a first process is killed inside a random step, a ``--resume`` of it
is killed at a random point of a random kind of save, and a last ``--resume`` finishes. The
kill points come from a seeded generator; FAULTS_SEED=<seed> replays a failing chain.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
import yaml
from accelerate.state import AcceleratorState
from faultkit import KILL_PREAMBLE, fault_rng, run_script
from safetensors.torch import load_file

from evalsuite.models import load_model
from finetune.config import validate_config
from finetune.loop import train
from finetune.saving import resume_path
from testkit.synthetic import write_synthetic_catalogue

# a ~0.4M-parameter CLIP (testkit/configs/tiny-train.json): several training
# steps per test stay fast
TINY = {"name": "tiny-train"}
EPOCHS, STEPS_PER_EPOCH = 3, 4  # 32 training items in batches of 8
STATE_FILES = ["model.safetensors", "optimizer.pt", "progress.json", "rng.safetensors",
               "scheduler.pt"]  # fmt: skip

# argv: MODE AT finetune-args... ; MODE picks the function whose AT-th call is fatal.
KILLED_FINETUNE = (
    KILL_PREAMBLE
    + """
from pathlib import Path
import finetune.checkpoint as ck
import finetune.loop as loop

if MODE == "step":  # after the forward pass of step AT: before backward and optimizer step
    real_loss = loop.compute_loss
    def compute_loss(*args, **kwargs):
        loss = real_loss(*args, **kwargs)
        die()
        return loss
    loop.compute_loss = compute_loss
elif MODE == "state_write":  # weights and optimizer written to the temporary folder, RNG not
    real_save_file = ck.save_file
    def save_file(*args, **kwargs):
        die()
        return real_save_file(*args, **kwargs)
    ck.save_file = save_file
elif MODE == "model_write":  # best/ or last/: weights and training.json written, README not
    real_card = ck.model_card
    def model_card(*args, **kwargs):
        die()
        return real_card(*args, **kwargs)
    ck.model_card = model_card
elif MODE.startswith("swap:"):  # the old folder renamed away, the new one not yet in place
    folder, real_rename = MODE.split(":")[1], Path.rename
    def rename(self, target):
        moved = real_rename(self, target)
        if self.name == folder and Path(target).name == f".{folder}.old":
            die()
        return moved
    Path.rename = rename
from finetune.__main__ import main
sys.exit(main(sys.argv[3:]))
"""
)


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    yield
    AcceleratorState._reset_state(True)


def killed_run(config: Path, mode: str, at: int, *extra: str) -> str:
    """Run finetune under the kill preamble; it must die by SIGKILL. Returns its stderr."""
    done = run_script(KILLED_FINETUNE, mode, str(at), "--config", str(config), *extra)
    assert done.returncode == -signal.SIGKILL, (
        f"{mode} #{at}: expected a SIGKILL, got exit {done.returncode}\n{done.stderr[-3000:]}"
    )
    return done.stderr


def check_output(out: Path, cfg, why: str) -> int:
    """What --resume finds after recovering: complete folders only; returns the state's step."""
    assert resume_path(cfg, "auto") == out / "state", why
    hidden = sorted(p.name for p in out.iterdir() if p.name.startswith("."))
    assert hidden == [], f"{why}: leftovers of an interrupted save: {hidden}"
    state = out / "state"
    assert sorted(p.name for p in state.iterdir()) == STATE_FILES, why
    progress = json.loads((state / "progress.json").read_text())
    assert load_file(state / "model.safetensors") and load_file(state / "rng.safetensors"), why
    for name in ("optimizer.pt", "scheduler.pt"):
        torch.load(state / name, weights_only=True)
    for kind in ("best", "last"):
        if (out / kind).exists():
            training = json.loads((out / kind / "training.json").read_text())
            assert (out / kind / "README.md").is_file(), why
            assert load_model(out / kind).source.training == training, why
    return progress["global_step"]


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(tmp_path: Path) -> None:
    from testkit.tiny import build_tiny_hf

    seed, rng = fault_rng()
    model = build_tiny_hf(tmp_path / "model", seed=0, **TINY)
    data = write_synthetic_catalogue(tmp_path / "catalogue", train=32, val=8, test=0)
    out = tmp_path / "run"
    raw = {
        "model": {"spec": str(model)},
        "data": {"path": str(data)},
        "optim": {"lr": 1e-3},
        "train": {"epochs": EPOCHS, "batch_size": 8, "log_every": 1,
                  "checkpoint_every_steps": 1, "early_stopping_patience": None},
        "output": {"dir": str(out)},
    }  # fmt: skip
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(raw))
    cfg = validate_config(raw)

    mode = rng.choice(["state_write", "swap:state", "model_write", "swap:last"])
    # swap:last needs a last/ to swap away: kill the first run after epoch 1 had saved one
    first = STEPS_PER_EPOCH + 2 if mode == "swap:last" else 2
    step = rng.randint(first, EPOCHS * STEPS_PER_EPOCH - 2)
    at = 1 if mode in ("model_write", "swap:last") else rng.randint(1, 3)

    # 1. killed inside a training step: the state of the step before it is what remains
    why = f"FAULTS_SEED={seed}: killed inside step {step}"
    killed_run(config, "step", step)
    assert check_output(out, cfg, why) == step - 1, why

    # 2. the resumed run killed inside a save: the previous complete checkpoint remains
    why = f"FAULTS_SEED={seed}: killed in step {step}, then resumed and killed at {mode} #{at}"
    stderr = killed_run(config, mode, at, "--resume")
    assert "resumed from" in stderr, why
    reached = check_output(out, cfg, why)
    assert step - 1 <= reached < EPOCHS * STEPS_PER_EPOCH, why

    # 3. a last --resume finishes the run
    progress = train(cfg, resume="auto")
    assert (progress.epoch, progress.global_step) == (EPOCHS, EPOCHS * STEPS_PER_EPOCH), why
    assert check_output(out, cfg, why) == EPOCHS * STEPS_PER_EPOCH, why
    last = json.loads((out / "last" / "training.json").read_text())
    assert [h["epoch"] for h in last["history"]] == list(range(EPOCHS + 1)), why
    logged = [json.loads(line)["step"] for line in (out / "steps.jsonl").read_text().splitlines()]
    assert logged == list(range(1, EPOCHS * STEPS_PER_EPOCH + 1)), why  # none lost or doubled
