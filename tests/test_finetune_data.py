"""Fine-tuning data beyond one caption of a prepared catalogue: several captions per item
(one drawn per epoch, seeded), replay of a second data set in every batch (seeded,
resumable, recorded), and streamed sources whose unusable items are replaced and counted."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState

import evalsuite.data as data_registry
from evalsuite.data.items import Item
from evalsuite.errors import ConfigError, DataError
from finetune.config import validate_config
from finetune.data import build_loaders, set_epoch
from finetune.loop import train
from finetune.sampling import ReplaySampler
from finetune.sources import read_split
from testkit.synthetic import write_synthetic_catalogue

TINY = {"name": "tiny-train"}


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    yield
    AcceleratorState._reset_state(True)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    from evalsuite.models import load_model
    from testkit.tiny import build_tiny_hf

    folder = build_tiny_hf(tmp_path_factory.mktemp("model") / "tiny", seed=0, **TINY)
    return folder, load_model(folder)


def config(model: Path, data: Path, out: Path, **data_keys) -> dict:
    return {
        "model": {"spec": str(model)},
        "data": {"path": str(data), "val_split": None, **data_keys},
        "schedule": {"name": "constant"},
        "optim": {"lr": 1e-3},
        "train": {"epochs": 2, "batch_size": 8, "log_every": 1},
        "output": {"dir": str(out)},
    }


def batches(loader, epoch: int, skip: int = 0) -> list[dict]:
    set_epoch(loader, epoch, skip)
    return list(loader)


# --- several captions -------------------------------------------------------------------------


def test_one_of_several_captions_is_drawn_per_epoch_seeded(tmp_path: Path, tiny) -> None:
    folder, model = tiny
    data = write_synthetic_catalogue(tmp_path / "data", train=16, val=4, test=0)
    fields = ["caption", "productDisplayName"]
    cfg = validate_config(config(folder, data, tmp_path / "run", caption_field=fields))
    loaders = build_loaders(cfg, model)
    dataset = loaders.train.dataset
    items = dataset.split.items
    drawn = {}
    for epoch in range(4):
        dataset.epoch = epoch
        drawn[epoch] = [dataset[k]["caption"] for k in range(len(items))]
    for k, item in enumerate(items):
        seen = {drawn[epoch][k] for epoch in drawn}
        assert seen <= {item.caption, item.fields["productDisplayName"]}
    assert len({tuple(d) for d in drawn.values()}) > 1  # the draw changes with the epoch
    every = Counter(c for d in drawn.values() for c in d)
    assert sum(every[i.caption] for i in items) and sum(
        every[i.fields["productDisplayName"]] for i in items
    )
    again = build_loaders(cfg, model).train.dataset
    again.epoch = 2
    assert [again[k]["caption"] for k in range(len(items))] == drawn[2]  # seeded, not stateful
    with_val = config(folder, data, tmp_path / "run", caption_field=fields, val_split="val")
    val = build_loaders(validate_config(with_val), model).val.dataset
    val.epoch = 3
    assert [val[k]["caption"] for k in range(len(val))] == [i.caption for i in val.split.items]


def test_a_list_valued_field_gives_one_caption_per_entry(tmp_path: Path, tiny) -> None:
    from finetune.captions import Captions, caption_choices

    item = Item("1", {"title": "Red heels"}, data=b"x", lists={"texts": ("a", " ", "b")})
    assert caption_choices(item, ("texts", "title", "caption")) == ["a", "b", "Red heels"]
    picks = {Captions(("texts",), seed=0, draw=True).pick(item, 0, e) for e in range(20)}
    assert picks == {"a", "b"}


def test_items_without_any_of_the_caption_fields_are_counted(tmp_path: Path, tiny) -> None:
    folder, _ = tiny
    data = write_synthetic_catalogue(tmp_path / "data", train=8, val=0, test=0)
    records = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    records[0]["description"], records[0]["productDisplayName"] = None, ""
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    fields = ["caption", "productDisplayName"]
    cfg = validate_config(config(folder, data, tmp_path / "run", caption_field=fields))
    split = read_split(cfg, "train")
    assert len(split.items) == 7 and split.skipped["no_caption"] == 1


# --- replay -------------------------------------------------------------------------------------


def replay_setup(tmp_path: Path, folder: Path, fraction: float = 0.25, **train_keys) -> dict:
    data = write_synthetic_catalogue(tmp_path / "data", train=24, val=0, test=0, seed=1)
    general = write_synthetic_catalogue(tmp_path / "general", train=10, val=0, test=0, seed=2)
    cfg = config(
        folder, data, tmp_path / "run", replay={"path": str(general), "fraction": fraction}
    )
    cfg["train"].update(train_keys)
    return cfg


def test_replay_fills_its_fraction_of_every_batch_seeded(tmp_path: Path, tiny) -> None:
    folder, model = tiny
    cfg = validate_config(replay_setup(tmp_path, folder))  # 0.25 x 8 = 2 replay items a batch
    loaders = build_loaders(cfg, model)
    dataset, sampler = loaders.train.dataset, loaders.train.sampler
    assert isinstance(sampler, ReplaySampler) and loaders.counts["replay"]["per_batch"] == 2
    epoch0 = batches(loaders.train, 0)
    assert len(epoch0) == 24 // 6  # batches are cut from the target items: 6 per batch
    for batch in epoch0:
        assert batch["replay"].tolist() == [False] * 6 + [True] * 2
    order = [list(b) for b in sampler.batches()]
    target = [i for b in order for i in b[:6]]
    replay = [i - len(dataset.target) for b in order for i in b[6:]]
    assert sorted(target) == list(range(24))  # every target item once per epoch
    assert sorted(replay[:8]) == sorted(set(replay[:8])) and max(replay) < 10  # a permutation
    again = build_loaders(cfg, model)
    set_epoch(again.train, 0)
    assert [list(b) for b in again.train.sampler.batches()] == order  # seeded
    set_epoch(again.train, 1)
    assert [list(b) for b in again.train.sampler.batches()] != order  # a new epoch, a new order
    resumed = batches(again.train, 0, skip=2)
    assert [b["input_ids"].tolist() for b in resumed] == [
        b["input_ids"].tolist() for b in epoch0[2:]
    ]


def test_replay_positions_differ_between_processes(tmp_path: Path, tiny) -> None:
    shares = [ReplaySampler(40, 7, 4, 1, seed=0, rank=r, world_size=2) for r in (0, 1)]
    replayed = [[i for b in s.batches() for i in b[3:]] for s in shares]
    merged = [i for pair in zip(*replayed, strict=True) for i in pair]
    stream = ReplaySampler(40, 7, 4, 1, seed=0).replay_positions(0, len(merged))
    assert merged == stream  # global batch b x world + rank takes its own stream positions
    targets = [set(i for b in s.batches() for i in b[:3]) for s in shares]
    assert not targets[0] & targets[1]


def test_replay_is_recorded_in_training_json(tmp_path: Path, tiny) -> None:
    folder, _ = tiny
    cfg = validate_config(replay_setup(tmp_path, folder, epochs=1))
    train(cfg)
    training = json.loads((tmp_path / "run" / "last" / "training.json").read_text())
    replay = training["data"]["replay"]
    assert replay["fraction"] == 0.25 and replay["per_batch"] == 2 and replay["items"] == 10
    assert replay["path"] == cfg.data.replay.path and replay["reader"] == "catalogue"


@pytest.mark.parametrize(
    ("fraction", "message"),
    [(1.0, "less than 1"), (-0.1, "greater than or equal to 0"), (0.05, "gives 0 replay")],
)
def test_a_replay_fraction_that_cannot_work_is_refused(
    tmp_path: Path, tiny, fraction: float, message: str
) -> None:
    folder, model = tiny
    with pytest.raises(ConfigError, match=message) as err:
        cfg = validate_config(replay_setup(tmp_path, folder, fraction=fraction))
        build_loaders(cfg, model)
    assert "data.replay.fraction" in str(err.value)
    assert not (tmp_path / "run").exists()


# --- streamed sources ---------------------------------------------------------------------------


class Streamed(Sequence[Item]):
    """A lazy sequence, as a streamed reader returns (the trainer must not list it)."""

    def __init__(self, items: list[Item | Exception]) -> None:
        self.items, self.reads = items, 0
        self.reads_of: Counter[int] = Counter()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):  # type: ignore[override]
        self.reads += 1
        self.reads_of[index] += 1
        item = self.items[index]
        if isinstance(item, Exception):
            raise item
        return item


def streamed_reader(monkeypatch: pytest.MonkeyPatch, items: list) -> Streamed:
    """Register a reader "streamed" that returns ``items`` as a lazy sequence."""
    streamed = Streamed(items)
    readers = data_registry.READERS.copy()  # the shared registry is left as it is
    readers.register("streamed", lambda path, split=None: streamed)
    monkeypatch.setattr(data_registry, "READERS", readers)
    return streamed


def test_streamed_items_are_not_read_before_training_and_bad_ones_replaced(
    tmp_path: Path, tiny, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalsuite.data.catalogue import read_catalogue

    folder, model = tiny
    data = write_synthetic_catalogue(tmp_path / "data", train=16, val=0, test=0)
    items = read_catalogue(data, "train")
    items[3] = Item(items[3].id, items[3].fields, data=b"not an image", caption=items[3].caption)
    items[5] = Item(items[5].id, items[5].fields, path=items[5].path, caption=None)
    streamed = streamed_reader(monkeypatch, items)
    keys = {"reader": "streamed", "classes": ["Heels", "Sandals", "Casual Shoes", "Sports Shoes"]}
    cfg = validate_config(config(folder, data, tmp_path / "run", **keys))
    loaders = build_loaders(cfg, model)
    # only the first item is looked at (fields, no image decoded) before training
    assert streamed.reads == 1 and loaders.counts["train_items"] == 16
    seen = batches(loaders.train, 0)
    assert sum(int(b["replaced"]) for b in seen) == 2
    assert all(len(b["labels"]) == 8 for b in seen)
    progress = train(cfg)
    assert progress.history[-1]["items_replaced"] == 2 * cfg.train.epochs


def test_a_streamed_set_without_classes_or_validation_is_refused(
    tmp_path: Path, tiny, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalsuite.data.catalogue import read_catalogue

    folder, model = tiny
    data = write_synthetic_catalogue(tmp_path / "data", train=8, val=0, test=0)
    streamed_reader(monkeypatch, read_catalogue(data, "train"))
    cfg = validate_config(config(folder, data, tmp_path / "run", reader="streamed"))
    with pytest.raises(ConfigError, match=r"data\.classes"):
        build_loaders(cfg, model)


def test_loaders_give_the_same_batches_twice(tmp_path: Path, tiny) -> None:
    folder, model = tiny
    data = write_synthetic_catalogue(tmp_path / "data", train=16, val=0, test=0)
    cfg = validate_config(config(folder, data, tmp_path / "run"))
    first = batches(build_loaders(cfg, model).train, 1)
    second = batches(build_loaders(cfg, model).train, 1)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a["pixel_values"], b["pixel_values"])
        assert torch.equal(a["input_ids"], b["input_ids"])


def test_training_json_names_the_reader_and_hashes_a_source_file(tmp_path: Path) -> None:
    import hashlib

    from finetune.checkpoint import data_fingerprint

    file = tmp_path / "pairs.csv"
    file.write_text("filepath,title\na.jpg,A red heel\n")
    record = data_fingerprint(file, "pairs_csv", {"separator": ","})
    assert record["reader"] == "pairs_csv" and record["options"] == {"separator": ","}
    assert record["file_sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert record["manifest_hash"] is None


def test_a_run_of_bad_streamed_items_is_counted_once_per_bad_read(
    tmp_path: Path, tiny, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three bad items in a row (an unreadable image, an unreadable sample, no caption) count
    as the bad reads they cost, not 1 + 2 + 3, and no good item fills several slots."""
    from evalsuite.data.catalogue import read_catalogue
    from evalsuite.errors import ItemError

    folder, model = tiny
    data = write_synthetic_catalogue(tmp_path / "data", train=32, val=0, test=0)
    items: list = read_catalogue(data, "train")
    items[4] = Item(items[4].id, items[4].fields, data=b"broken", caption=items[4].caption)
    items[5] = ItemError("shard-000000.tar, sample 5: its .json member is not valid JSON")
    items[6] = Item(items[6].id, items[6].fields, path=items[6].path, caption=None)
    streamed = streamed_reader(monkeypatch, items)
    keys = {"reader": "streamed", "classes": ["Heels", "Sandals", "Casual Shoes", "Sports Shoes"]}
    loaders = build_loaders(validate_config(config(folder, data, tmp_path / "r", **keys)), model)
    streamed.reads_of.clear()
    seen = batches(loaders.train, 0)
    bad_reads = sum(streamed.reads_of[k] for k in (4, 5, 6))
    assert sum(int(b["replaced"]) for b in seen) == bad_reads >= 3
    captions = [c for b in seen for c in b["input_ids"].tolist()]
    assert len(captions) == 32 and bad_reads < 6


def test_a_streamed_source_without_the_caption_field_fails_at_start(
    tmp_path: Path, tiny, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalsuite.data.catalogue import read_catalogue

    folder, model = tiny
    data = write_synthetic_catalogue(tmp_path / "data", train=8, val=0, test=0)
    streamed = streamed_reader(monkeypatch, read_catalogue(data, "train"))
    keys = {"reader": "streamed", "classes": ["Heels"], "caption_field": "title"}
    with pytest.raises(DataError, match=r"data\.caption_field") as err:
        build_loaders(validate_config(config(folder, data, tmp_path / "r", **keys)), model)
    assert "title" in str(err.value) and "productDisplayName" in str(err.value)  # what there is
    assert streamed.reads <= 16


@pytest.mark.parametrize(("train_split", "val_split"), [(None, "val"), ("train", "train")])
def test_a_training_split_that_holds_the_validation_split_is_refused(
    tmp_path: Path, train_split, val_split
) -> None:
    raw = config(tmp_path / "m", tmp_path / "d", tmp_path / "r")
    raw["data"].update(train_split=train_split, val_split=val_split)
    with pytest.raises(ConfigError, match="trains on the validation items"):
        validate_config(raw)


def test_replay_with_zeroshot_ce_is_refused(tmp_path: Path) -> None:
    raw = config(tmp_path / "m", tmp_path / "d", tmp_path / "r")
    raw["data"]["replay"] = {"path": str(tmp_path / "g"), "fraction": 0.25}
    raw["loss"] = {"objective": "zeroshot_ce"}
    with pytest.raises(ConfigError, match=r"data\.replay needs loss\.objective 'contrastive'"):
        validate_config(raw)


def test_two_processes_of_b_items_replay_like_one_of_2b() -> None:
    one = ReplaySampler(60, 9, 8, 2, seed=4, world_size=1)
    two = [ReplaySampler(60, 9, 4, 1, seed=4, rank=r, world_size=2) for r in (0, 1)]
    for step, batch in enumerate(one.batches()):
        parts = [s.batches()[step] for s in two]
        assert sorted(batch) == sorted(parts[0] + parts[1])
