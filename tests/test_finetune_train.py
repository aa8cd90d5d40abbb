"""finetune end to end: `python -m finetune` on a tiny synthetic catalogue writes best/ and
last/ that plain transformers / open_clip and evalsuite load, with the training history; and a
short run on the real footwear catalogue learns (val loss down, zero-shot accuracy up)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml
from accelerate.state import AcceleratorState

from evalsuite.models import load_model
from evalsuite.training_cost import training_cost
from finetune.__main__ import main
from finetune.config import validate_config
from finetune.loop import train
from testkit.synthetic import write_synthetic_catalogue

# a ~0.4M-parameter CLIP (testkit/configs/tiny-train.json): several training
# steps per test stay fast
TINY = {"name": "tiny-train"}
FOUR_TYPES = ("Heels", "Flip Flops", "Sports Shoes", "Formal Shoes")  # easy to tell apart


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    yield
    AcceleratorState._reset_state(True)  # each run may choose its own mixed precision


def run_config(model: Path, data_dir: Path, out: Path, **sections: dict) -> dict:
    cfg = {
        "model": {"spec": str(model)},
        "data": {"path": str(data_dir), "target_field": "articleType"},
        "optim": {"lr": 1e-3},
        "train": {"epochs": 2, "batch_size": 8, "log_every": 1},
        "output": {"dir": str(out), "run_name": "tiny-footwear"},
    }
    for name, values in sections.items():
        cfg[name] = {**cfg.get(name, {}), **values}
    return cfg


def test_two_epochs_write_loadable_checkpoints(tmp_path: Path) -> None:
    from transformers import CLIPModel

    from testkit.tiny import build_tiny_hf

    model_dir = build_tiny_hf(tmp_path / "model", seed=0, **TINY)
    data = write_synthetic_catalogue(tmp_path / "catalogue", train=32, val=8, test=4)
    out = tmp_path / "run"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(run_config(model_dir, data, tmp_path / "elsewhere")))

    assert main(["--config", str(config), "--output-dir", str(out), "--set", "train.seed=1"]) == 0

    for kind in ("best", "last"):
        folder = out / kind
        assert sorted(p.name for p in folder.iterdir() if p.suffix in {".bin", ".pt"}) == []
        plain = CLIPModel.from_pretrained(folder)  # no code of ours
        assert plain.config.projection_dim == 64
        loaded = load_model(folder)
        assert loaded.name == "tiny-footwear"
        training = loaded.source.training
        assert [h["epoch"] for h in training["history"]][:2] == [0, 1]
        assert {"train_loss", "val_loss", "val_accuracy", "lr", "seconds"} <= set(
            training["history"][1]
        )
        assert training["base_model"]["fingerprint"] == load_model(model_dir).fingerprint
        assert training["data"]["manifest_hash"] and training["seed"] == 1
        assert (
            training["config"]["train"]["seed"] == 1 and training["target_field"] == "articleType"
        )
        assert "# tiny-footwear" in (folder / "README.md").read_text()
    from evalsuite.runner import model_info  # what `evalsuite score` records for a model

    info = model_info(load_model(out / "best"))
    assert info.name == "tiny-footwear" and len(info.history) >= 2
    assert info.base_fingerprint == load_model(model_dir).fingerprint
    last = load_model(out / "last").source.training
    assert len(last["history"]) == 3 and last["best_epoch"] in (1, 2)
    # what the fine-tune cost, as `evalsuite report` shows it
    assert last["device"] == {"type": "cpu", "name": None, "processes": 1, "mixed_precision": "no"}
    assert last["train_samples"] == 8 * 8  # 8 optimizer steps of 8 items
    cost = training_cost("tiny-footwear", last)
    assert (cost.epochs, cost.steps, cost.samples, cost.device) == (2, 8, 64, "cpu, 1 process")
    assert cost.trainable == last["trainable_parameters"]["trainable"] > 0
    assert cost.seconds == pytest.approx(sum(h["seconds"] for h in last["history"]))
    assert load_model(out / "last").fingerprint != load_model(model_dir).fingerprint
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == list(range(1, 9))  # 32 items / 8 = 4 steps x 2 epochs
    assert all(s["lr"] == 1e-3 and s["loss"] > 0 for s in steps)
    assert not list(out.glob(".*"))  # no temporary folders left behind


def test_open_clip_bf16_zeroshot_ce_trains_the_image_tower_only(tmp_path: Path) -> None:
    import open_clip

    from testkit.tiny import build_tiny_open_clip

    model_dir = build_tiny_open_clip(tmp_path / "model", seed=0, **TINY)
    data = write_synthetic_catalogue(tmp_path / "catalogue", train=16, val=8, test=0)
    cfg = run_config(
        model_dir,
        data,
        tmp_path / "run",
        train={"epochs": 1, "max_steps": 2, "mixed_precision": "bf16", "grad_checkpointing": True},
        loss={"objective": "zeroshot_ce"},
    )
    progress = train(validate_config(cfg))
    assert progress.global_step == 2 and progress.stopped.startswith("max_steps")

    module, _, _ = open_clip.create_model_and_transforms(f"local-dir:{tmp_path / 'run' / 'last'}")
    base, _, _ = open_clip.create_model_and_transforms(f"local-dir:{model_dir}")
    tuned, before = module.state_dict(), base.state_dict()
    assert torch.equal(tuned["token_embedding.weight"], before["token_embedding.weight"])
    assert torch.equal(tuned["text_projection"], before["text_projection"])
    assert torch.equal(tuned["logit_scale"], before["logit_scale"])  # fixed scale
    assert not torch.equal(tuned["visual.proj"], before["visual.proj"])


def test_unreadable_images_are_skipped_and_counted(tmp_path: Path) -> None:
    from finetune.sources import read_split

    data = write_synthetic_catalogue(tmp_path / "catalogue", train=8, val=0, test=0)
    first = json.loads((data / "train.jsonl").read_text().splitlines()[0])
    Path(first["image"]).write_bytes(b"not a png")
    cfg = validate_config(run_config(tmp_path / "model", data, tmp_path / "run"))
    split = read_split(cfg, "train")
    assert len(split.items) == 7 and split.skipped == {"no_caption": 0, "bad_image": 1}
    assert first["id"] not in {item.id for item in split.items}


def test_epoch_sampler_is_seeded_sharded_and_resumable() -> None:
    from finetune.sampling import EpochSampler

    shards = [EpochSampler(37, seed=3, rank=r, world_size=2, multiple_of=4) for r in (0, 1)]
    epoch0 = [list(s) for s in shards]
    assert len(epoch0[0]) == len(epoch0[1]) == 16  # 37 cut to 32 = 4 steps x 4 x 2 processes
    assert not set(epoch0[0]) & set(epoch0[1])
    assert [list(s) for s in shards] == epoch0  # same epoch, same order
    for s in shards:
        s.set_epoch(1)
    assert [list(s) for s in shards] != epoch0
    full = list(shards[0])
    shards[0].set_epoch(1, start=4)  # resuming after one step of 4
    assert list(shards[0]) == full[4:] and len(shards[0]) == 12
    val = [list(EpochSampler(5, 0, r, 2, shuffle=False, multiple_of=None)) for r in (0, 1)]
    assert val == [[0, 2, 4], [1, 3]]


def footwear_subset(catalogue_dir: Path, out: Path, per_type: int) -> Path:
    """styles.csv cut to ``per_type`` items of four visually distinct footwear types."""
    lines = (catalogue_dir / "styles.csv").read_text(encoding="utf-8").splitlines()
    counts = dict.fromkeys(FOUR_TYPES, 0)
    kept = [lines[0]]
    for line in lines[1:]:
        row = next(csv.reader([line]))
        if len(row) >= 10 and row[4] in counts and counts[row[4]] < per_type:
            counts[row[4]] += 1
            kept.append(line)
    out.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return out


@pytest.mark.slow
def test_real_footwear_run_improves_val_loss_and_accuracy(
    catalogue_dir: Path, tmp_path: Path
) -> None:
    """A random tiny CLIP, 400 real catalogue items, 3 epochs: the validation loss falls and
    the zero-shot article-type accuracy rises above the base model's (epoch 0)."""
    from evalsuite.data.prepare import prepare_footwear
    from testkit.tiny import build_tiny_hf

    styles = footwear_subset(catalogue_dir, tmp_path / "styles.csv", per_type=100)
    data = tmp_path / "footwear"
    prepare_footwear(catalogue_dir / "images", styles, data, seed=0, test_size=0.1, val_size=0.3)
    model_dir = build_tiny_hf(tmp_path / "model", seed=0, **TINY, vision_cfg__patch_size=8)
    cfg = run_config(
        model_dir,
        data,
        tmp_path / "run",
        data={"templates": ["a photo of {}."]},
        optim={"lr": 3e-3},
        schedule={"name": "cosine", "warmup_steps": 5},
        train={"epochs": 3, "batch_size": 32, "log_every": 5},
        loss={"same_label_masking": True},
    )
    history = train(validate_config(cfg)).history
    print("\n".join(json.dumps(h) for h in history))
    assert history[0]["epoch"] == 0 and history[0]["train_loss"] is None  # the base model
    assert history[-1]["val_loss"] < history[0]["val_loss"] - 0.3
    assert history[-1]["val_accuracy"] > history[0]["val_accuracy"] + 0.1
