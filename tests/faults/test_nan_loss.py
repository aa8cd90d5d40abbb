"""A NaN or infinite loss (or weights) stops training with a message naming the step; the
last good checkpoint is intact, loads, and ``--resume`` from it finishes the run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from accelerate.state import AcceleratorState
from faultkit import tiny_training_inputs
from safetensors.torch import load_file

import finetune.loop as loop
from evalsuite.errors import TrainingError
from evalsuite.models import load_model
from finetune.__main__ import main
from finetune.config import validate_config

BAD_STEP = 3  # in epoch 2 of 2; 2 steps per epoch (8 items in batches of 4) keep it quick


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    yield
    AcceleratorState._reset_state(True)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return tiny_training_inputs(tmp_path_factory.mktemp("nan"))


def config(inputs: tuple[Path, Path], out: Path, **train: object) -> dict:
    return {
        "model": {"spec": str(inputs[0])},
        "data": {"path": str(inputs[1])},
        "optim": {"lr": 1e-3},
        "train": {"epochs": 2, "batch_size": 4, "early_stopping_patience": None, **train},
        "output": {"dir": str(out)},
    }


def poison_loss(monkeypatch: pytest.MonkeyPatch, value: float, at_step: int = BAD_STEP) -> None:
    """The training loss of optimizer step ``at_step`` becomes ``value`` (one micro-batch per
    step here), with its gradient: NaN weights follow from the next optimizer step."""
    real, calls = loop.compute_loss, []

    def compute_loss(*args: object, **kwargs: object) -> torch.Tensor:
        loss = real(*args, **kwargs)
        calls.append(1)
        return loss * value if len(calls) == at_step else loss

    monkeypatch.setattr(loop, "compute_loss", compute_loss)


def assert_finite_checkpoints(out: Path, state_step: int) -> None:
    """state/ is the one saved after ``state_step``; it and best/ and last/ hold finite weights."""
    progress = json.loads((out / "state" / "progress.json").read_text())
    assert progress["global_step"] == state_step
    assert all(math.isfinite(h["train_loss"]) for h in progress["history"][1:])
    weights = [load_file(out / "state" / "model.safetensors")]
    for kind in ("best", "last"):
        model = load_model(out / kind)
        assert model.source.training["epoch"] == 1  # from before the bad step
        weights.append(model.module.state_dict())
    for tensors in weights:
        assert all(torch.isfinite(t).all() for t in tensors.values())


@pytest.mark.parametrize(
    ("value", "every", "log_every", "state_step"),
    [(math.nan, 1, 1, BAD_STEP - 1), (math.inf, None, 10, 2)],
    ids=["nan-checkpoint-every-step", "inf-checkpoint-per-epoch"],
)
def test_non_finite_loss_stops_naming_the_step(
    inputs: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    value: float,
    every: int | None,
    log_every: int,
    state_step: int,
) -> None:
    out = tmp_path / "run"
    raw = config(inputs, out, checkpoint_every_steps=every, log_every=log_every)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    poison_loss(monkeypatch, value)
    assert main(["--config", str(path)]) == 2  # a user-facing error, not a traceback
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after progress bars and logs
    assert error.startswith(f"finetune: error: training stopped: the loss became {value} at "
                            f"step {BAD_STEP} (epoch 2), before anything was saved from it. "
                            "The last good checkpoints are kept: "), error  # fmt: skip
    assert f"{out / 'state'} (step {state_step}" in error and str(out / "last") in error
    assert_finite_checkpoints(out, state_step)
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    assert all(math.isfinite(s["loss"]) for s in steps)  # no NaN logged as a value

    if every:  # the last good checkpoint resumes and finishes once the cause is gone
        monkeypatch.undo()
        AcceleratorState._reset_state(True)
        progress = loop.train(validate_config(raw), resume="auto")
        assert (progress.epoch, progress.global_step) == (2, 4)


def test_nan_weights_with_a_finite_loss_are_never_saved(
    inputs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An infinite gradient can leave NaN weights behind a finite loss; the save refuses."""
    real, calls = loop.after_step, []

    def after_step(run: loop.Run, *args: object) -> None:
        calls.append(1)
        if len(calls) == BAD_STEP:
            with torch.no_grad():
                next(run.model.module.parameters()).fill_(math.nan)
        real(run, *args)

    monkeypatch.setattr(loop, "after_step", after_step)
    out = tmp_path / "run"
    cfg = validate_config(config(inputs, out, checkpoint_every_steps=1, log_every=100))
    with pytest.raises(TrainingError, match=rf"holds NaN or inf after step {BAD_STEP} \(epoch 2"):
        loop.train(cfg)
    assert_finite_checkpoints(out, BAD_STEP - 1)
