"""The embedding engine: parallel decode, skip/fail policy, and a cache that saves forwards."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from evalsuite import cpu_threads
from evalsuite.data.items import Item
from evalsuite.decoding import split_transform
from evalsuite.device import available_cores
from evalsuite.embedding import EmbeddingEngine
from evalsuite.errors import ImageError
from evalsuite.images import item_content_hash, load_item_image
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


def test_batched_preprocessing_is_bit_identical_to_model_preprocess(model, tmp_path: Path) -> None:
    split = split_transform(model.transform)
    assert split is not None  # Resize, CenterCrop, ToTensor, Normalize: workers send uint8
    items = _write_images(tmp_path / "img", 5)
    Image.new("L", (90, 50), 128).save(tmp_path / "img" / "grey.png")  # decoded as RGB
    items.append(Item(id="grey", path=tmp_path / "img" / "grey.png"))
    images = [load_item_image(item) for item in items]
    batched = split.normalize(torch.stack([split.to_uint8(im) for im in images]))
    expected = torch.stack([model.preprocess(im) for im in images])
    assert batched.dtype == torch.float32 and batched.is_contiguous()
    assert torch.equal(batched, expected)


def test_other_transforms_run_unchanged_in_the_workers(model, tmp_path: Path) -> None:
    flipped = transforms.Compose([transforms.RandomHorizontalFlip(p=1.0), model.transform])
    assert split_transform(flipped) is None
    assert split_transform(lambda image: model.transform(image)) is None
    items = _write_images(tmp_path / "img", 70)
    model.transform = flipped  # a cached property: the instance attribute overrides it
    try:
        out = EmbeddingEngine(
            model, use_cache=False, num_workers=2, batch_size=16, progress=False
        ).embed_items(items)
        expected = model.encode_images([item.path for item in items])
    finally:
        del model.transform
    np.testing.assert_allclose(out.vectors, expected, atol=1e-5)


def test_forward_threads_leave_busy_decode_workers_their_cores(
    model, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cpu_threads, "available_cores", lambda: 4)
    engine = EmbeddingEngine(model, use_cache=False, device="cpu", progress=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        busy = cpu_threads.ForwardThreads(engine, workers=1)
        assert busy.initial == 3  # the core the worker decodes on is left to it
        idle = cpu_threads.ForwardThreads(engine, workers=1)
        for _ in range(10):
            busy.observe(decode_seconds=0.5, forward_seconds=1.0)
        assert engine.decided_threads == 3
        engine.decided_threads = None
        with cpu_threads.torch_threads(idle.initial):
            for _ in range(10):
                idle.observe(decode_seconds=0.01, forward_seconds=1.0)
            assert torch.get_num_threads() == 4  # workers mostly idle: every core
        assert torch.get_num_threads() == 4
        # The engine's next call (the next benchmark) starts on the cores decided, unmeasured.
        again = cpu_threads.ForwardThreads(engine, workers=1)
        assert again.initial == 4 and not again.deciding
        assert cpu_threads.ForwardThreads(engine, workers=0).initial is None  # torch's own
        engine.threads = 2
        explicit = cpu_threads.ForwardThreads(engine, workers=1)
        assert explicit.initial == 2 and not explicit.deciding
    finally:
        torch.set_num_threads(before)


def test_threads_are_restored_after_embedding(model, tmp_path: Path) -> None:
    engine = EmbeddingEngine(model, use_cache=False, num_workers=1, progress=False)
    before = torch.get_num_threads()
    seen = []
    original = engine._forward_images

    def spy(pixels):
        seen.append(torch.get_num_threads())
        return original(pixels)

    engine._forward_images = spy
    engine.embed_items(_write_images(tmp_path / "img", 300))
    assert seen[0] == max(1, min(before, available_cores() - 1))
    assert torch.get_num_threads() == before


def _forked_child(queue) -> None:
    conv = torch.nn.Conv2d(3, 8, 4, stride=4)
    with torch.inference_mode():
        conv(torch.randn(8, 3, 64, 64))
    queue.put(torch.get_num_threads())


def test_a_child_forked_after_a_parallel_op_runs_single_threaded() -> None:
    """GNU OpenMP hangs in a child forked after the parent ran a parallel region (what made
    debug_launcher ranks hang after a single-process score); one thread never starts one."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.inference_mode():  # a parallel region in the parent
            torch.nn.Conv2d(3, 8, 4, stride=4)(torch.randn(8, 3, 64, 64))
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_forked_child, args=(queue,))
        child.start()
        child.join(timeout=60)
        if child.is_alive():
            child.kill()
            pytest.fail("the forked child hung in its first parallel op")
        assert child.exitcode == 0 and queue.get(timeout=5) == 1
    finally:
        torch.set_num_threads(before)


def test_content_hashes_of_files_and_pixels_in_input_order(model, tmp_path: Path) -> None:
    files = _write_images(tmp_path / "img", 300)  # enough to be hashed in threads
    rng = np.random.default_rng(3)
    pixels = [
        Item(id=f"p{i}", pixels=rng.integers(0, 255, (8, 8), dtype=np.uint8)) for i in range(5)
    ]
    missing = Item(id="gone", path=tmp_path / "img" / "missing.jpg")
    items = [pixels[0], *files[:150], missing, pixels[1], *files[150:], *pixels[2:]]
    hashes = EmbeddingEngine(model, use_cache=False, progress=False).content_hashes(items)
    assert len(hashes) == len(items)
    for item, digest in zip(items, hashes, strict=True):
        if item is missing:
            assert isinstance(digest, ImageError) and digest.item_id == "gone"
        else:
            assert digest == item_content_hash(item)
