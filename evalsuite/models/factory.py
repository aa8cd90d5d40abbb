"""``load_model(spec)``: every way a user names a CLIP, resolved to one :class:`ClipModel`.

Accepted specs, tried in this order:

- ``hf-hub:ORG/NAME``: an open_clip model on the Hugging Face Hub (or in its cache);
- ``openclip:ARCH`` or ``openclip:ARCH/PRETRAINED``: an open_clip architecture with a
  pretrained tag, a weights file or nothing (random init); ``pretrained=`` does the same.
  An absolute weights path may be written ``openclip:ARCH/abs/w.pt`` (its own '/' the
  separator) or ``openclip:ARCH//abs/w.pt`` (see :func:`split_open_clip_spec`);
- a local folder: a Hugging Face CLIP folder (``config.json``), an open_clip folder
  (``open_clip_config.json``) or a checkpoint written by ``finetune`` (either, plus
  ``training.json``);
- a built-in open_clip architecture name (``ViT-B-32``) with ``pretrained=``;
- ``ORG/NAME``: a Hugging Face Hub id (``patrickjohncyh/fashion-clip``), from the local cache.

``load_scorable(spec)`` also takes precomputed image embeddings (``embeddings:PATH`` or a
folder holding them, see :mod:`evalsuite.models.precomputed`): what ``evalsuite score`` can
score. ``load_model`` refuses them with that hint, since they cannot be fine-tuned or embed.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import open_clip
import torch
from transformers import CLIPModel, PretrainedConfig, SiglipModel

from evalsuite.errors import ModelLoadError
from evalsuite.hub import HUB_ID, HubModelNotCached, cached, not_downloadable
from evalsuite.models.base import ClipModel, ModelSource
from evalsuite.models.checks import describe_mismatch, read_json
from evalsuite.models.hf import HFClipModel, load_hf_tokenizer, preprocess_config_from_folder
from evalsuite.models.hf_siglip import (
    HFSiglipModel,
    load_siglip_tokenizer,
    quiet_default_token_ids,
    siglip_preprocess_config,
)
from evalsuite.models.openclip import CONFIG_FILE as OPEN_CLIP_CONFIG
from evalsuite.models.openclip import load_open_clip
from evalsuite.models.precomputed import (
    PrecomputedEmbeddings,
    is_embeddings_spec,
    load_embeddings,
)
from evalsuite.preflight import looks_like_path, not_a_model

TRAINING_FILE = "training.json"
_HF_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def load_model(
    spec: str | Path,
    pretrained: str | None = None,
    device: str | torch.device | None = None,
    trust_remote_code: bool = False,
) -> ClipModel:
    """Load any CLIP the suite knows how to name; see the module docstring for ``spec``."""
    spec = str(spec)
    model = _resolve(spec, pretrained, trust_remote_code)
    if device is not None:
        model.to(device)
    return model


def load_scorable(
    spec: str | Path | ClipModel | PrecomputedEmbeddings,
    pretrained: str | None = None,
    trust_remote_code: bool = False,
) -> ClipModel | PrecomputedEmbeddings:
    """What ``evalsuite score`` scores: a model (``load_model``) or precomputed embeddings."""
    if isinstance(spec, (ClipModel, PrecomputedEmbeddings)):
        return spec
    if is_embeddings_spec(str(spec)):
        return load_embeddings(spec, load_text_model=load_model)
    return load_model(spec, pretrained, trust_remote_code=trust_remote_code)


def _resolve(spec: str, pretrained: str | None, trust_remote_code: bool) -> ClipModel:
    if is_embeddings_spec(spec):
        raise ModelLoadError(
            f"{spec!r} holds precomputed embeddings, not a model: score them with "
            f"`evalsuite score {spec}`; they cannot be fine-tuned or embed new images"
        )
    if spec.startswith("hf-hub:"):
        return _open_clip_or_error(spec, spec, None)
    if spec.startswith("openclip:"):
        arch, tag = split_open_clip_spec(spec)
        return _open_clip_or_error(spec, arch, tag or pretrained)
    if spec.startswith("local-dir:"):
        return load_folder(Path(spec.removeprefix("local-dir:")), spec, trust_remote_code)
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(
                f"model spec {spec!r} is a file; pass the folder that holds it, or an open_clip "
                f"architecture with this file as weights: 'openclip:ARCH/{spec}'"
            )
        return load_folder(path, spec, trust_remote_code)
    if looks_like_path(spec):
        raise ModelLoadError(f"model folder {spec!r} does not exist")
    if spec in open_clip.list_models():
        return _open_clip_or_error(spec, spec, pretrained)
    if HUB_ID.match(spec):
        return load_hf_hub(spec, trust_remote_code)
    raise ModelLoadError(
        f"cannot interpret model spec {spec!r}: pass a local model folder, a Hugging Face "
        "Hub id (org/name), 'hf-hub:org/name', or an open_clip name such as 'openclip:ViT-B-32/"
        "laion2b_s34b_b79k'"
    )


def split_open_clip_spec(spec: str) -> tuple[str, str | None]:
    """``openclip:ARCH/PRETRAINED`` as (ARCH, PRETRAINED or None). PRETRAINED is a tag or a
    weights file. An absolute path may share its leading '/' with the separator
    (``openclip:ARCH/abs/w.pt``, as ``openclip:ARCH//abs/w.pt``): a tag never holds a '/', and
    the path as written (relative to the working directory) is looked for first."""
    arch, _, tag = spec.removeprefix("openclip:").partition("/")
    if "/" not in tag or tag.startswith("/"):
        return arch, tag or None
    relative = Path(tag).expanduser()
    if relative.exists() or Path("/" + tag).exists():
        return arch, str(relative) if relative.exists() else "/" + tag
    raise ModelLoadError(
        f"model spec {spec!r}: weights file {tag!r} not found (neither relative to "
        f"{Path.cwd()} nor as /{tag}); open_clip pretrained tags hold no '/'"
    )


def load_folder(path: Path, spec: str, trust_remote_code: bool = False) -> ClipModel:
    """A Hugging Face folder, an open_clip folder, or a ``finetune`` checkpoint of either."""
    if not path.is_dir():
        raise ModelLoadError(f"model folder {str(path)!r} does not exist")
    training = _read_training(path)
    source = ModelSource(
        spec=spec, name=path.resolve().name, path=path.resolve(), training=training
    )
    if training and training.get("run_name"):
        source.name = str(training["run_name"])
    if (path / OPEN_CLIP_CONFIG).is_file():
        weights = sorted(
            p.name for p in path.iterdir() if p.suffix in {".safetensors", ".bin", ".pth", ".pt"}
        )
        if not weights:
            raise ModelLoadError(
                f"open_clip folder {path} has {OPEN_CLIP_CONFIG} but no weights "
                "file (expected open_clip_model.safetensors)"
            )
        read_json(path / OPEN_CLIP_CONFIG)  # open_clip's own error hides where it is broken
        return _open_clip_or_error(spec, f"local-dir:{path.resolve()}", None, source)
    if (path / "config.json").is_file():
        if not any((path / name).is_file() for name in _HF_WEIGHTS):
            raise ModelLoadError(
                f"Hugging Face folder {path} has config.json but no weights "
                f"(expected one of {', '.join(_HF_WEIGHTS)})"
            )
        read_json(path / "config.json")  # transformers' own error hides where it is broken
        return _load_hf(str(path), source, trust_remote_code, local_files_only=True)
    raise ModelLoadError(not_a_model(path))  # names X/best when X is a fine-tune's output


def load_hf_hub(hub_id: str, trust_remote_code: bool = False) -> ClipModel:
    """A Hub id, from the local cache first; else downloaded, unless offline or the Hub cannot
    be reached: then :class:`HubModelNotCached` at once, not after transformers' retries."""
    source = ModelSource(spec=hub_id, name=hub_id)
    try:
        return _load_hf(hub_id, source, trust_remote_code, local_files_only=True)
    except OSError as exc:
        why = not_downloadable(hub_id, "config.json")
        if why is not None:
            if cached(hub_id, "config.json"):  # say what is missing, e.g. the tokenizer
                raise HubModelNotCached(hub_id, f"{why}; {exc}", partly=True) from exc
            raise HubModelNotCached(hub_id, why) from exc
    try:
        return _load_hf(hub_id, source, trust_remote_code, local_files_only=False)
    except OSError as exc:
        raise HubModelNotCached(hub_id, f"download failed: {exc}") from exc


def _load_hf(
    name: str, source: ModelSource, trust_remote_code: bool, local_files_only: bool
) -> ClipModel:
    """A Hugging Face folder or Hub id, by its config.json's ``model_type``."""
    kwargs: dict[str, Any] = {
        "local_files_only": local_files_only,
        "trust_remote_code": trust_remote_code,
    }
    model_type = _hf_model_type(name, local_files_only)
    load = HF_LOADERS.get(model_type)
    if load is None:
        raise ModelLoadError(HF_REFUSED.get(model_type) or _unknown_model_type(name, model_type))
    return load(name, source, kwargs)


def _load_hf_clip(name: str, source: ModelSource, kwargs: dict[str, Any]) -> HFClipModel:
    module = _from_pretrained(CLIPModel, "Hugging Face CLIP", name, kwargs)
    tokenizer = load_hf_tokenizer(name, module, **kwargs)
    folder = source.path or _hub_snapshot_folder(name)
    preprocess = preprocess_config_from_folder(folder, module.config.vision_config.image_size)
    return HFClipModel(module, tokenizer, preprocess, source)


def _load_hf_siglip(name: str, source: ModelSource, kwargs: dict[str, Any]) -> HFSiglipModel:
    with quiet_default_token_ids():
        module = _from_pretrained(SiglipModel, "Hugging Face SigLIP", name, kwargs)
    tokenizer = load_siglip_tokenizer(name, source.path, **kwargs)
    folder = source.path or _hub_snapshot_folder(name)
    preprocess = siglip_preprocess_config(folder, module.config.vision_config.image_size)
    return HFSiglipModel(module, tokenizer, preprocess, source)


# config.json's model_type -> the loader of that architecture ("clip" also when it is absent)
HF_LOADERS: dict[str, Callable[[str, ModelSource, dict[str, Any]], ClipModel]] = {
    "clip": _load_hf_clip,
    "siglip": _load_hf_siglip,
}
# model types refused on purpose, with why and what to do instead
HF_REFUSED = {
    "siglip2": (
        "Hugging Face SigLIP 2 folders (Siglip2Model, model_type 'siglip2') are not supported "
        "yet: their NaFlex image processor resizes each image to its own patch grid (aspect "
        "ratio kept, up to max_num_patches), which this suite's fixed-size square preprocessing "
        "does not reproduce. Load SigLIP 2 through open_clip instead, e.g. "
        "'hf-hub:timm/ViT-B-16-SigLIP2'"
    ),
}


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
    return (
        f"Hugging Face model {name!r} has model_type {model_type!r} in its config.json; this "
        f"suite loads {', '.join(repr(t) for t in HF_LOADERS)} (CLIPModel, SiglipModel)"
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


def _open_clip_or_error(
    spec: str, model_name: str, pretrained: str | None, source: ModelSource | None = None
) -> ClipModel:
    source = source or ModelSource(spec=spec, name=spec.removeprefix("openclip:"))
    hub_id = model_name.removeprefix("hf-hub:")
    if model_name.startswith("hf-hub:") and not cached(hub_id, OPEN_CLIP_CONFIG):
        why = not_downloadable(hub_id, OPEN_CLIP_CONFIG)
        if why is not None:
            raise HubModelNotCached(hub_id, why)
    if (
        not model_name.startswith(("hf-hub:", "local-dir:"))
        and open_clip.get_model_config(model_name) is None
    ):
        raise ModelLoadError(
            f"unknown open_clip architecture {model_name!r} in spec {spec!r}; "
            f"known ones include {', '.join(open_clip.list_models()[:8])}, ..."
        )
    try:
        return load_open_clip(model_name, source, pretrained)
    except ModelLoadError:
        raise
    except Exception as exc:
        if refused_pickle(exc):
            raise ModelLoadError(pickle_message(f"open_clip model {spec!r}")) from exc
        raise ModelLoadError(f"cannot load open_clip model {spec!r}: {exc}") from exc


def refused_pickle(exc: BaseException | None) -> bool:
    """Whether ``torch.load(weights_only=True)`` refused a file somewhere behind ``exc``: it
    holds pickled Python objects besides tensors (possibly a payload that runs code)."""
    while exc is not None:
        if isinstance(exc, pickle.UnpicklingError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def pickle_message(what: str) -> str:
    # torch's own message suggests weights_only=False, i.e. running the payload: not ours.
    return (
        f"refused to load {what}: its weights file is a pickle holding Python objects besides "
        "tensors, and unpickling it could run arbitrary code. Only safetensors files and plain "
        "tensor files load (torch.load(weights_only=True)); convert the weights to safetensors "
        "where you trust the file"
    )


def _read_training(path: Path) -> dict[str, Any] | None:
    file = path / TRAINING_FILE
    if not file.is_file():
        return None
    training = read_json(file)
    if not isinstance(training, dict):  # scoring and finetune read it as a mapping
        kind = {list: "a list", str: "a string"}.get(type(training), f"JSON {training!r}"[:40])
        raise ModelLoadError(
            f"{file}: expected a JSON object (the training record finetune writes), found {kind}"
        )
    return training
