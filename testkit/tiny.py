"""Small randomly initialised CLIPs, saved exactly as real ones are, for tests, speed scripts
and the demo.

``build_tiny_hf`` writes a Hugging Face folder (config.json, model.safetensors, tokenizer,
preprocessor_config.json) like ``patrickjohncyh/fashion-clip``; ``build_tiny_open_clip``
writes open_clip's Hub layout. With the same seed both hold the same weights, so the two
backends can be checked against each other. The architecture is data:
``configs/tiny-clip.json`` in open_clip's ``model_cfg`` format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import open_clip
import torch
from safetensors.torch import save_file
from transformers import CLIPModel

from evalsuite.models.base import PreprocessConfig
from evalsuite.models.convert import hf_config_from_open_clip, hf_to_open_clip_state_dict
from evalsuite.models.hf import image_processor_for
from evalsuite.models.openclip import CONFIG_FILE, WEIGHTS_FILE, open_clip_preprocess_cfg
from evalsuite.models.tokenizer import build_hf_tokenizer

CONFIG_DIR = Path(__file__).parent / "configs"


def tiny_model_cfg(name: str = "tiny-clip", **overrides: Any) -> dict[str, Any]:
    """An open_clip ``model_cfg`` from ``configs/<name>.json``; ``vision_cfg__layers=4`` style
    keyword overrides reach nested keys."""
    cfg = json.loads((CONFIG_DIR / f"{name}.json").read_text())
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        if field:
            cfg[section][field] = value
        else:
            cfg[section] = value
    return cfg


def _random_hf_clip(model_cfg: dict[str, Any], seed: int) -> CLIPModel:
    torch.manual_seed(seed)
    return CLIPModel(hf_config_from_open_clip(model_cfg)).eval()


def build_tiny_hf(out_dir: Path, seed: int = 0, **overrides: Any) -> Path:
    """Write a tiny random Hugging Face CLIP folder; returns ``out_dir``."""
    out_dir = Path(out_dir)
    model_cfg = tiny_model_cfg(**overrides)
    model = _random_hf_clip(model_cfg, seed)
    model.save_pretrained(out_dir, safe_serialization=True)
    build_hf_tokenizer().save_pretrained(out_dir)
    preprocess = PreprocessConfig(image_size=model_cfg["vision_cfg"]["image_size"])
    image_processor_for(preprocess).save_pretrained(out_dir)
    return out_dir


def build_tiny_open_clip(out_dir: Path, seed: int = 0, **overrides: Any) -> Path:
    """Write a tiny random open_clip folder holding the same weights as ``build_tiny_hf``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_cfg = tiny_model_cfg(**overrides)
    hf_model = _random_hf_clip(model_cfg, seed)
    state = hf_to_open_clip_state_dict(hf_model.state_dict(), hf_model.config)
    # Load into a real open_clip model first: a key or shape mismatch fails here, not later.
    module = open_clip.CLIP(**model_cfg)
    module.load_state_dict(state, strict=True)
    preprocess = PreprocessConfig(image_size=model_cfg["vision_cfg"]["image_size"])
    config = {"model_cfg": model_cfg, "preprocess_cfg": open_clip_preprocess_cfg(preprocess)}
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    save_file(
        {k: v.contiguous() for k, v in module.state_dict().items()}, str(out_dir / WEIGHTS_FILE)
    )
    return out_dir
