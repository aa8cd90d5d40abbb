"""Test fixture: a tiny open_clip CLIP with SigLIP's learnable logit bias.

open_clip's ``CLIP(..., init_logit_bias=b)`` is a CLIP with a ``logit_bias`` parameter, the
sigmoid-loss (SigLIP) variant; loaded, it reports ``objective == "sigmoid"``. Built from
``build_tiny_open_clip``'s folder: the ``init_logit_bias`` key in ``model_cfg`` and the
``logit_bias`` tensor in the weights, so open_clip loads it strictly with no code of ours.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from evalsuite.models.openclip import CONFIG_FILE, WEIGHTS_FILE
from testkit.tiny import build_tiny_open_clip

SIGLIP_INIT_BIAS = -10.0  # SigLIP's initial bias (the paper's b = -10)


def build_biased_open_clip(
    out_dir: Path, seed: int = 0, bias: float = SIGLIP_INIT_BIAS, **overrides: Any
) -> Path:
    """``build_tiny_open_clip(out_dir, seed, **overrides)`` plus a logit bias of ``bias``."""
    out_dir = build_tiny_open_clip(out_dir, seed, **overrides)
    config = json.loads((out_dir / CONFIG_FILE).read_text())
    config["model_cfg"]["init_logit_bias"] = bias
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    weights = load_file(out_dir / WEIGHTS_FILE)
    weights["logit_bias"] = torch.tensor(float(bias))  # a 0-d parameter, as open_clip makes it
    save_file(weights, str(out_dir / WEIGHTS_FILE))
    return out_dir
