"""A SigLIP from fine-tune to board: a tiny Hugging Face SiglipModel (its tokenizer trained on
the catalogue's captions), fine-tuned on real catalogue images with the sigmoid loss chosen
for it, lowers its validation loss; `evalsuite score` then scores the checkpoint and records
the model's own formula (sigmoid, with its trained scale and bias)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb
import pytest
from accelerate.state import AcceleratorState
from test_finetune_train import run_config

from evalsuite.cli import main
from evalsuite.models import load_model
from finetune.config import validate_config
from finetune.loop import train
from testkit.tiny_siglip import INIT_LOGIT_BIAS, build_tiny_hf_siglip


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    yield
    AcceleratorState._reset_state(True)


def _captions(styles: Path) -> list[str]:
    with styles.open(encoding="utf-8") as handle:
        names = [row["productDisplayName"] for row in csv.DictReader(handle)]
    return [*names, *(f"a photo of {t.lower()}." for t in ("heels", "flip flops", "shoes"))]


@pytest.mark.slow
def test_siglip_fine_tunes_on_real_images_then_scores(catalogue_dir: Path, tmp_path: Path) -> None:
    from evalsuite.data.prepare import prepare_footwear

    styles = catalogue_dir / "styles.csv"  # every footwear item: 80/20 split, 10% validation
    data = tmp_path / "footwear"
    prepare_footwear(catalogue_dir / "images", styles, data, seed=0)
    model_dir = build_tiny_hf_siglip(tmp_path / "siglip", _captions(styles), seed=0)
    base = load_model(model_dir)
    assert (base.objective, base.logit_bias) == ("sigmoid", INIT_LOGIT_BIAS)

    cfg = run_config(
        model_dir,
        data,
        tmp_path / "run",
        data={"templates": ["a photo of {}."]},
        optim={"lr": 3e-3},
        schedule={"name": "cosine", "warmup_steps": 2},
        train={"epochs": 2, "batch_size": 32, "log_every": 10},
        output={"run_name": "tiny-siglip-ft"},
    )  # no loss.objective: the model's logit bias makes it sigmoid
    history = train(validate_config(cfg)).history
    print("\n".join(json.dumps(h) for h in history))
    assert history[-1]["val_loss"] < history[0]["val_loss"]

    best = tmp_path / "run" / "best"
    training = json.loads((best / "training.json").read_text())
    assert training["config"]["loss"]["objective"] == "sigmoid"
    assert (
        'transformers.SiglipModel.from_pretrained("<this folder>")'
        in (best / "README.md").read_text()
    )
    tuned = load_model(best)
    assert tuned.objective == "sigmoid" and tuned.logit_bias != INIT_LOGIT_BIAS

    db = tmp_path / "results.duckdb"
    argv = ["--db", str(db), "score", str(best), "--benchmarks", "footwear", "--data",
            f"footwear={data}", "--workers", "0", "--bootstrap", "20",
            "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    assert main(argv) == 0
    with duckdb.connect(str(db), read_only=True) as con:
        extra, backend = con.execute(
            "SELECT r.extra, m.backend FROM runs r JOIN models m ON m.name = r.model_name "
            "WHERE r.model_name = 'tiny-siglip-ft'"
        ).fetchone()
        n_metrics = con.execute("SELECT count(*) FROM metrics").fetchone()[0]
    formula = json.loads(extra)["score_formula"]
    assert backend == "hf" and n_metrics > 0
    assert formula["kind"] == "sigmoid"
    assert formula["logit_bias"] == pytest.approx(tuned.logit_bias)
    assert formula["logit_scale"] == pytest.approx(tuned.logit_scale)
