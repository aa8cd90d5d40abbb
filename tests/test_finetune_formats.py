"""The same 256 real catalogue items, written in every format a reader reads (prepared
catalogue, image-caption CSV and TSV, Hugging Face imagefolder, datasets saved to disk and
as Parquet, WebDataset shards), fine-tune identically: the same first-epoch batches (images,
captions, labels, order) and the same losses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState

from evalsuite.data.items import Item
from evalsuite.data.styles import read_styles_catalogue
from evalsuite.models import load_model
from finetune.config import validate_config
from finetune.data import build_loaders, set_epoch
from finetune.loop import train
from tests.fixtures.formats import FORMATS, write_format


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    yield
    AcceleratorState._reset_state(True)


@pytest.fixture(scope="module")
def real_items(catalogue_dir: Path) -> list[Item]:
    return read_styles_catalogue(catalogue_dir, "train", master_category="Footwear")[:256]


@pytest.fixture(scope="module")
def written(real_items: list[Item], tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("formats")
    return {name: write_format(name, real_items, root / name) for name in FORMATS}


def config(source: tuple, model: Path, out: Path, classes: list[str]) -> dict:
    reader, path, options = source
    return {
        "model": {"spec": str(model)},
        "data": {
            "reader": reader,
            "path": str(path),
            "options": options,
            "train_split": "train" if reader == "catalogue" else None,
            "val_split": None,
            "classes": classes,
            "caption_field": "caption",
        },
        "schedule": {"name": "constant"},
        "optim": {"lr": 1e-3},
        "train": {"epochs": 1, "batch_size": 32, "max_steps": 2, "log_every": 1},
        "output": {"dir": str(out)},
    }


def first_epoch(cfg) -> list[dict]:
    loaders = build_loaders(cfg, load_model(cfg.model.spec))
    set_epoch(loaders.train, 0)
    return list(loaders.train)


@pytest.mark.slow
def test_every_format_gives_the_same_batches_and_loss(
    written: dict, real_items: list[Item], tiny_hf_dir: Path, tmp_path: Path
) -> None:
    classes = sorted({item.fields["articleType"] for item in real_items})
    configs = {
        name: validate_config(config(source, tiny_hf_dir, tmp_path / name, classes))
        for name, source in written.items()
    }
    reference = first_epoch(configs["catalogue"])
    assert len(reference) == 256 // 32 and (torch.cat([b["labels"] for b in reference]) >= 0).all()
    for name, cfg in configs.items():
        batches = first_epoch(cfg)
        assert len(batches) == len(reference), name
        for got, want in zip(batches, reference, strict=True):
            assert torch.equal(got["pixel_values"], want["pixel_values"]), name
            assert torch.equal(got["input_ids"], want["input_ids"]), name
            assert torch.equal(got["labels"], want["labels"]), name
    losses = {}
    for name, cfg in configs.items():
        train(cfg)
        steps = (Path(cfg.output.dir) / "steps.jsonl").read_text().splitlines()
        losses[name] = [json.loads(line)["loss"] for line in steps]
    assert len(losses["catalogue"]) == 2 and losses["catalogue"][0] > 0
    for name, values in losses.items():
        assert values == pytest.approx(losses["catalogue"], rel=1e-6), name
