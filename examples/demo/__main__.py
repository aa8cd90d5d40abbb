"""``make demo``: the user story end to end, offline, on data and a model the suite makes.

1. draw a procedural footwear catalogue (Kaggle layout, shoelace annotations) and a small
   general benchmark of other objects (``examples.demo.synth``);
2. prepare the catalogue twice with ``evalsuite prepare footwear``: with generic captions
   only (never a word about laces) and with the hand-checked lace-colour sentence;
3. pretrain a tiny CLIP on the generic captions: the stand-in for FashionCLIP;
4. fine-tune it on the lace-enriched captions with ``accelerate launch -m finetune``;
5. score both with ``evalsuite score``, mark the base as the baseline, compare the fine-tune
   with it (``evalsuite compare``: paired verdicts on the gated metrics), write
   ``reports/demo/`` and serve the leaderboard (``DEMO_NO_SERVE=1`` skips serving).

Everything here is synthetic: the numbers show that the suite works, not how good a model is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from evalsuite.cli import main as evalsuite_main
from evalsuite.command_output import EXIT_OK, EXIT_REGRESSION
from evalsuite.data.catalogue import read_catalogue
from evalsuite.data.custom import read_labelled_csv
from evalsuite.data.items import Item
from evalsuite.data.prepare import prepare_footwear
from examples.demo.synth import generate_footwear_catalogue, generate_general_benchmark
from testkit.tiny import build_tiny_hf

ROOT = Path(__file__).resolve().parents[2]
console = Console()
BASE_NAME = "demo-base (FashionCLIP stand-in)"
TUNED_NAME = "demo-lace-finetuned"
BENCHMARKS = "demo_footwear,demo_general"


@dataclass(frozen=True)
class DemoSettings:
    """Sizes and budgets of the demo; the test runs the same path with smaller ones."""

    work_dir: Path = ROOT / "demo"
    reports_dir: Path = ROOT / "reports" / "demo"
    n_footwear: int = 2000
    n_general_per_class: int = 60
    base_epochs: int = 20
    lace_epochs: int = 8
    base_config: Path = ROOT / "configs" / "demo_base.yaml"
    lace_config: Path = ROOT / "configs" / "demo_lace.yaml"
    extra_overrides: tuple[str, ...] = ()  # --set KEY=VALUE for both training runs
    seed: int = 0
    serve: bool = True
    port: int = 8501


def _step(number: int, title: str) -> None:
    console.rule(f"[bold]Step {number}/6: {title}")


def make_data(s: DemoSettings) -> dict[str, Path]:
    """Draw the data and prepare the catalogue, with and without lace sentences."""
    data = s.work_dir / "data"
    generate_footwear_catalogue(data / "footwear", n_items=s.n_footwear, seed=s.seed)
    generate_general_benchmark(data / "general", n_per_class=s.n_general_per_class, seed=s.seed)
    raw = data / "footwear"
    common = {"captions": raw / "generated_captions.jsonl", "seed": s.seed}
    prepare_footwear(raw / "images", raw / "styles.csv", data / "footwear-generic", **common)
    prepare_footwear(
        raw / "images",
        raw / "styles.csv",
        data / "footwear-prepared",
        annotations=raw / "lace_annotations.csv",
        **common,
    )
    pretrain = write_pretraining_catalogue(
        data / "footwear-generic", data / "general", data / "pretrain"
    )
    return {
        "general": data / "general",
        "footwear": data / "footwear-prepared",
        "pretrain": pretrain,
    }


def write_pretraining_catalogue(footwear: Path, general: Path, out: Path) -> Path:
    """The base model's training set: generic footwear captions plus the general objects'
    train split, as one prepared catalogue (the layout ``finetune`` reads)."""
    out.mkdir(parents=True, exist_ok=True)
    for split, general_split in (("train", "train"), ("val", "test")):
        records = [_record(item, item.caption) for item in read_catalogue(footwear, split)]
        for item in read_labelled_csv(general / "labels.csv", split=general_split):
            fields = {
                "articleType": item.fields["label"],
                "baseColour": item.fields.get("colour", ""),
                "masterCategory": "Apparel",
            }
            records.append(
                {
                    "id": f"general-{item.id}",
                    "image": str(item.path),
                    **fields,
                    "description": item.caption,
                }
            )
        lines = "".join(json.dumps(r) + "\n" for r in records)
        (out / f"{split}.jsonl").write_text(lines, encoding="utf-8")
    (out / "test.jsonl").write_text("", encoding="utf-8")
    return out


def _record(item: Item, caption: str | None) -> dict:
    return {
        "id": item.id,
        "image": str(item.path),
        **item.fields,
        "lace_colour": None,
        "description": caption,
    }


def finetune(config: Path, overrides: list[str], out: Path) -> Path:
    """``accelerate launch -m finetune``, exactly as a user runs it; returns ``out/best``."""
    command = [
        str(Path(sys.executable).parent / "accelerate"),
        "launch",
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "finetune",
        "--config",
        str(config),
        "--output-dir",
        str(out),
        "--overwrite",  # each demo trains afresh; a second `make demo` replaces the first's run
    ]
    for override in overrides:
        command += ["--set", override]
    console.print("$ accelerate " + " ".join(command[1:]), style="dim")
    subprocess.run(command, check=True, cwd=ROOT)
    return out / "best"


def score(checkpoint: Path, name: str, data: dict[str, Path], db: Path) -> None:
    args = [
        "--db",
        str(db),
        "score",
        str(checkpoint),
        "--name",
        name,
        "--benchmarks",
        BENCHMARKS,
        "--data",
        f"demo_footwear={data['footwear']}",
        "--data",
        f"demo_general={data['general']}",
    ]
    console.print("$ evalsuite " + " ".join(args), style="dim")
    if evalsuite_main(args) != 0:
        raise SystemExit(f"scoring {checkpoint} failed")


def evalsuite(*args: str) -> int:
    """``evalsuite ARGS``, echoed as a user would type it; returns its exit code."""
    console.print("$ evalsuite " + " ".join(args), style="dim")
    return evalsuite_main(list(args))


def compare(db: Path, candidate: str = TUNED_NAME) -> int:
    """``evalsuite compare`` against the marked baseline on the default gated metrics: it
    prints every verdict, the candidate's summary line and the gate's decision. A regression
    (exit 1) is what the demo exists to show, so it is reported, not raised."""
    code = evalsuite("--db", str(db), "compare", "--candidate", candidate)
    if code == EXIT_REGRESSION:
        console.print(
            f"[bold red]the gate would fail CI:[/bold red] `evalsuite compare` exits "
            f"{EXIT_REGRESSION} on these regressions of {candidate} (the demo goes on)"
        )
    elif code != EXIT_OK:
        raise SystemExit(f"comparing {candidate} with the baseline failed")
    return code


def run_demo(s: DemoSettings) -> Path:
    """Every step of the demo; returns the results database."""
    clock = time.perf_counter()
    db = s.reports_dir / "results.duckdb"
    db.unlink(missing_ok=True)
    _step(1, "drawing the embedded data set (procedural shoes with laces, other objects)")
    data = make_data(s)
    _step(2, "pretraining the tiny base CLIP on generic captions (no laces)")
    init = build_tiny_hf(s.work_dir / "models" / "tiny-init", seed=s.seed)
    base = finetune(
        s.base_config,
        [
            f"model.spec={init}",
            f"data.path={data['pretrain']}",
            f"train.epochs={s.base_epochs}",
            *s.extra_overrides,
        ],
        s.work_dir / "runs" / "base",
    )
    _step(3, "fine-tuning on lace-colour captions with accelerate launch -m finetune")
    tuned = finetune(
        s.lace_config,
        [
            f"model.spec={base}",
            f"data.path={data['footwear']}",
            f"train.epochs={s.lace_epochs}",
            *s.extra_overrides,
        ],
        s.work_dir / "runs" / "lace",
    )
    _step(4, "scoring both models on every demo benchmark")
    score(base, BASE_NAME, data, db)
    score(tuned, TUNED_NAME, data, db)
    # compare, report and leaderboard default to the marked baseline
    if evalsuite("--db", str(db), "baseline", BASE_NAME) != EXIT_OK:
        raise SystemExit(f"marking {BASE_NAME} as the baseline failed")
    _step(5, "the gain on the target and the cost elsewhere")
    compare(db)
    if evalsuite("--db", str(db), "report", "--out", str(s.reports_dir)) != EXIT_OK:
        raise SystemExit("writing the report failed")
    console.print(f"demo finished in {time.perf_counter() - clock:.0f} s")
    return db


def serve(s: DemoSettings, db: Path) -> None:
    _step(6, "the leaderboard")
    from dashboards.serve import main as serve_leaderboard

    console.print(f"leaderboard: http://localhost:{s.port}  (Ctrl-C to stop)")
    serve_leaderboard(db, port=s.port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.demo", description=__doc__)
    parser.add_argument("--work-dir", type=Path, default=DemoSettings.work_dir)
    parser.add_argument("--n-footwear", type=int, default=DemoSettings.n_footwear)
    parser.add_argument("--base-epochs", type=int, default=DemoSettings.base_epochs)
    parser.add_argument("--lace-epochs", type=int, default=DemoSettings.lace_epochs)
    parser.add_argument("--port", type=int, default=DemoSettings.port)
    args = parser.parse_args(argv)
    settings = DemoSettings(
        work_dir=args.work_dir,
        n_footwear=args.n_footwear,
        base_epochs=args.base_epochs,
        lace_epochs=args.lace_epochs,
        port=args.port,
        serve=os.environ.get("DEMO_NO_SERVE", "") in ("", "0"),
    )
    db = run_demo(settings)
    if settings.serve:
        serve(settings, db)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
