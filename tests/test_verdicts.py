"""Paired verdicts (evalsuite.verdicts): the statistics against an independent computation
written here (numpy resampling and relabelling, scikit-learn metrics, scipy's binomtest and
exact permutation test, Benjamini-Hochberg by its definition), the verdict rules,
the baseline rule, rank bands, the gate's exit codes and the schema migration."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, permutation_test
from sklearn.metrics import accuracy_score, f1_score

from evalsuite import store
from evalsuite.cli import main
from evalsuite.errors import EvalSuiteError
from evalsuite.metrics import paired
from evalsuite.verdicts import choose_baseline, compare_models, load_units, rank_bands
from tests.fixtures.verdict_db import write_verdict_db

R = 400  # resamples: enough for the checks, cheap for scikit-learn per resample


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_verdict_db(tmp_path_factory.mktemp("verdicts") / "results.duckdb")


def _units(db: Path, model: str, benchmark: str, task: str) -> pd.DataFrame:
    run = store.list_runs(db, model=model, benchmark=benchmark)["run_id"].iloc[0]
    return store.item_predictions(db, [run]).query("task == @task").sort_values("item_id")


def _percentile(deltas: np.ndarray) -> tuple[float, float]:
    low, high = np.quantile(deltas, [0.025, 0.975])
    return float(low), float(high)


def _monte_carlo_p(changes: np.ndarray, observed: float) -> float:
    """(1 + relabellings at least as extreme) / (R + 1)."""
    return (1 + int((np.abs(changes) >= abs(observed) - 1e-12).sum())) / (len(changes) + 1)


def test_classification_intervals_and_p_equal_an_independent_computation(db: Path) -> None:
    got = {v.metric: v for v in compare_models(db, "base", "tuned", n_resamples=R).verdicts
           if v.task == "kind"}  # fmt: skip
    a, b = _units(db, "base", "shoes", "kind"), _units(db, "tuned", "shoes", "kind")
    y, pa, pb = (np.asarray(x) for x in (a["true_label"], a["predicted_label"],
                                          b["predicted_label"]))  # fmt: skip
    n = len(y)
    rows = np.random.default_rng(0).integers(0, n, size=(R, n))  # bootstrap, seed 0
    differ = pa != pb
    assert differ.sum() > 8  # more than 2^8 > R swap patterns: Monte Carlo, not exact
    # randomization, seed 0: one coin per item the two models predict differently
    swaps = np.zeros((R, n), bool)
    swaps[:, differ] = np.random.default_rng(0).integers(0, 2, size=(R, differ.sum())) == 1
    for metric, score in (
        ("acc@1", accuracy_score),
        ("f1_macro", lambda t, p: f1_score(t, p, average="macro", zero_division=0)),
        ("f1_weighted", lambda t, p: f1_score(t, p, average="weighted", zero_division=0)),
    ):
        deltas = np.array([score(y[r], pb[r]) - score(y[r], pa[r]) for r in rows])
        v = got[metric]
        assert (v.ci_low, v.ci_high) == pytest.approx(_percentile(deltas), abs=1e-12), metric
        if metric != "acc@1":
            swapped = np.array([score(y, np.where(s, pa, pb)) - score(y, np.where(s, pb, pa))
                                for s in swaps])  # fmt: skip
            assert v.p_value == pytest.approx(_monte_carlo_p(swapped, v.delta)), metric
    # accuracy's p is the exact McNemar test on the discordant items
    only_a = int(((pa == y) & (pb != y)).sum())
    only_b = int(((pb == y) & (pa != y)).sum())
    assert got["acc@1"].p_value == pytest.approx(binomtest(only_b, only_a + only_b).pvalue)
    assert got["acc@1"].delta == pytest.approx(np.mean(pb == y) - np.mean(pa == y))
    # pretest: per-item points K - rank + 1 summed, K = maximum / items; sign-flip test
    points = [np.maximum(5 - u["true_rank"].to_numpy() + 1, 0) for u in (a, b)]
    diff = points[1] - points[0]
    deltas = np.array([diff[r].sum() for r in rows])
    changed = diff[diff != 0]  # sign flips of the items whose points differ
    coins = np.random.default_rng(0).integers(0, 2, size=(R, len(changed)))
    flipped = ((1 - 2 * coins) * changed).sum(axis=1)
    assert (got["pretest"].ci_low, got["pretest"].ci_high) == pytest.approx(_percentile(deltas))
    assert got["pretest"].p_value == pytest.approx(_monte_carlo_p(flipped, diff.sum()))


def test_retrieval_intervals_resample_queries_and_p_is_exact_for_few_changes(db: Path) -> None:
    got = {v.metric: v for v in compare_models(db, "base", "tuned", n_resamples=R).verdicts
           if v.task == "search"}  # fmt: skip
    runs = [store.list_runs(db, model=m, benchmark="shoes")["run_id"].iloc[0]
            for m in ("base", "tuned")]  # fmt: skip
    values = store.query_values(db, runs).query("task == 'search'")
    for metric, reduce in (("ir_hits", np.sum), ("MRR", np.mean)):
        per = [
            values[(values["run_id"] == r) & (values["metric"] == metric)].sort_values("query_id")
            for r in runs
        ]
        a, b = (p["value"].to_numpy() for p in per)
        rows = np.random.default_rng(0).integers(0, len(a), size=(R, len(a)))
        deltas = np.array([reduce(b[r]) - reduce(a[r]) for r in rows])
        v = got[metric]
        assert (v.ci_low, v.ci_high) == pytest.approx(_percentile(deltas))
        assert v.unit == "queries" and v.n_units == 40
        # 4 queries changed: all 2^4 sign patterns, as scipy's exact permutation test
        changed = (b - a)[b != a]
        exact = permutation_test(
            (changed,), np.sum, permutation_type="samples", n_resamples=np.inf
        ).pvalue
        assert len(changed) <= 4 and v.p_value == pytest.approx(exact)


def test_few_units_are_never_significant_by_construction() -> None:
    """One query gaining one hit: the bootstrap would put every resample above 0 (a
    bootstrap p of 2 / (R + 1)); the exact randomization test says p = 1."""
    assert paired.sign_flip_p(np.zeros(1), np.ones(1), 10_000, 0) == 1.0
    assert paired.sign_flip_p(np.zeros(5), np.ones(5), 10_000, 0) == pytest.approx(2 / 32)
    y = np.zeros(5, np.int64)
    p = paired.prediction_swap_p(y, y, np.array([1, 1, 1, 0, 0]), 2, 10_000, 0)
    assert p["accuracy"] == pytest.approx(binomtest(0, 3).pvalue)  # the exact McNemar test


def test_verdicts_of_a_regression_a_gain_a_tie_and_a_not_comparable_pair(db: Path) -> None:
    tuned = {(v.task, v.metric): v for v in compare_models(db, "base", "tuned").verdicts}
    kind, lace = tuned[("kind", "acc@1")], tuned[("lace", "acc@1")]
    assert kind.verdict == "worse" and kind.regression and kind.ci_high < 0
    assert lace.verdict == "better" and not lace.regression and lace.ci_low > 0
    assert tuned[("search", "ir_hits")].verdict == "tied"
    assert tuned[("search", "ir_hits")].ci_low < 0 < tuned[("search", "ir_hits")].ci_high
    assert "kind" in kind.sentence() and "95% CI [" in kind.sentence()
    other = {(v.task, v.metric): v for v in compare_models(db, "base", "other").verdicts}
    general = other[("type", "acc@1")]
    assert general.verdict == "not comparable" and "different data" in general.reason
    # same predictions as the base: a tie that is certain, not merely insignificant
    assert other[("lace", "acc@1")].verdict == "tied"
    assert other[("lace", "acc@1")].reason == "identical on every item"


def _bh_by_definition(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p: min over j >= i of m p_(j) / j, in sorted order."""
    order = np.argsort(p, kind="stable")
    m, out, running = len(p), np.empty_like(p), 1.0
    for rank in range(m, 0, -1):
        j = order[rank - 1]
        running = min(running, p[j] * m / rank)
        out[j] = running
    return out


def test_correction_over_the_gated_family(db: Path) -> None:
    comparison = compare_models(db, "base", "tuned", n_resamples=2000)
    gated = [v for v in comparison.verdicts if v.gated and v.verdict != "not comparable"]
    p = np.array([v.p_value for v in gated])
    assert [v.p_adjusted for v in gated] == pytest.approx(_bh_by_definition(p))
    assert comparison.n_tests(gated=True) == len(gated) == 14
    assert all((v.verdict != "tied") == (v.p_adjusted <= 0.05) for v in gated)
    others = [v for v in comparison.verdicts if not v.gated and v.verdict != "not comparable"]
    p_other = np.array([v.p_value for v in others])  # a family of their own
    assert [v.p_adjusted for v in others] == pytest.approx(_bh_by_definition(p_other))


def test_correction_keeps_nan_out_of_the_family() -> None:
    p = np.array([0.01, np.nan, 0.04, 0.03, 0.5])
    adjusted = paired.benjamini_hochberg(p)
    assert np.isnan(adjusted[1])
    assert adjusted[[0, 2, 3, 4]] == pytest.approx([0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])


def test_margin_turns_a_significant_drop_into_a_pass(db: Path) -> None:
    margins = {"shoes/kind/" + m: 1e6 for m in ("acc@1", "f1_macro", "f1_weighted", "pretest")}
    comparison = compare_models(db, "base", "tuned", margins=margins, n_resamples=500)
    kind = next(v for v in comparison.verdicts if (v.task, v.metric) == ("kind", "acc@1"))
    assert kind.verdict == "worse" and not kind.regression  # significant, inside the margin
    assert not comparison.regressions and comparison.gate_line().startswith("PASS")


def test_minimal_detectable_difference_shrinks_with_more_units() -> None:
    rng = np.random.default_rng(1)
    small, large = (rng.random(n) < 0.5 for n in (100, 10_000))
    ses = [paired.interval(paired.value_deltas(x, np.roll(x, 1), "mean", 300, 0), len(x))
           .std_error for x in (small, large)]  # fmt: skip
    mdd = [paired.minimal_detectable_difference(se) for se in ses]
    assert mdd[0] > 5 * mdd[1] > 0  # about sqrt(100) times smaller with 100 times the units


def test_baseline_rule_never_guesses_from_names(db: Path) -> None:
    models = store.list_models(db)
    assert choose_baseline(models) == "base"  # marked
    assert choose_baseline(models, "tuned") == "tuned"  # explicit wins
    unmarked = models.assign(is_baseline=False)
    assert choose_baseline(unmarked) == "base"  # the base the fine-tune names
    # a model with the base's weights that is derived itself (WiSE-FT at alpha 0) is no base
    base_row = unmarked[unmarked["name"] == "base"]
    copy = base_row.assign(name="tuned-wise-0", base_fingerprint=base_row["fingerprint"])
    assert choose_baseline(pd.concat([unmarked, copy])) == "base"
    renamed = unmarked.assign(base_fingerprint=None, name=["fashion-clip", "x", "fashionclip"])
    assert choose_baseline(renamed) is None  # no mark, no lineage: ask, never guess by name
    with pytest.raises(EvalSuiteError, match="no scored model named"):
        choose_baseline(models, "nope")


def test_rank_bands_share_a_band_when_tied(db: Path) -> None:
    metrics = store.latest_metrics(db)
    units = load_units(db, list(metrics["run_id"].unique()))
    bands = rank_bands(metrics, units, ("shoes", "lace", "acc@1"), n_resamples=500)
    band = dict(zip(bands["model_name"], bands["band"], strict=True))
    assert band == {"tuned": 1, "base": 2, "other": 2}  # base and other: identical predictions
    general = rank_bands(metrics, units, ("general", "type", "acc@1"), n_resamples=500)
    notes = general.set_index("model_name")["note"]
    assert notes["other"].startswith("scored on other data")  # the larger group is ranked
    around_other = rank_bands(
        metrics, units, ("general", "type", "acc@1"), n_resamples=500, reference="other"
    ).set_index("model_name")
    assert around_other.loc["other", "band"] == 1 and around_other["band"].isna().sum() == 2


def test_gate_exit_codes_json_and_sentences(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--db", str(db), "compare", "--candidate", "tuned", "--resamples", "1000"]
    assert main(args) == 1  # baseline from the mark
    out = capsys.readouterr().out
    assert "regression: shoes kind: zero-shot accuracy" in out and "95% CI [" in out
    assert "FAIL: 4 significant regressions" in out and "Benjamini-Hochberg" in out
    assert main([*args, "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert not payload["passed"] and payload["correction"] == "Benjamini-Hochberg"
    assert payload["n_gated_comparisons"] == 14
    assert main([*args[:3], "--baseline", "base", "--candidate", "other"]) == 0
    assert "PASS" in capsys.readouterr().out
    with pytest.raises(SystemExit) as usage:  # malformed margin: argparse's usage error
        main([*args, "--tolerance", "acc@1"])
    assert usage.value.code == 2


def test_compare_without_a_baseline_asks_for_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = write_verdict_db(tmp_path / "results.duckdb")
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE models SET is_baseline = false, base_fingerprint = NULL")
    assert main(["--db", str(db), "compare", "--candidate", "tuned"]) == 2
    assert "evalsuite baseline NAME" in capsys.readouterr().err
    assert main(["--db", str(db), "baseline", "other"]) == 0
    assert choose_baseline(store.list_models(db)) == "other"
    assert main(["--db", str(db), "baseline", "nope"]) == 2


def test_a_version_1_database_is_read_and_migrated(tmp_path: Path) -> None:
    db = write_verdict_db(tmp_path / "results.duckdb")
    with duckdb.connect(str(db)) as con:  # what evalsuite wrote before schema 2
        con.execute("DROP TABLE query_values")
        con.execute("ALTER TABLE models DROP COLUMN is_baseline")
        con.execute("DELETE FROM schema_version")
        con.execute("INSERT INTO schema_version VALUES (1, now())")
    old = {(v.task, v.metric): v for v in compare_models(db, "base", "tuned", n_resamples=200)
           .verdicts}  # fmt: skip
    hits = old[("search", "ir_hits")]
    assert hits.verdict == "not comparable" and "older evalsuite" in hits.reason
    assert old[("kind", "acc@1")].verdict == "worse"  # predictions were always stored
    store.mark_baseline(db, "base")  # a write migrates
    with duckdb.connect(str(db), read_only=True) as con:
        version = con.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        assert version == store.SCHEMA_VERSION
        assert con.execute("SELECT count(*) FROM query_values").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 6


def test_a_benchmark_the_candidate_skipped_is_named_not_passed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Deleting the candidate's run where it regresses must not turn the gate green unseen."""
    db = write_verdict_db(tmp_path / "results.duckdb")
    tuned_shoes = store.list_runs(db, model="tuned", benchmark="shoes")["run_id"].iloc[0]
    with duckdb.connect(str(db)) as con:
        for table in ("metrics", "predictions", "query_values", "runs"):
            con.execute(f"DELETE FROM {table} WHERE run_id = ?", [tuned_shoes])
    comparison = compare_models(db, "base", "tuned", n_resamples=200)
    skipped = [v for v in comparison.verdicts if v.benchmark == "shoes" and v.gated]
    assert len(skipped) == 10 and {v.verdict for v in skipped} == {"not comparable"}
    assert "candidate has no result" in skipped[0].reason
    assert not comparison.regressions
    assert "10 gated metrics not comparable" in comparison.gate_line()
    assert main(["--db", str(db), "compare", "--candidate", "tuned", "--resamples", "200"]) == 0
    assert "10 gated metrics not comparable" in " ".join(capsys.readouterr().out.split())


def test_ambiguous_names_and_unknown_metrics_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = write_verdict_db(tmp_path / "results.duckdb")
    with duckdb.connect(str(db)) as con:  # "other" has the weights of "base"
        con.execute("UPDATE models SET fingerprint = 'fp-base-weights' WHERE name IN "
                    "('base', 'other')")  # fmt: skip
        con.execute("UPDATE runs SET model_fingerprint = 'fp-base-weights' WHERE model_name "
                    "IN ('base', 'other')")  # fmt: skip
    two = "'fp-base' is the fingerprint prefix of 2 scored models: base .*, other .*pick one"
    with pytest.raises(EvalSuiteError, match=two):
        compare_models(db, "fp-base", "tuned", n_resamples=100)
    with pytest.raises(EvalSuiteError, match=two):
        choose_baseline(store.list_models(db), "fp-base")
    assert compare_models(db, "base", "tuned", n_resamples=100).baseline == "base"
    args = ["--db", str(db), "compare", "--baseline", "tuned", "--candidate", "base"]
    assert main([*args, "--metric", "acc1"]) == 2  # a typo must not gate nothing and pass
    assert "no scored metric called acc1" in capsys.readouterr().err


def test_a_unit_without_a_value_makes_the_metric_not_comparable(tmp_path: Path) -> None:
    db = write_verdict_db(tmp_path / "results.duckdb")
    tuned_shoes = store.list_runs(db, model="tuned", benchmark="shoes")["run_id"].iloc[0]
    with duckdb.connect(str(db)) as con:
        con.execute(
            "UPDATE query_values SET value = 'NaN' WHERE run_id = ? AND query_id = 'q07' "
            "AND metric = 'MRR'",
            [tuned_shoes],
        )
    verdicts = {(v.task, v.metric): v for v in compare_models(db, "base", "tuned", n_resamples=200)
                .verdicts}  # fmt: skip
    assert verdicts[("search", "MRR")].verdict == "not comparable"
    assert "no value" in verdicts[("search", "MRR")].reason
    assert verdicts[("search", "ir_hits")].verdict == "tied"  # the other metrics still pair
