"""Sweeps in the results: the hyper-parameter table (``evalsuite.sweeps``) and the sweep
section of ``evalsuite report``, on a hand-built database with a 2 x 2 sweep
(``tests/fixtures/sweep_db.py``) whose accuracies are exact, so the printed numbers can be
checked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from evalsuite import store
from evalsuite.cli import main
from evalsuite.report import load_report_data, write_report
from evalsuite.report.sweep import sweep_tables
from evalsuite.sweeps import (
    Trial,
    TrialScore,
    hyperparameter_table,
    hyperparameters,
    soups_of,
    sweep_table,
    trial_of,
    trials,
)
from tests.fixtures.sweep_db import GENERAL, PARAMS, STUDY, TARGET, write_sweep_db
from tests.fixtures.verdict_db import write_verdict_db

TRIALS = [f"{STUDY}-trial-{n}" for n in PARAMS]


@pytest.fixture(scope="module")
def sweep_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sweep_db(tmp_path_factory.mktemp("sweep") / "results.duckdb")


def _cells(line: str) -> list[str]:
    return [c.strip().replace("\\", "") for c in line.strip().strip("|").split("|")]


def _rows_under(lines: list[str], first_header: str) -> list[list[str]]:
    """The body rows of the first Markdown table whose header starts with ``first_header``."""
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    body = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        body.append(_cells(line))
    return body


# ---------------------------------------------------------------- evalsuite.sweeps


def test_hyperparameter_table_has_every_model_with_its_swept_and_common_keys(sweep_db):
    table = hyperparameter_table(store.list_models(sweep_db)).set_index("name")
    assert list(table.columns[:4]) == ["study", "trial", "optim.lr", "train.epochs"]  # swept first
    for number, params in PARAMS.items():
        row = table.loc[f"{STUDY}-trial-{number}"]
        assert (row["study"], row["trial"]) == (STUDY, number)
        assert row["optim.lr"] == params["optim.lr"]
        assert row["train.epochs"] == params["train.epochs"]
        assert isinstance(row["train.epochs"], int)  # not 2.0 next to the base model's None
        assert row["train.batch_size"] == 32 and row["loss.objective"] == "contrastive"
    assert table.loc["base"].drop(["study", "trial"]).isna().all()  # no training.json
    # a soup and a WiSE-FT checkpoint copy the trial's record but are no trials
    assert table.loc[f"{STUDY}-soup-greedy", "study"] is None
    assert table.loc[f"{STUDY}-soup-greedy", "soup.kind"] == "greedy"
    assert table.loc[f"{STUDY}-trial-3-wise-0.5", "wise.alpha"] == 0.5
    assert table.loc[f"{STUDY}-trial-3-wise-0.5", "study"] is None
    assert "lora.rank" not in table.columns and "ema.decay" not in table.columns  # switched off


def test_trials_and_soups_of_a_study(sweep_db):
    models = store.list_models(sweep_db)
    found = trials(models)
    assert list(found) == [STUDY]
    assert [t.name for t in found[STUDY]] == TRIALS
    assert soups_of(models, STUDY, TRIALS) == [f"{STUDY}-soup-greedy"]


def test_trial_of_reads_only_a_well_formed_record():
    sweep = {"study": "s", "trial": 2, "params": {"optim.lr": 0.001}}
    expected = Trial("s-trial-2", "s", 2, {"optim.lr": 0.001})
    assert trial_of("s-trial-2", {"sweep": sweep}) == expected
    assert trial_of("x", {"sweep": {**sweep, "trial": "2"}}) is None
    assert trial_of("x", {"sweep": sweep, "wise": {"alpha": 0.5}}) is None
    assert trial_of("x", None) is None
    assert hyperparameters({"config": {"lora": {"enabled": True, "rank": 4}}}) == {
        "lora.enabled": True,
        "lora.rank": 4,
    }


def test_sweep_table_means_and_best_per_value():
    def score(n: int, lr: float, target: float | None, gain: float | None) -> TrialScore:
        return TrialScore(Trial(f"t{n}", "s", n, {"optim.lr": lr}), target, gain, -1.0, 0)

    table = sweep_table(
        "s", [score(1, 1e-4, 0.6, 20.0), score(0, 1e-5, 0.5, 10.0), score(2, 1e-4, None, None)]
    )
    assert table.keys == ["optim.lr"]
    assert [t.trial.number for t in table.trials] == [0, 1, 2]
    low, high = table.rows
    assert (low.value, low.n_trials, low.mean_target, low.best.trial.name) == (1e-5, 1, 0.5, "t0")
    assert (high.value, high.n_trials, high.n_scored) == (1e-4, 2, 1)  # the failed one counts
    assert high.mean_target == pytest.approx(0.6) and high.mean_gain == pytest.approx(20.0)
    assert table.best.trial.name == "t1"


# ---------------------------------------------------------------- evalsuite report


def test_report_prints_and_writes_the_sweep_table(sweep_db, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["--db", str(sweep_db), "report", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"Sweep {STUDY}: 4 trial(s) scored" in printed
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "## Sweeps" in markdown and (out / "figures" / f"sweep-{STUDY}.png").stat().st_size
    lines = markdown.splitlines()
    expected = {}  # (key, value) -> (mean target, best trial)
    for key in ("optim.lr", "train.epochs"):
        for value in sorted({p[key] for p in PARAMS.values()}):
            names = [f"{STUDY}-trial-{n}" for n, p in PARAMS.items() if p[key] == value]
            best = max(names, key=TARGET.get)
            mean = sum(TARGET[n] for n in names) / len(names)
            expected[(key, f"{value:g}")] = (f"{mean * 100:.2f}%", best, TARGET[best])
    rows = _rows_under(lines, "Swept key")
    assert len(rows) == 4
    for key, value, n, mean, best, best_target, gain, general in rows:
        mean_expected, best_expected, best_value = expected[(key, value)]
        assert (n, mean, best) == ("2", mean_expected, best_expected)
        assert best_target == f"{best_value * 100:.2f}%"
        names = [f"{STUDY}-trial-{k}" for k, p in PARAMS.items() if f"{p[key]:g}" == value]
        mean_gain = sum(TARGET[n] - TARGET["base"] for n in names) / len(names) * 100
        mean_general = sum(GENERAL[n] - GENERAL["base"] for n in names) / len(names) * 100
        assert float(gain) == pytest.approx(mean_gain)
        assert float(general) == pytest.approx(mean_general)
        assert f"│ {key}" in printed  # the terminal shows the same table
    trial_rows = _rows_under(lines, "Trial")
    assert [r[1] for r in trial_rows] == TRIALS
    for number, name, lr, epochs, target, gain, general, _ in trial_rows:
        assert (float(lr), int(epochs)) == tuple(PARAMS[int(number)].values())
        assert target == f"{TARGET[name] * 100:.2f}%"
        assert float(gain) == pytest.approx((TARGET[name] - TARGET["base"]) * 100)
        assert float(general) == pytest.approx((GENERAL[name] - GENERAL["base"]) * 100)
    regress = {r[1]: r[-1] for r in trial_rows}
    assert regress[f"{STUDY}-trial-0"] == "none"  # fmnist unchanged
    assert regress[f"{STUDY}-trial-3"] != "none"  # 20 pts lost on 300 items: significant
    assert re.search(rf"Best trial: {STUDY}-trial-3 \(optim.lr=0.0001, train.epochs=2\)", markdown)
    assert f"Soups: {STUDY}-soup-greedy" in markdown


def test_soup_and_wise_are_not_rows_of_the_sweep_table(sweep_db):
    data = load_report_data(sweep_db, n_resamples=100)
    (table,) = sweep_tables(data)
    assert [t.trial.name for t in table.trials] == TRIALS
    assert table.soups == [f"{STUDY}-soup-greedy"]


def test_no_sweep_no_section(tmp_path):
    db = write_verdict_db(tmp_path / "r.duckdb")
    path = write_report(db, tmp_path / "out", n_resamples=100)
    assert "## Sweeps" not in path.read_text(encoding="utf-8")
    assert not list((tmp_path / "out" / "figures").glob("sweep-*.png"))


def test_a_wise_interpolation_of_a_soup_is_not_a_soup() -> None:
    """finetune wise drops the fine-tune's sweep and soup records; older checkpoints that
    still carry one are read as WiSE-FT points, not as soups."""
    import pandas as pd

    from evalsuite.sweeps import describe, soups_of

    soup = {"soup": {"kind": "greedy", "ingredients": ["lace-trial-0", "lace-trial-1"]}}
    wise_of_soup = {**soup, "wise": {"alpha": 0.5}}
    models = pd.DataFrame(
        {"name": ["lace-soup-greedy", "lace-soup-greedy-wise-0.5"],
         "training": [soup, wise_of_soup]}
    )  # fmt: skip
    assert soups_of(models, "lace", ["lace-trial-0"]) == ["lace-soup-greedy"]
    assert describe(soup) == "greedy soup of lace-trial-0, lace-trial-1"
    assert describe(wise_of_soup) == ""


def test_the_table_ranks_trials_by_the_sweeps_own_objective(tmp_path):
    """A sweep that optimised fmnist (not the report's target benchmark) is tabled by its
    objective: the trials' fmnist accuracies, their change from the baseline's, and the
    best trial by it."""
    objective = {"benchmark": "fmnist", "task": "type", "metric": "acc@1"}
    db = write_sweep_db(tmp_path / "results.duckdb", objective=objective)
    (table,) = sweep_tables(load_report_data(db, n_resamples=100))
    assert table.target_label == "Fashion-MNIST: type (zero-shot accuracy), the sweep's objective"
    for score in table.trials:
        assert score.target == pytest.approx(GENERAL[score.trial.name])
        assert score.gain == pytest.approx((GENERAL[score.trial.name] - GENERAL["base"]) * 100)
    assert table.best.trial.name == f"{STUDY}-trial-0"  # 80%: the best on fmnist


def test_the_best_trial_is_the_best_within_the_sweeps_constraint(tmp_path):
    """As the sweep chose: trials 1-3 lose fmnist significantly, which the constraint
    forbids, so the best is trial 0 although trial 3 scores higher on the target; a value
    whose trials all break it shows its best regardless."""
    objective = {"benchmark": "footwear", "task": "lace", "metric": "acc@1"}
    db = write_sweep_db(tmp_path / "results.duckdb", objective=objective, level=["fmnist"])
    (table,) = sweep_tables(load_report_data(db, n_resamples=100))
    violating = {s.trial.name for s in table.trials if s.violates}
    assert violating == {f"{STUDY}-trial-{n}" for n in (1, 2, 3)}
    assert table.best.trial.name == f"{STUDY}-trial-0"
    rows = {(r.key, r.value): r.best.trial.name for r in table.rows}
    assert rows[("optim.lr", 1e-05)] == f"{STUDY}-trial-0"
    assert rows[("optim.lr", 0.0001)] == f"{STUDY}-trial-3"  # both break it: the higher


def test_the_chart_puts_soups_and_wise_on_the_tables_axis(tmp_path):
    """With an objective, every point of the sweep's chart (trials, soups, WiSE-FT) has its
    gain on that objective, the y axis the table's gains are on."""
    from evalsuite.report.sweep_chart import chart_point

    objective = {"benchmark": "fmnist", "task": "type", "metric": "acc@1"}
    db = write_sweep_db(tmp_path / "results.duckdb", objective=objective)
    data = load_report_data(db, n_resamples=100)
    (table,) = sweep_tables(data)
    by_name = {m.name: m for m in data.models}
    for name in (f"{STUDY}-soup-greedy", f"{STUDY}-trial-3-wise-0.5", f"{STUDY}-trial-1"):
        _, gain = chart_point(data, by_name[name], table.objective)
        assert gain == pytest.approx((GENERAL[name] - GENERAL["base"]) * 100)
