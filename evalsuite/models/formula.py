"""A model's own formula from a cosine to a logit and a probability: softmax (CLIP) or
sigmoid with a bias (SigLIP). Pure numpy; what each scoring run records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import expit, softmax


@dataclass(frozen=True)
class ScoreFormula:
    """A model's own head on a cosine: CLIP's softmax over the candidates of
    ``logit_scale * cos``, or SigLIP's independent ``sigmoid(logit_scale * cos + logit_bias)``.
    ``logit_scale`` is ``exp`` of the stored parameter. Both rank the candidates of one image
    exactly as the cosine does; only the probabilities differ."""

    kind: Literal["softmax", "sigmoid"]
    logit_scale: float
    logit_bias: float | None = None

    def __post_init__(self) -> None:
        if (self.kind == "sigmoid") != (self.logit_bias is not None):
            verb = "needs" if self.kind == "sigmoid" else "takes no"
            raise ValueError(f"a {self.kind} formula {verb} logit_bias")

    def logits(self, cosines: np.ndarray) -> np.ndarray:
        logits = self.logit_scale * np.asarray(cosines, dtype=np.float64)
        return logits + self.logit_bias if self.kind == "sigmoid" else logits

    def probabilities(self, cosines: np.ndarray) -> np.ndarray:
        """(N, C) cosines -> (N, C): softmax rows (sum to 1) or sigmoids (each in (0, 1))."""
        logits = self.logits(cosines)
        return expit(logits) if self.kind == "sigmoid" else softmax(logits, axis=-1)

    def to_dict(self) -> dict[str, float | str | None]:
        return {"kind": self.kind, "logit_scale": self.logit_scale, "logit_bias": self.logit_bias}
