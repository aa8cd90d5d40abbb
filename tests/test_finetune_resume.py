"""finetune --resume: a run killed with SIGKILL mid-epoch and resumed ends with the same
weights as an uninterrupted run; checkpoint folders are swapped in atomically."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from accelerate.state import AcceleratorState
from safetensors.torch import load_file

from finetune.checkpoint import recover, replace_atomically, rng_state, set_rng_state
from finetune.config import validate_config
from finetune.loop import train
from testkit.synthetic import write_synthetic_catalogue

ROOT = Path(__file__).resolve().parents[1]
# a ~0.4M-parameter CLIP (testkit/configs/tiny-train.json): several training
# steps per test stay fast
TINY = {"name": "tiny-train"}


def test_rng_state_round_trip() -> None:
    state = rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_replace_atomically_and_recover(tmp_path: Path) -> None:
    out = tmp_path / "best"
    replace_atomically(out, lambda tmp: (tmp / "a.txt").write_text("1"))
    replace_atomically(out, lambda tmp: (tmp / "a.txt").write_text("2"))
    assert (out / "a.txt").read_text() == "2" and sorted(tmp_path.iterdir()) == [out]

    def crash(tmp: Path) -> None:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed while writing")

    with pytest.raises(RuntimeError):
        replace_atomically(out, crash)
    assert (out / "a.txt").read_text() == "2" and sorted(tmp_path.iterdir()) == [out]
    # a crash between "rename the old one away" and "rename the new one in"
    out.rename(tmp_path / ".best.old")
    (tmp_path / ".best.tmp-x").mkdir()
    recover(out)
    assert (out / "a.txt").read_text() == "2" and sorted(tmp_path.iterdir()) == [out]


def read_progress(state: Path) -> dict | None:
    try:
        return json.loads((state / "progress.json").read_text())
    except (OSError, ValueError):
        return None


def kill_mid_epoch(config: Path, out: Path, timeout: float = 120.0) -> dict:
    """Start `python -m finetune`, SIGKILL it once a mid-epoch state exists."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "finetune", "--config", str(config)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and process.poll() is None:
            progress = read_progress(out / "state")
            if progress and progress["epoch"] == 0 and progress["batches_done"] >= 2:
                os.kill(process.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
        else:
            raise AssertionError(f"run ended or hung before a mid-epoch state: {process.stderr}")
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    recover(out / "state")
    return read_progress(out / "state")


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    from testkit.tiny import build_tiny_hf

    model = build_tiny_hf(tmp_path / "model", seed=0, **TINY)
    data = write_synthetic_catalogue(tmp_path / "catalogue", train=64, val=8, test=0)
    base = {
        "model": {"spec": str(model)},
        "data": {"path": str(data)},
        "optim": {"lr": 1e-3},
        "train": {"epochs": 2, "batch_size": 8, "log_every": 1, "checkpoint_every_steps": 1},
        "loss": {"hard_negatives": {"enabled": True}},
    }
    reference = {**base, "output": {"dir": str(tmp_path / "reference")}}
    train(validate_config(reference))
    AcceleratorState._reset_state(True)

    out = tmp_path / "killed"
    config = tmp_path / "killed.yaml"
    config.write_text(yaml.safe_dump({**base, "output": {"dir": str(out)}}))
    at_kill = kill_mid_epoch(config, out)
    assert at_kill["epoch"] == 0 and 2 <= at_kill["batches_done"] < 8  # killed mid-epoch 1
    resumed = subprocess.run(
        [sys.executable, "-m", "finetune", "--config", str(config), "--resume"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr

    for kind in ("last", "best"):
        expected = load_file(tmp_path / "reference" / kind / "model.safetensors")
        got = load_file(out / kind / "model.safetensors")
        assert expected.keys() == got.keys()
        for name, tensor in expected.items():
            torch.testing.assert_close(got[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    history = json.loads((out / "last" / "training.json").read_text())["history"]
    expected_history = json.loads((tmp_path / "reference" / "last" / "training.json").read_text())
    for ours, theirs in zip(history, expected_history["history"], strict=True):
        assert ours["val_loss"] == pytest.approx(theirs["val_loss"], rel=1e-5)
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == list(range(1, 17))  # no step logged twice


def test_config_changes_ignore_what_a_resume_may_change() -> None:
    from finetune.checkpoint import config_changes

    base = {"model": {"spec": "m"}, "data": {"path": "p"}}
    old = validate_config(base).model_dump(mode="json")
    new = validate_config({**base, "train": {"epochs": 20}, "output": {"dir": "x"}})
    assert config_changes(old, new.model_dump(mode="json")) == []
    changed = validate_config({**base, "optim": {"lr": 1e-4}}).model_dump(mode="json")
    assert config_changes(old, changed) == ["optim.lr"]
