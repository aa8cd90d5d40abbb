"""open_clip CLIP behind the :class:`ClipModel` interface.

Folders use open_clip's own Hub layout (``open_clip_config.json`` with ``model_cfg`` and
``preprocess_cfg``, plus ``open_clip_model.safetensors``), so a saved model loads with
``open_clip.create_model_and_transforms("local-dir:FOLDER")`` and no code of ours.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, get_args

import open_clip
import torch
from safetensors.torch import save_model

from evalsuite.errors import ModelLoadError
from evalsuite.models.base import (
    OPENAI_MEAN,
    OPENAI_STD,
    ClipModel,
    ModelSource,
    PreprocessConfig,
    ResizeMode,
)
from evalsuite.models.checks import describe_mismatch, file_shapes, shape_mismatches
from evalsuite.models.openclip_hub import (
    check_folder_tokenizer,
    check_hub_files,
    tokenizer_cached,
)

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
RESIZE_MODES: tuple[ResizeMode, ...] = get_args(ResizeMode)


class OpenClipModel(ClipModel):
    backend = "open_clip"

    def __init__(
        self,
        module: torch.nn.Module,
        model_cfg: dict[str, Any],
        tokenizer: Callable[..., torch.Tensor],
        source: ModelSource,
    ) -> None:
        preprocess = preprocess_config_of(module)
        context_length = int(model_cfg.get("text_cfg", {}).get("context_length", 77))
        super().__init__(module, preprocess, source, context_length)
        self.model_cfg = model_cfg
        self.tokenizer = tokenizer

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(texts), context_length=self.context_length)

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.module.encode_image(pixel_values, normalize=False)

    def text_features(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.module.encode_text(input_ids, normalize=False)

    @property
    def logit_scale_parameter(self) -> torch.nn.Parameter:
        return self.module.logit_scale

    @property
    def logit_bias_parameter(self) -> torch.nn.Parameter | None:
        return getattr(self.module, "logit_bias", None)  # set by init_logit_bias (SigLIP)

    @property
    def embed_dim(self) -> int:
        return int(self.model_cfg["embed_dim"])

    def architecture_config(self) -> dict[str, Any]:
        return self.model_cfg

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.module.set_grad_checkpointing(enable)

    def save(self, out_dir: Path) -> None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "model_cfg": self.model_cfg,
            "preprocess_cfg": open_clip_preprocess_cfg(self.preprocess_config),
        }
        (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        save_model(self.module, str(out_dir / WEIGHTS_FILE))
        if self.model_cfg.get("text_cfg", {}).get("hf_tokenizer_name"):
            # open_clip's local-dir: tokenizer reads these files from the folder itself
            self.tokenizer.save_pretrained(out_dir)


def preprocess_config_of(module: torch.nn.Module) -> PreprocessConfig:
    cfg = open_clip.get_model_preprocess_cfg(module)
    size = cfg.get("size", 224)
    size = size[0] if isinstance(size, (list, tuple)) else size
    mode = cfg.get("resize_mode", "shortest")
    if mode not in RESIZE_MODES:  # "longest" pads to a square: not one of ours
        raise ModelLoadError(
            f"open_clip resize_mode {mode!r} is not supported; known: {', '.join(RESIZE_MODES)}"
        )
    return PreprocessConfig(
        image_size=int(size),
        mean=tuple(cfg.get("mean", OPENAI_MEAN)),
        std=tuple(cfg.get("std", OPENAI_STD)),
        interpolation=cfg.get("interpolation", "bicubic"),
        resize_mode=mode,
    )


def open_clip_preprocess_cfg(config: PreprocessConfig) -> dict[str, Any]:
    return {
        "size": config.image_size,
        "mean": list(config.mean),
        "std": list(config.std),
        "interpolation": config.interpolation,
        "resize_mode": config.resize_mode,
    }


def load_open_clip(
    model_name: str, source: ModelSource, pretrained: str | None = None
) -> OpenClipModel:
    """Build through open_clip's own factory (``local-dir:``, ``hf-hub:`` or a built-in name).

    What can fail without building anything is checked first: the config's timm vision model,
    and the Hub files open_clip would fetch (weights, the tokenizer of ``hf_tokenizer_name``);
    the tokenizer is read before the model is built.
    """
    model_cfg = _model_cfg(model_name)
    _prepare_timm_model(source.spec, model_cfg)
    check_hub_files(source.spec, model_name, pretrained, model_cfg)
    tokenizer = _tokenizer(model_name, model_cfg)
    return OpenClipModel(_build(model_name, pretrained), model_cfg, tokenizer, source)


def _build(model_name: str, pretrained: str | None) -> torch.nn.Module:
    weights = _local_weights(model_name, pretrained)
    if weights is None:  # a pretrained tag or the Hub: open_clip loads strictly
        return open_clip.create_model(model_name, pretrained=pretrained, weights_only=True)
    quiet = _NotRandomlyInitialised()
    logging.getLogger().addFilter(quiet)  # open_clip logs on the root logger
    try:
        module = open_clip.create_model(model_name, load_weights=False, weights_only=True)
    finally:
        logging.getLogger().removeFilter(quiet)
    _load_local_weights(module, model_name, weights)
    if not model_name.startswith("local-dir:"):  # a folder carries its own preprocess_cfg
        _use_the_architectures_preprocessing(module, model_name)
    return module


_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")


def _use_the_architectures_preprocessing(module: torch.nn.Module, arch: str) -> None:
    """A built-in architecture with a weights file is built without a pretrained tag, so
    open_clip gives it CLIP's preprocessing (OpenAI mean/std, resize and crop) whatever the
    architecture: a SigLIP's weights would be fed the wrong pixels. Take the preprocessing
    its pretrained tags share; refuse a SigLIP whose tags disagree or that has none."""
    found = {
        tuple((key, open_clip.get_pretrained_cfg(arch, tag).get(key)) for key in _PREPROCESS_KEYS)
        for tag in open_clip.list_pretrained_tags_by_model(arch)
    }
    if len(found) == 1:
        shared = {key: value for key, value in next(iter(found)) if value is not None}
        open_clip.set_model_preprocess_cfg(
            module, {**open_clip.get_model_preprocess_cfg(module), **shared}
        )
    elif getattr(module, "logit_bias", None) is not None:
        why = (
            "its pretrained tags preprocess images differently"
            if found
            else "it has no pretrained tag to say how its images are preprocessed"
        )
        raise ModelLoadError(
            f"open_clip architecture {arch} with a weights file: {why}, and a SigLIP is not "
            "preprocessed like a CLIP; save the model as an open_clip folder "
            f"({CONFIG_FILE} with its preprocess_cfg) and pass the folder"
        )


def _prepare_timm_model(spec: str, model_cfg: dict[str, Any]) -> None:
    """A timm vision tower must be known to timm in this process (a custom trunk is
    registered with timm by its owner before loading): an unknown name is refused here,
    before open_clip's bare RuntimeError."""
    import timm

    name = model_cfg.get("vision_cfg", {}).get("timm_model_name")
    if not name:
        return
    if not timm.is_model(name):
        raise ModelLoadError(
            f"open_clip model {spec!r}: its vision tower is the timm model {name!r} "
            f"(vision_cfg.timm_model_name), which timm {timm.__version__} does not know; "
            "upgrade timm or correct the config"
        )


def _tokenizer(model_name: str, model_cfg: dict[str, Any]) -> Callable[..., torch.Tensor]:
    """open_clip's own tokenizer for the spec; a Hugging Face one is read from the folder or,
    when all its files are cached, from the cache without asking the Hub."""
    hf_tokenizer = model_cfg.get("text_cfg", {}).get("hf_tokenizer_name")
    local = model_name.startswith("local-dir:")
    if local:
        check_folder_tokenizer(Path(model_name.removeprefix("local-dir:")), model_cfg)
    if hf_tokenizer and (local or tokenizer_cached(model_cfg)):
        return open_clip.get_tokenizer(model_name, local_files_only=True)
    return open_clip.get_tokenizer(model_name)


class _NotRandomlyInitialised(logging.Filter):
    """Drops open_clip's "Model initialized randomly" warning of ``load_weights=False``:
    the weights are loaded right after, so it would be a false alarm."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()


def _local_weights(model_name: str, pretrained: str | None) -> Path | None:
    """The weights file open_clip would load for a local folder or a ``pretrained`` file."""
    if model_name.startswith("local-dir:"):
        from open_clip.factory import _find_checkpoint_in_dir  # open_clip's own choice

        found = _find_checkpoint_in_dir(Path(model_name.removeprefix("local-dir:")))
        return Path(found) if found else None
    if pretrained and not model_name.startswith("hf-hub:") and Path(pretrained).is_file():
        return Path(pretrained)
    return None


def _load_local_weights(module: torch.nn.Module, model_name: str, weights: Path) -> None:
    """open_clip's load_checkpoint, but weights that do not fit are refused with a
    ModelLoadError naming a few and their count (torch's strict error lists them all and
    does not say which file disagrees with what)."""
    problem = _shape_problem(module, model_name, weights)
    if not problem:
        result = open_clip.load_checkpoint(module, str(weights), strict=False, weights_only=True)
        # .npz/.npy (big_vision) files return {}: their loader maps every weight itself
        problem = describe_mismatch(
            getattr(result, "missing_keys", ()), getattr(result, "unexpected_keys", ())
        )
    if not problem:
        return
    if model_name.startswith("local-dir:"):
        what = f"open_clip folder {model_name.removeprefix('local-dir:')}: {CONFIG_FILE}"
        fix = f"use the {CONFIG_FILE} saved with these weights"
    else:
        what = f"open_clip architecture {model_name}"
        fix = "pass the architecture these weights were trained with"
    raise ModelLoadError(f"{what} does not match {weights}: {problem}. {fix[0].upper()}{fix[1:]}")


def _shape_problem(module: torch.nn.Module, model_name: str, weights: Path) -> str:
    """Weights of the file whose shape differs from the built model's, before loading:
    open_clip's load_checkpoint would silently resize the image and text position embeddings
    to the config's image size and context length (logged at INFO only), i.e. load another
    model than the one saved."""
    shapes = file_shapes(weights) if weights.suffix not in (".npz", ".npy") else None
    mismatched = [
        m
        for m in shape_mismatches(shapes or {}, module.state_dict())
        if not (m[0] in _RESHAPED and math.prod(m[1]) == math.prod(m[2]))
    ]
    declared = "config" if model_name.startswith("local-dir:") else "architecture"
    problem = describe_mismatch((), (), mismatched, declared=declared)
    if any("pos_embed" in name or "positional_embedding" in name for name, _, _ in mismatched):
        problem += (
            "; the image size or context length differs, and open_clip would resize the "
            "position embeddings silently"
        )
    return problem


# Scalars open_clip reshapes itself (a 0-d or 1-element logit scale): not a mismatch.
_RESHAPED = ("logit_scale", "logit_bias")


def _model_cfg(model_name: str) -> dict[str, Any]:
    if model_name.startswith("local-dir:"):
        path = Path(model_name.removeprefix("local-dir:")) / CONFIG_FILE
        return json.loads(path.read_text())["model_cfg"]
    if model_name.startswith("hf-hub:"):
        from open_clip.factory import _get_hf_config

        return _get_hf_config(model_name.removeprefix("hf-hub:"))["model_cfg"]
    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        raise KeyError(model_name)
    return cfg
