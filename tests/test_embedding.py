"""The embedding engine: parallel decode, skip/fail policy, and a cache that saves forwards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evalsuite.data.items import Item
from evalsuite.embedding import EmbeddingEngine
from evalsuite.errors import ImageError
from evalsuite.models import load_model


def _write_images(folder: Path, n: int) -> list[Item]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    items = []
    for i in range(n):
        path = folder / f"{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (80, 60, 3), dtype=np.uint8)).save(path)
        items.append(Item(id=str(i), path=path, fields={"label": "x"}))
    return items


@pytest.fixture
def model(tiny_hf_dir: Path):
    return load_model(tiny_hf_dir)


def test_second_run_does_no_forward_pass(model, tmp_path: Path) -> None:
    items = _write_images(tmp_path / "img", 40)
    first = EmbeddingEngine(model, cache_dir=tmp_path / "cache", batch_size=16, progress=False)
    out1 = first.embed_items(items)
    assert first.images_forwarded == 40 and len(out1.ids) == 40
    np.testing.assert_allclose(
        out1.vectors, model.encode_images([i.path for i in items]), atol=1e-5
    )
    second = EmbeddingEngine(model, cache_dir=tmp_path / "cache", progress=False)
    out2 = second.embed_items(items)
    assert second.images_forwarded == 0
    np.testing.assert_array_equal(out1.vectors, out2.vectors)

    # One edited image: exactly one forward pass, keyed by content, not by path or id.
    Image.new("RGB", (60, 80), "red").save(items[3].path)
    third = EmbeddingEngine(model, cache_dir=tmp_path / "cache", progress=False)
    out3 = third.embed_items(items)
    assert third.images_forwarded == 1
    assert not np.allclose(out3.vectors[3], out1.vectors[3])


def test_text_cache(model, tmp_path: Path) -> None:
    texts = ["a photo of a shoe", "red laces", "a photo of a shoe"]
    engine = EmbeddingEngine(model, cache_dir=tmp_path, progress=False)
    first = engine.embed_texts(texts)
    assert engine.texts_forwarded == 3
    np.testing.assert_allclose(first, model.encode_texts(texts), atol=1e-6)
    again = EmbeddingEngine(model, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(again.embed_texts(texts), first)
    assert again.texts_forwarded == 0


def test_worker_processes_give_the_same_embeddings(model, tmp_path: Path) -> None:
    items = _write_images(tmp_path / "img", 70)
    serial = EmbeddingEngine(
        model, use_cache=False, num_workers=0, batch_size=16, progress=False
    ).embed_items(items)
    parallel = EmbeddingEngine(
        model, use_cache=False, num_workers=2, batch_size=16, progress=False
    ).embed_items(items)
    np.testing.assert_array_equal(serial.positions, parallel.positions)
    np.testing.assert_allclose(serial.vectors, parallel.vectors, atol=1e-6)


def test_unreadable_images_are_skipped_or_fail(model, tmp_path: Path) -> None:
    items = _write_images(tmp_path / "img", 6)
    (tmp_path / "img" / "1.jpg").write_bytes(b"")  # zero bytes
    data = (tmp_path / "img" / "2.jpg").read_bytes()
    (tmp_path / "img" / "2.jpg").write_bytes(data[: len(data) // 3])  # truncated
    items.append(Item(id="gone", path=tmp_path / "img" / "missing.jpg"))
    for workers in (0, 2):
        engine = EmbeddingEngine(
            model, use_cache=False, num_workers=workers, batch_size=2, progress=False
        )
        out = engine.embed_items(items)
        assert out.ids == ["0", "3", "4", "5"]
        assert [s.item_id for s in out.skipped] == ["1", "2", "gone"]
        assert all(s.path and s.item_id in s.reason for s in out.skipped)
    strict = EmbeddingEngine(model, use_cache=False, on_error="fail", progress=False)
    with pytest.raises(ImageError) as failure:
        strict.embed_items(items)
    assert failure.value.item_id in {"1", "2", "gone"} and failure.value.path


def test_in_memory_pixels_and_bf16(model, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    items = [
        Item(id=f"m{i}", pixels=rng.integers(0, 255, (28, 28), dtype=np.uint8)) for i in range(8)
    ]
    fp32 = EmbeddingEngine(model, cache_dir=tmp_path, progress=False).embed_items(items)
    bf16_engine = EmbeddingEngine(model, cache_dir=tmp_path, precision="bf16", progress=False)
    bf16 = bf16_engine.embed_items(items)
    assert bf16_engine.images_forwarded == 8  # cached per precision: no fp32 hits reused
    cosine = np.sum(fp32.vectors * bf16.vectors, axis=1)
    assert cosine.min() > 0.99


def test_identical_images_are_encoded_once(model, tmp_path: Path) -> None:
    items = _write_images(tmp_path / "img", 5)
    twin = tmp_path / "img" / "twin.jpg"
    twin.write_bytes(items[2].path.read_bytes())
    items.append(Item(id="twin", path=twin))
    engine = EmbeddingEngine(model, use_cache=False, progress=False)
    out = engine.embed_items(items)
    assert engine.images_forwarded == 5 and len(out.ids) == 6
    np.testing.assert_array_equal(out.vectors[5], out.vectors[2])
