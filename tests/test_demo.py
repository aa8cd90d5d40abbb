"""A shortened `make demo`: the same code path (data drawn, `prepare footwear`, the base
pretrained and fine-tuned with `accelerate launch -m finetune`, both scored) with fewer
images and epochs; the fine-tuned model must beat the base on the lace-colour benchmark."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_seed_table import SEED_LABELS, markdown_rows

from evalsuite.store import latest_metrics
from evalsuite.verdicts import compare_models
from examples.demo.__main__ import BASE_NAME, TUNED_NAME, DemoSettings, compare, run_demo
from tests.fixtures.report_tables import report_verdicts
from tests.fixtures.verdict_db import write_verdict_db

# Half the demo's shoes and base epochs; measured at about 3.5 min on 2 busy cores.
SHORT_N_FOOTWEAR = 1000
SHORT_BASE_EPOCHS = 10
SHORT_LACE_EPOCHS = 8


@pytest.mark.slow
def test_shortened_demo_fine_tune_beats_base_on_lace_colour(tmp_path: Path) -> None:
    settings = DemoSettings(
        work_dir=tmp_path / "demo",
        reports_dir=tmp_path / "reports",
        n_footwear=SHORT_N_FOOTWEAR,
        n_general_per_class=20,
        base_epochs=SHORT_BASE_EPOCHS,
        lace_epochs=SHORT_LACE_EPOCHS,
        serve=False,
    )
    db = run_demo(settings)
    metrics = latest_metrics(db)
    lace = metrics[(metrics["task"] == "lace_colour") & (metrics["metric"] == "acc@1")]
    value = dict(zip(lace["model_name"], lace["value"], strict=True))
    n_classes = 6
    assert value[TUNED_NAME] > value[BASE_NAME] + 0.05
    assert value[TUNED_NAME] > 1 / n_classes + 0.05  # above chance
    # the general benchmark was scored too, so the cost of fine-tuning is visible
    general = metrics[metrics["benchmark"] == "demo_general"]
    assert set(general["model_name"]) == {BASE_NAME, TUNED_NAME}
    # the report shows the verdicts `evalsuite compare` gives (the marked baseline, defaults)
    markdown = (tmp_path / "reports" / "report.md").read_text(encoding="utf-8")
    verdicts = report_verdicts(markdown)
    compared = compare_models(db, BASE_NAME, TUNED_NAME).as_dict()["metrics"]
    expected = {
        (TUNED_NAME, m["benchmark"], m["task"], m["metric"]): m["verdict"]
        for m in compared
        if m["gated"]
    }
    assert (TUNED_NAME, "demo_footwear", "lace_colour", "acc@1") in expected
    assert verdicts == expected
    # every row of the seed's table has a value, each stand-in labelled as one
    seed = markdown.split("## Results at a glance")[1].split("<details>")[0]
    rows = markdown_rows(seed)[1:]
    assert [r[0] for r in rows[: len(SEED_LABELS)]] == [f"{x} (demo stand-in)" for x in SEED_LABELS]
    assert not [r for r in rows if "not scored" in r or "—" in r[2:4]]


def test_demo_compare_goes_on_after_a_regression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Step 5 on a candidate with a significant regression: `compare` prints it and the gate's
    failure, exits 1, and the demo says CI would fail instead of stopping."""
    db = write_verdict_db(tmp_path / "v.duckdb")
    assert compare(db, "tuned") == 1
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "tuned: better on shoes lace" in out and "worse on shoes kind" in out
    assert out.count("worse on shoes kind") == 1  # the summary line printed once
    assert "FAIL: 4 significant regressions" in out
    assert "the gate would fail CI" in out


def test_demo_trains_again_over_its_previous_run(tmp_path: Path) -> None:
    """A second `make demo` reuses its work folder: its fine-tunes must replace the first
    demo's runs (finetune refuses an output folder holding another run unless told), not
    stop with "already holds another run"."""
    import yaml

    from examples.demo.__main__ import finetune
    from testkit.synthetic import write_synthetic_catalogue
    from testkit.tiny import build_tiny_hf

    model = build_tiny_hf(tmp_path / "model", seed=0, name="tiny-train")
    data = write_synthetic_catalogue(tmp_path / "catalogue", train=8, val=4, test=0)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"spec": str(model)}, "data": {"path": str(data)},
        "train": {"epochs": 1, "batch_size": 4},
    }))  # fmt: skip
    out = tmp_path / "runs" / "base"
    first = finetune(config, [], out)
    steps = (out / "steps.jsonl").read_text()
    assert finetune(config, [], out) == first
    assert (out / "steps.jsonl").read_text().count("\n") == steps.count("\n")  # replaced
