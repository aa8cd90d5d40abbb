"""The Markdown + PNG report, from a database filled with realistic hand-made runs (and one
real Fashion-MNIST run of a tiny model)."""

from __future__ import annotations

import gzip
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evalsuite import report as report_module
from evalsuite import store
from evalsuite.data.fmnist import CLASS_NAMES
from evalsuite.report import (
    Figures,
    ReportError,
    choose_baseline,
    load_report_data,
    render_markdown,
    tradeoff_point,
    wise_lines,
    write_report,
)
from evalsuite.results import ClassMetric, MetricValue, ModelInfo, RunResult

FOOTWEAR_TYPES = [
    "Casual Shoes",
    "Sports Shoes",
    "Formal Shoes",
    "Heels",
    "Flats",
    "Flip Flops",
    "Sandals",
    "Sports Sandals",
]
COLOURS = [
    "Black",
    "White",
    "Brown",
    "Blue",
    "Grey",
    "Red",
    "Navy Blue",
    "Green",
    "Silver",
    "Gold",
    "Beige",
    "Pink",
    "Purple",
    "Olive",
]
FMNIST = list(CLASS_NAMES)
DEEP = [
    "Tee",
    "Blouse",
    "Dress",
    "Shorts",
    "Skirt",
    "Jeans",
    "Cardigan",
    "Jacket",
    "Sweater",
    "Tank",
    "Romper",
    "Joggers",
]
T0 = datetime(2025, 3, 1, 9, 30, tzinfo=timezone.utc)

BASE = ModelInfo(
    fingerprint="f" * 16 + "base",
    name="fashion-clip",
    spec="hf:patrickjohncyh/fashion-clip",
    backend="hf",
    parameter_count=151_277_313,
)
HISTORY = [
    {
        "epoch": e,
        "train_loss": 2.1 * 0.8**e,
        "val_loss": 1.9 * 0.85**e + 0.02 * e,
        "val_accuracy": 0.6 + 0.1 * (1 - 0.6**e),
        "lr": 1e-5,
        "seconds": 61.0,
    }
    for e in range(1, 7)
]
FINETUNE = ModelInfo(
    fingerprint="a" * 16 + "ft",
    name="fclip-footwear",
    spec="checkpoints/fclip-footwear",
    backend="hf",
    base_model=BASE.spec,
    base_fingerprint=BASE.fingerprint,
    training={
        "base_model": {"spec": BASE.spec, "fingerprint": BASE.fingerprint},
        "seed": 0,
        "run_name": "fclip-footwear",
        "history": HISTORY,
    },
    history=HISTORY,
)


def wise(alpha: float) -> ModelInfo:
    return ModelInfo(
        fingerprint=f"w{alpha:g}".ljust(20, "0"),
        name=f"fclip-footwear-wise-{alpha:g}",
        spec=f"checkpoints/fclip-footwear-wise-{alpha:g}",
        backend="hf",
        base_model=BASE.spec,
        training={
            "base_model": BASE.spec,
            "wise": {"alpha": alpha, "finetuned_spec": FINETUNE.spec},
        },
    )


def zeroshot(
    task: str, classes: list[str], acc: float, n: int, seed: int, pretest_k: int = 5
) -> tuple[list[MetricValue], list[ClassMetric]]:
    rng = np.random.default_rng(seed)
    hw = 1.96 * np.sqrt(acc * (1 - acc) / n)
    f1 = np.clip(acc + rng.normal(0, 0.12, len(classes)), 0.02, 0.99)
    support = rng.integers(8, 120, len(classes))
    points = acc * n * 3.6
    metrics = [
        MetricValue("acc@1", acc, None, acc - hw, acc + hw, task=task),
        MetricValue("acc@5", min(acc + 0.25, 0.99), None, task=task),
        MetricValue(
            "balanced_accuracy", acc - 0.03, None, acc - 0.03 - hw, acc - 0.03 + hw, task=task
        ),
        MetricValue("f1_macro", float(f1.mean()), None, f1.mean() - hw, f1.mean() + hw, task=task),
        MetricValue("f1_weighted", acc - 0.01, None, acc - 0.01 - hw, acc - 0.01 + hw, task=task),
        MetricValue("pretest", round(points), pretest_k * n, points - 40, points + 40, task=task),
    ]
    per_class = [
        ClassMetric(task, c, float(v), float(v), float(v), int(s))
        for c, v, s in zip(classes, f1, support, strict=True)
    ]
    return metrics, per_class


def retrieval(task: str, hits: int, n_queries: int, mrr: float) -> list[MetricValue]:
    top = 10 * n_queries
    return [
        MetricValue("ir_hits", hits, top, hits - 10, hits + 10, task=task),
        MetricValue(
            "ir_by_position", hits * 0.93 + 0.37, top, hits * 0.93 - 20, hits * 0.93 + 21, task=task
        ),
        MetricValue("MRR", mrr, None, mrr - 0.06, mrr + 0.05, task=task),
        MetricValue("P@10", hits / top, None, task=task),
        MetricValue("Recall@10", min(hits / top * 1.4, 1), None, task=task),
        MetricValue("NDCG@10", mrr * 0.9, None, task=task),
    ]


def make_run(
    model: ModelInfo,
    benchmark: str,
    tasks: list,
    hours: float = 0,
    data_hash: str = "",
    extra: dict | None = None,
) -> RunResult:
    metrics, per_class = [], []
    for task in tasks:
        if isinstance(task, tuple):
            metrics += task[0]
            per_class += task[1]
        else:
            metrics += task
    return RunResult(
        model=model,
        benchmark=benchmark,
        benchmark_version="1",
        benchmark_hash=f"bench-{benchmark}-v1-0123456789",
        data_manifest_hash=data_hash or f"data-{benchmark}-0123456789abcdef",
        data_root=f"/data/{benchmark}",
        code_version="0.1.0+gabc1234",
        device="cuda:0",
        precision="fp16",
        seconds=42.0,
        n_items=1000,
        started_at=T0 + timedelta(hours=hours),
        metrics=metrics,
        class_metrics=per_class,
        extra=extra or {"tasks": {}, "skipped_tasks": {}},
    )


def fill_db(db: Path, *, with_wise: bool = True, mismatch: bool = False) -> None:
    """Baseline, a fine-tune that gains on footwear and forgets elsewhere, WiSE in between.

    DeepFashion and Custom runs carry no per-class rows (fewer charts to draw)."""
    models = [(BASE, 0.0), (FINETUNE, 1.0)]
    if with_wise:
        models += [(wise(0.3), 0.3), (wise(0.6), 0.6)]
    footwear_tasks = {
        "article_type": {"type": "zeroshot"},
        "base_colour": {"type": "zeroshot"},
        "text_search": {"type": "text_to_image"},
        "image_search": {"type": "image_to_image"},
    }
    extra = {
        "tasks": footwear_tasks,
        "skipped_tasks": {"lace_colour": "no item has the field lace_colour"},
    }
    for i, (model, a) in enumerate(models):
        store.write_run(
            db,
            make_run(
                model,
                "footwear",
                [
                    zeroshot("article_type", FOOTWEAR_TYPES, 0.5966 + 0.101 * a, 1105, 1 + i),
                    zeroshot("base_colour", COLOURS, 0.41 + 0.08 * a * (1.2 - a), 1105, 11 + i),
                    retrieval("text_search", round(248 + 26 * a), 39, 0.61 + 0.08 * a),
                    retrieval("image_search", round(70 + 4 * a), 13, 0.55 + 0.01 * a),
                ],
                hours=i,
                extra=extra,
            ),
        )
        fm_hash = "data-fmnist-OTHER-9999" if (mismatch and model is FINETUNE) else ""
        store.write_run(
            db,
            make_run(
                model,
                "fmnist",
                [zeroshot("label", FMNIST, 0.712 - 0.062 * a**1.5, 10000, 21 + i)],
                hours=i,
                data_hash=fm_hash,
            ),
        )
        store.write_run(
            db,
            make_run(
                model,
                "deepfashion",
                [zeroshot("category", DEEP, 0.301 - 0.003 * a, 2000, 31 + i)[0]],
                hours=i,
            ),
        )
        if model is BASE:  # the fine-tunes were not scored on custom: a "—" in their columns
            store.write_run(
                db,
                make_run(
                    model,
                    "custom",
                    [zeroshot("label", ["boot", "sneaker", "loafer"], 0.83, 60, 41)[0]],
                ),
            )


@pytest.fixture
def low_dpi(monkeypatch: pytest.MonkeyPatch) -> None:
    """Charts drawn at a low resolution: the same code paths, a fraction of the CPU time."""
    monkeypatch.setattr(report_module, "DPI", 60)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("report")
    fill_db(root / "results.duckdb")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(report_module, "DPI", 60)
        path = write_report(root / "results.duckdb", root / "out")
    return path, path.read_text(encoding="utf-8")


def _is_png(path: Path, min_side: int = 150) -> None:
    assert path.is_file(), path
    assert path.stat().st_size > 3000, path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert min(image.size) >= min_side, (path, image.size)


def test_report_tables_deltas_and_summary(report: tuple[Path, str]) -> None:
    path, text = report
    assert path.name == "report.md"
    for name in (
        "fashion-clip (baseline)",
        "fclip-footwear",
        "fclip-footwear-wise-0.3",
        "Δ fclip-footwear",
    ):
        assert name in text
    # baseline first, then plain fine-tune, then WiSE checkpoints by alpha
    header = next(line for line in text.splitlines() if line.startswith("| Benchmark"))
    assert header.index("fashion-clip (baseline)") < header.index("| fclip-footwear |")
    assert header.index("fclip-footwear-wise-0.3") < header.index("fclip-footwear-wise-0.6")
    # values, "x / max" points and their intervals
    assert "59.66%" in text and "69.76%" in text
    assert "248 / 390" in text and "274 / 390" in text
    assert "59.66%<br><sub>[56.8, 62.6]</sub>" in text  # the baseline's acc@1 and its interval
    # changes: fractions in pts, points as whole numbers, markers with the noise flag
    assert "▲ +10.10 pts" in text
    assert "▲ +26" in text
    assert "≈ -0.30 pts" in text  # deepfashion: inside the combined bootstrap half-widths
    assert "▼ -6.20 pts" in text  # fmnist forgetting
    row = next(line for line in text.splitlines() if line.startswith("| **Custom**"))
    assert row.count("—") == 6  # fine-tunes not scored on custom: value and change
    # plain-language summary: target gains, cost elsewhere, averages
    assert "On Footwear, the target benchmark: article type accuracy 59.66% → 69.76%" in text
    assert "What fine-tuning cost elsewhere: Fashion-MNIST accuracy 71.20% → 65.00%" in text
    assert "Not scored on Custom" in text
    assert re.search(r"In short: \+\d+\.\d\d pts on average on Footwear", text)
    assert "**Footwear · article type**" in text and "Pretest score" in text
    assert "IR score (hits)" in text and "IR score by position" in text
    assert "2373 / 5525" in text  # pretest points
    assert "<details><summary>Footwear</summary>" in text  # all metrics
    assert "Top-5 accuracy" in text and "NDCG@10" in text


def test_report_figures_and_provenance(report: tuple[Path, str]) -> None:
    path, text = report
    figures = sorted((path.parent / "figures").glob("*.png"))
    assert {f.name for f in figures} == {
        "tradeoff.png",
        "benchmark-footwear.png",
        "benchmark-fmnist.png",
        "benchmark-deepfashion.png",
        "benchmark-custom.png",
        "class-f1-footwear-article-type.png",
        "class-f1-footwear-base-colour.png",
        "class-f1-fmnist-label.png",
        "training-fclip-footwear.png",
    }
    for figure in figures:
        _is_png(figure)
        assert f"](figures/{figure.name})" in text
    assert not list(path.parent.rglob("*.tmp"))  # temporary files were renamed into place
    assert "## Provenance" in text
    assert "`data-footwea`" in text and "`bench-footwe`" in text and "0.1.0+gabc1234" in text
    assert "2025-03-01 09:30" in text
    assert "Footwear · lace colour (all models): no item has the field lace_colour" in text
    assert "⚠" not in text and "†" not in text  # every compared run scored the same data


def test_wise_line_and_tradeoff(report: tuple[Path, str]) -> None:
    data = load_report_data(report[0].parent.parent / "results.duckdb")
    assert data.baseline.name == "fashion-clip"
    [line] = wise_lines(data)
    assert [(m.name, a) for m, a in line] == [
        ("fashion-clip", 0.0),
        ("fclip-footwear-wise-0.3", 0.3),
        ("fclip-footwear-wise-0.6", 0.6),
        ("fclip-footwear", 1.0),
    ]
    x, y = tradeoff_point(data, next(m for m in data.models if m.name == "fclip-footwear"))
    assert y > 3 and x < 0  # gains on the target, forgets elsewhere
    assert tradeoff_point(data, data.baseline) == (0.0, 0.0)


def test_baseline_models_and_data_mismatch(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    fill_db(db, with_wise=False, mismatch=True)
    data = load_report_data(db, baseline="fclip-footwear", models=["fashion-clip"])
    assert [m.name for m in data.models] == ["fclip-footwear", "fashion-clip"]
    text = render_markdown(data, Figures())
    assert "fclip-footwear (baseline)" in text
    assert "Δ fashion-clip" in text and "▼ -10.10 pts" in text
    assert "⚠️ **Fashion-MNIST**" in text and "▲ +6.20 pts †" in text  # different data
    assert "![" not in text  # no charts drawn, none linked
    with pytest.raises(ReportError, match=r"no-such-model.*fashion-clip"):
        load_report_data(db, baseline="no-such-model")
    assert choose_baseline(data.models).name == "fashion-clip"


def test_single_model_report(tmp_path: Path, low_dpi: None) -> None:
    db = tmp_path / "r.duckdb"
    store.write_run(db, make_run(BASE, "fmnist", [zeroshot("label", FMNIST, 0.7, 1000, 1)]))
    text = write_report(db, tmp_path / "out").read_text()
    assert "Only one model" in text and "Δ" not in text
    assert "70.00%" in text and "2520 / 5000" in text  # no target: pretest in the headline
    figures = tmp_path / "out" / "figures"
    assert sorted(f.name for f in figures.iterdir()) == [
        "benchmark-fmnist.png",
        "class-f1-fmnist-label.png",
    ]


def test_models_sharing_a_name(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    twin = ModelInfo(
        fingerprint="b" * 20, name=BASE.name, spec="hf:other/fashion-clip", backend="hf"
    )
    for model in (BASE, twin):
        store.write_run(db, make_run(model, "fmnist", [zeroshot("label", FMNIST, 0.7, 1000, 1)]))
    data = load_report_data(db, baseline="bbbbbbbb")  # a fingerprint prefix
    assert [m.name for m in data.models] == ["fashion-clip (bbbbbbbb)", "fashion-clip (ffffffff)"]
    assert "Δ fashion-clip (ffffffff)" in render_markdown(data, Figures())


def test_missing_or_empty_database(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "results.duckdb"
    with pytest.raises(store.StoreMissingError) as info:
        write_report(missing, tmp_path / "out")
    assert str(missing) in str(info.value)
    assert f"evalsuite score MODEL --db {missing}" in str(info.value)
    assert not missing.parent.exists()  # a read never creates the database
    empty = tmp_path / "empty.duckdb"
    with store.connect(empty) as con:
        con.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    with pytest.raises(ReportError, match=r"holds no scored runs.*evalsuite score MODEL --db"):
        write_report(empty, tmp_path / "out")
    assert not (tmp_path / "out" / "report.md").exists()


def fmnist_subset(source: Path, target: Path, n: int) -> Path:
    """The first ``n`` images and labels of the shared Fashion-MNIST files (a faster run)."""
    target.mkdir(parents=True)
    for kind, ndim, size in (("images", 3, 28 * 28), ("labels", 1, 1)):
        name = f"t10k-{kind}-idx{ndim}-ubyte"
        data = gzip.decompress((source / f"{name}.gz").read_bytes())
        header = 4 + 4 * ndim
        body = data[header : header + n * size]
        (target / name).write_bytes(data[:4] + n.to_bytes(4, "big") + data[8:header] + body)
    return target


def test_report_with_a_real_run(
    tmp_path: Path, tiny_hf_dir: Path, fmnist_dir: Path, low_dpi: None
) -> None:
    """A tiny random model really scored on 600 Fashion-MNIST images, next to a hand-made
    baseline run on the same benchmark."""
    from evalsuite.runner import score_model

    db = tmp_path / "r.duckdb"
    data = fmnist_subset(fmnist_dir, tmp_path / "fmnist", 600)
    [run] = score_model(
        tiny_hf_dir,
        benchmarks=("fmnist",),
        db_path=db,
        data_overrides={"fmnist": data},
        progress=False,
        n_bootstrap=50,
        cache_dir=tmp_path / "cache",
    )
    assert run.n_items == 600
    store.write_run(db, make_run(BASE, "fmnist", [zeroshot("label", FMNIST, 0.7, 1000, 1)]))
    text = write_report(db, tmp_path / "out").read_text()
    assert "fashion-clip (baseline)" in text and "Δ tiny-hf" in text
    pretest = run.metric("pretest")
    assert f"{round(pretest.value)} / {round(pretest.maximum)}" in text
    acc = run.metric("acc@1")
    assert f"{acc.value * 100:.2f}%" in text
    assert f"{(acc.value - 0.7) * 100:+.2f} pts" in text
    assert "⚠️ **Fashion-MNIST**" in text  # hand-made baseline: different data hash
    _is_png(tmp_path / "out" / "figures" / "class-f1-fmnist-label.png")
