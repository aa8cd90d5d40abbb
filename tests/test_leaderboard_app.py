"""The Streamlit leaderboard rendered with AppTest on real results databases.

Three databases: ``sample`` (the ``sample_db`` fixture of ``conftest.py``, built by
``tests/fixtures/leaderboard_sample.py``) is written through
``evalsuite.store.write_run`` with hand-made but consistent RunResults (a FashionCLIP base
model, a fine-tune with a training history and two WiSE-FT interpolations; per-item and
per-query results behind every metric; thumbnails in a data root); ``verdict``
(``tests/fixtures/verdict_db.py``) is built for the verdicts; ``real`` is filled by real
``evalsuite.runner.score_model`` runs of two tiny CLIPs on the footwear catalogue and
Fashion-MNIST (skipped without the runner or the shared data). Other leaderboard tests import
``app`` and ``no_errors`` from here.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import json
import math
import os
import re
import shutil
import struct
from datetime import timedelta
from pathlib import Path

import pytest

from evalsuite import store
from evalsuite.results import MetricValue, ModelInfo, RunResult
from evalsuite.store.schema import ensure_schema
from tests.fixtures.leaderboard_sample import FT_SPEC, FT_TRAINING, write_sample_db
from tests.fixtures.verdict_db import write_verdict_db

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboards" / "leaderboard.py"
TIMEOUT = 60

# ---------------------------------------------------------------- real runs


def _fmnist_subset(src: Path, out: Path, n: int) -> Path:
    """The first ``n`` Fashion-MNIST test items as IDX files (scoring 10 000 takes too long)."""
    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(src / "t10k-images-idx3-ubyte.gz") as f:
        magic, _, rows, cols = struct.unpack(">IIII", f.read(16))
        pixels = f.read(n * rows * cols)
    with gzip.open(out / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", magic, n, rows, cols) + pixels)
    with gzip.open(src / "t10k-labels-idx1-ubyte.gz") as f:
        magic, _ = struct.unpack(">II", f.read(8))
        labels = f.read(n)
    with gzip.open(out / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", magic, n) + labels)
    return out


def runner_available() -> bool:
    if importlib.util.find_spec("evalsuite.runner") is None:
        return False
    from evalsuite import runner

    return hasattr(runner, "score_model")


def score_real(db: Path, work: Path, catalogue: Path, fmnist: Path) -> dict[str, str]:
    """Score two tiny CLIPs for real: seed 0 as the base "FashionCLIP-tiny", seed 1 as a
    fine-tune (a training.json with a history beside its weights)."""
    from evalsuite import runner
    from evalsuite.data.prepare import prepare_footwear
    from testkit.tiny import build_tiny_hf

    prepared = work / "footwear"
    prepare_footwear(catalogue / "images", catalogue / "styles.csv", prepared, test_size=0.05)
    fm = _fmnist_subset(fmnist, work / "fashion-mnist-test", 200)
    base = build_tiny_hf(work / "fashionclip-tiny", seed=0)
    tuned = build_tiny_hf(work / "footwear-ft-tiny", seed=1)
    training = {**FT_TRAINING, "run_name": "footwear-ft-tiny", "base_model": {"spec": str(base)}}
    (tuned / "training.json").write_text(json.dumps(training))
    names = {}
    for spec, name in ((base, "FashionCLIP-tiny"), (tuned, "footwear-ft-tiny")):
        options = {
            "benchmarks": ("footwear", "fmnist"),
            "db_path": db,
            "name": name,
            "data_overrides": {"footwear": prepared, "fmnist": fm},
            "batch_size": 64,
            "progress": False,
            "n_bootstrap": 100,
        }
        fields = getattr(getattr(runner, "ScoreOptions", None), "__dataclass_fields__", None)
        if fields is not None:
            options = {k: v for k, v in options.items() if k in fields}
        results = runner.score_model(str(spec), **options)
        names[name] = results[0].model.fingerprint
    return names


@pytest.fixture(scope="module")
def real_db(tmp_path_factory: pytest.TempPathFactory, catalogue_dir: Path, fmnist_dir: Path):
    if not runner_available():
        pytest.skip("evalsuite.runner.score_model is not available yet")
    work = tmp_path_factory.mktemp("leaderboard-real")
    db = work / "results.duckdb"
    names = score_real(db, work, catalogue_dir, fmnist_dir)
    store.mark_baseline(db, "FashionCLIP-tiny")  # the leaderboard never guesses it from names
    return db, {"names": names}


@pytest.fixture(scope="module")
def verdict_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_verdict_db(tmp_path_factory.mktemp("leaderboard-verdicts") / "v.duckdb")


@pytest.fixture(params=["sample", pytest.param("real", marks=pytest.mark.slow)])
def results_db(request: pytest.FixtureRequest) -> tuple[Path, dict]:
    return request.getfixturevalue(f"{request.param}_db")


# ---------------------------------------------------------------- helpers


def app(
    db: Path, monkeypatch: pytest.MonkeyPatch, page: str | None = None, baseline: str | None = None
):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("EVALSUITE_DB", str(db))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    if page:
        at.query_params["page"] = page
    if baseline:
        at.query_params["baseline"] = baseline
    return at.run()


def texts(at) -> str:
    """Every text the page shows (markdown, captions, alerts, titles, widget labels)."""
    parts = []
    for kind in (
        "markdown",
        "caption",
        "info",
        "warning",
        "success",
        "error",
        "title",
        "subheader",
        "header",
        "code",
    ):
        parts += [str(e.value) for e in getattr(at, kind)]
    for kind in ("selectbox", "multiselect", "checkbox", "button"):
        parts += [str(e.label) for e in getattr(at, kind)]
    return "\n".join(parts)


def no_errors(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def expected_delta(db: Path, name: str, base: str, benchmark: str, task: str, metric: str):
    """The change of model ``name`` against model ``base`` (names) as the overview shows it."""
    frame = store.latest_metrics(db)
    sel = frame[(frame.benchmark == benchmark) & (frame.task == task) & (frame.metric == metric)]
    value = sel.set_index("model_name")["value"]
    maximum = sel.set_index("model_name")["maximum"]
    scale = 1.0 if maximum.notna().all() else 100.0
    return scale * (value[name] - value[base])


def chart_data(chart) -> list:
    """The data frames an Altair chart element carries (Arrow IPC streams)."""
    import pyarrow as pa

    return [pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in chart.proto.datasets]


def _overview_element(at):
    return next(
        df for df in at.dataframe if "Model" in df.value.columns and "Type" in df.value.columns
    )


def overview_frame(at):
    return _overview_element(at).value


def overview_cells(at):
    """The overview's cells as the page shows them ("79.9  (▲ +10.1)"), indexed by model."""
    import pyarrow as pa

    styler = _overview_element(at).proto.arrow_data.styler
    shown = pa.ipc.open_stream(styler.display_values).read_all().to_pandas()
    return shown.set_index("Model")


def rank_frame(at):
    return next(df.value for df in at.dataframe if "Rank" in df.value.columns)


MARKER_VERDICTS = {"▲": "better", "▼": "worse", "≈": "tied"}


def cell_verdict(text: str) -> str | None:
    """The verdict a cell shows: its marker, or "not comparable"; None for a cell without a
    verdict (the baseline's own, a missing value, a task the run skipped)."""
    if "not comparable" in text:
        return "not comparable"
    marker = text.partition("(")[2][:1]
    return MARKER_VERDICTS.get(marker)


def leaderboard_verdicts(
    db: Path, baseline: str | None = None, all_metrics: bool = True
) -> dict[tuple[str, str, str, str], str]:
    """Run the leaderboard on ``db`` (AppTest) and read the verdict every displayed cell of
    every candidate shows.

    Returns {(model name, benchmark, task, metric): verdict}, the verdict being "better",
    "worse", "tied" or "not comparable" as the cell's marker (▲ ▼ ≈) or text says (a model is
    its name: two names with the same weights are two rows). Cells of the baseline itself,
    cells without a value and tasks a run skipped are left out. ``baseline`` is passed as
    ``?baseline=``; else the page's default (the marked model). ``all_metrics`` ticks "Show
    every metric", so every stored metric of every task is read, as ``evalsuite compare
    --json`` lists them.
    """
    from streamlit.testing.v1 import AppTest

    from dashboards import run_provenance, table_columns

    before = os.environ.get("EVALSUITE_DB")
    os.environ["EVALSUITE_DB"] = str(db)
    try:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
        if baseline:
            at.query_params["baseline"] = baseline
        at.run()
        if all_metrics:
            at.sidebar.checkbox(key="all_metrics").check().run()
    finally:
        if before is None:
            os.environ.pop("EVALSUITE_DB", None)
        else:
            os.environ["EVALSUITE_DB"] = before
    no_errors(at)
    metrics = store.latest_metrics(db)
    runs = run_provenance.latest_runs(store.list_runs(db), metrics)
    columns = table_columns.metric_columns(metrics, all_metrics, table_columns.task_types(runs))
    keys = {c.label: c.key for c in columns}
    out = {}
    for model, row in overview_cells(at).iterrows():
        for label, key in keys.items():
            verdict = cell_verdict(str(row[label]))
            if verdict is not None:
                out[(str(model), *key)] = verdict
    return out


# ---------------------------------------------------------------- tests


def test_overview_shows_models_metrics_and_deltas(results_db, monkeypatch):
    db, info = results_db
    at = app(db, monkeypatch)
    no_errors(at)
    names = info["names"]
    table = overview_frame(at)
    assert set(table["Model"]) == set(names)
    assert table["Model"].iloc[0] == "FashionCLIP-tiny"  # the default baseline comes first
    assert at.sidebar.selectbox(key="baseline").value == "FashionCLIP-tiny"
    accuracy = "Zero-shot accuracy (footwear type)"
    for column in (accuracy, "F1 macro (footwear type)", "Zero-shot accuracy (Fashion-MNIST)"):
        assert column in table.columns
    hits = [c for c in table.columns if c.startswith("Text search hits / ")]
    assert hits == ["Text search hits / 390"]
    assert any(c.startswith("Image search hits / ") for c in table.columns)
    assert any(c.startswith("Pretest score (footwear type) / ") for c in table.columns)
    row = table.set_index("Model")
    other = next(n for n in names if n != "FashionCLIP-tiny")
    for column, key in (
        (accuracy, ("footwear", "article_type", "acc@1")),
        ("Text search hits / 390", ("footwear", "text_search", "ir_hits")),
        ("Zero-shot accuracy (Fashion-MNIST)", ("fmnist", "label", "acc@1")),
    ):
        want = expected_delta(db, other, "FashionCLIP-tiny", *key)
        assert row.loc[other, f"Δ {column}"] == pytest.approx(want, abs=1e-9)
        assert math.isclose(row.loc["FashionCLIP-tiny", f"Δ {column}"], 0.0)
    text = texts(at)
    assert "Compared with FashionCLIP-tiny" in text
    line = next(t for t in text.splitlines() if t.startswith(f"- **{other}**: "))
    assert re.search(r"(better on|worse on|no significant change)", line)
    assert "comparisons, Benjamini-Hochberg-corrected" in text  # how the verdicts were reached
    assert at.get("download_button"), "the table can be downloaded as CSV"
    assert at.get("vega_lite_chart"), "the trade-off chart is drawn"
    assert any("Provenance" in e.label for e in at.expander)


def test_sample_overview_values_and_verdicts(sample_db, monkeypatch):
    db, _ = sample_db
    at = app(db, monkeypatch)
    no_errors(at)
    row = overview_frame(at).set_index("Model")
    accuracy = "Zero-shot accuracy (footwear type)"
    fmnist = "Zero-shot accuracy (Fashion-MNIST)"
    assert row.loc["footwear-ft", accuracy] == pytest.approx(79.9)
    assert row.loc["footwear-ft", f"Δ {accuracy}"] == pytest.approx(10.1)
    assert row.loc["footwear-ft", f"Δ {fmnist}"] == pytest.approx(-5.0)
    assert row.loc["footwear-ft", "Δ Text search hits / 390"] == pytest.approx(39)
    assert row.loc["footwear-ft", "Fine-tuning time"] == "16 min"
    assert row.loc["footwear-ft-wise0.3", "Type"] == "WiSE-FT α=0.30"
    # the cells show the verdicts of evalsuite.verdicts: 101 items gained and none lost is
    # significant, 50 Fashion-MNIST items lost too; 3 lost (wise0.3) is not
    cells = overview_cells(at)
    assert cells.loc["footwear-ft", accuracy] == "79.9  (▲ +10.1)"
    assert cells.loc["footwear-ft", fmnist] == "65.2  (▼ −5.0)"
    assert cells.loc["footwear-ft-wise0.3", fmnist] == "69.9  (≈ −0.3)"
    assert cells.loc["FashionCLIP-tiny", accuracy] == "69.8"  # the baseline: no verdict
    text = texts(at)
    assert "within noise" not in text and "within the measurement noise" not in text
    legend = "▲ significantly better, ▼ significantly worse (paired test, Benjamini-Hochberg"
    assert legend in text
    line = next(t for t in text.splitlines() if t.startswith("- **footwear-ft**"))
    assert "better on footwear article type (zero-shot accuracy +10.10 pts" in line
    assert "worse on fashion-mnist label (zero-shot accuracy -5.00 pts" in line
    wise = next(t for t in text.splitlines() if t.startswith("- **footwear-ft-wise0.3**"))
    assert "fashion-mnist" not in wise  # a tie is no significant change
    # the trade-off chart joins the WiSE-FT alphas of the fine-tune as one curve
    frames = [f for chart in at.get("vega_lite_chart") for f in chart_data(chart)]
    curve = next(f for f in frames if "curve" in f.columns and f["curve"].notna().any())
    assert list(curve["alpha"]) == [0.0, 0.3, 0.6, 1.0]
    assert set(curve["curve"]) == {"WiSE-FT of footwear-ft"}
    assert curve["model"].iloc[-1] == "footwear-ft"


def test_sample_csv_carries_the_verdicts(sample_db):
    from dashboards import model_table, overview, table_columns
    from evalsuite.verdicts import compare_models

    db, _ = sample_db
    metrics = store.latest_metrics(db)
    models = model_table.model_table(store.list_models(db), metrics)
    base = "FashionCLIP-tiny"
    verdicts = {n: compare_models(db, base, n) for n in models["name"] if n != base}
    columns = table_columns.metric_columns(metrics)
    comp = overview.comparison(metrics, models, base, columns, verdicts)
    csv = overview.csv_table(comp, "FashionCLIP-tiny")
    rows = csv.set_index(["model", "task", "metric"])
    assert rows.loc[("footwear-ft", "article_type", "acc@1"), "verdict"] == "better"
    assert rows.loc[("footwear-ft", "label", "acc@1"), "verdict"] == "worse"
    assert rows.loc[("footwear-ft-wise0.3", "label", "acc@1"), "verdict"] == "tied"
    assert rows.loc[("FashionCLIP-tiny", "label", "acc@1"), "verdict"] == "baseline"
    assert {"change_ci_low", "change_ci_high", "p_adjusted", "mdd"} <= set(csv.columns)
    assert "noise" not in csv.columns and "half_width" not in csv.columns


def test_switching_the_baseline_changes_the_deltas(sample_db, monkeypatch):
    db, _ = sample_db
    at = app(db, monkeypatch)
    at.sidebar.selectbox(key="baseline").set_value("footwear-ft").run()
    no_errors(at)
    table = overview_frame(at)
    assert table["Model"].iloc[0] == "footwear-ft"
    row = table.set_index("Model")
    column = "Δ Zero-shot accuracy (footwear type)"
    assert row.loc["FashionCLIP-tiny", column] == pytest.approx(-10.1)
    want = expected_delta(db, "footwear-ft-wise0.6", "footwear-ft", "footwear", "article_type",
                          "acc@1")  # fmt: skip
    assert row.loc["footwear-ft-wise0.6", column] == pytest.approx(want)
    assert "Compared with footwear-ft" in texts(at)


def test_benchmark_page(results_db, monkeypatch):
    db, _ = results_db
    at = app(db, monkeypatch, page="Benchmark")
    no_errors(at)
    text = texts(at)
    assert "Per-class F1" in text
    assert "Confusion matrix: FashionCLIP-tiny" in text
    assert "Misclassified examples: FashionCLIP-tiny" in text
    f1 = next(df.value for df in at.dataframe if "Class" in df.value.columns)
    assert {"Casual Shoes", "Sports Shoes"} <= set(f1["Class"])
    assert "FashionCLIP-tiny" in f1.columns
    assert len(at.get("vega_lite_chart")) >= 2  # per-class bars and the heatmap
    assert len(at.image) > 0  # thumbnails or placeholders of the mistakes


def test_benchmark_page_serves_thumbnails_only_from_data_roots(sample_db, monkeypatch):
    db, _ = sample_db
    at = app(db, monkeypatch, page="Benchmark")
    no_errors(at)
    captions = [c for image in at.image for c in image.captions]
    assert "Heels → Flats · no image" in captions  # ../outside.png is outside the data root
    assert any("→" in c and "no image" not in c for c in captions)  # real thumbnails
    notes = [c.value for c in at.caption]
    assert any(n.startswith("1 image(s) not shown") for n in notes), notes


def test_retrieval_page(results_db, monkeypatch):
    db, info = results_db
    at = app(db, monkeypatch, page="Retrieval")
    no_errors(at)
    text = texts(at)
    assert "Search task" in text and "Query" in text
    assert re.search(r"\*\*\d+ / 10\*\* relevant in the top 10", text)
    assert "#### FashionCLIP-tiny" in text
    other = next(n for n in info["names"] if n != "FashionCLIP-tiny")
    at.selectbox(key="rt_b").set_value(other).run()
    no_errors(at)
    assert f"#### {other}" in texts(at)
    images = [c for image in at.image for c in image.captions]
    assert len(images) == 20  # top 10 of both models


def test_retrieval_scores_match_the_database(sample_db, monkeypatch):
    db, _ = sample_db
    at = app(db, monkeypatch, page="Retrieval")
    no_errors(at)
    run_id = store.list_runs(db, model="FashionCLIP-tiny", benchmark="footwear")["run_id"][0]
    rows = store.retrievals(db, run_id, "text_search", query_id="t01")
    hits = int(rows["relevant"].sum())
    assert f"**{hits} / 10** relevant in the top 10" in texts(at)
    captions = [c for image in at.image for c in image.captions]
    assert sum("✓ relevant" in c for c in captions[:10]) == hits


def test_training_page(results_db, monkeypatch):
    db, _ = results_db
    at = app(db, monkeypatch, page="Training")
    no_errors(at)
    text = texts(at)
    tuned = store.list_models(db)
    has_history = any(not store.history(db, fp).empty for fp in tuned["fingerprint"])
    if has_history:
        assert len(at.get("vega_lite_chart")) >= 2  # loss and validation accuracy
        summary = next(df.value for df in at.dataframe if "Base model" in df.value.columns)
        assert len(summary) >= 1
    else:
        assert "No fine-tuned model with a training history" in text


def test_every_page_has_provenance(sample_db, monkeypatch):
    db, _ = sample_db
    for page in ("Overview", "Benchmark", "Retrieval", "Training"):
        at = app(db, monkeypatch, page=page)
        no_errors(at)
        assert any(e.label.startswith("Provenance") for e in at.expander), page


def test_provenance_mismatch_warns(tmp_path, monkeypatch):
    db, _ = write_sample_db(tmp_path)
    run = store.list_runs(db, model="footwear-ft", benchmark="fmnist")
    models = store.list_models(db).set_index("name")
    info = ModelInfo(
        fingerprint="fp-footwear-ft",
        name="footwear-ft",
        spec=FT_SPEC,
        backend="hf",
        base_model=models.loc["footwear-ft", "base_model"],
        base_fingerprint=models.loc["footwear-ft", "base_fingerprint"],  # keeps the baseline
        training=models.loc["footwear-ft", "training"],
    )
    newer = RunResult(
        model=info,
        benchmark="fmnist",
        benchmark_version="2",
        benchmark_hash="bh-fmnist-2",
        data_manifest_hash="dm-fmnist-OTHER",
        data_root=None,
        code_version="0.2.0",
        device="cpu",
        precision="fp32",
        seconds=1.0,
        n_items=500,
        started_at=run["started_at"][0].to_pydatetime() + timedelta(hours=1),
        metrics=[MetricValue("acc@1", 0.5, None, 0.45, 0.55, True, "label")],
    )
    store.write_run(db, newer)
    at = app(db, monkeypatch)
    no_errors(at)
    warnings = [w.value for w in at.warning]
    assert any("footwear-ft vs FashionCLIP-tiny on fmnist: different data" in w for w in warnings)
    assert any("different benchmark definition" in w for w in warnings)
    # the verdict module will not compare runs on other data: "not comparable", never a colour
    cell = overview_cells(at).loc["footwear-ft", "Zero-shot accuracy (Fashion-MNIST)"]
    assert cell.endswith("(n/a: not comparable)"), cell
    assert any("Not comparable" in c.value and "different" in c.value for c in at.caption), [
        c.value for c in at.caption
    ]


def test_missing_and_empty_database_explain_how_to_fill_it(tmp_path, monkeypatch):
    at = app(tmp_path / "nothing.duckdb", monkeypatch)
    no_errors(at)
    text = texts(at)
    assert "does not exist yet" in text
    assert "evalsuite score" in text and "make demo" in text
    assert not (tmp_path / "nothing.duckdb").exists()  # reading never creates it
    empty = tmp_path / "empty.duckdb"
    with store.connect(empty) as con:
        ensure_schema(con)
    at = app(empty, monkeypatch)
    no_errors(at)
    assert "has no results yet" in texts(at)


def test_busy_database_shows_a_notice_not_an_error(sample_db, monkeypatch):
    db, _ = sample_db
    at = app(db, monkeypatch)
    no_errors(at)

    def busy(*args, **kwargs):
        raise store.StoreBusyError("locked by a writer")

    for name in ("latest_metrics", "list_models", "list_runs", "class_metrics", "queries"):
        monkeypatch.setattr(store, name, busy)
    at.sidebar.button(key="reload").click().run()  # clears the cache: every read is busy now
    no_errors(at)
    assert any("being written" in i.value for i in at.info)
    assert "Model" in overview_frame(at).columns  # the last data read is still shown
    fresh = app(db, monkeypatch)  # a new session with nothing read before
    no_errors(fresh)
    assert any("being written" in i.value for i in fresh.info)


def test_copy_of_sample_db_is_independent(sample_db, tmp_path):
    """Guard for the other leaderboard tests: copying the sample database is enough to get
    an independent one to write into."""
    db, _ = sample_db
    copy = tmp_path / "copy.duckdb"
    shutil.copy(db, copy)
    assert len(store.list_runs(copy)) == len(store.list_runs(db)) == 8
    assert os.path.getsize(copy) > 0


def test_serve_runs_streamlit_on_the_app_with_the_db(tmp_path, monkeypatch):
    from dashboards import serve

    command = serve.command(tmp_path / "r.duckdb", port=8600)
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4] == str(APP)
    assert command[command.index("--server.port") + 1] == "8600"
    assert command[command.index("--server.headless") + 1] == "true"
    assert command[-3:] == ["--", "--db", str(tmp_path / "r.duckdb")]
    seen = {}

    class FakeProcess:
        def __init__(self, args, env):
            seen.update(args=args, env=env)

        def wait(self, timeout=None):
            return 3

    monkeypatch.setattr(serve.subprocess, "Popen", FakeProcess)
    assert serve.main(tmp_path / "r.duckdb", port=8601, headless=False) == 3
    assert seen["env"]["EVALSUITE_DB"] == str(tmp_path / "r.duckdb")
    assert seen["args"][seen["args"].index("--server.headless") + 1] == "false"


def test_app_reads_the_db_from_the_command_line(tmp_path, monkeypatch):
    """`streamlit run leaderboard.py -- --db PATH` puts PATH in sys.argv; it wins over the
    environment."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("EVALSUITE_DB", str(tmp_path / "from-env.duckdb"))
    monkeypatch.setattr("sys.argv", ["leaderboard.py", "--db", str(tmp_path / "argv.duckdb")])
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    no_errors(at)
    assert "argv.duckdb" in texts(at) and "from-env" not in texts(at)


def test_unreadable_database_is_an_error_message_not_a_traceback(tmp_path, monkeypatch):
    bad = tmp_path / "bad.duckdb"
    bad.write_bytes(b"not a database" * 200)
    at = app(bad, monkeypatch)
    assert not at.exception
    assert any("Cannot read the results database" in e.value for e in at.error)


def test_serve_passes_baseline_and_target_to_the_app(tmp_path, monkeypatch):
    from dashboards import serve

    command = serve.command(tmp_path / "r.duckdb", baseline="base", target="shoes/kind/acc@1")
    tail = ["--", "--db", str(tmp_path / "r.duckdb"), "--baseline", "base"]
    assert command[-7:] == [*tail, "--target", "shoes/kind/acc@1"]
    seen = {}
    monkeypatch.setattr(serve, "main", lambda db, **kwargs: seen.update(db=db, **kwargs) or 0)
    assert serve.cli(["--db", "x.duckdb", "--baseline", "tuned", "--target", "a/b/c"]) == 0
    assert seen == {"db": "x.duckdb", "port": 8501, "headless": True, "baseline": "tuned",
                    "target": "a/b/c"}  # fmt: skip


# ---------------------------------------------------------------- verdicts (issue 14)


def test_summary_lines_name_every_significant_change(verdict_db, monkeypatch):
    at = app(verdict_db, monkeypatch)
    no_errors(at)
    assert at.sidebar.selectbox(key="baseline").value == "base"  # marked in the database
    text = texts(at)
    tuned = next(t for t in text.splitlines() if t.startswith("- **tuned**: "))
    assert "worse on shoes kind (zero-shot accuracy -9.25 pts" in tuned  # the regression
    assert "better on shoes lace (zero-shot accuracy +26.50 pts" in tuned
    assert "search" not in tuned  # a tie
    assert "14 gated and 9 other comparisons, Benjamini-Hochberg-corrected" in text
    cells = overview_cells(at)
    assert cells.loc["tuned", "Zero-shot accuracy (shoes kind)"].startswith("59.5  (▼ −9.2")
    assert "(▲ +26.5)" in cells.loc["tuned", "Zero-shot accuracy (shoes lace)"]
    assert "(≈ " in cells.loc["tuned", "shoes search hits / 400"]


def test_regression_is_summarised_even_when_its_column_is_hidden(verdict_db, monkeypatch):
    """The summary line lists every significant loss, whatever the table shows."""
    at = app(verdict_db, monkeypatch)
    labels = list(overview_frame(at).columns)
    assert "F1 macro (shoes kind)" not in labels  # not a headline column of this benchmark
    tuned = next(t for t in texts(at).splitlines() if t.startswith("- **tuned**: "))
    assert "F1 macro -9.31 pts" in tuned


def test_runs_on_other_data_are_not_comparable(verdict_db, monkeypatch):
    at = app(verdict_db, monkeypatch)
    cell = overview_cells(at).loc["other", "Zero-shot accuracy (general type)"]
    assert cell == "79.0  (n/a: not comparable)"
    notes = " ".join(c.value for c in at.caption)
    assert "other on Zero-shot accuracy (general type): scored on different data" in notes
    other = next(t for t in texts(at).splitlines() if t.startswith("- **other**: "))
    assert "not comparable on general type (scored on different data" in other


def test_baseline_is_the_marked_model_never_a_name(verdict_db, tmp_path, monkeypatch):
    import numpy as np

    from tests.fixtures.verdict_db import BASE, T0, classification, run

    db = tmp_path / "v.duckdb"
    shutil.copy(verdict_db, db)
    named = ModelInfo("fp-fashion".ljust(20, "0"), "fashion-clip-footwear", "hf:fc", "hf")
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 50)
    store.write_run(db, run(named, "shoes", "data-A", 3, [
        ("zeroshot", "kind", classification("kind", labels, labels, 4, rng))]))  # fmt: skip
    at = app(db, monkeypatch)
    no_errors(at)
    assert at.sidebar.selectbox(key="baseline").value == BASE.name
    assert overview_frame(at)["Model"].iloc[0] == "base"
    assert T0 is not None


def test_without_a_marked_baseline_the_page_asks(verdict_db, tmp_path, monkeypatch):
    db = tmp_path / "v.duckdb"
    shutil.copy(verdict_db, db)
    with store.connect(db) as con:
        con.execute("UPDATE models SET is_baseline = NULL, base_fingerprint = NULL")
    at = app(db, monkeypatch)
    no_errors(at)
    assert at.sidebar.selectbox(key="baseline").value is None
    assert any("mark one with `evalsuite baseline NAME`" in w.value for w in at.warning)
    cells = overview_cells(at)
    assert not any(cell_verdict(str(c)) for c in cells.drop(columns="Type").to_numpy().ravel())
    at.sidebar.selectbox(key="baseline").set_value("base").run()
    no_errors(at)
    assert "(▼" in overview_cells(at).loc["tuned", "Zero-shot accuracy (shoes kind)"]


def test_url_and_command_line_choose_baseline_and_target(verdict_db, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("EVALSUITE_DB", str(verdict_db))
    argv = ["leaderboard.py", "--baseline", "other", "--target", "shoes/search/ir_hits"]
    monkeypatch.setattr("sys.argv", argv)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    no_errors(at)
    assert at.sidebar.selectbox(key="baseline").value == "other"
    assert at.sidebar.selectbox(key="target_task").value == "search"
    assert "Ranks on shoes search hits" in texts(at)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params["baseline"] = "tuned"  # the URL wins over the command line
    at.run()
    no_errors(at)
    assert at.sidebar.selectbox(key="baseline").value == "tuned"
    assert overview_frame(at)["Model"].iloc[0] == "tuned"
    base = next(t for t in texts(at).splitlines() if t.startswith("- **base**: "))
    assert "better on shoes kind" in base and "worse on shoes lace" in base


def test_rank_bands_put_tied_models_in_one_band(verdict_db, monkeypatch):
    at = app(verdict_db, monkeypatch)
    for target, bands in (
        (("shoes", "search", "ir_hits"), {"tuned": 1, "base": 1, "other": 1}),
        (("shoes", "kind", "acc@1"), {"base": 1, "other": 1, "tuned": 2}),
    ):
        at.sidebar.selectbox(key="target_benchmark").set_value(target[0]).run()
        at.sidebar.selectbox(key="target_task").set_value(target[1]).run()
        at.sidebar.selectbox(key="target_metric").set_value(target[2]).run()
        no_errors(at)
        ranks = rank_frame(at).set_index("Model")
        assert ranks["Rank"].to_dict() == bands, target
        tied = [m for m, band in bands.items() if list(bands.values()).count(band) > 1]
        assert set(ranks.loc[tied, "Band"]) == {"statistically tied"}
        assert ranks.loc["tuned", "Detectable difference"]  # from the verdict's mdd_text
        assert ranks.loc["base", "Detectable difference"] == ""  # the baseline itself
    at.sidebar.selectbox(key="target_benchmark").set_value("general").run()
    ranks = rank_frame(at).set_index("Model")
    assert ranks.loc["other", "Band"].startswith("not comparable (scored on other data")


def test_leaderboard_verdicts_agree_with_the_verdict_module(verdict_db):
    from evalsuite.verdicts import compare_models

    shown = leaderboard_verdicts(verdict_db)
    expected = {
        (name, v.benchmark, v.task, v.metric): v.verdict
        for name in ("tuned", "other")
        for v in compare_models(verdict_db, "base", name).verdicts
    }
    assert shown == expected
    assert shown[("tuned", "shoes", "kind", "acc@1")] == "worse"
    assert shown[("other", "general", "type", "acc@1")] == "not comparable"


# ---------------------------------------------------------------- models are names


def test_two_names_of_the_same_weights_are_two_models(tmp_path, monkeypatch):
    """The base's weights scored again under another name (as a WiSE-FT at alpha 0 would be):
    two models, two rows, each with its own verdicts; the page says they share weights."""
    db, info = write_sample_db(tmp_path)
    for run in info["runs"]:
        if run.model.name == "FashionCLIP-tiny":
            twin = dataclasses.replace(run.model, name="FashionCLIP-twin")
            store.write_run(db, dataclasses.replace(run, model=twin, run_id=f"{run.run_id}-2"))
    models = store.list_models(db).set_index("name")
    assert models.loc["FashionCLIP-twin", "same_weights_as"] == ["FashionCLIP-tiny"]
    at = app(db, monkeypatch, baseline="FashionCLIP-tiny")
    no_errors(at)
    table = overview_frame(at).set_index("Model")
    assert {"FashionCLIP-tiny", "FashionCLIP-twin"} <= set(table.index) and len(table) == 5
    accuracy = "Zero-shot accuracy (footwear type)"
    assert table.loc["FashionCLIP-twin", f"Δ {accuracy}"] == 0.0
    assert overview_cells(at).loc["FashionCLIP-twin", accuracy] == "69.8  (≈ +0.0)"
    assert any(t.startswith("- **FashionCLIP-twin**: ") for t in texts(at).splitlines())
    picker = at.sidebar.selectbox(key="baseline")
    assert "FashionCLIP-tiny and FashionCLIP-twin have the same weights" in picker.help
    provenance = next(df.value for df in at.dataframe if "Same weights as" in df.value.columns)
    same = provenance.set_index(["Model", "Benchmark"])["Same weights as"]
    assert same[("FashionCLIP-twin", "footwear")] == "FashionCLIP-tiny"
    at.sidebar.selectbox(key="baseline").set_value("FashionCLIP-twin").run()
    no_errors(at)
    assert overview_frame(at)["Model"].iloc[0] == "FashionCLIP-twin"
    assert "Compared with FashionCLIP-twin" in texts(at)


# ---------------------------------------------------------------- a folder of exported runs


def test_leaderboard_on_a_folder_of_exported_runs(sample_db, tmp_path, monkeypatch):
    """`--db FOLDER` of `evalsuite export` runs: read in place, the same page as on the
    database (the base of the fine-tunes is the default baseline: exports carry no mark)."""
    from dashboards import run_provenance
    from evalsuite.run_files import export_runs

    db, info = sample_db
    runs = store.list_runs(db)
    folder = tmp_path / "artifacts"
    first = runs[runs["model_name"] != "footwear-ft-wise0.6"]["run_id"]
    export_runs(db, list(first), folder / "job-1")
    assert store.is_export_folder(folder)
    stamp = run_provenance.db_stamp(folder)
    at = app(folder, monkeypatch)
    no_errors(at)
    table = overview_frame(at)
    assert set(table["Model"]) == set(info["names"]) - {"footwear-ft-wise0.6"}
    assert at.sidebar.selectbox(key="baseline").value == "FashionCLIP-tiny"
    cells = overview_cells(at)
    assert cells.loc["footwear-ft", "Zero-shot accuracy (footwear type)"] == "79.9  (▲ +10.1)"
    for page in ("Benchmark", "Retrieval", "Training"):
        no_errors(app(folder, monkeypatch, page=page))
    # a run folder added deeper in the folder changes the cache key and shows on reload
    rest = runs[runs["model_name"] == "footwear-ft-wise0.6"]["run_id"]
    export_runs(db, list(rest), folder / "job-2" / "nested")
    assert run_provenance.db_stamp(folder) != stamp
    at.sidebar.button(key="reload").click().run()
    no_errors(at)
    assert set(overview_frame(at)["Model"]) == set(info["names"])
    # nothing changed: the same key
    assert run_provenance.db_stamp(folder) == run_provenance.db_stamp(folder)


def test_db_stamp_of_a_database_file(sample_db, tmp_path):
    from dashboards import run_provenance

    db, _ = sample_db
    copy = tmp_path / "copy.duckdb"
    shutil.copy(db, copy)
    stamp = run_provenance.db_stamp(copy)
    assert stamp and run_provenance.db_stamp(copy) == stamp
    os.utime(copy, ns=(stamp[0] + 10**9, stamp[0] + 10**9))
    assert run_provenance.db_stamp(copy) != stamp
    assert run_provenance.db_stamp(tmp_path / "missing.duckdb") == ()
