"""Sweeps on the leaderboard: filter and colour the models by a hyper-parameter, and the
trials' params on the Training page (AppTest on the 2 x 2 sweep of
``tests/fixtures/sweep_db.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_leaderboard_app import APP, TIMEOUT, chart_data, overview_frame

from dashboards import model_table, sweep_view, training
from evalsuite import store
from tests.fixtures.sweep_db import PARAMS, STUDY, write_sweep_db

TRIALS = [f"{STUDY}-trial-{n}" for n in PARAMS]


@pytest.fixture(scope="module")
def sweep_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sweep_db(tmp_path_factory.mktemp("sweep") / "results.duckdb")


def _app(db: Path, monkeypatch: pytest.MonkeyPatch, page: str | None = None):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("EVALSUITE_DB", str(db))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    if page:
        at.query_params["page"] = page
    return at.run()


def test_hyperparameter_values_per_model(sweep_db):
    models = model_table.model_table(store.list_models(sweep_db))
    values = sweep_view.hyperparameter_values(models)
    assert list(values)[:2] == ["optim.lr", "train.epochs"]  # the swept keys first
    assert values["optim.lr"][f"{STUDY}-trial-0"] == "1e-05"
    assert values["train.epochs"][f"{STUDY}-trial-3"] == "2"
    assert values["optim.lr"]["base"] == sweep_view.NOT_SET
    assert values["wise.alpha"][f"{STUDY}-trial-3-wise-0.5"] == "0.5"
    assert values["soup.kind"][f"{STUDY}-soup-greedy"] == "greedy"


def test_filter_and_colour_by_a_hyperparameter(sweep_db, monkeypatch):
    at = _app(sweep_db, monkeypatch)
    assert not at.exception
    assert at.sidebar.selectbox(key="baseline").value == "base"
    assert set(overview_frame(at)["Model"]) >= {"base", *TRIALS}
    at.sidebar.selectbox(key="hp_key").set_value("optim.lr").run()
    values = at.sidebar.multiselect(key="hp_values_optim.lr")
    assert values.options == ["1e-05", "0.0001", sweep_view.NOT_SET]  # numeric order
    values.set_value(["0.0001"]).run()
    assert not at.exception
    shown = set(overview_frame(at)["Model"])
    # the trials with lr 1e-4, the soup and the WiSE-FT of trial 3 (same config), the baseline
    assert shown == {
        "base", f"{STUDY}-trial-2", f"{STUDY}-trial-3", f"{STUDY}-soup-greedy",
        f"{STUDY}-trial-3-wise-0.5",
    }  # fmt: skip
    frames = [f for chart in at.get("vega_lite_chart") for f in chart_data(chart)]
    colours = {
        model: colour
        for f in frames
        if "colour" in f.columns
        for model, colour in zip(f["model"], f["colour"], strict=True)
    }
    assert colours[f"{STUDY}-trial-2"] == "0.0001"
    assert f"{STUDY}-trial-0" not in colours  # filtered out


def test_training_page_shows_the_trials_params(sweep_db, monkeypatch):
    at = _app(sweep_db, monkeypatch, page="Training")
    assert not at.exception
    summary = next(df.value for df in at.dataframe if "Sweep" in df.value.columns)
    sweep = dict(zip(summary["Model"], summary["Sweep"], strict=True))
    assert sweep[f"{STUDY}-trial-1"] == f"{STUDY} #1: optim.lr=1e-05, train.epochs=2"
    assert sweep[f"{STUDY}-soup-greedy"].startswith("greedy soup of lace-trial-3")


def test_no_sweep_column_without_sweeps():
    import pandas as pd

    models = pd.DataFrame(
        [{"name": "ft", "kind": "fine-tuned", "training": {"config": {"optim": {"lr": 1e-5}}}}]
    )
    assert "Sweep" not in training.training_summary(models).columns
