"""The Markdown + PNG report, from a database filled with realistic hand-made runs (and one
real Fashion-MNIST run of a tiny model)."""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import balanced_accuracy_score, f1_score

from evalsuite import store
from evalsuite.data.fmnist import CLASS_NAMES
from evalsuite.metrics.bootstrap import bootstrap_ci, classification_bootstrap
from evalsuite.metrics.retrieval import retrieval_metrics
from evalsuite.report import (
    Figures,
    ReportError,
    load_report_data,
    render_markdown,
    tradeoff_point,
    wise_lines,
    write_report,
)
from evalsuite.report import files as report_files
from evalsuite.results import (
    ClassMetric,
    MetricValue,
    ModelInfo,
    Prediction,
    QueryValue,
    RunResult,
)
from evalsuite.tasks.retrieval import _query_values
from evalsuite.verdicts import compare_models
from tests.fixtures.report_tables import report_verdicts
from tests.fixtures.verdict_db import write_verdict_db

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
# Fewer paired resamples than `compare`'s 10000 where no test compares the two: the same
# verdicts on these clear-cut fixtures, a fifth of the CPU time.
RESAMPLES = 2000

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


@dataclass(frozen=True)
class Paired:
    """Every model's results on one task's items (or queries), built from the baseline's:
    a model with mixing weight ``a`` (1 for the fine-tune) loses ``round(lost * a)`` of the
    baseline's right answers and gains ``round(gained * a)`` of its wrong ones (the first
    ones of a fixed draw, so WiSE checkpoints sit between the two ends). Stored metrics are
    computed from these results, as in a real run, so paired verdicts agree with them."""

    n: int
    right: int  # the baseline's right answers (zero-shot) or hits (retrieval)
    lost: int = 0
    gained: int = 0
    seed: int = 0

    def correct(self, a: float) -> np.ndarray:
        """(n,) bool: which units the model with weight ``a`` gets right."""
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(self.n)
        right, wrong = order[: self.right], order[self.right :]
        correct = np.zeros(self.n, bool)
        correct[right] = True
        correct[right[: round(self.lost * a)]] = False
        correct[wrong[: round(self.gained * a)]] = True
        return correct


def zeroshot(
    task: str, classes: list[str], paired: Paired, a: float, per_class: bool = True
) -> tuple[list[MetricValue], list[ClassMetric], list[Prediction]]:
    """Metrics, per-class F1 and per-item predictions of one zero-shot task: a wrong item's
    label and its true label's rank are fixed per item, whichever model gets it wrong."""
    rng = np.random.default_rng(paired.seed + 1)
    n_classes = len(classes)
    y_true = rng.integers(0, n_classes, paired.n)
    wrong_label = (y_true + rng.integers(1, n_classes, paired.n)) % n_classes
    wrong_rank = rng.integers(2, min(n_classes, 6) + 1, paired.n)
    correct = paired.correct(a)
    y_pred = np.where(correct, y_true, wrong_label)
    ranks = np.where(correct, 1, wrong_rank)
    points = np.maximum(6 - ranks, 0)  # pretest: 5 points for rank 1 down to 1 for rank 5
    cis = classification_bootstrap(y_true, y_pred, n_classes, 200, seed=0)
    f1 = f1_score(y_true, y_pred, labels=range(n_classes), average=None, zero_division=0)
    metrics = [
        MetricValue("acc@1", float(correct.mean()), None, *cis["accuracy"], task=task),
        MetricValue("acc@5", float(np.mean(ranks <= 5)), None, task=task),
        MetricValue("balanced_accuracy", float(balanced_accuracy_score(y_true, y_pred)),
                    None, *cis["balanced_accuracy"], task=task),
        MetricValue("f1_macro", float(f1.mean()), None, *cis["f1_macro"], task=task),
        MetricValue("f1_weighted", float(f1_score(y_true, y_pred, average="weighted")), None,
                    *cis["f1_weighted"], task=task),
        MetricValue("pretest", float(points.sum()), 5.0 * paired.n,
                    *bootstrap_ci(points, np.sum, 200), task=task),
    ]  # fmt: skip
    support = np.bincount(y_true, minlength=n_classes)
    class_rows = [
        ClassMetric(task, c, float(v), float(v), float(v), int(n))
        for c, v, n in zip(classes, f1, support, strict=True)
    ]
    predictions = [
        Prediction(task, f"item{i:05d}", classes[t], classes[p], bool(t == p), 0.5, int(r))
        for i, (t, p, r) in enumerate(zip(y_true, y_pred, ranks, strict=True))
    ]
    return metrics, class_rows if per_class else [], predictions


def retrieval(
    task: str, n_queries: int, paired: Paired, a: float
) -> tuple[list[MetricValue], list[QueryValue]]:
    """Metrics and per-query values of a top-10 retrieval task with ``paired.right`` hits
    for the baseline among its ``n_queries * 10`` retrieved items."""
    hit = paired.correct(a).reshape(n_queries, 10)
    result = retrieval_metrics(hit, np.full(n_queries, 20), ks=(1, 5, 10))
    top = float(result.hits_max)
    metrics = [
        MetricValue("ir_hits", float(result.hits), top, task=task),
        MetricValue("ir_by_position", result.by_position, result.by_position_max, task=task),
        MetricValue("MRR", result.mrr, task=task),
        MetricValue("P@10", result.precision[10], task=task),
        MetricValue("Recall@10", result.recall[10], task=task),
        MetricValue("NDCG@10", result.ndcg[10], task=task),
    ]
    ids = [f"q{q:03d}" for q in range(n_queries)]
    return metrics, _query_values(task, ids, result.per_query)


def make_run(
    model: ModelInfo,
    benchmark: str,
    tasks: list,
    hours: float = 0,
    data_hash: str = "",
    extra: dict | None = None,
) -> RunResult:
    """A run of ``tasks``: :func:`zeroshot` and :func:`retrieval` results."""
    run = RunResult(
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
        extra=extra or {"tasks": {}, "skipped_tasks": {}},
    )
    for parts in tasks:
        run.metrics += parts[0]
        if len(parts) == 3:
            run.class_metrics += parts[1]
            run.predictions += parts[2]
        else:
            run.query_values += parts[1]
    return run


# Each task's results: the fine-tune gains 10.10 pts on article type (a significant gain),
# 26 hits on text search, loses 6.20 pts on Fashion-MNIST (significant forgetting) and
# 0.30 pts on DeepFashion (30 items lost, 24 gained: a tie).
ARTICLE_TYPE = Paired(1000, 597, lost=20, gained=121, seed=1)
BASE_COLOUR = Paired(1000, 410, lost=30, gained=46, seed=2)
TEXT_SEARCH = Paired(390, 248, gained=26, seed=3)
IMAGE_SEARCH = Paired(130, 70, gained=4, seed=4)
FMNIST_LABEL = Paired(2000, 1424, lost=150, gained=26, seed=5)
DEEP_CATEGORY = Paired(2000, 602, lost=30, gained=24, seed=6)
CUSTOM_LABEL = Paired(60, 50, seed=7)


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
                    zeroshot("article_type", FOOTWEAR_TYPES, ARTICLE_TYPE, a),
                    zeroshot("base_colour", COLOURS, BASE_COLOUR, a),
                    retrieval("text_search", 39, TEXT_SEARCH, a),
                    retrieval("image_search", 13, IMAGE_SEARCH, a),
                ],
                hours=i,
                extra=extra,
            ),
        )
        fm_hash = "data-fmnist-OTHER-9999" if (mismatch and model is FINETUNE) else ""
        store.write_run(
            db,
            make_run(
                model, "fmnist", [zeroshot("label", FMNIST, FMNIST_LABEL, a)], hours=i,
                data_hash=fm_hash,
            ),
        )  # fmt: skip
        store.write_run(
            db,
            make_run(
                model, "deepfashion",
                [zeroshot("category", DEEP, DEEP_CATEGORY, a, per_class=False)], hours=i,
            ),
        )  # fmt: skip
        if model is BASE:  # the fine-tunes were not scored on custom: a "—" in their columns
            labels = ["boot", "sneaker", "loafer"]
            task = zeroshot("label", labels, CUSTOM_LABEL, a, per_class=False)
            store.write_run(db, make_run(model, "custom", [task]))


@pytest.fixture
def low_dpi(monkeypatch: pytest.MonkeyPatch) -> None:
    """Charts drawn at a low resolution: the same code paths, a fraction of the CPU time."""
    monkeypatch.setattr(report_files, "DPI", 60)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("report")
    fill_db(root / "results.duckdb")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(report_files, "DPI", 60)
        path = write_report(root / "results.duckdb", root / "out", n_resamples=RESAMPLES)
    return path, path.read_text(encoding="utf-8")


def _is_png(path: Path, min_side: int = 150) -> None:
    assert path.is_file(), path
    assert path.stat().st_size > 3000, path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert min(image.size) >= min_side, (path, image.size)


def _summary_of(text: str, model: str) -> str:
    """The summary of ``model``: its heading line and the bullets under it."""
    start = text.index(f"**{model}** against ")
    return text[start : text.index("\n\n", text.index("\n- ", start))]


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
    assert "59.70%" in text and "69.80%" in text
    assert "248 / 390" in text and "274 / 390" in text
    assert "59.70%<br><sub>[56.5, 62.6]</sub>" in text  # the baseline's acc@1 and its interval
    # changes: fractions in pts, points as whole numbers, markers of the paired verdicts
    assert "▲ +10.10 pts" in text  # 121 items gained, 20 lost of 1000: significant
    assert "▲ +26" in text  # 26 more hits spread over 39 queries, none lost
    assert "≈ -0.30 pts" in text  # deepfashion: 24 items gained, 30 lost: a tie
    assert "▼ -6.20 pts" in text  # fmnist forgetting: 26 gained, 150 lost
    # every compared run scored the same data and stored its per-item or per-query results
    headline = text.split("## Headline results")[1].split("## Is the change real?")[0]
    assert "n/a " not in headline
    # a gated metric the fine-tune lacks is listed as not comparable, never left out
    assert "n/a not comparable: the candidate has no result for it" in text
    row = next(line for line in text.splitlines() if line.startswith("| **Custom**"))
    assert row.count("—") == 6  # fine-tunes not scored on custom: value and change
    # plain-language summary: target gains, cost elsewhere, averages, every regression, gate
    assert (
        "On Footwear, the target benchmark: article type accuracy 59.70% → 69.80% "
        "(▲ +10.10 pts, significantly better)" in text
    )
    assert (
        "What fine-tuning cost elsewhere: Fashion-MNIST accuracy 71.20% → 65.00% "
        "(▼ -6.20 pts, significantly worse); DeepFashion accuracy 30.10% → 29.80% "
        "(≈ -0.30 pts, no significant change)" in text
    )
    assert "Not scored on Custom" in text
    assert re.search(r"primary scores: \+\d+\.\d\d pts on Footwear and -\d+\.\d\d pts", text)
    fine_tune = _summary_of(text, "fclip-footwear")
    assert "worse on fashion-mnist label (zero-shot accuracy -6.20 pts" in fine_tune
    assert "CI gate (`evalsuite compare`): **FAIL**, 4 significant regressions" in fine_tune
    assert (
        "Regression: fashion-mnist label: zero-shot accuracy 71.20% -> 65.00%, -6.20 pts, "
        "95% CI [-7.5, -4.9], p < 0.001 (exact McNemar, 26 items gained / 150 lost" in fine_tune
    )
    assert "within noise" not in text and "half-width" not in text
    assert "**Footwear · article type**" in text and "Pretest score" in text
    assert "IR score (hits)" in text and "IR score by position" in text
    assert "3822 / 5000" in text  # pretest points
    assert "<details><summary>Footwear</summary>" in text  # all metrics
    assert "Top-5 accuracy" in text and "NDCG@10" in text


def test_report_verdict_tables(report: tuple[Path, str]) -> None:
    """One "Is the change real?" table per model: every gated metric with its paired
    interval, adjusted p, detectable change and verdict, the method stated once."""
    _, text = report
    verdicts = report_verdicts(text)
    # 5 zero-shot tasks x 4 metrics, 2 retrieval x 2; custom's 4 are listed as not
    # comparable (only the baseline scored it), never left out of the gate's view
    gated_per_model = 5 * 4 + 2 * 2
    assert len(verdicts) == 3 * gated_per_model
    fine_tune = {k[1:]: v for k, v in verdicts.items() if k[0] == "fclip-footwear"}
    assert fine_tune[("custom", "label", "acc@1")] == "not comparable"
    assert fine_tune[("footwear", "article_type", "acc@1")] == "better"
    assert fine_tune[("footwear", "text_search", "ir_hits")] == "better"
    assert fine_tune[("fmnist", "label", "acc@1")] == "worse"
    assert fine_tune[("deepfashion", "category", "acc@1")] == "tied"
    assert fine_tune[("footwear", "base_colour", "acc@1")] == "tied"
    assert verdicts[("fclip-footwear-wise-0.3", "fmnist", "label", "acc@1")] == "worse"
    row = next(line for line in text.splitlines() if "`fmnist/label/acc@1`" in line)
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[:9] == [
        "Fashion-MNIST", "Zero-shot accuracy", "71.20%", "65.00%", "-6.20 pts",
        "[-7.5, -4.9]", "< 0.001", "1.87 pts", "▼ worse, **regression**",
    ]  # fmt: skip
    assert "## Is the change real?" in text
    assert text.count("### fclip-footwear-wise-0.6 against fashion-clip") == 1
    assert "20 gated and 16 other comparisons, Benjamini-Hochberg-corrected at alpha = 0.05" in text
    assert text.count("How to read these tables") == 1
    assert "exact McNemar test" in text and "paired bootstrap" in text


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
    assert "⚠" not in text  # every compared run scored the same data


def test_wise_line_and_tradeoff(report: tuple[Path, str]) -> None:
    data = load_report_data(report[0].parent.parent / "results.duckdb", n_resamples=100)
    assert data.baseline.name == "fashion-clip"  # the model the fine-tunes name as base
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
    data = load_report_data(
        db, baseline="fclip-footwear", models=["fashion-clip"], n_resamples=RESAMPLES
    )
    assert [m.name for m in data.models] == ["fclip-footwear", "fashion-clip"]
    text = render_markdown(data, Figures())
    assert "fclip-footwear (baseline)" in text
    assert "Δ fashion-clip" in text and "▼ -10.10 pts" in text
    # different data: the change is shown, not judged, and a note says why
    assert "⚠️ **Fashion-MNIST**" in text and "| n/a +6.20 pts<sup>1</sup> |" in text
    assert (
        "n/a: not comparable, because <sup>1</sup> scored on different data (data manifest "
        "hashes differ)." in text
    )
    assert "8 gated metrics are not comparable (fashion-mnist label: scored on different" in text
    assert "custom label: the baseline has no result for it" in text  # only one model has it
    assert report_verdicts(text)[("fashion-clip", "fmnist", "label", "acc@1")] == "not comparable"
    assert "![" not in text  # no charts drawn, none linked
    with pytest.raises(ReportError, match=r"no-such-model.*fashion-clip"):
        load_report_data(db, baseline="no-such-model")


def test_baseline_rule(tmp_path: Path) -> None:
    """The baseline of `evalsuite.verdicts.choose_baseline`: --baseline, else the model
    marked in the database, else the one model the fine-tunes name as base, else an error."""
    db = tmp_path / "r.duckdb"
    fill_db(db, with_wise=False)

    def baseline(explicit: str | None = None) -> str:
        return load_report_data(db, baseline=explicit, n_resamples=10).baseline.name

    assert baseline() == "fashion-clip"  # named as base by the fine-tune
    store.mark_baseline(db, "fclip-footwear")
    assert baseline() == "fclip-footwear"  # marked
    assert baseline("fashion-clip") == "fashion-clip"  # asked for
    other = tmp_path / "other.duckdb"
    twin = ModelInfo(fingerprint="c" * 20, name="openai-clip", spec="hf:openai/clip", backend="hf")
    for model in (BASE, twin):  # no fine-tune, none marked: a name like FashionCLIP is no rule
        task = zeroshot("label", FMNIST, Paired(1000, 700), 0)
        store.write_run(other, make_run(model, "fmnist", [task]))
    with pytest.raises(ReportError, match=r"--baseline NAME.*`evalsuite baseline NAME`"):
        write_report(other, tmp_path / "out")
    assert not (tmp_path / "out" / "report.md").exists()


def test_report_of_the_verdict_db(tmp_path: Path, low_dpi: None) -> None:
    """The verdict fixture: the report names the regression on shoes kind with its interval
    and p-value, the gain on lace, the tie on search and why general/type of ``other`` is not
    comparable; and it agrees with `compare` (same defaults) on every gated metric."""
    db = write_verdict_db(tmp_path / "v.duckdb")
    text = write_report(db, tmp_path / "out", target="shoes").read_text()
    tuned = _summary_of(text, "tuned")
    assert "kind accuracy 68.75% → 59.50% (▼ -9.25 pts, significantly worse)" in tuned
    assert "lace accuracy 42.50% → 69.00% (▲ +26.50 pts, significantly better)" in tuned
    assert "search IR score (hits) 127 / 400 → 129 / 400 (≈ +2, no significant change)" in tuned
    assert "worse on shoes kind (zero-shot accuracy -9.25 pts" in tuned
    assert "CI gate (`evalsuite compare`): **FAIL**" in tuned
    assert (
        "Regression: shoes kind: zero-shot accuracy 68.75% -> 59.50%, -9.25 pts, 95% CI "
        "[-12.5, -6.2], p < 0.001 (exact McNemar, 3 items gained / 40 lost" in tuned
    )
    kind = next(line for line in text.splitlines() if "`shoes/kind/acc@1`" in line
                and "59.50%" in line)  # fmt: skip
    assert "| -9.25 pts | [-12.5, -6.2] | < 0.001 | 4.45 pts | ▼ worse, **regression** |" in kind
    other = _summary_of(text, "other")
    assert "Elsewhere: general accuracy 79.33% → 79.00% (n/a -0.33 pts, not comparable)" in other
    assert "4 gated metrics are not comparable (general type: scored on different data" in other
    assert "CI gate (`evalsuite compare`): **PASS**" in other
    verdicts = report_verdicts(text)
    assert verdicts[("tuned", "shoes", "kind", "acc@1")] == "worse"
    assert verdicts[("tuned", "shoes", "lace", "acc@1")] == "better"
    assert verdicts[("tuned", "shoes", "search", "ir_hits")] == "tied"
    assert verdicts[("other", "general", "type", "acc@1")] == "not comparable"
    row = next(line for line in text.splitlines() if "`general/type/acc@1`" in line
               and "n/a" in line)  # fmt: skip
    assert "n/a not comparable: scored on different data (data manifest hashes differ)" in row
    for candidate in ("tuned", "other"):
        compared = compare_models(db, "base", candidate).as_dict()["metrics"]
        expected = {
            (candidate, m["benchmark"], m["task"], m["metric"]): m["verdict"]
            for m in compared
            if m["gated"]
        }
        assert {k: v for k, v in verdicts.items() if k[0] == candidate} == expected


def test_single_model_report(tmp_path: Path, low_dpi: None) -> None:
    db = tmp_path / "r.duckdb"
    run = make_run(BASE, "fmnist", [zeroshot("label", FMNIST, Paired(1000, 700), 0)])
    store.write_run(db, run)
    text = write_report(db, tmp_path / "out").read_text()  # no baseline needed
    assert "Only one model" in text and "Δ" not in text and "Is the change real" not in text
    pretest = run.metric("pretest")
    assert "70.00%" in text and f"{pretest.value:.0f} / 5000" in text  # no target: pretest
    figures = tmp_path / "out" / "figures"
    assert sorted(f.name for f in figures.iterdir()) == [
        "benchmark-fmnist.png",
        "class-f1-fmnist-label.png",
    ]


def test_a_name_rescored_with_other_weights_and_a_copy_under_another_name(
    tmp_path: Path,
) -> None:
    """A model is its name: re-scored with other weights it shows once, with its current
    weights; the same weights under another name are another model, said to be a copy."""
    db = tmp_path / "r.duckdb"
    rescored = ModelInfo(
        fingerprint="b" * 20, name=BASE.name, spec="hf:other/fashion-clip", backend="hf"
    )
    copy = ModelInfo(fingerprint="b" * 20, name="fashion-clip-copy", spec="hf:x", backend="hf")
    for hours, (model, correct) in enumerate(((BASE, 600), (rescored, 700), (copy, 700))):
        task = zeroshot("label", FMNIST, Paired(1000, correct), 0)
        store.write_run(db, make_run(model, "fmnist", [task], hours=hours))
    data = load_report_data(db, baseline="fashion-clip", n_resamples=100)
    assert [(m.name, m.fingerprint) for m in data.models] == [
        ("fashion-clip", "b" * 20),
        ("fashion-clip-copy", "b" * 20),
    ]
    text = render_markdown(data, Figures())
    assert "Δ fashion-clip-copy" in text
    assert "≈ 0.00 pts" in text  # the same predictions: tied
    assert "### fashion-clip-copy against fashion-clip" in text
    assert "same weights as fashion-clip" in text
    with pytest.raises(ReportError, match="fingerprint prefix of 2 scored models"):
        load_report_data(db, baseline="bbbbbbbb", n_resamples=100)


def test_missing_or_empty_database(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "results.duckdb"
    with pytest.raises(store.StoreMissingError) as info:
        write_report(missing, tmp_path / "out")
    assert str(missing) in str(info.value)
    assert f"evalsuite score MODEL --db {missing}" in str(info.value)
    assert not missing.parent.exists()  # a read never creates the database
    empty = tmp_path / "empty.duckdb"
    with store.connect(empty) as con:  # a DuckDB file without tables (one with another
        con.execute("SELECT 1")  # program's tables is refused: tests/faults/test_results_database)
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
    task = zeroshot("label", FMNIST, Paired(1000, 700), 0)
    store.write_run(db, make_run(BASE, "fmnist", [task]))
    store.mark_baseline(db, "fashion-clip")
    text = write_report(db, tmp_path / "out").read_text()
    assert "fashion-clip (baseline)" in text and "Δ tiny-hf" in text
    pretest = run.metric("pretest")
    assert f"{round(pretest.value)} / {round(pretest.maximum)}" in text
    acc = run.metric("acc@1")
    assert f"{acc.value * 100:.2f}%" in text
    # hand-made baseline: another benchmark hash, so not comparable, and the report says why
    assert f"n/a {(acc.value - 0.7) * 100:+.2f} pts<sup>1</sup>" in text
    assert "<sup>1</sup> scored with different versions of the benchmark" in text
    assert "⚠️ **Fashion-MNIST**" in text
    _is_png(tmp_path / "out" / "figures" / "class-f1-fmnist-label.png")
