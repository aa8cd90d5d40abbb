"""Model soups: three short fine-tunes of one tiny base, laid out as a sweep's trials; the
uniform soup is the mean of their weights, the greedy soup is never worse on validation than
its best ingredient (measured independently, by finetune's own epoch-0 validation), and
fine-tunes of different bases are refused, naming both."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from accelerate.state import AcceleratorState

from evalsuite.models import load_model
from finetune.__main__ import main as finetune_main
from finetune.config import validate_config
from finetune.loop import train
from finetune.soup import greedy_soup, main, measure, read_ingredients
from testkit.synthetic import write_synthetic_catalogue
from testkit.tiny import build_tiny_hf

STUDY = "shoes"
# (seed, lr) of the three trials: different enough that averaging is a real choice
TRIALS = ((0, 1e-3), (1, 3e-3), (2, 3e-4))


def config(model: Path, data: Path, out: Path, seed: int, lr: float, epochs: int = 2) -> dict:
    return {
        "model": {"spec": str(model)},
        "data": {"path": str(data), "target_field": "articleType"},
        "optim": {"lr": lr},
        "train": {"epochs": epochs, "batch_size": 8, "seed": seed, "log_every": 100},
        "output": {"dir": str(out), "run_name": f"{STUDY}-trial-{TRIALS.index((seed, lr))}"},
    }


def run(cfg: dict, **kwargs):
    AcceleratorState._reset_state(True)
    try:
        return train(validate_config(cfg), **kwargs)
    finally:
        AcceleratorState._reset_state(True)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A sweep folder sweep/trial-<n>/best of three fine-tunes of one tiny base, each
    best/training.json carrying the sweep record a `finetune sweep` writes."""
    work = tmp_path_factory.mktemp("soup")
    base = build_tiny_hf(work / "base", seed=0, name="tiny-train")
    data = write_synthetic_catalogue(work / "catalogue", train=32, val=12, test=4)
    folder = work / "sweep"
    for number, (seed, lr) in enumerate(TRIALS):
        out = folder / f"trial-{number}"
        run(config(base, data, out, seed, lr))
        record = out / "best" / "training.json"
        training = json.loads(record.read_text())
        training["sweep"] = {"study": STUDY, "trial": number, "params": {"optim.lr": lr}}
        record.write_text(json.dumps(training))
    return {"base": base, "data": data, "sweep": folder, "work": work}


def val_loss(sweep: dict[str, Path], model: Path, tmp_path: Path) -> float:
    """The epoch-0 val loss that `finetune` itself records for ``model`` as a base (the
    trial's val split and settings): independent of finetune.soup's measuring."""
    out = tmp_path / f"measure-{model.parent.name}-{model.name}"
    cfg = config(model, sweep["data"], out, seed=0, lr=1e-3, epochs=1)
    cfg["train"]["max_steps"] = 1
    progress = run(cfg)
    assert progress.history[0]["epoch"] == 0
    return float(progress.history[0]["val_loss"])


def floats(folder: Path) -> dict[str, torch.Tensor]:
    state = load_model(folder).module.state_dict()
    return {k: v for k, v in state.items() if v.is_floating_point()}


def test_uniform_and_greedy_soups_of_a_sweep(sweep, tmp_path, capsys):
    out = tmp_path / "soups"
    assert main([str(sweep["sweep"]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["greedy", "uniform"]
    trials = [sweep["sweep"] / f"trial-{n}" / "best" for n in range(len(TRIALS))]
    names = [f"{STUDY}-trial-{n}" for n in range(len(TRIALS))]

    # the uniform soup is the mean of the three fine-tunes' weights
    uniform = floats(out / "uniform")
    weights = [floats(t) for t in trials]
    for name, tensor in uniform.items():
        torch.testing.assert_close(tensor, sum(w[name] for w in weights) / len(weights))
    record = json.loads((out / "uniform" / "training.json").read_text())
    assert record["run_name"] == f"{STUDY}-soup-uniform"
    base_fp = load_model(sweep["base"]).fingerprint
    assert record["soup"]["kind"] == "uniform" and record["soup"]["ingredients"] == names
    assert record["soup"]["base_fingerprint"] == base_fp == record["base_model"]["fingerprint"]
    assert "sweep" not in record and "history" not in record  # not one trial's

    # the greedy soup: never worse on validation than its best ingredient, measured apart:
    # each trial's best val loss as its training recorded it, the soup's by a finetune run
    losses = {}
    for name, trial in zip(names, trials, strict=True):
        losses[name] = json.loads((trial / "training.json").read_text())["best_val_loss"]
        measured = re.search(rf"^{name}: val loss (\S+)$", printed, re.M)
        assert measured and float(measured[1]) == pytest.approx(losses[name], rel=1e-5)
    greedy = json.loads((out / "greedy" / "training.json").read_text())
    assert greedy["run_name"] == f"{STUDY}-soup-greedy"
    kept = greedy["soup"]["ingredients"]
    assert kept[0] == min(losses, key=losses.get)  # it starts from the best ingredient
    soup_loss = val_loss(sweep, out / "greedy", tmp_path)
    assert soup_loss <= min(losses.values()) + 1e-6, (soup_loss, losses)
    assert greedy["soup"]["val_loss"] == pytest.approx(soup_loss, rel=1e-5)
    assert f"greedy soup: {len(kept)} of 3: {', '.join(kept)}" in printed
    # a soup is an ordinary checkpoint: evalsuite loads it under its name
    assert load_model(out / "greedy").name == f"{STUDY}-soup-greedy"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temps

    # existing soups are not overwritten without --overwrite; --kind and --name choose
    assert main([str(sweep["sweep"]), "--out", str(out), "--kind", "uniform"]) == 2
    two = [str(t) for t in trials[:2]]
    assert main([*two, "--out", str(out), "--kind", "uniform", "--name", "pair",
                 "--overwrite"]) == 0  # fmt: skip
    record = json.loads((out / "uniform" / "training.json").read_text())
    assert record["run_name"] == "pair-soup-uniform" and record["soup"]["ingredients"] == names[:2]


def test_fine_tunes_of_different_bases_are_refused(sweep, tmp_path, capsys):
    other = tmp_path / "other-best"
    shutil.copytree(sweep["sweep"] / "trial-1" / "best", other)
    training = json.loads((other / "training.json").read_text())
    training["base_model"] = {"spec": "openai/clip-vit-base-patch32", "fingerprint": "f" * 64}
    (other / "training.json").write_text(json.dumps(training))
    first = sweep["sweep"] / "trial-0" / "best"
    out = tmp_path / "soups"
    assert main([str(first), str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "one base model" in err and str(first) in err and str(other) in err
    assert str(sweep["base"]) in err and "openai/clip-vit-base-patch32" in err
    assert not out.exists()


def test_bad_ingredients_are_clear_errors(sweep, tmp_path, capsys):
    first = str(sweep["sweep"] / "trial-0" / "best")
    out = str(tmp_path / "soups")
    assert finetune_main(["soup", first, "--out", out]) == 2  # via `finetune soup`
    assert "at least 2 checkpoints" in capsys.readouterr().err
    assert main([first, first, "--out", out]) == 2
    assert "given twice" in capsys.readouterr().err
    assert main([first, str(tmp_path), "--out", out]) == 2
    assert "nor a sweep folder" in capsys.readouterr().err
    bare = build_tiny_hf(tmp_path / "bare", seed=3, name="tiny-train")  # no training.json
    (bare / "training.json").write_text(json.dumps({"run_name": "bare"}))
    assert main([first, str(bare), "--out", out]) == 2
    assert "no base_model.fingerprint" in capsys.readouterr().err
    no_val = tmp_path / "no-val.yaml"
    cfg = config(sweep["base"], sweep["data"], tmp_path / "x", seed=0, lr=1e-3)
    cfg["data"]["val_split"] = None
    cfg["schedule"] = {"name": "cosine"}
    no_val.write_text(yaml.safe_dump(cfg))
    second = str(sweep["sweep"] / "trial-1" / "best")
    assert main([first, second, "--out", out, "--config", str(no_val)]) == 2
    assert "data.val_split is null" in capsys.readouterr().err
    assert not Path(out).exists()


@pytest.mark.parametrize(
    ("pair_loss", "kept", "final_loss"),
    [(0.9, (0, 1), 0.9), (1.0, (0, 1), 1.0), (1.1, (0, 2), 0.8)],  # 1.0: a tie joins
)
def test_greedy_adds_an_ingredient_only_when_validation_does_not_get_worse(
    sweep, pair_loss, kept, final_loss, capsys
):
    """Algorithm 1 on a validator that tells the soups apart by their weights: ingredients
    best first, each joins when the soup's loss does not get worse (<=), else is skipped."""
    folders = {n: sweep["sweep"] / f"trial-{n}" / "best" for n in range(3)}
    ingredients = read_ingredients([folders[n] for n in (2, 0, 1)])  # not in loss order
    weights = {n: floats(folder) for n, folder in folders.items()}
    losses = {(0,): 1.0, (1,): 2.0, (2,): 3.0, (0, 1): pair_loss, (0, 1, 2): 1.2, (0, 2): 0.8}

    def mean(members: tuple[int, ...]) -> dict[str, torch.Tensor]:
        return {k: sum(weights[n][k] for n in members) / len(members) for k in weights[0]}

    def validator(model) -> float:
        state = model.module.state_dict()
        for members, loss in losses.items():
            if all(torch.allclose(state[k], v, atol=1e-6) for k, v in mean(members).items()):
                return loss
        raise AssertionError("a soup the test did not expect")

    measure(ingredients, validator)
    soup, members, loss = greedy_soup(ingredients, validator)
    assert [m.name for m in members] == [f"{STUDY}-trial-{n}" for n in kept]
    assert loss == final_loss
    state = soup.module.state_dict()
    for name, tensor in mean(kept).items():
        torch.testing.assert_close(state[name], tensor)
    out = capsys.readouterr().out
    assert f"greedy soup: start from {STUDY}-trial-0 (val loss 1)" in out
    assert f"greedy soup: 2 of 3: {', '.join(m.name for m in members)}" in out


def test_a_sweep_folder_gives_only_its_finished_trials(sweep, tmp_path):
    """A trial killed before its record, or one its study marks failed (scoring failed, or
    retried as another trial), is no ingredient."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    from finetune.soup import expand

    folder = tmp_path / "sweep"
    for number in range(3):
        shutil.copytree(
            sweep["sweep"] / f"trial-{number}" / "best", folder / f"trial-{number}" / "best"
        )
    killed = folder / "trial-3" / "best"
    shutil.copytree(sweep["sweep"] / "trial-0" / "best", killed)
    record = json.loads((killed / "training.json").read_text())
    del record["sweep"]  # killed before the sweep wrote its record
    (killed / "training.json").write_text(json.dumps(record))
    names = lambda paths: [p.parent.name for p in paths]  # noqa: E731
    assert names(expand([folder])) == ["trial-0", "trial-1", "trial-2"]

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder / "optuna.journal")))
    study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
    distribution = {"optim.lr": optuna.distributions.CategoricalDistribution([1e-3, 3e-3, 3e-4])}
    for number, state in enumerate(("COMPLETE", "FAIL", "COMPLETE")):
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState[state], value=0.5 if state == "COMPLETE" else None,
            params={"optim.lr": TRIALS[number][1]}, distributions=distribution,
        ))  # fmt: skip
    assert names(expand([folder])) == ["trial-0", "trial-2"]
