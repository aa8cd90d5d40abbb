"""``load_model(spec)``: every way a user names a CLIP, resolved to one :class:`ClipModel`.

``MODEL_SPECS`` holds the kinds of spec, each a test of the spec and a loader; they are tried
in the order they are registered below, which is this one (explicit prefixes first, then an
existing path, then an open_clip name, then a Hub id; the first kind a spec matches loads it):

- ``embeddings:PATH`` or a folder of precomputed embeddings: refused, with the hint to score
  them (``load_scorable`` takes them, see :mod:`evalsuite.models.precomputed`: what
  ``evalsuite score`` can score; they cannot be fine-tuned or embed new images);
- ``hf-hub:ORG/NAME``: an open_clip model on the Hugging Face Hub (or in its cache);
- ``openclip:ARCH`` or ``openclip:ARCH/PRETRAINED``: an open_clip architecture with a
  pretrained tag, a weights file or nothing (random init); ``pretrained=`` does the same.
  An absolute weights path may be written ``openclip:ARCH/abs/w.pt`` (its own '/' the
  separator) or ``openclip:ARCH//abs/w.pt`` (see :func:`split_open_clip_spec`);
- ``local-dir:PATH``: a local folder, said explicitly;
- an existing path: a Hugging Face CLIP folder (``config.json``, by its ``model_type``: see
  :mod:`evalsuite.models.hf_loading`), an open_clip folder (``open_clip_config.json``) or a
  checkpoint written by ``finetune`` (either, plus ``training.json``); a file is refused
  with what to pass instead;
- a spec written as a path that does not exist: refused ("does not exist");
- a built-in open_clip architecture name (``ViT-B-32``) with ``pretrained=``;
- ``ORG/NAME``: a Hugging Face Hub id (``patrickjohncyh/fashion-clip``), from the local cache.

A spec no kind matches is refused with the kinds a user can pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import open_clip
import torch

from evalsuite.errors import ModelLoadError
from evalsuite.hub import HUB_ID, HubModelNotCached, cached, not_downloadable
from evalsuite.models.base import ClipModel, ModelSource
from evalsuite.models.checks import pickle_message, read_json, refused_pickle
from evalsuite.models.hf_loading import load_hf, load_hf_hub
from evalsuite.models.openclip import CONFIG_FILE as OPEN_CLIP_CONFIG
from evalsuite.models.openclip import load_open_clip
from evalsuite.models.precomputed import (
    PrecomputedEmbeddings,
    is_embeddings_spec,
    load_embeddings,
)
from evalsuite.preflight import looks_like_path, not_a_model
from evalsuite.registry import Registry

TRAINING_FILE = "training.json"
_HF_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)

# (spec, pretrained, trust_remote_code) -> the model, or a ModelLoadError saying what to pass
SpecLoader = Callable[[str, str | None, bool], ClipModel]


@dataclass(frozen=True)
class SpecKind:
    """One way of naming a model: ``matches(spec)`` says whether a spec is of this kind."""

    name: str
    matches: Callable[[str], object]
    load: SpecLoader


MODEL_SPECS: Registry[SpecKind] = Registry("model spec kind", error=ModelLoadError)


def spec_kind(
    name: str, matches: str | Callable[[str], object]
) -> Callable[[SpecLoader], SpecLoader]:
    """Register the decorated loader for the specs that start with ``matches`` (a prefix) or
    that ``matches`` accepts; kinds are tried in the order they are registered."""
    test = (lambda spec: spec.startswith(matches)) if isinstance(matches, str) else matches

    def register(load: SpecLoader) -> SpecLoader:
        MODEL_SPECS.register(name, SpecKind(name, test, load))
        return load

    return register


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
    for kind in MODEL_SPECS.values():  # registration order: the order the module doc gives
        if kind.matches(spec):
            return kind.load(spec, pretrained, trust_remote_code)
    raise ModelLoadError(
        f"cannot interpret model spec {spec!r}: pass a local model folder, a Hugging Face "
        "Hub id (org/name), 'hf-hub:org/name', or an open_clip name such as 'openclip:ViT-B-32/"
        "laion2b_s34b_b79k'"
    )


# --- the spec kinds, in the order they are tried ----------------------------------------------


@spec_kind("embeddings", is_embeddings_spec)
def _refuse_embeddings(spec: str, pretrained: str | None, trust_remote_code: bool) -> ClipModel:
    raise ModelLoadError(
        f"{spec!r} holds precomputed embeddings, not a model: score them with "
        f"`evalsuite score {spec}`; they cannot be fine-tuned or embed new images"
    )


@spec_kind("hf-hub", "hf-hub:")
def _load_hf_hub_open_clip(spec: str, pretrained: str | None, trust_remote_code: bool) -> ClipModel:
    return _open_clip_or_error(spec, spec, None)


@spec_kind("openclip", "openclip:")
def _load_open_clip_spec(spec: str, pretrained: str | None, trust_remote_code: bool) -> ClipModel:
    arch, tag = split_open_clip_spec(spec)
    return _open_clip_or_error(spec, arch, tag or pretrained)


@spec_kind("local-dir", "local-dir:")
def _load_local_dir(spec: str, pretrained: str | None, trust_remote_code: bool) -> ClipModel:
    return load_folder(Path(spec.removeprefix("local-dir:")), spec, trust_remote_code)


@spec_kind("existing path", lambda spec: Path(spec).expanduser().exists())
def _load_path(spec: str, pretrained: str | None, trust_remote_code: bool) -> ClipModel:
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise ModelLoadError(
            f"model spec {spec!r} is a file; pass the folder that holds it, or an open_clip "
            f"architecture with this file as weights: 'openclip:ARCH/{spec}'"
        )
    return load_folder(path, spec, trust_remote_code)


@spec_kind("missing path", looks_like_path)
def _refuse_missing_path(spec: str, pretrained: str | None, trust_remote_code: bool) -> ClipModel:
    raise ModelLoadError(f"model folder {spec!r} does not exist")


@spec_kind("open_clip name", lambda spec: spec in open_clip.list_models())
def _load_open_clip_name(spec: str, pretrained: str | None, trust_remote_code: bool) -> ClipModel:
    return _open_clip_or_error(spec, spec, pretrained)


@spec_kind("hub id", HUB_ID.match)
def _load_hub_id(spec: str, pretrained: str | None, trust_remote_code: bool) -> ClipModel:
    return load_hf_hub(spec, trust_remote_code)


# --- loaders -----------------------------------------------------------------------------------


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
        return load_hf(str(path), source, trust_remote_code, local_files_only=True)
    raise ModelLoadError(not_a_model(path))  # names X/best when X is a fine-tune's output


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
