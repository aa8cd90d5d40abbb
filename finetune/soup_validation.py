"""The val loss of a saved model, measured as ``finetune`` measures it after each epoch.

A model soup ranks its ingredients and accepts each greedy step by validation loss; that
loss must be the training's own (:func:`finetune.validation.evaluate`: the same val split,
captions, chunking, objective and mixed precision), computed for every candidate the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from torch import nn

from evalsuite.errors import ConfigError
from evalsuite.models import ClipModel
from evalsuite.models.factory import TRAINING_FILE
from finetune.build import build_loss
from finetune.config import TrainConfig, load_config, resolve_objective, validate_config
from finetune.data import Loaders, build_loaders
from finetune.loss import DualEncoder
from finetune.validation import evaluate


def config_for(config: Path | None, checkpoint: Path) -> TrainConfig:
    """``--config``, else the config recorded in ``checkpoint``'s training.json."""
    if config is not None:
        return load_config(config, [], None)
    file = checkpoint / TRAINING_FILE
    recorded = json.loads(file.read_text()).get("config")
    if not isinstance(recorded, dict):
        raise ConfigError(
            f"{file} records no finetune config: pass --config CFG.yaml, whose val split "
            "measures the ingredients"
        )
    return validate_config(recorded, f"{file} (its config)")


@dataclass
class _ValRun:
    """A candidate as :class:`finetune.validation.ValidatedRun`: what ``evaluate`` and
    ``build_loss`` read of a training's run."""

    cfg: TrainConfig
    model: ClipModel
    encoder: DualEncoder
    data: Loaders
    loss: nn.Module | None = None
    ema: Any = None


class Validator:
    """``validator(model)`` -> the val loss of ``model`` on ``cfg``'s val split. The data
    and the loss are set up once, from ``reference`` (any ingredient: they share the
    architecture, hence the preprocessing and the tokenizer)."""

    def __init__(self, cfg: TrainConfig, reference: ClipModel) -> None:
        self.cfg = resolve_objective(cfg, reference)
        if not self.cfg.data.val_split:
            raise ConfigError(
                "data.val_split is null in the config: ranking and greedy soups need a "
                "validation split (pass --config with data.val_split set)"
            )
        # one process: the val loss does not depend on the process count (validation.py)
        self.accelerator = Accelerator(mixed_precision=self.cfg.train.mixed_precision)
        self.data = build_loaders(self.cfg, reference)
        self.loss = build_loss(self._run(reference), self.accelerator)

    def _run(self, model: ClipModel) -> _ValRun:
        objective = self.cfg.loss.objective
        encoder = DualEncoder(model, objective != "zeroshot_ce", with_bias=objective == "sigmoid")
        return _ValRun(self.cfg, model, encoder, self.data)

    def __call__(self, model: ClipModel) -> float:
        model.to(self.accelerator.device)
        run = self._run(model)
        run.loss = self.loss
        return float(evaluate(run, self.accelerator)["val_loss"])
