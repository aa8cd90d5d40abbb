"""Hugging Face ``transformers`` SigLIP (``SiglipModel``) behind the :class:`ClipModel` interface.

SigLIP differs from CLIP where this suite touches it:

- text: a SentencePiece tokenizer, padded to the fixed context length, and no attention mask.
  The text tower attends bidirectionally and pools the LAST position, so the padding is part
  of the input the model was trained on (Google's big_vision and Hugging Face's docs pad with
  ``padding="max_length"`` and pass no mask);
- images: resized to a square without a centre crop ("squash"), mean = std = 0.5;
- the projections live inside the towers (``text_model.head``, the attention-pool
  ``vision_model.head``): the towers' ``pooler_output`` is the embedding;
- scores: ``sigmoid(exp(logit_scale) * cos + logit_bias)`` per pair, not a softmax.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoTokenizer,
    CLIPImageProcessor,
    PreTrainedTokenizerBase,
    SiglipImageProcessor,
)

from evalsuite.errors import ModelLoadError
from evalsuite.hub import HUB_ID
from evalsuite.models.base import (
    SIGLIP_MEAN,
    SIGLIP_STD,
    ClipModel,
    PreprocessConfig,
)
from evalsuite.models.checks import read_json
from evalsuite.models.hf import HFModule, image_processor_for, preprocess_config_from_folder

TOKENIZER_FILES = ("spiece.model", "tokenizer_config.json", "special_tokens_map.json")
EXAMPLE_HUB_ID = "google/siglip-base-patch16-224"
# PIL resample codes (preprocessor_config.json) -> torchvision InterpolationMode values
RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


class _ClipTokenIdsInSiglipConfig(logging.Filter):
    """Drops transformers' warning that ``SiglipTextConfig``'s default bos/eos ids (CLIP's
    49406/49407) lie outside SigLIP's vocabulary: the model never reads them (its tokenizer
    ends texts with ``</s>``), so on every load it would be a false alarm."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "_token_id must be `None` or an integer within the vocabulary" not in (
            record.getMessage()
        )


@contextmanager
def quiet_default_token_ids() -> Iterator[None]:
    logger = logging.getLogger("transformers.configuration_utils")
    quiet = _ClipTokenIdsInSiglipConfig()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


class HFSiglipModel(HFModule, ClipModel):
    backend = "hf"  # one backend for transformers models; the class tells CLIP and SigLIP apart

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        encoded = self.tokenizer(
            list(texts),
            padding="max_length",  # the text tower pools the last position: never shorter
            truncation=True,
            max_length=self.context_length,
            return_tensors="pt",
        )
        return encoded["input_ids"]

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.module.vision_model(pixel_values=pixel_values).pooler_output

    def text_features(self, input_ids: torch.Tensor) -> torch.Tensor:
        # No attention mask and no trimming of the padding: SigLIP was trained attending to it.
        return self.module.text_model(input_ids=input_ids).pooler_output

    @property
    def logit_scale_parameter(self) -> torch.nn.Parameter:
        return self.module.logit_scale

    @property
    def logit_bias_parameter(self) -> torch.nn.Parameter:
        return self.module.logit_bias

    @property
    def embed_dim(self) -> int:
        # The attention-pool head keeps the vision width; the text head projects onto it.
        return int(self.module.config.vision_config.hidden_size)

    def save(self, out_dir: Path) -> None:
        out_dir = Path(out_dir)
        with quiet_default_token_ids():  # saving diffs against a default config, which warns
            self.module.save_pretrained(out_dir, safe_serialization=True)
        self.tokenizer.save_pretrained(out_dir)
        siglip_image_processor_for(self.preprocess_config).save_pretrained(out_dir)


def siglip_image_processor_for(
    config: PreprocessConfig,
) -> SiglipImageProcessor | CLIPImageProcessor:
    """The image processor that does what ``config`` says: SigLIP's for a squash resize, CLIP's
    for a folder that shipped a resize-and-crop one (kept as it came)."""
    if config.resize_mode != "squash":
        return image_processor_for(config)
    resample = {mode: code for code, mode in RESAMPLE.items()}[config.interpolation]
    return SiglipImageProcessor(
        size={"height": config.image_size, "width": config.image_size},
        resample=resample,
        image_mean=list(config.mean),
        image_std=list(config.std),
    )


def siglip_preprocess_config(folder: Path | None, image_size: int) -> PreprocessConfig:
    """``preprocessor_config.json`` of a SigLIP folder; SigLIP's defaults without one (squash to
    the vision tower's ``image_size``, mean = std = 0.5, bicubic)."""
    path = folder / "preprocessor_config.json" if folder is not None else None
    if path is None or not path.is_file():
        return PreprocessConfig(image_size, SIGLIP_MEAN, SIGLIP_STD, resize_mode="squash")
    raw = read_json(path)
    size = raw.get("size", {"height": image_size, "width": image_size})
    if isinstance(size, dict) and "shortest_edge" in size:  # a CLIP processor: do what it says
        return preprocess_config_from_folder(folder, image_size)
    height, width = (size["height"], size["width"]) if isinstance(size, dict) else (size, size)
    if height != width or height != image_size:
        # The vision tower's position embeddings fit image_size x image_size patches only.
        raise ModelLoadError(
            f"{path}: resizes images to {height}x{width}, but the vision tower takes "
            f"{image_size}x{image_size} (vision_config.image_size)"
        )
    resample = raw.get("resample", 3)
    if resample not in RESAMPLE:
        raise ModelLoadError(f"{path}: unknown resample {resample!r} (PIL codes 0-5)")
    normalize = raw.get("do_normalize", True)
    return PreprocessConfig(
        image_size=int(image_size),
        mean=tuple(raw.get("image_mean", SIGLIP_MEAN)) if normalize else (0.0, 0.0, 0.0),
        std=tuple(raw.get("image_std", SIGLIP_STD)) if normalize else (1.0, 1.0, 1.0),
        interpolation=RESAMPLE[resample],
        resize_mode="squash",
    )


def load_siglip_tokenizer(name: str, folder: Path | None, **kwargs: Any) -> PreTrainedTokenizerBase:
    """The model's own SentencePiece tokenizer. Never a stand-in: CLIP's vocabulary would give
    ids that mean nothing to SigLIP's embeddings, so a folder without one is refused.

    A Hub id looked up in the cache only raises ``OSError``, so that ``load_hf_hub`` goes on
    to download the files (or says the id is not cached)."""
    try:
        return AutoTokenizer.from_pretrained(name, **kwargs)
    except Exception as exc:  # sentencepiece, protobuf and transformers raise their own types
        if folder is None and kwargs.get("local_files_only") and HUB_ID.match(name):
            raise OSError(f"{name}: tokenizer not in the cache ({exc})") from exc
        raise ModelLoadError(missing_tokenizer_message(name, folder, exc)) from exc


def missing_tokenizer_message(name: str, folder: Path | None, exc: BaseException) -> str:
    present = [f for f in (*TOKENIZER_FILES, "tokenizer.json") if folder and (folder / f).is_file()]
    if folder is not None and {"spiece.model", "tokenizer.json"} & set(present):
        # the vocabulary is there: the reader failed (sentencepiece missing, a broken file)
        return (
            f"SigLIP model {name!r}: its tokenizer ({', '.join(present)}) could not be read "
            f"({type(exc).__name__}: {exc}). SigLIP's tokenizer needs the sentencepiece package "
            "(pinned in constraints.txt: pip install -c constraints.txt sentencepiece); if it "
            "is installed, the files may be damaged: download them again"
        )
    missing = [f for f in TOKENIZER_FILES if f not in present]
    files = " ".join(missing)
    if folder is None:
        fetch = f"`hf download {name} {files}`"
    else:
        fetch = (
            f"`hf download ORG/NAME {files} --local-dir {folder}` with the id the folder came "
            f"from (e.g. {EXAMPLE_HUB_ID}; the files are on the model's Hub page)"
        )
    return (
        f"SigLIP model {name!r} has no usable tokenizer ({type(exc).__name__}: {exc}). SigLIP "
        f"needs its own SentencePiece vocabulary (missing: {', '.join(missing)}); CLIP's would "
        f"give wrong ids. Fetch them on a machine with network: {fetch}"
    )
