"""A results database holding a 2 x 2 sweep, as ``finetune sweep`` and ``evalsuite score``
would leave it: a base model (marked as the baseline), four trials of study ``lace`` over
``optim.lr`` in {1e-05, 0.0001} x ``train.epochs`` in {1, 2}, a greedy soup of them and a
WiSE-FT checkpoint of the best trial, each scored on ``footwear`` (target, zero-shot task
``lace``, 200 items) and ``fmnist`` (general, zero-shot task ``type``, 300 items).

Accuracies are exact by construction (the first k items right), so tests can check the
report's numbers against :data:`TARGET` and :data:`GENERAL`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
from verdict_db import classification, run

from evalsuite import store
from evalsuite.results import ModelInfo

STUDY = "lace"
N_TARGET, N_GENERAL = 200, 300
BASE_SPEC = "hf:base/clip"
# model -> accuracy on footwear/lace and on fmnist/type
TARGET = {
    "base": 0.40,
    "lace-trial-0": 0.50,
    "lace-trial-1": 0.55,
    "lace-trial-2": 0.60,
    "lace-trial-3": 0.70,
    "lace-soup-greedy": 0.66,
    "lace-trial-3-wise-0.5": 0.62,
}
GENERAL = {
    "base": 0.80,
    "lace-trial-0": 0.80,
    "lace-trial-1": 0.78,
    "lace-trial-2": 0.76,
    "lace-trial-3": 0.60,
    "lace-soup-greedy": 0.79,
    "lace-trial-3-wise-0.5": 0.74,
}
PARAMS = {  # trial number -> params, the grid in Optuna's GridSampler order
    0: {"optim.lr": 1e-05, "train.epochs": 1},
    1: {"optim.lr": 1e-05, "train.epochs": 2},
    2: {"optim.lr": 0.0001, "train.epochs": 1},
    3: {"optim.lr": 0.0001, "train.epochs": 2},
}


def config(params: dict[str, Any]) -> dict[str, Any]:
    """A TrainConfig dump (the keys the tables read) with ``params`` applied."""
    out: dict[str, Any] = {
        "model": {"spec": BASE_SPEC},
        "optim": {"lr": 3e-05, "weight_decay": 0.0001, "layer_decay": None},
        "train": {"epochs": 10, "batch_size": 32, "accum_steps": 1},
        "loss": {"objective": "contrastive"},
        "lock": {
            "lock_image": False,
            "lock_text": True,
            "lock_image_unlocked_blocks": 0,
            "lock_text_unlocked_blocks": 0,
        },
        "lora": {"enabled": False, "rank": 8},
        "ema": {"enabled": False, "decay": 0.999},
    }
    for dotted, value in params.items():
        section, key = dotted.split(".")
        out[section][key] = value
    return out


def trial_training(
    number: int, objective: dict[str, str] | None = None, level: list[str] | None = None
) -> dict[str, Any]:
    params = PARAMS[number]
    sweep: dict[str, Any] = {"study": STUDY, "trial": number, "params": dict(params)}
    if objective is not None:  # what finetune sweep records since it names its objective
        sweep["objective"] = objective
    if level is not None:  # and its constraint
        sweep["constraint"] = {"no_regression_on": level}
    return {
        "run_name": f"{STUDY}-trial-{number}",
        "config": config(params),
        "base_model": BASE_SPEC,
        "sweep": sweep,
        "history": [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1, "val_accuracy": 0.5}],
    }


def _fp(name: str) -> str:
    return f"fp-{name}".ljust(24, "0")


def models(
    objective: dict[str, str] | None = None, level: list[str] | None = None
) -> list[ModelInfo]:
    base = ModelInfo(_fp("base"), "base", BASE_SPEC, "hf")
    out = [base]
    for number in PARAMS:
        name = f"{STUDY}-trial-{number}"
        out.append(
            ModelInfo(
                _fp(name),
                name,
                f"runs/{STUDY}/trial-{number}/best",
                "hf",
                base_model=BASE_SPEC,
                base_fingerprint=base.fingerprint,
                training=trial_training(number, objective, level),
            )
        )
    soup = copy.deepcopy(trial_training(3))  # a soup starts from its best ingredient's record
    soup["run_name"] = f"{STUDY}-soup-greedy"
    soup["soup"] = {
        "kind": "greedy",
        "ingredients": [f"{STUDY}-trial-3", f"{STUDY}-trial-2"],
        "base_fingerprint": base.fingerprint,
    }
    out.append(
        ModelInfo(
            _fp("soup"),
            f"{STUDY}-soup-greedy",
            f"runs/{STUDY}/soup-greedy",
            "hf",
            base_model=BASE_SPEC,
            base_fingerprint=base.fingerprint,
            training=soup,
        )
    )
    wise = copy.deepcopy(trial_training(3))  # WiSE copies the fine-tune's record, sweep included
    wise["run_name"] = f"{STUDY}-trial-3-wise-0.5"
    wise["wise"] = {
        "alpha": 0.5,
        "base_spec": BASE_SPEC,
        "base_fingerprint": base.fingerprint,
        "finetuned_spec": f"runs/{STUDY}/trial-3/best",
        "finetuned_fingerprint": _fp(f"{STUDY}-trial-3"),
    }
    out.append(
        ModelInfo(
            _fp("wise"),
            f"{STUDY}-trial-3-wise-0.5",
            "runs/lace/wise-0.5",
            "hf",
            base_model=BASE_SPEC,
            base_fingerprint=base.fingerprint,
            training=wise,
        )
    )
    return out


def _predictions(y_true: np.ndarray, accuracy: float, n_classes: int) -> np.ndarray:
    """The first ``accuracy * n`` items right, the rest wrong: an exact accuracy."""
    right = np.arange(len(y_true)) < round(accuracy * len(y_true))
    return np.where(right, y_true, (y_true + 1) % n_classes)


def write_sweep_db(
    db: Path,
    seed: int = 0,
    objective: dict[str, str] | None = None,
    level: list[str] | None = None,
) -> Path:
    rng = np.random.default_rng(seed)
    lace_true, type_true = rng.integers(0, 5, N_TARGET), rng.integers(0, 3, N_GENERAL)
    for i, model in enumerate(models(objective, level)):
        lace = _predictions(lace_true, TARGET[model.name], 5)
        types = _predictions(type_true, GENERAL[model.name], 3)
        for benchmark, task, y_true, pred, n in (
            ("footwear", "lace", lace_true, lace, 5),
            ("fmnist", "type", type_true, types, 3),
        ):
            parts = classification(task, y_true, pred, n, rng)
            store.write_run(
                db, run(model, benchmark, f"data-{benchmark}", i, [("zeroshot", task, parts)])
            )
    store.mark_baseline(db, "base")
    return db
