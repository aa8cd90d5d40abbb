"""Robust image decoding shared by scoring and fine-tuning.

Every image becomes RGB (greyscale, CMYK, RGBA and palette images are converted); a missing,
empty, truncated or corrupt file raises :class:`ImageError` naming the item and path; images
larger than ``MAX_IMAGE_PIXELS`` are refused as decompression bombs instead of being decoded.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from evalsuite.data.items import Item
from evalsuite.errors import ImageError

# 89 Mpx is Pillow's own warning threshold; anything above it is refused outright (Pillow
# only raises at twice its limit and warns in between).
MAX_IMAGE_PIXELS = 89_478_485
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
# A truncated JPEG must fail, not decode to a grey bottom half.
ImageFile.LOAD_TRUNCATED_IMAGES = False


def to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit greyscale to 8-bit "L" by scaling: Pillow's own convert clips at 255,
    which turns a 16-bit image almost entirely white."""
    pixels = np.asarray(image, dtype=np.float64)
    sixteen_bit = image.mode.startswith("I;16") or pixels.max(initial=0.0) > 255
    scaled = pixels * (255.0 / 65535.0) if sixteen_bit else pixels
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparent pixels are composited on white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = to_8bit(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB")


def check_size(image: Image.Image) -> None:
    """Refuse an image whose header claims more pixels than Pillow's current limit."""
    limit = Image.MAX_IMAGE_PIXELS
    pixels = image.width * image.height
    if limit is not None and pixels > limit:
        raise Image.DecompressionBombError(
            f"{image.width}x{image.height} = {pixels} pixels exceeds the limit of {limit}"
        )


def open_rgb(
    path: str | Path, item_id: str | None = None, data: bytes | None = None
) -> Image.Image:
    """Decode ``path`` fully into an RGB image, or raise :class:`ImageError`. With ``data``
    the image is those encoded bytes and ``path`` only names where they came from."""
    path = Path(path)
    where = f"item {item_id!r} ({path})" if item_id is not None else str(path)
    if data is None and not path.is_file():
        raise ImageError(f"{where}: image file not found", item_id=item_id, path=str(path))
    if (len(data) if data is not None else path.stat().st_size) == 0:
        raise ImageError(f"{where}: image file is empty", item_id=item_id, path=str(path))
    try:
        # Pillow only warns between 1x and 2x its limit, so the size is checked here rather than
        # by turning the warning into an error: warning filters are process-wide, and with
        # images decoded in threads another thread could restore them mid-decode.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path if data is None else io.BytesIO(data)) as image:
                check_size(image)
                image.load()
                return to_rgb(image)
    except Image.DecompressionBombError as exc:
        raise ImageError(
            f"{where}: refused as a decompression bomb ({exc})", item_id=item_id, path=str(path)
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(
            f"{where}: cannot decode image ({exc})", item_id=item_id, path=str(path)
        ) from exc


def load_item_image(item: Item) -> Image.Image:
    """The RGB image of a dataset item, from its file, its encoded bytes or its pixels."""
    if item.path is not None:
        return open_rgb(item.path, item.id)
    if item.data is not None:
        return open_rgb(f"<{item.id}: {len(item.data)} bytes>", item.id, item.data)
    assert item.pixels is not None
    return to_rgb(Image.fromarray(np.ascontiguousarray(item.pixels)))


def item_content_hash(item: Item) -> str:
    """SHA-256 of the item's image bytes: the file's bytes, the encoded bytes, or the raw
    pixel array."""
    digest = hashlib.sha256()
    if item.data is not None:
        digest.update(item.data)
    elif item.path is not None:
        try:
            with open(item.path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except OSError as exc:
            raise ImageError(
                f"item {item.id!r} ({item.path}): cannot read image file ({exc})",
                item_id=item.id,
                path=str(item.path),
            ) from exc
    else:
        assert item.pixels is not None
        pixels = np.ascontiguousarray(item.pixels)
        digest.update(f"{pixels.dtype}{pixels.shape}".encode())
        digest.update(pixels.tobytes())
    return digest.hexdigest()
