"""Weights of a plain ViT CLIP moved between the Hugging Face and open_clip layouts.

Both libraries implement OpenAI's architecture with different parameter names; the only
non-trivial differences are open_clip's fused q/k/v projection and its projections stored
transposed. Used to check that both backends give the same embeddings for the same weights,
and to hand a checkpoint to users of the other library.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import CLIPConfig

Tensors = dict[str, torch.Tensor]


def hf_config_from_open_clip(model_cfg: dict[str, Any]) -> CLIPConfig:
    """The ``CLIPConfig`` of an open_clip ``model_cfg`` (plain ViT CLIPs only)."""
    vision, text = model_cfg["vision_cfg"], model_cfg["text_cfg"]
    act = "quick_gelu" if model_cfg.get("quick_gelu") else "gelu"
    mlp_ratio_v = vision.get("mlp_ratio", 4.0)
    mlp_ratio_t = text.get("mlp_ratio", 4.0)
    return CLIPConfig(
        projection_dim=model_cfg["embed_dim"],
        text_config={
            "hidden_size": text["width"],
            "intermediate_size": int(text["width"] * mlp_ratio_t),
            "num_attention_heads": text["heads"],
            "num_hidden_layers": text["layers"],
            "max_position_embeddings": text["context_length"],
            "vocab_size": text["vocab_size"],
            "hidden_act": act,
            "eos_token_id": 49407,
            "bos_token_id": 49406,
            "pad_token_id": 49407,
        },
        vision_config={
            "hidden_size": vision["width"],
            "intermediate_size": int(vision["width"] * mlp_ratio_v),
            "num_attention_heads": vision["width"] // vision.get("head_width", 64),
            "num_hidden_layers": vision["layers"],
            "image_size": vision["image_size"],
            "patch_size": vision["patch_size"],
            "hidden_act": act,
        },
    )


# open_clip ResidualAttentionBlock <- CLIPEncoderLayer, beside the fused q/k/v
_CLIP_BLOCK_NAMES = (
    ("attn.out_proj", "self_attn.out_proj"),
    ("ln_1", "layer_norm1"),
    ("ln_2", "layer_norm2"),
    ("mlp.c_fc", "mlp.fc1"),
    ("mlp.c_proj", "mlp.fc2"),
)


def renamed(hf: Tensors, src: str, dst: str, names: tuple[tuple[str, str], ...]) -> Tensors:
    """``dst.OURS.{weight,bias}`` <- ``src.THEIRS.{weight,bias}`` for each (OURS, THEIRS)."""
    return {
        f"{dst}.{ours}.{part}": hf[f"{src}.{theirs}.{part}"]
        for ours, theirs in names
        for part in ("weight", "bias")
    }


def hf_blocks_to_open_clip(hf: Tensors, src: str, dst: str, layers: int) -> Tensors:
    """``layers`` encoder layers of the Hugging Face tower ``src`` as open_clip
    ``ResidualAttentionBlock`` weights under ``dst`` (CLIP's and SigLIP's text towers)."""
    out: Tensors = {}
    for i in range(layers):
        s, d = f"{src}.encoder.layers.{i}", f"{dst}.resblocks.{i}"
        attn = f"{s}.self_attn"
        out[f"{d}.attn.in_proj_weight"] = torch.cat([hf[f"{attn}.{p}_proj.weight"] for p in "qkv"])
        out[f"{d}.attn.in_proj_bias"] = torch.cat([hf[f"{attn}.{p}_proj.bias"] for p in "qkv"])
        out |= renamed(hf, s, d, _CLIP_BLOCK_NAMES)
    return out


def hf_to_open_clip_state_dict(hf: Tensors, config: CLIPConfig) -> Tensors:
    """Rename (and fuse/transpose) a Hugging Face CLIP state dict into open_clip's layout."""
    v, t = "vision_model", "text_model"
    out: Tensors = {
        "logit_scale": hf["logit_scale"],
        "positional_embedding": hf[f"{t}.embeddings.position_embedding.weight"],
        "token_embedding.weight": hf[f"{t}.embeddings.token_embedding.weight"],
        "ln_final.weight": hf[f"{t}.final_layer_norm.weight"],
        "ln_final.bias": hf[f"{t}.final_layer_norm.bias"],
        "text_projection": hf["text_projection.weight"].T.contiguous(),
        "visual.class_embedding": hf[f"{v}.embeddings.class_embedding"],
        "visual.positional_embedding": hf[f"{v}.embeddings.position_embedding.weight"],
        "visual.conv1.weight": hf[f"{v}.embeddings.patch_embedding.weight"],
        "visual.ln_pre.weight": hf[f"{v}.pre_layrnorm.weight"],
        "visual.ln_pre.bias": hf[f"{v}.pre_layrnorm.bias"],
        "visual.ln_post.weight": hf[f"{v}.post_layernorm.weight"],
        "visual.ln_post.bias": hf[f"{v}.post_layernorm.bias"],
        "visual.proj": hf["visual_projection.weight"].T.contiguous(),
    }
    out |= hf_blocks_to_open_clip(hf, t, "transformer", config.text_config.num_hidden_layers)
    out |= hf_blocks_to_open_clip(
        hf, v, "visual.transformer", config.vision_config.num_hidden_layers
    )
    return out
