"""What a short fine-tune leaves to read (issue 18, first hour): its steps.jsonl holds the last
step of each epoch whatever log_every, its last line says where best/ is and what to run next,
`output.log_with: tensorboard` writes event files holding the loss, and in a log (output piped,
not a terminal) there are no progress bars: a line per epoch, and from `evalsuite score` a line
per benchmark."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from accelerate.state import AcceleratorState

from evalsuite.errors import ConfigError
from finetune.config import validate_config
from finetune.loop import train
from testkit.synthetic import write_synthetic_catalogue

ROOT = Path(__file__).resolve().parents[1]
RUN_NAME = "tiny-logs"


def run_config(model: Path, data: Path, out: Path, **train_section: object) -> dict:
    return {
        "model": {"spec": str(model)},
        "data": {"path": str(data), "target_field": "articleType"},
        "optim": {"lr": 1e-3},
        # 32 items / 8 = 4 steps per epoch: fewer than log_every's default 10
        "train": {"epochs": 2, "batch_size": 8, **train_section},
        "output": {"dir": str(out), "run_name": RUN_NAME, "log_with": "tensorboard"},
    }


def piped(*argv: str) -> str:
    """Run a command with stdout and stderr into a pipe, as a log or CI console reads it."""
    done = subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout
    return done.stdout


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from testkit.tiny import build_tiny_hf

    root = tmp_path_factory.mktemp("inputs")
    model = build_tiny_hf(root / "model", seed=0, name="tiny-train")
    return model, write_synthetic_catalogue(root / "catalogue", train=32, val=8, test=4)


@pytest.fixture(scope="module")
def finetuned(inputs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory):
    """`python -m finetune` for two epochs of 4 steps, its output piped: (output dir, text)."""
    root = tmp_path_factory.mktemp("piped")
    config = root / "run.yaml"
    config.write_text(yaml.safe_dump(run_config(*inputs, root / "run")))
    return root / "run", piped("-m", "finetune", "--config", str(config))


def test_short_run_logs_the_last_step_of_each_epoch(finetuned: tuple[Path, str]) -> None:
    out, _ = finetuned
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    assert [(s["step"], s["epoch"]) for s in steps] == [(4, 1), (8, 2)]
    assert all(s["loss"] > 0 and s["lr"] == 1e-3 for s in steps)


def test_last_line_says_where_best_is_and_the_command_to_score_it(
    finetuned: tuple[Path, str],
) -> None:
    out, text = finetuned
    best_epoch = json.loads((out / "best" / "training.json").read_text())["best_epoch"]
    last = text.strip().splitlines()[-1]
    assert last.endswith(
        f"done: best model (epoch {best_epoch}) in {out / 'best'}/; "
        f"score it next: evalsuite score {out / 'best'}"
    )


def test_tensorboard_event_files_hold_the_loss(finetuned: tuple[Path, str]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _ = finetuned
    logs = out / RUN_NAME
    assert list(logs.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(logs))
    events.Reload()
    assert {"train/loss", "train/lr", "epoch/train_loss", "epoch/val_loss"} <= set(
        events.Tags()["scalars"]
    )
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == [4, 8]
    logged = [json.loads(line)["loss"] for line in (out / "steps.jsonl").read_text().splitlines()]
    assert [e.value for e in losses] == pytest.approx(logged)


def test_piped_finetune_writes_a_line_per_epoch_and_no_progress_bars(
    finetuned: tuple[Path, str],
) -> None:
    _, text = finetuned
    assert "\r" not in text
    assert "Loading weights" not in text and "Writing model shards" not in text
    lines = text.strip().splitlines()
    assert sum(" INFO: epoch 1: " in line or " INFO: epoch 2: " in line for line in lines) == 2
    assert len(lines) <= 8, text  # epoch 0 to 2, trainable parameters, done


def test_piped_score_writes_a_line_per_benchmark_and_no_progress_bars(
    finetuned: tuple[Path, str], inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    out, _ = finetuned
    benchmarks = []
    for split in ("val", "test"):
        spec = {
            "name": f"tiny_{split}",
            "version": 1,
            "dataset": {"reader": "catalogue", "path": str(inputs[1]), "split": split},
            "tasks": [{"type": "zeroshot", "name": "article_type", "field": "articleType"}],
        }
        benchmarks.append(tmp_path / f"tiny_{split}.yaml")
        benchmarks[-1].write_text(yaml.safe_dump(spec))
    text = piped(
        *("-m", "evalsuite", "score", str(out / "best"), "--no-store", "--bootstrap", "10"),
        *("--benchmarks", ",".join(map(str, benchmarks)), "--cache-dir", str(tmp_path / "c")),
    )
    assert "\r" not in text and "Loading weights" not in text
    encoded = [line for line in text.splitlines() if ": encoded " in line]
    assert [line.split(":")[0] for line in encoded] == ["tiny_val", "tiny_test"]
    assert encoded[0].startswith("tiny_val: encoded 8 images in ")
    assert len(text.splitlines()) <= 30, text  # two result tables of 5 metrics, two lines


def test_run_stopped_by_max_steps_logs_its_last_step(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    cfg = run_config(*inputs, tmp_path / "run", epochs=1, max_steps=3)
    cfg["output"]["log_with"] = None
    try:
        train(validate_config(cfg))
    finally:
        AcceleratorState._reset_state(True)
    steps = (tmp_path / "run" / "steps.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in steps] == [3]


def test_unknown_or_missing_tracker_is_a_config_error(
    inputs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """accelerate only warns about a tracker that is not installed, and logs nothing."""
    cfg = run_config(*inputs, tmp_path / "run")
    cfg["output"]["log_with"] = "tensorbord"
    with pytest.raises(ConfigError, match=r"'tensorbord': not a tracker .*did you mean 'tensor"):
        train(validate_config(cfg))
    monkeypatch.setattr("accelerate.tracking.get_available_trackers", lambda: [])
    cfg["output"]["log_with"] = "tensorboard"
    with pytest.raises(ConfigError, match="the tensorboard package is not installed here"):
        train(validate_config(cfg))
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_last_line_without_best_points_at_last(tmp_path: Path) -> None:
    """No validation split (or output.save_best off): no best/, so last/ is the one to score."""
    from finetune.output import finished_line

    out = tmp_path / "my run"
    assert finished_line(out, None).startswith(f"done: no model saved in {out}")
    (out / "last").mkdir(parents=True)
    assert finished_line(out, None) == (
        f"done: last model (no best/ saved) in {out / 'last'}/; "
        f"score it next: evalsuite score '{out / 'last'}'"  # quoted: the path has a space
    )
