"""Robust decoding: every mode becomes RGB, broken files and decompression bombs fail clearly."""

from __future__ import annotations

import struct
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evalsuite.data.items import Item
from evalsuite.errors import ImageError
from evalsuite.images import item_content_hash, load_item_image, open_rgb


def as_array(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image)


def test_rgb_jpeg_stays_usable_after_the_file_closes(tmp_path: Path) -> None:
    path = tmp_path / "rgb.jpg"
    Image.new("RGB", (10, 6), (250, 10, 10)).save(path)
    pixels = as_array(open_rgb(path))
    assert pixels.shape == (6, 10, 3)
    assert pixels[0, 0, 0] > 200 and pixels[0, 0, 1] < 60


def test_greyscale_converts_to_rgb(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    Image.new("L", (4, 4), 77).save(path)
    assert as_array(open_rgb(path))[0, 0].tolist() == [77, 77, 77]
    one_bit = tmp_path / "bits.png"
    Image.new("1", (4, 4), 1).save(one_bit)
    assert as_array(open_rgb(one_bit))[0, 0].tolist() == [255, 255, 255]


def test_cmyk_jpeg_converts_to_rgb(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path)  # pure red in CMYK
    with Image.open(path) as raw:
        assert raw.mode == "CMYK"
    red = as_array(open_rgb(path))[4, 4]
    assert red[0] > 200 and red[1] < 60 and red[2] < 60


def test_rgba_composites_transparency_on_white(tmp_path: Path) -> None:
    path = tmp_path / "rgba.png"
    image = Image.new("RGBA", (2, 1), (0, 0, 255, 255))
    image.putpixel((1, 0), (0, 0, 0, 0))  # fully transparent black
    image.save(path)
    pixels = as_array(open_rgb(path))
    assert pixels[0, 0].tolist() == [0, 0, 255]
    assert pixels[0, 1].tolist() == [255, 255, 255]
    la = tmp_path / "la.png"
    Image.new("LA", (2, 2), (10, 0)).save(la)
    assert as_array(open_rgb(la))[0, 0].tolist() == [255, 255, 255]


def test_palette_images_convert_with_and_without_transparency(tmp_path: Path) -> None:
    palette = Image.new("P", (2, 1))
    palette.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    palette.putpixel((1, 0), 1)
    plain = tmp_path / "palette.png"
    palette.save(plain)
    assert as_array(open_rgb(plain)).tolist() == [[[255, 0, 0], [0, 255, 0]]]
    transparent = tmp_path / "palette_t.png"
    palette.save(transparent, transparency=0)
    assert as_array(open_rgb(transparent)).tolist() == [[[255, 255, 255], [0, 255, 0]]]
    gif = tmp_path / "palette.gif"
    palette.save(gif)
    assert as_array(open_rgb(gif)).tolist() == [[[255, 0, 0], [0, 255, 0]]]


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16)).save(path)
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")
    assert as_array(open_rgb(path))[0, :, 0].tolist() == [0, 128, 255]


def test_missing_empty_truncated_and_garbage_files_name_item_and_path(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(good, quality=95)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not an image at all" * 10)
    cases = {
        "missing": (tmp_path / "missing.jpg", "not found"),
        "empty": (empty, "empty"),
        "truncated": (truncated, "cannot decode"),
        "garbage": (garbage, "cannot decode"),
    }
    for item_id, (path, reason) in cases.items():
        with pytest.raises(ImageError, match=reason) as info:
            load_item_image(Item(id=item_id, path=path))
        assert f"item '{item_id}'" in str(info.value) and str(path) in str(info.value)
        assert info.value.item_id == item_id and info.value.path == str(path)


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` 1-bit pixels (no real pixel data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


@pytest.mark.parametrize("side", [10_000, 20_000])  # 100 Mpx (Pillow only warns), 400 Mpx
def test_decompression_bomb_is_refused(tmp_path: Path, side: int) -> None:
    path = png_header_only(tmp_path / "bomb.png", side, side)
    with pytest.raises(ImageError, match="decompression bomb") as info:
        open_rgb(path, "bomb")
    assert info.value.item_id == "bomb"


def test_pixel_limit_follows_pillow_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (40, 40)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageError, match="decompression bomb"):
        open_rgb(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)
    assert open_rgb(path).size == (40, 40)


def test_bomb_check_holds_across_threads(tmp_path: Path) -> None:
    """Decoding in threads must not let a bomb through: warning filters are process-wide, so
    a check that turns Pillow's warning into an error can be undone by another thread."""
    bomb = png_header_only(tmp_path / "bomb.png", 10_000, 10_000)
    small = tmp_path / "small.png"
    Image.new("RGB", (4, 4)).save(small)
    outcomes: list[str] = []

    def worker(path: Path) -> None:
        for _ in range(200):
            try:
                open_rgb(path)
                outcomes.append(f"{path.stem} decoded")
            except ImageError as exc:
                outcomes.append(f"{path.stem} {'refused' if 'bomb' in str(exc) else 'failed'}")

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible to expose races
    try:
        threads = [threading.Thread(target=worker, args=(p,)) for p in (bomb, small) * 4]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert sorted(set(outcomes)) == ["bomb refused", "small decoded"]


def test_pixels_items_and_content_hash(tmp_path: Path) -> None:
    digit = np.frombuffer(bytes(range(256)) * 4, np.uint8)[:784].reshape(28, 28)  # read-only
    image = load_item_image(Item(id="d", pixels=digit))
    assert image.size == (28, 28) and as_array(image)[0, 5].tolist() == [5, 5, 5]
    path = tmp_path / "a.png"
    Image.new("RGB", (3, 3), (1, 2, 3)).save(path)
    first = item_content_hash(Item(id="a", path=path))
    assert first == item_content_hash(Item(id="other id", path=path))
    Image.new("RGB", (3, 3), (1, 2, 4)).save(path)
    assert item_content_hash(Item(id="a", path=path)) != first
    assert item_content_hash(Item(id="d", pixels=digit)) != item_content_hash(
        Item(id="d", pixels=digit.T.copy())
    )
    with pytest.raises(ImageError, match="cannot read image file"):
        item_content_hash(Item(id="gone", path=tmp_path / "gone.png"))
