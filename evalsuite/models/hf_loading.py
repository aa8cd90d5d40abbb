"""Hugging Face folders and Hub ids, loaded by their config.json's ``model_type``.

``HF_MODEL_TYPES`` is the table of the ``model_type`` values this suite knows: each loads with
its transformers class, or is refused on purpose with why and what to load instead. A
config.json without ``model_type`` is read as ``clip``. Adding an architecture is one
decorated loader here (and its adapter beside ``hf.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import CLIPModel, PretrainedConfig, SiglipModel

from evalsuite.errors import ModelLoadError
from evalsuite.hub import HubModelNotCached, cached, not_downloadable
from evalsuite.models.base import ClipModel, ModelSource
from evalsuite.models.checks import describe_mismatch, pickle_message, refused_pickle
from evalsuite.models.hf import HFClipModel, load_hf_tokenizer, preprocess_config_from_folder
from evalsuite.models.hf_siglip import (
    HFSiglipModel,
    load_siglip_tokenizer,
    quiet_default_token_ids,
    siglip_preprocess_config,
)
from evalsuite.registry import Registry

# (folder or Hub id, where it came from, from_pretrained's keyword arguments) -> the model
HFLoader = Callable[[str, ModelSource, dict[str, Any]], ClipModel]


@dataclass(frozen=True)
class HFModelType:
    """How one config.json ``model_type`` loads: ``load`` it as a ``model_class``, or, with no
    ``load``, refuse it with ``refusal`` (why, and what to load instead)."""

    model_class: str
    load: HFLoader | None = None
    refusal: str = ""


HF_MODEL_TYPES: Registry[HFModelType] = Registry("Hugging Face model_type", error=ModelLoadError)


def hf_model_type(name: str, model_class: str) -> Callable[[HFLoader], HFLoader]:
    """Register the decorated function as the loader of ``model_type`` ``name``."""

    def register(load: HFLoader) -> HFLoader:
        HF_MODEL_TYPES.register(name, HFModelType(model_class, load))
        return load

    return register


def load_hf_hub(hub_id: str, trust_remote_code: bool = False) -> ClipModel:
    """A Hub id, from the local cache first; else downloaded, unless offline or the Hub cannot
    be reached: then :class:`HubModelNotCached` at once, not after transformers' retries."""
    source = ModelSource(spec=hub_id, name=hub_id)
    try:
        return load_hf(hub_id, source, trust_remote_code, local_files_only=True)
    except OSError as exc:
        why = not_downloadable(hub_id, "config.json")
        if why is not None:
            if cached(hub_id, "config.json"):  # say what is missing, e.g. the tokenizer
                raise HubModelNotCached(hub_id, f"{why}; {exc}", partly=True) from exc
            raise HubModelNotCached(hub_id, why) from exc
    try:
        return load_hf(hub_id, source, trust_remote_code, local_files_only=False)
    except OSError as exc:
        raise HubModelNotCached(hub_id, f"download failed: {exc}") from exc


def load_hf(
    name: str, source: ModelSource, trust_remote_code: bool, local_files_only: bool
) -> ClipModel:
    """A Hugging Face folder or Hub id, by its config.json's ``model_type``."""
    kwargs: dict[str, Any] = {
        "local_files_only": local_files_only,
        "trust_remote_code": trust_remote_code,
    }
    model_type = _hf_model_type(name, local_files_only)
    if model_type not in HF_MODEL_TYPES:
        raise ModelLoadError(_unknown_model_type(name, model_type))
    entry = HF_MODEL_TYPES.get(model_type)
    if entry.load is None:
        raise ModelLoadError(entry.refusal)
    return entry.load(name, source, kwargs)


@hf_model_type("clip", "CLIPModel")
def _load_hf_clip(name: str, source: ModelSource, kwargs: dict[str, Any]) -> HFClipModel:
    module = _from_pretrained(CLIPModel, "Hugging Face CLIP", name, kwargs)
    tokenizer = load_hf_tokenizer(name, module, **kwargs)
    folder = source.path or _hub_snapshot_folder(name)
    preprocess = preprocess_config_from_folder(folder, module.config.vision_config.image_size)
    return HFClipModel(module, tokenizer, preprocess, source)


@hf_model_type("siglip", "SiglipModel")
def _load_hf_siglip(name: str, source: ModelSource, kwargs: dict[str, Any]) -> HFSiglipModel:
    with quiet_default_token_ids():
        module = _from_pretrained(SiglipModel, "Hugging Face SigLIP", name, kwargs)
    tokenizer = load_siglip_tokenizer(name, source.path, **kwargs)
    folder = source.path or _hub_snapshot_folder(name)
    preprocess = siglip_preprocess_config(folder, module.config.vision_config.image_size)
    return HFSiglipModel(module, tokenizer, preprocess, source)


HF_MODEL_TYPES.register(
    "siglip2",
    HFModelType(
        "Siglip2Model",
        refusal=(
            "Hugging Face SigLIP 2 folders (Siglip2Model, model_type 'siglip2') are not "
            "supported yet: their NaFlex image processor resizes each image to its own patch "
            "grid (aspect ratio kept, up to max_num_patches), which this suite's fixed-size "
            "square preprocessing does not reproduce. Load SigLIP 2 through open_clip instead, "
            "e.g. 'hf-hub:timm/ViT-B-16-SigLIP2'"
        ),
    ),
)


def _hf_model_type(name: str, local_files_only: bool) -> str:
    """``model_type`` of the config.json of a folder or Hub id (``OSError`` where the file
    cannot be had, as from ``from_pretrained``, so ``load_hf_hub`` can tell why)."""
    try:
        config, _ = PretrainedConfig.get_config_dict(name, local_files_only=local_files_only)
    except OSError:
        raise
    except Exception as exc:  # JSON that is not an object, and the like
        raise ModelLoadError(f"cannot read the config.json of {name!r}: {exc}") from exc
    if not isinstance(config, dict):
        raise ModelLoadError(f"config.json of {name!r} is not a JSON object")
    return str(config.get("model_type") or "clip")


def _unknown_model_type(name: str, model_type: str) -> str:
    loadable = [n for n in HF_MODEL_TYPES.names() if HF_MODEL_TYPES.get(n).load is not None]
    classes = [HF_MODEL_TYPES.get(n).model_class for n in loadable]
    return (
        f"Hugging Face model {name!r} has model_type {model_type!r} in its config.json; this "
        f"suite loads {', '.join(repr(t) for t in loadable)} ({', '.join(classes)})"
    )


def _from_pretrained(model_class: Any, what: str, name: str, kwargs: dict[str, Any]) -> Any:
    """``model_class.from_pretrained`` that refuses weights which do not fit the config."""
    try:
        # Shape mismatches are reported in the loading info below (not raised with "look at
        # the above report"), and refused there like missing and unexpected weights.
        module, info = model_class.from_pretrained(
            name, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs
        )
    except OSError:
        raise
    except Exception as exc:  # corrupt weights, wrong model type: name the source
        if refused_pickle(exc):
            raise ModelLoadError(pickle_message(f"{what} {name!r}")) from exc
        raise ModelLoadError(f"cannot load {what} {name!r}: {exc}") from exc
    # transformers has already left out the keys that legitimately differ (position_ids
    # buffers of older checkpoints, the model's _keys_to_ignore_on_load_*): the rest count.
    problem = describe_mismatch(
        info["missing_keys"], info["unexpected_keys"], info["mismatched_keys"]
    )
    if problem:
        raise ModelLoadError(
            f"{what} {name}: config.json does not match the weights: {problem}. "
            "Use the config.json saved with these weights"
        )
    return module


def _hub_snapshot_folder(hub_id: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(hub_id, "config.json")
    return Path(found).parent if isinstance(found, str) else None
