"""The ``webdataset`` reader on shards written from real catalogue items (testkit/shards.py)."""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
from pathlib import Path

import pytest
import torch
import webdataset as wds

from evalsuite.data import get_reader
from evalsuite.data.items import Item
from evalsuite.data.shards import ShardItems
from evalsuite.data.styles import read_styles_catalogue
from evalsuite.errors import DataError, ImageError, SpecError
from evalsuite.images import load_item_image
from testkit.shards import write_shards


@pytest.fixture(scope="module")
def real_items(catalogue_dir: Path) -> list[Item]:
    return read_styles_catalogue(catalogue_dir, master_category="Footwear")[:256]


@pytest.fixture(scope="module")
def written(real_items: list[Item], tmp_path_factory: pytest.TempPathFactory) -> ShardItems:
    reader, path, options = write_shards(real_items, tmp_path_factory.mktemp("shards"))
    items = get_reader(reader)(path, None, **options)
    assert isinstance(items, ShardItems)
    return items


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_reads_back_what_was_written(real_items: list[Item], written: ShardItems) -> None:
    assert len(written) == len(real_items) == 256
    assert len(written.shards) == 4
    for original, read in zip(real_items, written, strict=True):
        assert read.id == original.id
        assert dict(read.fields) == dict(original.fields)
        assert read.caption == original.caption
        assert original.path is not None and read.data is not None
        assert _sha(read.data) == _sha(original.path.read_bytes())
    assert written[-1].id == real_items[-1].id  # random access and negative indexes
    assert [i.id for i in written[100:103]] == [i.id for i in real_items[100:103]]
    assert load_item_image(written[70]).size == load_item_image(real_items[70]).size


def test_opening_reads_no_shard(real_items: list[Item], tmp_path: Path) -> None:
    many = [
        Item(id=f"{n}-{item.id}", fields=item.fields, path=item.path)
        for n in range(8)
        for item in real_items
    ][:2000]
    _, path, _ = write_shards(many, tmp_path, per_shard=63)
    items = get_reader("webdataset")(path)
    assert len(items) == 2000 and len(items.shards) == 32
    assert items.shards_indexed == 0  # nothing indexed, no member read, until an item is asked
    assert items[1000].id == many[1000].id
    assert items.shards_indexed == 1


def test_bad_images_fail_only_when_loaded(real_items: list[Item], tmp_path: Path) -> None:
    mixed = list(real_items[:10])
    mixed[3] = Item(id="corrupt", data=b"\xff\xd8\xff\xe0 not really a jpeg")
    mixed[6] = Item(id="imageless", data=b"", caption="a shoe with no picture")
    _, path, _ = write_shards(mixed, tmp_path, per_shard=4)
    items = get_reader("webdataset")(path)
    assert [item.id for item in items] == [item.id for item in mixed]
    for index, item in enumerate(items):
        if index in (3, 6):
            with pytest.raises(ImageError):
                load_item_image(item)
        else:
            assert load_item_image(item).mode == "RGB"
    assert items[6].caption == "a shoe with no picture"


def test_json_lists_and_text_members(tmp_path: Path) -> None:
    item = Item(id="x1", data=b"\x89PNG...", fields={"colour": "Red"}, lists={"alt": ("a", "b")})
    _, path, _ = write_shards([item], tmp_path)
    read = get_reader("webdataset")(path / "shard-000000.tar")[0]
    assert dict(read.fields) == {"colour": "Red"} and dict(read.lists) == {"alt": ("a", "b")}
    assert read.data == b"\x89PNG..."
    with wds.TarWriter(str(tmp_path / "bad.tar"), encoder=False) as sink:
        sink.write({"__key__": "b7", "jpg": b"x", "json": b"{not json", "cls": b"3"})
    bad = get_reader("webdataset")(tmp_path / "bad.tar")
    with pytest.raises(DataError, match=r"bad\.tar: sample 'b7': its \.json member is not valid"):
        bad[0]


def test_not_a_tar_missing_shard_and_bad_count(real_items: list[Item], tmp_path: Path) -> None:
    _, path, _ = write_shards(real_items[:20], tmp_path, per_shard=5)
    with pytest.raises(DataError, match=r"shard-000004\.tar: shard of .* not found"):
        get_reader("webdataset")(f"{path}/shard-{{000000..000004}}.tar")
    sizes = json.loads((path / "sizes.json").read_text())
    (path / "sizes.json").write_text(json.dumps({**sizes, "shard-000002.tar": 7}))
    items = get_reader("webdataset")(path)
    assert items[0].id == real_items[0].id
    with pytest.raises(DataError, match=r"shard-000002\.tar: the shard holds 5 samples .* says 7"):
        items[12]
    (path / "shard-000001.tar").write_bytes(b"PK\x03\x04 a zip file, not a tar" * 40)
    with pytest.raises(DataError, match=r"shard-000001\.tar: not a tar file"):
        get_reader("webdataset")(path)
    with pytest.raises(DataError, match="no shards found"):
        get_reader("webdataset")(tmp_path, "train")
    with pytest.raises(SpecError, match="unknown option"):
        get_reader("webdataset")(path, image_keys="jpg")


def test_counts_without_sizes_json(
    real_items: list[Item], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, path, _ = write_shards(real_items[:50], tmp_path, per_shard=16, sizes=False)
    with caplog.at_level(logging.WARNING):
        items = get_reader("webdataset")(path)
    assert len(items) == 50 and [s.count for s in items.shards] == [16, 16, 16, 2]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "sizes.json" in warnings[0] and "4 shard(s)" in warnings[0]
    assert items.shards_indexed == 0
    assert items[49].id == real_items[49].id


def test_split_folders_and_wids_index(real_items: list[Item], tmp_path: Path) -> None:
    write_shards(real_items[:8], tmp_path / "train", per_shard=4)
    assert len(get_reader("webdataset")(tmp_path, "train")) == 8
    index = {"shardlist": [{"url": "train/shard-000001.tar", "nsamples": 4}]}
    (tmp_path / "index.json").write_text(json.dumps(index))
    items = get_reader("webdataset")(tmp_path / "index.json")
    assert [i.id for i in items] == [i.id for i in real_items[4:8]]
    write_shards(real_items[8:11], tmp_path / "val", per_shard=4)
    every = get_reader("webdataset")(tmp_path)  # no split: each split folder, by name
    assert [i.id for i in every] == [i.id for i in real_items[:11]]


def _ids(batch: list[Item]) -> list[str]:
    return [item.id for item in batch]


def test_pickles_cheaply_and_serves_dataloader_workers(written: ShardItems) -> None:
    written[0]  # the parent has a shard open: it must not travel to the workers
    assert len(pickle.dumps(written)) < 4000
    loader = torch.utils.data.DataLoader(
        written, batch_size=64, num_workers=2, collate_fn=_ids, shuffle=False
    )
    assert [i for batch in loader for i in batch] == [item.id for item in written]


def test_scores_a_benchmark_of_shards(
    real_items: list[Item], tiny_hf_dir: Path, tmp_path: Path
) -> None:
    from evalsuite.runner import ScoreOptions, score_model

    mixed = list(real_items[:60])
    mixed[5] = Item(id="imageless", data=b"", fields=dict(mixed[5].fields))
    write_shards(mixed, tmp_path / "shards", per_shard=16)
    spec = {
        "name": "shards",
        "version": 1,
        "dataset": {"reader": "webdataset", "path": str(tmp_path / "shards")},
        "image_policy": "skip",
        "tasks": [{"type": "zeroshot", "name": "type", "field": "articleType"}],
    }
    (tmp_path / "shards.yaml").write_text(json.dumps(spec))  # JSON is YAML
    opts = ScoreOptions(
        benchmarks=(str(tmp_path / "shards.yaml"),),
        db_path=None,
        cache_dir=tmp_path / "cache",
        progress=False,
        n_bootstrap=20,
    )
    [run] = score_model(tiny_hf_dir, opts)
    assert run.n_items == 60 and run.n_skipped_images == 1


def test_ids_repeated_across_shards_are_refused_when_scoring(
    real_items: list[Item], tmp_path: Path
) -> None:
    """A writer that restarts its keys in each shard gives two items one id: scoring (which
    keys embeddings by id) refuses it, naming both positions and id_key."""
    from evalsuite.spec_data import ResolvedDataset

    for name in ("a", "b"):
        with wds.TarWriter(str(tmp_path / f"{name}.tar"), encoder=False) as sink:
            for k, item in enumerate(real_items[:2]):
                sink.write({"__key__": f"{k:04d}", "jpg": item.path.read_bytes(), "txt": b"x"})
    dataset = ResolvedDataset(get_reader("webdataset"), tmp_path, None, {})
    with pytest.raises(DataError, match=r"id '0000' of item 2 repeats item 0.*id_key"):
        dataset.load()
