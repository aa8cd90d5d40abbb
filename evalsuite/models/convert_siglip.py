"""Weights of a Hugging Face ``SiglipModel`` moved into open_clip's SigLIP layout.

open_clip builds SigLIP as a ``CustomTextCLIP``: a timm ViT trunk with an attention-pool
("map") head under ``visual.trunk``, and a ``TextTransformer`` under ``text`` whose last
token, after the final norm, goes through a biased ``Linear`` projection. Both libraries
compute the same functions; the differences are names and packing: timm fuses q/k/v into one
``qkv`` Linear and splits the pooling head's attention into ``q`` and ``kv`` (Hugging Face
keeps an ``nn.MultiheadAttention`` there), position embeddings carry a batch axis, and the
logit scale and bias are 0-d. The text blocks are CLIP's, so :mod:`evalsuite.models.convert`
maps them.
"""

from __future__ import annotations

import torch
from transformers import SiglipConfig

from evalsuite.models.convert import Tensors, hf_blocks_to_open_clip, renamed


def hf_siglip_to_open_clip_state_dict(hf: Tensors, config: SiglipConfig) -> Tensors:
    """Rename (and fuse/split) a Hugging Face SigLIP state dict into open_clip's layout.

    The result loads with ``strict=True`` into the ``CustomTextCLIP`` whose timm trunk and
    text tower have the same sizes (e.g. ``ViT-B-16-SigLIP`` for
    ``google/siglip-base-patch16-224``).
    """
    if "vision_model.head.probe" not in hf:
        raise ValueError(
            "SigLIP checkpoint without the attention-pool head (vision_use_head=False): "
            "open_clip's SigLIP towers pool with it"
        )
    t = "text_model"
    out: Tensors = {
        "logit_scale": hf["logit_scale"].reshape(()),
        "logit_bias": hf["logit_bias"].reshape(()),
        "text.token_embedding.weight": hf[f"{t}.embeddings.token_embedding.weight"],
        "text.positional_embedding": hf[f"{t}.embeddings.position_embedding.weight"],
        "text.ln_final.weight": hf[f"{t}.final_layer_norm.weight"],
        "text.ln_final.bias": hf[f"{t}.final_layer_norm.bias"],
        "text.text_projection.weight": hf[f"{t}.head.weight"],
        "text.text_projection.bias": hf[f"{t}.head.bias"],
    }
    text_layers = config.text_config.num_hidden_layers
    out |= hf_blocks_to_open_clip(hf, t, "text.transformer", text_layers)
    out |= _vision_hf_to_timm(hf, config.vision_config.num_hidden_layers)
    return out


def _vision_hf_to_timm(hf: Tensors, layers: int) -> Tensors:
    v, d = "vision_model", "visual.trunk"
    out: Tensors = {
        f"{d}.patch_embed.proj.weight": hf[f"{v}.embeddings.patch_embedding.weight"],
        f"{d}.patch_embed.proj.bias": hf[f"{v}.embeddings.patch_embedding.bias"],
        f"{d}.pos_embed": hf[f"{v}.embeddings.position_embedding.weight"].unsqueeze(0),
        f"{d}.norm.weight": hf[f"{v}.post_layernorm.weight"],
        f"{d}.norm.bias": hf[f"{v}.post_layernorm.bias"],
    }
    for i in range(layers):
        s, b = f"{v}.encoder.layers.{i}", f"{d}.blocks.{i}"
        for part in ("weight", "bias"):
            qkv = [hf[f"{s}.self_attn.{p}_proj.{part}"] for p in "qkv"]
            out[f"{b}.attn.qkv.{part}"] = torch.cat(qkv)
        out |= renamed(hf, s, b, _BLOCK_NAMES)
    return out | _attention_pool(hf, f"{v}.head", f"{d}.attn_pool")


# timm AttentionPoolLatent <- SiglipMultiheadAttentionPoolingHead, beside latent, q and kv
_POOL_NAMES = (
    ("proj", "attention.out_proj"),
    ("norm", "layernorm"),
    ("mlp.fc1", "mlp.fc1"),
    ("mlp.fc2", "mlp.fc2"),
)
# timm Block <- SiglipEncoderLayer, beside the fused qkv
_BLOCK_NAMES = (
    ("attn.proj", "self_attn.out_proj"),
    ("norm1", "layer_norm1"),
    ("norm2", "layer_norm2"),
    ("mlp.fc1", "mlp.fc1"),
    ("mlp.fc2", "mlp.fc2"),
)


def _attention_pool(hf: Tensors, src: str, dst: str) -> Tensors:
    """timm's AttentionPoolLatent <- SiglipMultiheadAttentionPoolingHead: the probe queries
    through ``q``, the tokens give keys and values through ``kv``; the rows of the fused
    ``in_proj`` are q, then k, then v."""
    width = hf[f"{src}.probe"].shape[-1]
    weight, bias = hf[f"{src}.attention.in_proj_weight"], hf[f"{src}.attention.in_proj_bias"]
    out: Tensors = {
        f"{dst}.latent": hf[f"{src}.probe"],
        f"{dst}.q.weight": weight[:width],
        f"{dst}.q.bias": bias[:width],
        f"{dst}.kv.weight": weight[width:],
        f"{dst}.kv.bias": bias[width:],
    }
    out |= renamed(hf, src, dst, _POOL_NAMES)
    return {k: v.contiguous() for k, v in out.items()}
