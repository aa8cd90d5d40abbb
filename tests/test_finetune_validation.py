"""Validation settings: the val-loss chunk (tests/test_finetune_distributed.py runs validation
on 2 processes) and the rule for "the val loss improved" (train.min_delta), shared by early
stopping, best/ and ReduceLROnPlateau: the pure rule, the real torch scheduler driven with a
loss sequence, and a short run through ``finetune.loop.train`` with the val losses scripted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState

import finetune.loop
from finetune.build import build_scheduler, set_threshold
from finetune.config import validate_config
from finetune.validation import improved, val_chunk

TINY = {"name": "tiny-train"}  # testkit/configs/tiny-train.json: fast steps


def config(**train) -> dict:
    return {"model": {"spec": "unused"}, "data": {"path": "unused"}, "train": train}


def test_improved_needs_a_drop_of_more_than_min_delta() -> None:
    assert improved(1.0, None, 0.5)  # the first val loss is the best so far
    assert not improved(None, 1.0, 0.0)  # no validation this epoch
    assert improved(0.999999, 1.0, 0.0) and not improved(1.0, 1.0, 0.0)
    assert not improved(0.95, 1.0, 0.1) and not improved(0.9, 1.0, 0.1)
    assert improved(0.89, 1.0, 0.1)


def lrs_after(losses: list[float], min_delta: float, patience: int = 1) -> list[float]:
    """The learning rate after each epoch's ReduceLROnPlateau step on ``losses``."""
    cfg = validate_config(
        {**config(min_delta=min_delta), "schedule": {"patience": patience, "factor": 0.5}}
    )
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler, per_step = build_scheduler(cfg, optimizer, steps_per_epoch=1)
    assert not per_step
    out = []
    for loss in losses:
        scheduler.step(loss)
        out.append(optimizer.param_groups[0]["lr"])
    return out


def test_plateau_counts_drops_below_min_delta_as_bad_epochs() -> None:
    small_drops = [1.0, 0.95, 0.92, 0.91, 0.905]
    # patience 1: the second epoch in a row without a drop of 0.1 from the best (1.0) halves
    # the LR; the count starts again after a cut, so the LR halves again two epochs later
    assert lrs_after(small_drops, min_delta=0.1) == [1.0, 1.0, 0.5, 0.5, 0.25]
    assert lrs_after(small_drops, min_delta=0.0) == [1.0] * 5
    assert lrs_after([1.0, 0.8, 0.6, 0.4], min_delta=0.1) == [1.0] * 4  # real drops
    # absolute threshold: a drop of 1e-6 improves (torch's default, relative 1e-4, would not)
    assert lrs_after([1.0, 1.0 - 1e-6, 1.0 - 2e-6], min_delta=0.0) == [1.0] * 3


def test_a_restored_scheduler_gets_the_configured_threshold_back() -> None:
    """load_state_dict restores the saved threshold (a state written before train.min_delta
    holds torch's relative 1e-4): restore() sets the config's again."""
    cfg = validate_config(config(min_delta=0.05))
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    old = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    scheduler, _ = build_scheduler(cfg, optimizer, steps_per_epoch=1)
    scheduler.load_state_dict(old.state_dict())
    assert (scheduler.threshold, scheduler.threshold_mode) == (1e-4, "rel")
    set_threshold(scheduler, cfg)
    assert (scheduler.threshold, scheduler.threshold_mode) == (0.05, "abs")


def test_val_chunk_is_one_process_step_by_default() -> None:
    assert val_chunk(validate_config(config(batch_size=4, accum_steps=3))) == 12
    assert val_chunk(validate_config(config(batch_size=1))) == 2  # one item: no negative
    assert val_chunk(validate_config(config(batch_size=4, val_batch_size=10))) == 10


@pytest.mark.parametrize(
    ("min_delta", "stops", "best_epoch", "last_lr"),
    [(0.1, True, 1, 1e-4), (0.0, False, 4, 1e-3)],
)
def test_train_stops_early_only_on_drops_below_min_delta(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    min_delta: float,
    stops: bool,
    best_epoch: int,
    last_lr: float,
) -> None:
    from testkit.synthetic import write_synthetic_catalogue
    from testkit.tiny import build_tiny_hf

    model = build_tiny_hf(tmp_path / "model", seed=0, **TINY)
    data = write_synthetic_catalogue(tmp_path / "catalogue", train=4, val=2, test=0)
    losses = iter([2.0, 1.0, 0.95, 0.92, 0.90])  # epoch 0 (base model), then epochs 1-4
    monkeypatch.setattr(
        finetune.loop, "evaluate", lambda run, accelerator: {"val_loss": next(losses)}
    )
    cfg = {
        "model": {"spec": str(model)},
        "data": {"path": str(data)},
        "optim": {"lr": 1e-3},
        "schedule": {"patience": 1, "factor": 0.1},
        "train": {"epochs": 4, "batch_size": 4, "early_stopping_patience": 3},
        "output": {"dir": str(tmp_path / "run"), "save_last": False},
    }
    cfg["train"]["min_delta"] = min_delta
    try:
        progress = finetune.loop.train(validate_config(cfg))
    finally:
        AcceleratorState._reset_state(True)

    assert [h["epoch"] for h in progress.history] == [0, 1, 2, 3, 4]
    if stops:  # epochs 2-4 fell by less than 0.1 from epoch 1: 3 bad epochs = patience
        assert progress.stopped and progress.stopped.startswith("early stopping")
    else:  # every decrease counts: trained to train.epochs
        assert progress.stopped is None
    assert progress.best_epoch == best_epoch
    # the plateau scheduler (patience 1) cut the LR after epoch 3: epoch 4 ran at lr x 0.1
    assert progress.history[4]["lr"] == pytest.approx(last_lr)
    best = json.loads((tmp_path / "run" / "best" / "training.json").read_text())
    assert best["best_epoch"] == best_epoch
