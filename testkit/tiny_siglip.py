"""Small randomly initialised SigLIPs, saved exactly as real ones are, for tests.

``build_tiny_hf_siglip`` writes a Hugging Face ``SiglipModel`` folder like
``google/siglip-base-patch16-224``: config.json, model.safetensors, a SentencePiece tokenizer
(``spiece.model``, trained here on the caller's texts since nothing can be downloaded) and a
``SiglipImageProcessor`` config (squash resize, mean = std = 0.5). The architecture is data:
``configs/tiny-siglip.json`` in open_clip's ``model_cfg`` format (the shape of open_clip's
``ViT-B-16-SigLIP.json``); the vision tower is a timm ViT with SigLIP's attention-pool head,
registered with timm under :data:`TINY_TIMM_MODEL` by :func:`register_tiny_timm_model`.
``build_tiny_open_clip_siglip`` writes the same weights as an open_clip folder, the way
``timm/ViT-B-16-SigLIP`` or ``Marqo/marqo-fashionSigLIP`` ship on the Hub.

The tiny trunk is a test model, so the library does not know it: like any custom timm
architecture, it must be registered (:func:`register_tiny_timm_model`) in each process that
builds or loads a tiny open_clip SigLIP, before loading. A real architecture name cannot
stand in: open_clip's ``TimmModel`` passes timm no size arguments, so a name in the folder
would build a full-size ViT at 224 px.
"""

from __future__ import annotations

import io
import json
import math
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import open_clip
import torch
from safetensors.torch import save_file
from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipTokenizer

from evalsuite.models.base import SIGLIP_MEAN, SIGLIP_STD, PreprocessConfig
from evalsuite.models.convert_siglip import hf_siglip_to_open_clip_state_dict
from evalsuite.models.hf_siglip import quiet_default_token_ids
from evalsuite.models.openclip import CONFIG_FILE, WEIGHTS_FILE, open_clip_preprocess_cfg
from evalsuite.models.openclip_hub import TOKENIZER_FILES
from testkit.tiny import CONFIG_DIR

TINY_TIMM_MODEL = "testkit_tiny_siglip_vit"
# SigLIP's initial temperature and bias (Zhai et al. 2023): t' = log 10, b = -10.
INIT_LOGIT_SCALE = math.log(10.0)
INIT_LOGIT_BIAS = -10.0


def tiny_siglip_cfg(vocab_size: int | None = None) -> dict[str, Any]:
    """The open_clip ``model_cfg`` of the tiny SigLIP (``configs/tiny-siglip.json``)."""
    cfg = json.loads((CONFIG_DIR / "tiny-siglip.json").read_text())["model_cfg"]
    if vocab_size is not None:
        cfg["text_cfg"]["vocab_size"] = vocab_size
    return cfg


def timm_vit_kwargs() -> dict[str, Any]:
    """The tiny timm ViT's arguments: timm's ``vit_base_patch16_siglip_224`` made small."""
    vision = json.loads((CONFIG_DIR / "tiny-siglip.json").read_text())["timm_vit"]
    return dict(vision, class_token=False, global_pool="map")


def register_tiny_timm_model() -> None:
    """Register :data:`TINY_TIMM_MODEL` with timm (idempotent), so open_clip can build it."""
    import timm
    from timm.models import register_model
    from timm.models.vision_transformer import VisionTransformer

    if TINY_TIMM_MODEL in timm.list_models(TINY_TIMM_MODEL):
        return

    def testkit_tiny_siglip_vit(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
        if pretrained:
            raise ValueError(f"{TINY_TIMM_MODEL} has no pretrained weights")
        for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):  # timm's own
            kwargs.pop(key, None)
        return VisionTransformer(**{**timm_vit_kwargs(), **kwargs})

    register_model(testkit_tiny_siglip_vit)


def hf_siglip_config(model_cfg: dict[str, Any]) -> SiglipConfig:
    """The ``SiglipConfig`` of the tiny SigLIP's open_clip ``model_cfg``."""
    text, vit = model_cfg["text_cfg"], timm_vit_kwargs()
    return SiglipConfig(
        text_config={
            "vocab_size": text["vocab_size"],
            "hidden_size": text["width"],
            "intermediate_size": int(text["width"] * text.get("mlp_ratio", 4.0)),
            "hidden_act": "gelu",  # timm and open_clip use exact GELU
            "num_hidden_layers": text["layers"],
            "num_attention_heads": text["heads"],
            "max_position_embeddings": text["context_length"],
            "projection_size": model_cfg["embed_dim"],
            "layer_norm_eps": text["norm_kwargs"]["eps"],
            "pad_token_id": 1,
            "eos_token_id": 1,
            "bos_token_id": None,
        },
        vision_config={
            "hidden_size": vit["embed_dim"],
            "intermediate_size": int(vit["embed_dim"] * vit.get("mlp_ratio", 4.0)),
            "num_hidden_layers": vit["depth"],
            "num_attention_heads": vit["num_heads"],
            "image_size": vit["img_size"],
            "patch_size": vit["patch_size"],
            "layer_norm_eps": 1e-6,
            "hidden_act": "gelu",  # timm and open_clip use exact GELU
        },
    )


def train_siglip_tokenizer(
    texts: Iterable[str], out_dir: Path, vocab_size: int = 300, context_length: int = 32
) -> SiglipTokenizer:
    """A SentencePiece unigram model trained on ``texts``, as a saved ``SiglipTokenizer``
    (``</s>`` ends and pads every text, as in Google's ``spiece.model``)."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts)),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "spiece.model").write_bytes(model.getvalue())
    tokenizer = SiglipTokenizer(
        vocab_file=str(out_dir / "spiece.model"), model_max_length=context_length
    )
    tokenizer.save_pretrained(out_dir)
    return tokenizer


def random_hf_siglip(model_cfg: dict[str, Any], seed: int) -> SiglipModel:
    torch.manual_seed(seed)
    model = SiglipModel(hf_siglip_config(model_cfg)).eval()
    with torch.no_grad():  # SiglipModel starts at 0 and 0; SigLIP trains from these
        model.logit_scale.fill_(INIT_LOGIT_SCALE)
        model.logit_bias.fill_(INIT_LOGIT_BIAS)
    return model


def build_tiny_hf_siglip(out_dir: Path, texts: Iterable[str], seed: int = 0) -> Path:
    """Write a tiny random Hugging Face SigLIP folder with a tokenizer trained on ``texts``."""
    out_dir = Path(out_dir)
    cfg = tiny_siglip_cfg()
    tokenizer = train_siglip_tokenizer(
        texts, out_dir, cfg["text_cfg"]["vocab_size"], cfg["text_cfg"]["context_length"]
    )
    cfg["text_cfg"]["vocab_size"] = len(tokenizer)
    model = random_hf_siglip(cfg, seed)
    with quiet_default_token_ids():
        model.save_pretrained(out_dir, safe_serialization=True)
    size = cfg["vision_cfg"]["image_size"]
    SiglipImageProcessor(
        size={"height": size, "width": size},
        image_mean=list(SIGLIP_MEAN),
        image_std=list(SIGLIP_STD),
    ).save_pretrained(out_dir)
    return out_dir


def build_tiny_open_clip_siglip(out_dir: Path, hf_folder: Path) -> Path:
    """Write the SigLIP of ``hf_folder`` (from :func:`build_tiny_hf_siglip`) as an open_clip
    folder holding the same weights: open_clip's Hub layout, SigLIP's squash preprocessing,
    and the tokenizer files of ``hf_folder``, which open_clip's ``local-dir:`` tokenizer reads."""
    hf_folder, out_dir = Path(hf_folder), Path(out_dir)
    hf_model = SiglipModel.from_pretrained(hf_folder, local_files_only=True)
    cfg = tiny_siglip_cfg(hf_model.config.text_config.vocab_size)
    cfg["text_cfg"]["tokenizer_kwargs"] = {"clean": "canonicalize"}  # as open_clip's SigLIPs
    state = hf_siglip_to_open_clip_state_dict(hf_model.state_dict(), hf_model.config)
    # Load into a real open_clip model first: a key or shape mismatch fails here, not later.
    register_tiny_timm_model()
    module = open_clip.CustomTextCLIP(**{k: v for k, v in cfg.items() if k != "custom_text"})
    module.load_state_dict(state, strict=True)
    preprocess = PreprocessConfig(
        image_size=cfg["vision_cfg"]["image_size"],
        mean=SIGLIP_MEAN,
        std=SIGLIP_STD,
        resize_mode="squash",
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": cfg, "preprocess_cfg": open_clip_preprocess_cfg(preprocess)}
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    save_file(
        {k: v.contiguous() for k, v in module.state_dict().items()}, str(out_dir / WEIGHTS_FILE)
    )
    for name in TOKENIZER_FILES:
        if (hf_folder / name).is_file():
            shutil.copy2(hf_folder / name, out_dir / name)
    return out_dir
