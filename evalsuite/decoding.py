"""Images decoded and preprocessed in DataLoader workers, ready for the model.

When the model's transform ends in ``ToTensor(), Normalize(mean, std)`` (every CLIP here), the
workers stop after the PIL steps (decode, resize, crop) and send uint8 pixels; the main
process converts and normalises each batch at once, with the same arithmetic as torchvision,
so the tensors are bit-identical to ``model.preprocess`` at a quarter of the bytes and without
two small-tensor operations per image.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import transforms

from evalsuite.data.items import Item
from evalsuite.errors import ImageError
from evalsuite.images import load_item_image

DecodedItem = tuple[int, torch.Tensor | None, str | None, float]


@dataclass(frozen=True)
class SplitTransform:
    """A ``Compose([...PIL steps..., ToTensor(), Normalize(mean, std)])`` cut in two: the PIL
    steps run per image in the workers, the conversion once per batch in the main process."""

    pil: Any  # PIL image -> PIL image
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_uint8(self, image: Any) -> torch.Tensor:
        """(H, W, C) uint8 pixels after the PIL steps, as ``ToTensor`` reads them."""
        array = np.array(self.pil(image), dtype=np.uint8, copy=True)
        return torch.from_numpy(array[:, :, None] if array.ndim == 2 else array)

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) uint8 -> (B, C, H, W) float32, exactly ToTensor then Normalize."""
        out = pixels.permute(0, 3, 1, 2).contiguous().float().div_(255)
        mean = torch.as_tensor(self.mean, dtype=out.dtype, device=out.device).view(1, -1, 1, 1)
        std = torch.as_tensor(self.std, dtype=out.dtype, device=out.device).view(1, -1, 1, 1)
        return out.sub_(mean).div_(std)


_PIL_STEPS = (transforms.Resize, transforms.CenterCrop)


def split_transform(transform: Any) -> SplitTransform | None:
    """The batched form of ``transform`` when it ends in ToTensor + Normalize, else None."""
    steps = getattr(transform, "transforms", None)
    if not isinstance(transform, transforms.Compose) or not steps or len(steps) < 2:
        return None
    to_tensor, normalize = steps[-2], steps[-1]
    if type(to_tensor) is not transforms.ToTensor or type(normalize) is not transforms.Normalize:
        return None
    # Only steps known to keep an RGB image RGB (and 8-bit), so that ToTensor's only work is
    # the uint8 -> float division reproduced in ``normalize``.
    if not all(type(step) in _PIL_STEPS for step in steps[:-2]):
        return None
    mean, std = (tuple(float(v) for v in np.ravel(x)) for x in (normalize.mean, normalize.std))
    return SplitTransform(transforms.Compose(list(steps[:-2])), mean, std)


class ImageDataset(Dataset):
    """Decodes and preprocesses one item; a failure is returned, not raised, so the main
    process can apply the skip/fail policy with the item's id and path.

    With a :class:`SplitTransform` the item is (H, W, C) uint8 pixels, else the transform's
    float tensor."""

    def __init__(self, items: Sequence[Item], transform: Any) -> None:
        self.items = items
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> DecodedItem:
        """(index, pixels or None, error or None, CPU seconds this item took)."""
        start = time.process_time()
        try:
            image = load_item_image(self.items[index])
        except ImageError as exc:
            return index, None, str(exc), time.process_time() - start
        if isinstance(self.transform, SplitTransform):
            pixels = self.transform.to_uint8(image)
        else:
            pixels = self.transform(image)
        return index, pixels, None, time.process_time() - start


def collate_decoded(batch: list[DecodedItem]) -> dict[str, Any]:
    """One batch: the decoded items' indices and stacked pixels, the failures, CPU seconds."""
    ok = [(i, t) for i, t, _, _ in batch if t is not None]
    return {
        "indices": [i for i, _ in ok],
        "pixels": torch.stack([t for _, t in ok]) if ok else None,
        "errors": [(i, e) for i, t, e, _ in batch if t is None],
        "decode_seconds": sum(seconds for *_, seconds in batch),
    }
