"""The Streamlit leaderboard rendered with AppTest on real results databases.

Two databases: ``sample`` is written through ``evalsuite.store.write_run`` with hand-made but
realistic RunResults (a FashionCLIP base model, a fine-tune with a training history and two
WiSE-FT interpolations; thumbnails in a data root); ``real`` is filled by real
``evalsuite.runner.score_model`` runs of two tiny CLIPs on the footwear catalogue and
Fashion-MNIST (skipped without the runner or the shared data). Other leaderboard tests import
``write_sample_results`` and ``sample_db`` from here.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
import os
import re
import shutil
import struct
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from evalsuite import store
from evalsuite.data.fmnist import CLASS_NAMES
from evalsuite.results import (
    ClassMetric,
    ConfusionCell,
    MetricValue,
    ModelInfo,
    Prediction,
    RetrievedItem,
    RunResult,
)

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboards" / "leaderboard.py"
TIMEOUT = 60

BASE_SPEC = "patrickjohncyh/fashion-clip"
FT_SPEC = "/checkpoints/footwear-ft"
ARTICLE_TYPES = [
    "Casual Shoes",
    "Sports Shoes",
    "Formal Shoes",
    "Heels",
    "Flats",
    "Flip Flops",
    "Sandals",
    "Sports Sandals",
]
FMNIST = list(CLASS_NAMES)
# name -> (fingerprint, footwear type acc@1, FMNIST acc@1, text hits, image hits, training)
HISTORY = [
    {
        "epoch": e,
        "train_loss": 2.1 - 0.35 * e,
        "val_loss": 1.9 - 0.2 * e + 0.04 * e * e,
        "val_accuracy": 0.70 + 0.04 * e,
        "lr": 1e-5 * (1 - e / 4),
        "seconds": 310.0 + e,
    }
    for e in range(1, 4)
]
FT_TRAINING = {
    "run_name": "footwear-ft",
    "config": {"epochs": 3, "lr": 1e-5, "batch_size": 64, "data": "footwear train split"},
    "base_model": {"spec": BASE_SPEC, "fingerprint": "fp-fashionclip"},
    "seed": 0,
    "history": HISTORY,
}


def _wise(alpha: float) -> dict[str, Any]:
    return {
        "run_name": f"footwear-ft-wise{alpha:g}",
        "wise": {
            "alpha": alpha,
            "base_spec": BASE_SPEC,
            "finetuned_spec": FT_SPEC,
            "base_fingerprint": "fp-fashionclip",
        },
    }


SAMPLE_MODELS = {
    "FashionCLIP-tiny": ("fp-fashionclip", BASE_SPEC, 0.698, 0.702, 212, 71, None),
    "footwear-ft": ("fp-footwear-ft", FT_SPEC, 0.799, 0.652, 251, 80, FT_TRAINING),
    "footwear-ft-wise0.3": (
        "fp-wise-03",
        "/checkpoints/footwear-ft-wise0.3",
        0.752,
        0.699,
        230,
        75,
        _wise(0.3),
    ),
    "footwear-ft-wise0.6": (
        "fp-wise-06",
        "/checkpoints/footwear-ft-wise0.6",
        0.781,
        0.688,
        240,
        77,
        _wise(0.6),
    ),
}


def _png(path: Path, colour: tuple[int, int, int]) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (60, 80), colour).save(path)


def _rate(name: str, task: str, value: float, n: int) -> MetricValue:
    hw = 1.96 * math.sqrt(max(value * (1 - value), 1e-4) / n)
    return MetricValue(name, value, None, value - hw, value + hw, True, task)


def _count(name: str, task: str, value: float, maximum: float) -> MetricValue:
    return MetricValue(name, value, maximum, value - 9.0, value + 9.0, True, task)


def write_sample_results(db: Path, data_root: Path, started: datetime | None = None) -> dict:
    """Write the sample runs (2 benchmarks x 4 models) into ``db``; returns what was written:
    {"names": {name: fingerprint}, "data_root": ..., "runs": [RunResult]}."""
    images = data_root / "images"
    for i in range(2 * len(ARTICLE_TYPES)):
        _png(images / f"{1000 + i}.png", (40 + 12 * i, 90, 160 - 5 * i))
    started = started or datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
    runs = []
    for index, (name, (fp, spec, acc, fm, text_hits, image_hits, training)) in enumerate(
        SAMPLE_MODELS.items()
    ):
        info = ModelInfo(
            fingerprint=fp,
            name=name,
            spec=spec,
            backend="hf",
            base_model=(training or {}).get("base_model", {}).get("spec"),
            base_fingerprint=(training or {}).get("base_model", {}).get("fingerprint"),
            parameter_count=151_277_313,
            training=training,
            history=list((training or {}).get("history", [])),
        )
        when = started + timedelta(minutes=10 * index)
        footwear = RunResult(
            model=info,
            benchmark="footwear",
            benchmark_version="1",
            benchmark_hash="bh-foot-1",
            data_manifest_hash="dm-foot-1",
            data_root=str(data_root),
            code_version="0.1.0+g1234",
            device="cpu",
            precision="fp32",
            seconds=12.5,
            n_items=884,
            started_at=when,
        )
        footwear.metrics += [
            _rate("acc@1", "article_type", acc, 884),
            _rate("acc@5", "article_type", min(acc + 0.15, 0.99), 884),
            _rate("f1_macro", "article_type", acc - 0.05, 884),
            _rate("f1_weighted", "article_type", acc - 0.02, 884),
            MetricValue(
                "pretest",
                round(acc * 4420),
                4420,
                acc * 4420 - 60,
                acc * 4420 + 60,
                True,
                "article_type",
            ),
            _rate("acc@1", "base_colour", 0.55 + (acc - 0.7) / 3, 852),
            _count("ir_hits", "text_search", text_hits, 390),
            _count("ir_by_position", "text_search", text_hits * 0.93, 390),
            _rate("MRR", "text_search", 0.6 + (acc - 0.7), 39),
            _count("ir_hits", "image_search", image_hits, 130),
            _count("ir_by_position", "image_search", image_hits * 0.95, 130),
        ]
        for c, label in enumerate(ARTICLE_TYPES):
            f1 = max(0.05, min(0.98, acc + 0.03 * (c - 3.5) - 0.02 * index * (c % 2)))
            footwear.class_metrics.append(ClassMetric("article_type", label, f1, f1, f1, 40 + c))
            for d, other in enumerate(ARTICLE_TYPES):
                count = round(f1 * 40) if c == d else (3 if abs(c - d) == 1 else 0)
                if count:
                    footwear.confusion.append(ConfusionCell("article_type", label, other, count))
        for i in range(16):
            true = ARTICLE_TYPES[i % 8]
            wrong = (i + index) % 3 == 0
            predicted = ARTICLE_TYPES[(i + 1) % 8] if wrong else true
            footwear.predictions.append(
                Prediction(
                    "article_type",
                    str(1000 + i),
                    true,
                    predicted,
                    not wrong,
                    0.9 - 0.01 * i,
                    2 if wrong else 1,
                    f"images/{1000 + i}.png",
                )
            )
        footwear.predictions.append(
            Prediction(  # a path escaping the data root
                "article_type", "9999", "Heels", "Flats", False, 0.99, 2, "../outside.png"
            )
        )
        for q, (qid, text) in enumerate(
            (
                ("t01", "black formal shoes for men"),
                ("t02", "brown formal shoes"),
                ("t03", "white sports shoes for women"),
            )
        ):
            for rank in range(1, 11):
                item = 1000 + (rank + q + index) % 16
                relevant = (rank + index + q) % 3 != 0
                footwear.retrieved.append(
                    RetrievedItem(
                        "text_search",
                        qid,
                        text,
                        rank,
                        str(item),
                        0.5 - 0.01 * rank,
                        relevant,
                        f"images/{item}.png",
                    )
                )
        for rank in range(1, 11):
            item = 1000 + (rank * 3 + index) % 16
            footwear.retrieved.append(
                RetrievedItem(
                    "image_search",
                    "i01",
                    "1000",
                    rank,
                    str(item),
                    0.9 - 0.01 * rank,
                    rank % 2 == 1,
                    f"images/{item}.png",
                )
            )
        fmnist = RunResult(
            model=info,
            benchmark="fmnist",
            benchmark_version="1",
            benchmark_hash="bh-fmnist-1",
            data_manifest_hash="dm-fmnist-1",
            data_root=None,
            code_version="0.1.0+g1234",
            device="cpu",
            precision="fp32",
            seconds=30.0,
            n_items=10000,
            started_at=when + timedelta(minutes=1),
        )
        fmnist.metrics += [
            MetricValue("acc@1", fm, None, fm - 0.009, fm + 0.009, True, "label"),
            MetricValue("f1_macro", fm - 0.03, None, fm - 0.04, fm - 0.02, True, "label"),
        ]
        fmnist.class_metrics += [
            ClassMetric("label", c, fm, fm, fm - 0.01 * i, 1000) for i, c in enumerate(FMNIST)
        ]
        fmnist.confusion += [ConfusionCell("label", c, c, int(fm * 1000)) for c in FMNIST]
        fmnist.predictions += [
            Prediction("label", str(i), "Shirt", "T-shirt/top", False, 0.8, 2, None)
            for i in range(3)
        ]
        for run in (footwear, fmnist):
            store.write_run(db, run)
            runs.append(run)
    _png(data_root.parent / "outside.png", (255, 0, 0))
    names = {name: values[0] for name, values in SAMPLE_MODELS.items()}
    return {"names": names, "data_root": data_root, "runs": runs}


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
    from evalsuite.data.catalogue import prepare_footwear
    from evalsuite.models.tiny import build_tiny_hf

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


def _sample_db(tmp: Path) -> tuple[Path, dict]:
    db = tmp / "sample.duckdb"
    info = write_sample_results(db, tmp / "data" / "footwear")
    return db, info


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    return _sample_db(tmp_path_factory.mktemp("leaderboard-sample"))


@pytest.fixture(scope="module")
def real_db(tmp_path_factory: pytest.TempPathFactory, catalogue_dir: Path, fmnist_dir: Path):
    if not runner_available():
        pytest.skip("evalsuite.runner.score_model is not available yet")
    work = tmp_path_factory.mktemp("leaderboard-real")
    db = work / "results.duckdb"
    names = score_real(db, work, catalogue_dir, fmnist_dir)
    return db, {"names": names}


@pytest.fixture(params=["sample", pytest.param("real", marks=pytest.mark.slow)])
def results_db(request: pytest.FixtureRequest) -> tuple[Path, dict]:
    return request.getfixturevalue(f"{request.param}_db")


# ---------------------------------------------------------------- helpers


def app(db: Path, monkeypatch: pytest.MonkeyPatch, page: str | None = None):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("EVALSUITE_DB", str(db))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    if page:
        at.query_params["page"] = page
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


def expected_delta(db: Path, fp: str, base_fp: str, benchmark: str, task: str, metric: str):
    frame = store.latest_metrics(db)
    sel = frame[(frame.benchmark == benchmark) & (frame.task == task) & (frame.metric == metric)]
    value = sel.set_index("fingerprint")["value"]
    maximum = sel.set_index("fingerprint")["maximum"]
    scale = 1.0 if maximum.notna().all() else 100.0
    return scale * (value[fp] - value[base_fp])


def chart_data(chart) -> list:
    """The data frames an Altair chart element carries (Arrow IPC streams)."""
    import pyarrow as pa

    return [pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in chart.proto.datasets]


def overview_frame(at):
    return next(
        df.value
        for df in at.dataframe
        if "Model" in df.value.columns and "Type" in df.value.columns
    )


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
    base, tuned = (
        names["FashionCLIP-tiny"],
        names[next(n for n in names if n != "FashionCLIP-tiny")],
    )
    row = table.set_index("Model")
    other = next(n for n in names if n != "FashionCLIP-tiny")
    for column, key in (
        (accuracy, ("footwear", "article_type", "acc@1")),
        ("Text search hits / 390", ("footwear", "text_search", "ir_hits")),
        ("Zero-shot accuracy (Fashion-MNIST)", ("fmnist", "label", "acc@1")),
    ):
        want = expected_delta(db, tuned, base, *key)
        assert row.loc[other, f"Δ {column}"] == pytest.approx(want, abs=1e-9)
        assert math.isclose(row.loc["FashionCLIP-tiny", f"Δ {column}"], 0.0)
    text = texts(at)
    assert "Compared with FashionCLIP-tiny" in text
    assert re.search(rf"\*\*{re.escape(other)}\*\*: [+−]\d+\.\d pts on footwear", text)
    assert at.get("download_button"), "the table can be downloaded as CSV"
    assert at.get("vega_lite_chart"), "the trade-off chart is drawn"
    assert any("Provenance" in e.label for e in at.expander)


def test_sample_overview_values_verdict_and_noise(sample_db, monkeypatch):
    db, _ = sample_db
    at = app(db, monkeypatch)
    no_errors(at)
    row = overview_frame(at).set_index("Model")
    accuracy = "Zero-shot accuracy (footwear type)"
    assert row.loc["footwear-ft", accuracy] == pytest.approx(79.9)
    assert row.loc["footwear-ft", f"Δ {accuracy}"] == pytest.approx(10.1)
    assert row.loc["footwear-ft", "Δ Zero-shot accuracy (Fashion-MNIST)"] == pytest.approx(-5.0)
    assert row.loc["footwear-ft", "Δ Text search hits / 390"] == pytest.approx(39)
    assert row.loc["footwear-ft", "Fine-tuning time"] == "16 min"
    assert row.loc["footwear-ft-wise0.3", "Type"] == "WiSE-FT α=0.30"
    text = texts(at)
    line = next(t for t in text.splitlines() if t.startswith("- **footwear-ft**"))
    assert "+10.1 pts on footwear type accuracy" in line
    assert "−5.0 pts on Fashion-MNIST accuracy" in line
    assert "≈ same Fashion-MNIST accuracy" in text  # wise0.3: -0.3 pts, inside the noise
    # the trade-off chart joins the WiSE-FT alphas of the fine-tune as one curve
    frames = [f for chart in at.get("vega_lite_chart") for f in chart_data(chart)]
    curve = next(f for f in frames if "curve" in f.columns and f["curve"].notna().any())
    assert list(curve["alpha"]) == [0.0, 0.3, 0.6, 1.0]
    assert set(curve["curve"]) == {"WiSE-FT of footwear-ft"}
    assert curve["model"].iloc[-1] == "footwear-ft"


def test_switching_the_baseline_changes_the_deltas(sample_db, monkeypatch):
    db, info = sample_db
    at = app(db, monkeypatch)
    at.sidebar.selectbox(key="baseline").set_value("footwear-ft").run()
    no_errors(at)
    table = overview_frame(at)
    assert table["Model"].iloc[0] == "footwear-ft"
    row = table.set_index("Model")
    column = "Δ Zero-shot accuracy (footwear type)"
    assert row.loc["FashionCLIP-tiny", column] == pytest.approx(-10.1)
    want = expected_delta(
        db,
        info["names"]["footwear-ft-wise0.6"],
        info["names"]["footwear-ft"],
        "footwear",
        "article_type",
        "acc@1",
    )
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
    db, _ = _sample_db(tmp_path)
    run = store.list_runs(db, model="footwear-ft", benchmark="fmnist")
    models = store.list_models(db).set_index("name")
    info = ModelInfo(
        fingerprint="fp-footwear-ft",
        name="footwear-ft",
        spec=FT_SPEC,
        backend="hf",
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


def test_missing_and_empty_database_explain_how_to_fill_it(tmp_path, monkeypatch):
    at = app(tmp_path / "nothing.duckdb", monkeypatch)
    no_errors(at)
    text = texts(at)
    assert "does not exist yet" in text
    assert "evalsuite score" in text and "make demo" in text
    assert not (tmp_path / "nothing.duckdb").exists()  # reading never creates it
    empty = tmp_path / "empty.duckdb"
    with store.connect(empty) as con:
        store._ensure_schema(con)
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
