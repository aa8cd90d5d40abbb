"""One interface over Hugging Face and open_clip CLIPs.

A :class:`ClipModel` wraps the framework's ``nn.Module`` and exposes what scoring and
fine-tuning need: tokenisation, preprocessing, raw (trainable) features, normalised numpy
embeddings, the logit scale, and a fingerprint that keys results and caches.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from evalsuite.images import open_rgb
from evalsuite.models.formula import ScoreFormula

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)
ResizeMode = Literal["shortest", "squash"]


@dataclass(frozen=True)
class PreprocessConfig:
    """CLIP preprocessing: resize the shortest edge, centre-crop, normalise ("shortest");
    or, as SigLIP does, resize the whole image to a square without a crop ("squash")."""

    image_size: int
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    resize_size: int | None = None  # shortest edge before the crop; image_size when None
    interpolation: str = "bicubic"
    resize_mode: ResizeMode = "shortest"

    def to_dict(self) -> dict[str, Any]:
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        if self.resize_mode == "shortest":  # CLIP's default: fingerprints stay as they were
            del out["resize_mode"]
        return out

    def build_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        interpolation = transforms.InterpolationMode(self.interpolation)
        if self.resize_mode == "squash":
            size = (self.image_size, self.image_size)
            resize = [transforms.Resize(size, interpolation=interpolation)]
        else:
            edge = self.resize_size or self.image_size
            resize = [
                transforms.Resize(edge, interpolation=interpolation),
                transforms.CenterCrop(self.image_size),
            ]
        return transforms.Compose(
            [*resize, transforms.ToTensor(), transforms.Normalize(self.mean, self.std)]
        )


@dataclass
class ModelSource:
    """Where a model came from: the spec the user passed and what it resolved to."""

    spec: str
    name: str
    path: Path | None = None  # local folder, when there is one
    training: dict[str, Any] | None = None  # training.json of a `finetune` checkpoint
    extra: dict[str, Any] = field(default_factory=dict)


class ClipModel(ABC):
    """A CLIP dual encoder behind one interface, whatever library defined it."""

    backend: ClassVar[str]

    def __init__(
        self,
        module: torch.nn.Module,
        preprocess_config: PreprocessConfig,
        source: ModelSource,
        context_length: int = 77,
    ) -> None:
        self.module = module.eval()
        self.preprocess_config = preprocess_config
        self.source = source
        self.context_length = context_length

    # --- what each backend provides -------------------------------------------------------
    @abstractmethod
    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """Token ids (B, context_length), end-of-text token kept when truncating."""

    @abstractmethod
    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Projected, unnormalised image features; differentiable (used for training)."""

    @abstractmethod
    def text_features(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Projected, unnormalised text features; differentiable (used for training)."""

    @property
    @abstractmethod
    def logit_scale_parameter(self) -> torch.nn.Parameter:
        """The learnable log temperature (CLIP's ``logit_scale``)."""

    @abstractmethod
    def architecture_config(self) -> dict[str, Any]:
        """The architecture as plain data; part of the fingerprint."""

    @abstractmethod
    def save(self, out_dir: Path) -> None:
        """Write the model in its library's own format, loadable without this suite."""

    @abstractmethod
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Trade compute for memory during training."""

    # --- shared behaviour -----------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.source.name

    @property
    def spec(self) -> str:
        return self.source.spec

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def to(self, device: torch.device | str) -> ClipModel:
        self.module.to(device)
        return self

    @property
    def logit_bias_parameter(self) -> torch.nn.Parameter | None:
        """SigLIP's learnable logit bias; None for softmax (CLIP) models."""
        return None

    @property
    def logit_scale(self) -> float:
        """The softmax temperature's inverse, ``exp(logit_scale)`` (100 for OpenAI CLIP)."""
        return float(self.logit_scale_parameter.detach().exp())

    @property
    def logit_bias(self) -> float | None:
        bias = self.logit_bias_parameter
        return None if bias is None else float(bias.detach().reshape(()))

    @property
    def objective(self) -> Literal["contrastive", "sigmoid"]:
        """The loss the weights were trained with: the one ``finetune`` recorded, else a
        logit bias means SigLIP's sigmoid loss (a SigLIP fine-tuned with the softmax loss
        keeps its bias, frozen and unused)."""
        trained = (self.source.training or {}).get("objective")
        if trained == "contrastive" or (trained == "sigmoid" and self.logit_bias is not None):
            return trained
        return "contrastive" if self.logit_bias_parameter is None else "sigmoid"

    def score_formula(self) -> ScoreFormula:
        """How the model turns a cosine into a logit and a probability (softmax or sigmoid)."""
        if self.objective == "sigmoid":
            return ScoreFormula("sigmoid", self.logit_scale, self.logit_bias)
        return ScoreFormula("softmax", self.logit_scale)

    @cached_property
    def transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return self.preprocess_config.build_transform()

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.transform(image)

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the weights, the architecture, the backend and the preprocessing.

        Two loads of the same weights give the same fingerprint; any changed tensor, a
        changed activation or changed preprocessing gives another. Computed once per load.
        """
        digest = hashlib.sha256()
        meta = {
            "backend": self.backend,
            "architecture": self.architecture_config(),
            "preprocess": self.preprocess_config.to_dict(),
            "context_length": self.context_length,
        }
        digest.update(json.dumps(meta, sort_keys=True, default=str).encode())
        for name, tensor in sorted(self.module.state_dict().items()):
            tensor = tensor.detach().cpu().contiguous()
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            if tensor.dtype == torch.bfloat16:
                tensor = tensor.view(torch.int16)
            digest.update(tensor.numpy().tobytes())
        return digest.hexdigest()

    def forward_normalized(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised image and text features and ``exp(logit_scale)``, as ClipLoss takes."""
        image = torch.nn.functional.normalize(self.image_features(pixel_values), dim=-1)
        text = torch.nn.functional.normalize(self.text_features(input_ids), dim=-1)
        return image, text, self.logit_scale_parameter.exp()

    @torch.inference_mode()
    def encode_images(
        self, images: Sequence[Image.Image | str | Path], batch_size: int = 64
    ) -> np.ndarray:
        """L2-normalised float32 embeddings (N, D) of PIL images or image files."""
        chunks = []
        for start in range(0, len(images), batch_size):
            batch = [
                self.preprocess(im if isinstance(im, Image.Image) else open_rgb(im))
                for im in images[start : start + batch_size]
            ]
            pixels = torch.stack(batch).to(self.device)
            chunks.append(_normalized_numpy(self.image_features(pixels)))
        return np.concatenate(chunks) if chunks else np.zeros((0, self.embed_dim), np.float32)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """L2-normalised float32 embeddings (N, D) of texts."""
        chunks = []
        for start in range(0, len(texts), batch_size):
            ids = self.tokenize(list(texts[start : start + batch_size])).to(self.device)
            chunks.append(_normalized_numpy(self.text_features(ids)))
        return np.concatenate(chunks) if chunks else np.zeros((0, self.embed_dim), np.float32)

    @property
    @abstractmethod
    def embed_dim(self) -> int:
        """Dimension of the shared embedding space."""


def _normalized_numpy(features: torch.Tensor) -> np.ndarray:
    features = torch.nn.functional.normalize(features.float(), dim=-1)
    return features.cpu().numpy().astype(np.float32, copy=False)
