"""Model soups (Wortsman et al., 2022): average the weights of several fine-tunes of one base.

``finetune soup CKPT [CKPT ...] --out DIR [--config CFG.yaml] [--kind uniform|greedy|both]``

* The uniform soup is the mean of every ingredient's floating tensors.
* The greedy soup (the paper's Algorithm 1) ranks the ingredients by validation loss, starts
  from the best and adds each next one only if the soup's validation loss does not get worse.
  It is therefore never worse on validation than its best ingredient.

Every ingredient is measured the same way, by ``finetune``'s own validation
(:func:`finetune.validation.evaluate`) on the val split of ``--config`` (default: the config
recorded in the first ingredient's training.json), rather than trusting each run's recorded
best loss, which another config or data version may have produced.

A CKPT is a fine-tuned checkpoint folder (``best/``, ``last/``) or a sweep's output folder,
which stands for its ``trial-*/best``. Averaging only makes sense within one loss basin: all
ingredients must be fine-tunes of the same base (training.json ``base_model.fingerprint``)
and architecture, else a :class:`ConfigError` names the two that differ. Soups are written
like WiSE-FT checkpoints (:func:`finetune.wise.save_checkpoint`) to DIR/uniform and
DIR/greedy, named ``<prefix>-soup-uniform`` and ``<prefix>-soup-greedy``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from evalsuite.errors import ConfigError, EvalSuiteError
from evalsuite.models import ClipModel, load_model
from evalsuite.models.factory import TRAINING_FILE
from finetune.soup_validation import Validator, config_for
from finetune.wise import check_compatible, save_checkpoint

log = logging.getLogger(__name__)
Measure = Callable[[ClipModel], float]  # a model's val loss: a Validator, or a stand-in
KINDS = ("uniform", "greedy")
# what a soup keeps of its ingredients' training.json: what they share, not one run's history
SHARED_KEYS = ("base_model", "data", "objective", "target_field", "classes")


@dataclass
class Ingredient:
    path: Path
    name: str  # its run name, as scored and as the soup lists it
    training: dict[str, Any]
    val_loss: float | None = None

    @property
    def base_fingerprint(self) -> str | None:
        return (self.training.get("base_model") or {}).get("fingerprint")


# --- ingredients --------------------------------------------------------------------------


def expand(paths: Sequence[Path]) -> list[Path]:
    """Checkpoint folders as given; a sweep folder becomes its ``trial-*/best`` in trial
    order. Anything else, or one checkpoint twice, is a ConfigError."""
    out: list[Path] = []
    for path in map(Path, paths):
        if (path / TRAINING_FILE).is_file():
            out.append(path)
            continue
        trials = [
            t / "best" for t in path.glob("trial-*") if (t / "best" / TRAINING_FILE).is_file()
        ]
        if not trials:
            raise ConfigError(
                f"{path}: neither a fine-tuned checkpoint (no {TRAINING_FILE}) nor a sweep "
                "folder (no trial-*/best inside)"
            )
        out += finished_trials(path, sorted(trials, key=lambda t: _trial_number(t.parent.name)))
    resolved = [p.resolve() for p in out]
    twice = next((p for p in out if resolved.count(p.resolve()) > 1), None)
    if twice is not None:
        raise ConfigError(f"{twice} is given twice: each ingredient goes in once")
    if len(out) < 2:
        raise ConfigError(f"a soup needs at least 2 checkpoints, got {len(out)}")
    return out


def finished_trials(sweep: Path, trials: list[Path]) -> list[Path]:
    """The trials of a sweep folder that finished: with the sweep's record (written once the
    fine-tune ended) and, where the sweep's journal is there, COMPLETE in its study. A trial
    killed mid-way, failed in scoring, or failed and retried (its retry is another trial)
    is left out, and said so."""
    records = {t: _sweep_record(t) for t in trials}
    kept = [t for t in trials if records[t]]
    journal = sweep / "optuna.journal"  # finetune.sweep's default storage
    if kept and journal.is_file():
        import optuna
        from optuna.storages.journal import JournalFileBackend

        storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
        study = optuna.load_study(study_name=str(records[kept[0]]["study"]), storage=storage)
        complete = optuna.trial.TrialState.COMPLETE
        done = {t.number for t in study.get_trials(deepcopy=False) if t.state == complete}
        kept = [t for t in kept if records[t].get("trial") in done]
    for trial in trials:
        if trial not in kept:
            log.warning("%s: not a finished trial of the sweep; left out of the soups", trial)
    return kept


def _sweep_record(checkpoint: Path) -> dict[str, Any]:
    try:
        record = json.loads((checkpoint / TRAINING_FILE).read_text()).get("sweep")
    except (OSError, ValueError, AttributeError):
        return {}
    return record if isinstance(record, dict) else {}


def _trial_number(name: str) -> tuple[int, str]:
    match = re.search(r"(\d+)$", name)
    return (int(match.group(1)) if match else -1, name)


def read_ingredients(paths: Sequence[Path]) -> list[Ingredient]:
    """Each checkpoint's training.json, and the check that all have one base: before any
    weights load."""
    ingredients = []
    for path in paths:
        file = path / TRAINING_FILE
        try:
            training = json.loads(file.read_text())
        except (OSError, ValueError) as err:
            raise ConfigError(f"{file}: not readable as JSON ({err})") from err
        if not isinstance(training, dict):
            raise ConfigError(f"{file}: not a training record (a JSON object)")
        name = str(training.get("run_name") or path.name)
        ingredients.append(Ingredient(path, name, training))
    check_same_base(ingredients)
    return ingredients


def check_same_base(ingredients: Sequence[Ingredient]) -> None:
    first = ingredients[0]
    for other in ingredients:
        if other.base_fingerprint is None:
            raise ConfigError(
                f"{other.path / TRAINING_FILE} has no base_model.fingerprint: a soup needs "
                "fine-tunes whose base is known (checkpoints written by finetune)"
            )
        if other.base_fingerprint != first.base_fingerprint:
            raise ConfigError(
                "a soup averages fine-tunes of one base model, but "
                f"{first.path} was fine-tuned from {_base_words(first)} and "
                f"{other.path} from {_base_words(other)}"
            )


def _base_words(ingredient: Ingredient) -> str:
    base = ingredient.training.get("base_model") or {}
    return f"{base.get('spec', '?')} (fingerprint {str(base.get('fingerprint'))[:12]})"


def load_ingredient(ingredient: Ingredient, reference: ClipModel | None) -> ClipModel:
    model = load_model(ingredient.path)
    if reference is not None:
        where = f"{reference.spec!r} vs {ingredient.path}"
        check_compatible(reference, model, what="a model soup", where=where)
    return model


# --- averaging ----------------------------------------------------------------------------


class WeightSum:
    """The running sum of the ingredients' floating tensors (float32, on the CPU), and the
    soup it makes in a model: mean = sum / count. Non-floating tensors (position ids) keep
    the model's own values."""

    def __init__(self, model: ClipModel) -> None:
        self.total = {k: v.detach().float().cpu().clone() for k, v in _floats(model).items()}
        self.count = 1

    def add(self, model: ClipModel) -> None:
        for name, tensor in _floats(model).items():
            self.total[name] += tensor.detach().float().cpu()
        self.count += 1

    def put_mean(self, model: ClipModel, plus: ClipModel | None = None) -> None:
        """Put the soup's weights into ``model``; with ``plus``, the soup with it added."""
        extra = _floats(plus) if plus is not None else {}
        count = self.count + (plus is not None)
        with torch.no_grad():
            for name, tensor in _floats(model).items():
                total = self.total[name]
                if name in extra:
                    total = total + extra[name].detach().float().cpu()
                tensor.copy_((total / count).to(device=tensor.device, dtype=tensor.dtype))
        model.__dict__.pop("fingerprint", None)  # the weights changed


def _floats(model: ClipModel) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.module.state_dict().items() if v.is_floating_point()}


def measure(ingredients: list[Ingredient], validator: Measure) -> None:
    """Each ingredient's val loss, one model in memory at a time."""
    reference = None
    for ingredient in ingredients:
        model = load_ingredient(ingredient, reference)
        reference = reference or model
        ingredient.val_loss = validator(model)
        print(f"{ingredient.name}: val loss {ingredient.val_loss:.6g}")


def uniform_soup(ingredients: list[Ingredient]) -> ClipModel:
    soup = load_ingredient(ingredients[0], None)
    weights = WeightSum(soup)
    for ingredient in ingredients[1:]:
        weights.add(load_ingredient(ingredient, soup))
    weights.put_mean(soup)
    return soup


def greedy_soup(
    ingredients: list[Ingredient], validator: Measure
) -> tuple[ClipModel, list[Ingredient], float]:
    """Algorithm 1 of Wortsman et al.: ingredients best first; one joins when the soup's
    val loss with it is not worse (<=). Returns the soup, its ingredients and its val loss."""
    ranked = sorted(ingredients, key=_rank)
    soup = load_ingredient(ranked[0], None)
    weights, kept = WeightSum(soup), [ranked[0]]
    best = ranked[0].val_loss
    assert best is not None
    print(f"greedy soup: start from {ranked[0].name} (val loss {best:.6g})")
    for ingredient in ranked[1:]:
        candidate = load_ingredient(ingredient, soup)
        weights.put_mean(soup, plus=candidate)
        loss = validator(soup)
        if loss <= best:
            weights.add(candidate)
            kept.append(ingredient)
            best = loss
            print(f"  + {ingredient.name}: soup val loss {loss:.6g} (kept)")
        else:
            print(f"  - {ingredient.name}: soup val loss {loss:.6g} > {best:.6g} (skipped)")
    weights.put_mean(soup)
    print(f"greedy soup: {len(kept)} of {len(ranked)}: {', '.join(i.name for i in kept)}")
    return soup, kept, best


def _rank(ingredient: Ingredient) -> float:
    """Sort key, best first: a NaN loss (a diverged run) ranks last instead of breaking the
    sort; it can join no soup, since no loss is <= NaN."""
    loss = ingredient.val_loss
    return math.inf if loss is None or math.isnan(loss) else loss


def make_soup(
    kind: str, ingredients: list[Ingredient], validator: Measure
) -> tuple[ClipModel, list[Ingredient], float]:
    """(soup, its ingredients, its val loss) of ``kind``."""
    if kind == "greedy":
        return greedy_soup(ingredients, validator)
    soup = uniform_soup(ingredients)
    loss = validator(soup)
    print(f"uniform soup of {len(ingredients)}: val loss {loss:.6g}")
    return soup, ingredients, loss


# --- writing ------------------------------------------------------------------------------


def mark_soup(
    model: ClipModel, kind: str, name: str, ingredients: Sequence[Ingredient], val_loss
) -> None:
    """training.json of the soup: what the ingredients share (base, data, objective,
    classes) plus ``"soup"``; not one ingredient's history, sweep params or config."""
    first = ingredients[0].training
    training = {k: copy.deepcopy(first[k]) for k in SHARED_KEYS if k in first}
    training["run_name"] = name
    training["soup"] = {
        "kind": kind,
        "ingredients": [i.name for i in ingredients],
        "ingredient_paths": [str(i.path) for i in ingredients],
        "base_fingerprint": ingredients[0].base_fingerprint,
        "val_loss": val_loss,
    }
    model.source = dataclasses.replace(model.source, name=name, training=training)
    model.source.extra = {**model.source.extra, "soup": training["soup"]}


def default_prefix(ingredients: Sequence[Ingredient], out: Path) -> str:
    """The sweep's study when every ingredient is a trial of one, else the --out folder's
    name."""
    studies = {str((i.training.get("sweep") or {}).get("study") or "") for i in ingredients}
    study = studies.pop() if len(studies) == 1 else ""
    return study or Path(out).resolve().name


# --- command line ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finetune soup",
        description="Model soups: average fine-tunes of one base (uniform and greedy).",
    )
    parser.add_argument(
        "checkpoints",
        nargs="+",
        type=Path,
        metavar="CKPT",
        help="fine-tuned checkpoint folders, or a sweep's output folder (its trial-*/best)",
    )
    parser.add_argument("--out", required=True, type=Path, help="writes OUT/uniform, OUT/greedy")
    parser.add_argument(
        "--config",
        type=Path,
        help="finetune config whose val split measures the ingredients "
        "(default: the one recorded in the first checkpoint's training.json)",
    )
    parser.add_argument("--kind", choices=(*KINDS, "both"), default="both")
    parser.add_argument(
        "--name", help="name prefix: NAME-soup-uniform, NAME-soup-greedy (default: the study)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing soups")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    kinds = KINDS if args.kind == "both" else (args.kind,)
    try:
        targets = {kind: args.out / kind for kind in kinds}
        existing = [p for p in targets.values() if p.exists()]
        if existing and not args.overwrite:  # before the (slow) loading
            raise ConfigError(f"{existing[0]} already exists; pass --overwrite to replace it")
        ingredients = read_ingredients(expand(args.checkpoints))
        prefix = args.name or default_prefix(ingredients, args.out)
        reference = load_ingredient(ingredients[0], None)
        validator = Validator(config_for(args.config, ingredients[0].path), reference)
        del reference
        measure(ingredients, validator)
        soups = {kind: make_soup(kind, ingredients, validator) for kind in kinds}
        for kind, (soup, members, loss) in soups.items():  # written once both are made
            mark_soup(soup, kind, f"{prefix}-soup-{kind}", members, loss)
            print(save_checkpoint(soup, targets[kind], args.overwrite, who="finetune soup"))
    except EvalSuiteError as err:
        print(f"finetune soup: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
