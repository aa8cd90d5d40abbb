"""Hugging Face ``transformers`` CLIP behind the :class:`ClipModel` interface."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel, PreTrainedTokenizerBase

from evalsuite.models.base import OPENAI_MEAN, OPENAI_STD, ClipModel, ModelSource, PreprocessConfig
from evalsuite.models.checks import read_json
from evalsuite.models.tokenizer import build_hf_tokenizer

log = logging.getLogger(__name__)

# Keys of config.to_dict() that say nothing about what the network computes.
_VOLATILE_CONFIG_KEYS = {
    "transformers_version",
    "_name_or_path",
    "architectures",
    "dtype",
    "torch_dtype",
    "_commit_hash",
    "_attn_implementation_autoset",
}


class HFModule:
    """What every ``transformers`` model shares: its config as the architecture (without the
    keys that say nothing about the network) and gradient checkpointing."""

    module: Any

    def __init__(
        self,
        module: Any,
        tokenizer: PreTrainedTokenizerBase,
        preprocess_config: PreprocessConfig,
        source: ModelSource,
    ) -> None:
        context_length = int(module.config.text_config.max_position_embeddings)
        super().__init__(module, preprocess_config, source, context_length)  # ClipModel's
        self.tokenizer = tokenizer

    def architecture_config(self) -> dict[str, Any]:
        return _drop_volatile(self.module.config.to_dict())

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        if enable:
            self.module.gradient_checkpointing_enable()
        else:
            self.module.gradient_checkpointing_disable()


class HFClipModel(HFModule, ClipModel):
    backend = "hf"

    def __init__(self, module: CLIPModel, tokenizer: PreTrainedTokenizerBase, *args: Any) -> None:
        super().__init__(module, tokenizer, *args)
        self._eos_id = int(tokenizer.eos_token_id)

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        encoded = self.tokenizer(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=self.context_length,
            return_tensors="pt",
        )
        return encoded["input_ids"]

    def _attention_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        # Attend up to and including the first end-of-text token; padding uses the same id.
        is_eos = (input_ids == self._eos_id).int()
        first_eos = is_eos.argmax(dim=-1, keepdim=True)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        return (positions.unsqueeze(0) <= first_eos).long()

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        # Call the towers directly: get_image_features returns a tensor in transformers 4.x
        # and an output object in 5.x; the towers' pooler_output is stable across both.
        pooled = self.module.vision_model(pixel_values=pixel_values).pooler_output
        return self.module.visual_projection(pooled)

    def text_features(self, input_ids: torch.Tensor) -> torch.Tensor:
        # Drop the padding columns after the longest text: under the causal mask no position
        # up to an end-of-text token sees them, so the features are unchanged, and captions of
        # ~20 tokens no longer pay for 77. (open_clip's CLIP needs all 77 positions.)
        is_eos = input_ids == self._eos_id
        longest = int(is_eos.int().argmax(dim=-1).max()) + 1 if is_eos.any() else None
        input_ids = input_ids[:, :longest]
        mask = self._attention_mask(input_ids)
        pooled = self.module.text_model(input_ids=input_ids, attention_mask=mask).pooler_output
        return self.module.text_projection(pooled)

    @property
    def logit_scale_parameter(self) -> torch.nn.Parameter:
        return self.module.logit_scale

    @property
    def embed_dim(self) -> int:
        return int(self.module.config.projection_dim)

    def save(self, out_dir: Path) -> None:
        out_dir = Path(out_dir)
        self.module.save_pretrained(out_dir, safe_serialization=True)
        self.tokenizer.save_pretrained(out_dir)
        image_processor_for(self.preprocess_config).save_pretrained(out_dir)


def _drop_volatile(config: Any) -> Any:
    if isinstance(config, dict):
        return {k: _drop_volatile(v) for k, v in config.items() if k not in _VOLATILE_CONFIG_KEYS}
    return config


def image_processor_for(config: PreprocessConfig) -> CLIPImageProcessor:
    """The ``CLIPImageProcessor`` that does what ``config`` says (saved with HF folders)."""
    return CLIPImageProcessor(
        size={"shortest_edge": config.resize_size or config.image_size},
        crop_size={"height": config.image_size, "width": config.image_size},
        image_mean=list(config.mean),
        image_std=list(config.std),
        do_convert_rgb=True,
    )


def preprocess_config_from_folder(folder: Path | None, image_size: int) -> PreprocessConfig:
    """Read ``preprocessor_config.json`` when present; CLIP's defaults otherwise."""
    path = folder / "preprocessor_config.json" if folder is not None else None
    if path is None or not path.is_file():
        return PreprocessConfig(image_size=image_size)
    raw = read_json(path)
    crop = raw.get("crop_size", image_size)
    crop = crop.get("height", image_size) if isinstance(crop, dict) else int(crop)
    size = raw.get("size", crop)
    if isinstance(size, dict):
        size = size.get("shortest_edge", size.get("height", crop))
    if raw.get("resample", 3) != 3:
        log.warning("%s: resample=%s; this suite preprocesses with bicubic", path, raw["resample"])
    return PreprocessConfig(
        image_size=int(crop),
        mean=tuple(raw.get("image_mean", OPENAI_MEAN)),
        std=tuple(raw.get("image_std", OPENAI_STD)),
        resize_size=int(size),
    )


def load_hf_tokenizer(
    name_or_path: str | Path, module: CLIPModel, **kwargs: Any
) -> PreTrainedTokenizerBase:
    """The model's own tokenizer; OpenAI's vocabulary when a CLIP folder ships none."""
    try:
        return AutoTokenizer.from_pretrained(str(name_or_path), **kwargs)
    except (OSError, ValueError) as exc:
        if module.config.text_config.vocab_size != 49408:
            raise
        log.warning(
            "%s has no tokenizer files (%s); using the OpenAI CLIP vocabulary", name_or_path, exc
        )
        return build_hf_tokenizer(int(module.config.text_config.max_position_embeddings))
