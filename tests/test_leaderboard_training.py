"""The leaderboard's Training page (``dashboards.training``) on what ``finetune`` writes:
the learning rate from ``config.optim.lr``, a readable data summary instead of the data
section as JSON, train and validation loss as two series told apart, and the per-epoch
validation metrics (with the keys of the epoch log beyond the stored columns)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_leaderboard_app import app, no_errors

from dashboards import training
from tests.fixtures.leaderboard_sample import FT_CONFIG, FT_TRAINING

HISTORY = pd.DataFrame(
    {
        "epoch": [0, 1, 2],
        "train_loss": [None, 2.0, 1.5],
        "val_loss": [2.2, 1.9, 1.8],
        "val_accuracy": [0.61, 0.7, 0.75],
        "lr": [1e-5, 1e-5, 5e-6],
        "seconds": [12.0, 60.0, 61.0],
        "extra": [{}, {"steps": 9, "unfrozen": ["a", "b"]}, {"steps": 18, "val_recall@5": 0.4}],
    }
)


def _models(record: dict) -> pd.DataFrame:
    return pd.DataFrame(
        [{"name": "ft", "kind": "fine-tuned", "training": record, "train_seconds": 121.0}]
    )


def test_the_sample_is_what_finetune_writes():
    """The sample's config is a TrainConfig (else the page would be tested on a made-up
    shape, as the flat ``config.lr`` it read before)."""
    from finetune.config import TrainConfig

    config = TrainConfig.model_validate(FT_CONFIG)
    assert config.optim.lr == FT_TRAINING["config"]["optim"]["lr"]
    assert config.data.replay is not None and config.train.accum_steps == 2


def test_summary_of_a_training_record_written_by_finetune(tmp_path):
    """Read what finetune.checkpoint.training_record writes, not a hand-copied shape."""
    from finetune.checkpoint import data_fingerprint, training_record
    from finetune.config import TrainConfig

    config = {**FT_CONFIG, "optim": {"lr": 2e-5}, "train": {"epochs": 10, "batch_size": 32}}
    cfg = TrainConfig.model_validate(config)
    progress = {"epoch": 2, "global_step": 20, "best_epoch": 2, "best_val_loss": 1.8,
                "stopped": "early stopping", "history": HISTORY.to_dict("records")}  # fmt: skip
    data = {**data_fingerprint(tmp_path), "train_items": 640, "val_items": 80}
    record = json.loads(json.dumps(training_record(cfg, progress, {"data": data}, ["a"], "full")))
    row = training.training_summary(_models(record)).iloc[0]
    assert row["Learning rate"] == "2e-05"
    assert row["Batch size"] == "32"
    assert row["Epochs"] == "2 of 10"  # epoch 0 is the base model's validation
    assert row["Trained on"].startswith("catalogue /data/footwear-prepared · train 640 items")
    assert (
        "val 80" in row["Trained on"]
        and "replay: catalogue general-prepared, 25% of each batch" in (row["Trained on"])
    )


def test_data_summary_falls_back_to_the_manifest_sizes():
    data = {"reader": "catalogue", "path": "/d/fw", "train_split": "train", "val_split": "val"}
    sizes = {"train": 900, "val": 100, "test": 100}
    record = {"config": {"data": data}, "data": {"manifest_hash": "abcdef0123456", "sizes": sizes}}
    summary = training.data_summary(record)
    assert summary == "catalogue /d/fw · train 900, val 100 · manifest abcdef0123"
    assert training.data_summary({}) == ""


def test_history_table_shows_validation_metrics_and_extra_keys():
    table = training.history_table(HISTORY, best_epoch=2)
    assert table["Epoch"].tolist() == [0, 1, 2]
    assert table["Validation loss"].tolist() == [2.2, 1.9, 1.8]
    assert table["Validation accuracy (%)"].tolist() == [61.0, 70.0, 75.0]
    assert table["Best"].tolist() == ["", "", "✓ best/"]
    assert table["Steps"].tolist()[1:] == [9, 18]
    assert table["Unfrozen"].tolist()[1] == "a, b"
    assert table["val_recall@5"].tolist()[2] == 0.4  # a key the store keeps in ``extra``


@pytest.mark.parametrize("models", [1, 2])
def test_loss_chart_tells_train_from_validation(models):
    long = training.history_long({f"m{i}": HISTORY for i in range(models)})
    spec = training.history_chart(long, ["train_loss", "val_loss"], "Loss").to_dict()
    encoding = spec["encoding"]
    colours, shapes = encoding["color"]["scale"]["range"], encoding["shape"]["scale"]["range"]
    assert encoding["color"]["field"] == encoding["shape"]["field"] == "series"
    assert len(set(colours)) == 2 and len(set(shapes)) == 2
    assert encoding["color"]["scale"]["domain"] == ["Train loss", "Validation loss"]
    assert encoding["color"]["legend"] is not None
    assert ("strokeDash" in encoding) == (models > 1)  # models told apart by dashes


def _chart_specs(at) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]


def test_training_page_shows_lr_data_series_and_val_metrics(sample_db, monkeypatch):
    db, _ = sample_db
    at = app(db, monkeypatch, page="Training")
    no_errors(at)
    summary = next(df.value for df in at.dataframe if "Learning rate" in df.value.columns)
    row = summary.set_index("Model").loc["footwear-ft"]
    assert row["Learning rate"] == "1e-05"
    assert row["Batch size"] == "64 × 2 steps"
    trained_on = row["Trained on"]
    assert not trained_on.lstrip().startswith("{") and "footwear-prepared" in trained_on
    assert "train 1,180 items, val 150" in trained_on and "manifest 3f2a1b9c0d" in trained_on
    assert "replay: catalogue general-prepared, 25% of each batch, 5,000 items" in trained_on

    loss = next(s for s in _chart_specs(at) if s.get("title") == "Loss")
    colours = loss["encoding"]["color"]["scale"]["range"]
    assert loss["encoding"]["color"]["field"] == "series" and len(set(colours)) == 2
    assert len(set(loss["encoding"]["shape"]["scale"]["range"])) == 2

    epochs = next(df.value for df in at.dataframe if "Validation loss" in df.value.columns)
    assert epochs["Epoch"].tolist() == [1, 2, 3]
    assert epochs["Validation accuracy (%)"].tolist() == [74.0, 78.0, 82.0]
    assert epochs["Steps"].tolist() == [9, 18, 27]
    assert epochs["Best"].tolist() == ["", "", "✓ best/"]
    assert epochs["Learning rate"].tolist() == ["7.5e-06", "5e-06", "2.5e-06"]
    assert any("Validation metrics per epoch" in s.value for s in at.subheader)
    assert any(c.value.startswith("Trained on catalogue") for c in at.caption)
