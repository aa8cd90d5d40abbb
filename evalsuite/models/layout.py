"""Where each part of a CLIP lives, per backend: the one module that spells module names.

:func:`tower_layout` describes both towers of a :class:`ClipModel` as data: for ``"image"``
and ``"text"`` the embedding parts (patch/token, positional and class embeddings, pre-norm),
the transformer blocks from bottom to top, the head (final norm and projection) and the
attention layers that LoRA targets; plus the logit scale. Entries are qualified names under
``model.module``; each names a submodule or a bare parameter (open_clip keeps projections and
positional embeddings as ``nn.Parameter``). Locking, gradual unfreezing, layer-wise learning
rates and LoRA read this layout and never spell a module name themselves.

Backends register a layout function in ``LAYOUTS`` (Hugging Face models, by model_type, in
``HF_LAYOUTS``); every parameter of the module must fall in exactly one part, else
:class:`LayoutError` names the strays (an architecture this file does not know yet, e.g. a
Hugging Face text tower inside open_clip).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from evalsuite.errors import ConfigError
from evalsuite.models.base import ClipModel
from evalsuite.registry import MissMessage, Registry

TOWERS = ("image", "text")


class LayoutError(ConfigError):
    """The model's structure is not one this file knows how to split into parts."""


@dataclass(frozen=True)
class TowerLayout:
    """One tower as qualified names under ``model.module``."""

    embed: tuple[str, ...]  # patch/token + positional + class embedding + pre-norm
    blocks: tuple[str, ...]  # transformer blocks, bottom to top
    head: tuple[str, ...]  # final norm (and pooler) + projection
    attention: tuple[str, ...]  # attention layers inside the blocks (LoRA targets)

    def units(self) -> list[tuple[str, tuple[str, ...], int]]:
        """``(unit, names, depth)`` from the top: the head (depth 0), the blocks top-down
        (depth 1 .. L), the embeddings (depth L + 1)."""
        depth = len(self.blocks)
        units = [("head", self.head, 0)]
        units += [(f"blocks.{i}", (name,), depth - i) for i, name in enumerate(self.blocks)][::-1]
        units.append(("embed", self.embed, depth + 1))
        return units


@dataclass(frozen=True)
class ModelLayout:
    backend: str
    image: TowerLayout
    text: TowerLayout
    logit: tuple[str, ...]  # logit_scale (and logit_bias where the model has one)

    def tower(self, name: str) -> TowerLayout:
        if name not in TOWERS:
            raise KeyError(f"unknown tower {name!r}; expected one of {TOWERS}")
        return getattr(self, name)


def tower_layout(model: ClipModel) -> ModelLayout:
    """The layout of ``model``'s towers; raises :class:`LayoutError` for unknown structures."""
    layout = LAYOUTS.get(model.backend)(model.module)
    check_coverage(model.module, layout)
    return layout


def named_parameters(root: nn.Module, names: tuple[str, ...]) -> Iterator[tuple[str, nn.Parameter]]:
    """The parameters of the listed submodules and bare parameters, with qualified names."""
    for name in names:
        target = _resolve(root, name)
        if isinstance(target, nn.Module):
            yield from target.named_parameters(prefix=name)
        else:
            yield name, target


def check_coverage(root: nn.Module, layout: ModelLayout) -> None:
    """Every parameter lies in exactly one part; else a :class:`LayoutError` names the strays.

    Compares names, not identities: peft's LoRA wrapper of ``nn.MultiheadAttention``
    re-registers its base weights as new ``Parameter`` objects whenever modules are listed.
    """
    seen: set[str] = set()
    parts = [layout.logit] + [
        names for tower in TOWERS for _, names, _ in layout.tower(tower).units()
    ]
    for names in parts:
        for name, _ in named_parameters(root, names):
            if name in seen:
                raise LayoutError(f"parameter {name} lies in two parts of the layout")
            seen.add(name)
    strays = [name for name, _ in root.named_parameters() if name not in seen]
    if strays:
        shown = ", ".join(strays[:6]) + (", ..." if len(strays) > 6 else "")
        raise LayoutError(
            f"{layout.backend} model has parameters outside the known tower layout ({shown}); "
            "locking, layer decay and LoRA support only CLIP ViT towers "
            "(evalsuite/models/layout.py)"
        )


# --- backends --------------------------------------------------------------------------------


def _hf_layout(module: nn.Module) -> ModelLayout:
    """Hugging Face models by their config's ``model_type`` (CLIPModel's when it has none)."""
    model_type = getattr(getattr(module, "config", None), "model_type", None) or "clip"
    return HF_LAYOUTS.get(model_type)(module)


def _hf_attention(blocks: tuple[str, ...]) -> tuple[str, ...]:
    """The q/k/v/out projections of every block: plain Linear layers in transformers."""
    projections = ("q_proj", "k_proj", "v_proj", "out_proj")
    return tuple(f"{block}.self_attn.{proj}" for block in blocks for proj in projections)


def _hf_siglip_layout(module: nn.Module) -> ModelLayout:
    """SiglipModel: no pre-norm and no class token; each tower's head (final norm, then the
    vision attention-pool head or the text projection) sits inside the tower."""

    def tower(model: str, final_norm: str) -> TowerLayout:
        blocks = _indexed(module, f"{model}.encoder.layers")
        return TowerLayout(
            embed=(f"{model}.embeddings",),
            blocks=blocks,
            head=_existing(module, f"{model}.{final_norm}", f"{model}.head"),
            attention=_hf_attention(blocks),
        )

    return ModelLayout(
        backend="hf",
        image=tower("vision_model", "post_layernorm"),
        text=tower("text_model", "final_layer_norm"),
        logit=_existing(module, "logit_scale", "logit_bias"),
    )


def _hf_clip_layout(module: nn.Module) -> ModelLayout:
    def tower(model: str, pre_norm: tuple[str, ...], final_norm: str, proj: str) -> TowerLayout:
        blocks = _indexed(module, f"{model}.encoder.layers")
        return TowerLayout(
            embed=(f"{model}.embeddings", *pre_norm),
            blocks=blocks,
            head=(f"{model}.{final_norm}", proj),
            attention=_hf_attention(blocks),
        )

    return ModelLayout(
        backend="hf",
        image=tower(
            "vision_model", ("vision_model.pre_layrnorm",), "post_layernorm", "visual_projection"
        ),
        text=tower("text_model", (), "final_layer_norm", "text_projection"),
        logit=_existing(module, "logit_scale", "logit_bias"),
    )


def _open_clip_layout(module: nn.Module) -> ModelLayout:
    if isinstance(getattr(module.visual, "trunk", None), nn.Module):
        image = _timm_image_layout(module)
    else:
        image = _open_clip_vit_layout(module)
    # CLIP keeps the text tower on the root; CustomTextCLIP under `text` (a TextTransformer).
    t = "text." if isinstance(getattr(module, "text", None), nn.Module) else ""
    text_blocks = _indexed(module, f"{t}transformer.resblocks")
    text = TowerLayout(
        embed=_existing(module, f"{t}token_embedding", f"{t}positional_embedding", f"{t}cls_emb"),
        blocks=text_blocks,
        head=_existing(module, f"{t}attn_pool", f"{t}ln_final", f"{t}text_projection"),
        attention=tuple(f"{block}.attn" for block in text_blocks),
    )
    return ModelLayout(
        backend="open_clip",
        image=image,
        text=text,
        logit=_existing(module, "logit_scale", "logit_bias"),
    )


def _open_clip_vit_layout(module: nn.Module) -> TowerLayout:
    """open_clip's own VisionTransformer (CLIP)."""
    blocks = _indexed(module, "visual.transformer.resblocks")
    return TowerLayout(
        embed=_existing(
            module,
            "visual.conv1",
            "visual.class_embedding",
            "visual.positional_embedding",
            "visual.ln_pre",
        ),
        blocks=blocks,
        head=_existing(module, "visual.attn_pool", "visual.ln_post", "visual.proj"),
        attention=tuple(f"{block}.attn" for block in blocks),
    )


def _timm_image_layout(module: nn.Module) -> TowerLayout:
    """A timm ViT trunk in open_clip's TimmModel (SigLIP: no class token, an attention-pool
    head). timm's attention is a fused ``qkv`` Linear and a ``proj`` Linear, the LoRA
    targets; the trunk's ``attn_pool`` is head, as is TimmModel's own projection."""
    trunk = "visual.trunk"
    blocks = _indexed(module, f"{trunk}.blocks")
    attention = tuple(f"{block}.attn.{proj}" for block in blocks for proj in ("qkv", "proj"))
    for name in attention:  # a Linear, or peft's LoRA layer around one
        if _resolve_or_none(module, name) is None:
            raise LayoutError(f"{trunk} has no {name}: not a timm ViT attention this layout knows")
    embed = ("patch_embed", "cls_token", "reg_token", "pos_embed", "norm_pre")
    head = ("norm", "attn_pool", "fc_norm", "head")
    return TowerLayout(
        embed=_existing(module, *(f"{trunk}.{name}" for name in embed)),
        blocks=blocks,
        head=_existing(module, *(f"{trunk}.{name}" for name in head), "visual.head"),
        attention=attention,
    )


def _no_layout_for(what: str) -> MissMessage:
    return lambda name, known: f"no tower layout for {what} {name!r}; known: {', '.join(known)}"


# model.backend -> its layout; a Hugging Face model's by its config's model_type
BuildLayout = Callable[[nn.Module], ModelLayout]
LAYOUTS: Registry[BuildLayout] = Registry(
    "tower layout", error=LayoutError, miss_message=_no_layout_for("backend")
)
LAYOUTS.register("hf", _hf_layout)
LAYOUTS.register("open_clip", _open_clip_layout)
HF_LAYOUTS: Registry[BuildLayout] = Registry(
    "tower layout", error=LayoutError, miss_message=_no_layout_for("Hugging Face model_type")
)
HF_LAYOUTS.register("clip", _hf_clip_layout)
HF_LAYOUTS.register("siglip", _hf_siglip_layout)


# --- helpers ---------------------------------------------------------------------------------


def _resolve(root: nn.Module, name: str) -> nn.Module | nn.Parameter:
    owner_name, _, leaf = name.rpartition(".")
    owner = root.get_submodule(owner_name) if owner_name else root
    target = getattr(owner, leaf)
    if not isinstance(target, (nn.Module, nn.Parameter)):
        raise LayoutError(f"{name} is a {type(target).__name__}, not a module or parameter")
    return target


def _resolve_or_none(root: nn.Module, name: str) -> nn.Module | None:
    try:
        return root.get_submodule(name)
    except AttributeError:
        return None


def _existing(root: nn.Module, *names: str) -> tuple[str, ...]:
    """The names that exist and hold something (open_clip sets optional parts to None)."""
    found = []
    for name in names:
        owner_name, _, leaf = name.rpartition(".")
        try:
            owner = root.get_submodule(owner_name) if owner_name else root
        except AttributeError:
            continue
        if isinstance(getattr(owner, leaf, None), (nn.Module, torch.Tensor)):
            found.append(name)
    return tuple(found)


def _indexed(root: nn.Module, name: str) -> tuple[str, ...]:
    try:
        blocks = root.get_submodule(name)
    except AttributeError:
        raise LayoutError(
            f"{type(root).__name__} has no {name}: not a CLIP ViT tower this layout knows"
        ) from None
    return tuple(f"{name}.{i}" for i in range(len(blocks)))
