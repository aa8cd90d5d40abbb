"""Helpers of the fault tests: child interpreters that run this checkout's code, kill points.

Faults are injected from outside the product code: each child runs ``python -c`` with a
small preamble that wraps one function so that its k-th call SIGKILLs the process (a real
SIGKILL: no finally blocks, no atexit, no flush), then hands over to the real entry point.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Defines die(): the AT-th call (argv[2]) SIGKILLs this process. Shared by every kill script.
KILL_PREAMBLE = """
import os, signal, sys
MODE, AT = sys.argv[1], int(sys.argv[2])
_calls = 0

def die():
    global _calls
    _calls += 1
    if _calls == AT:
        print(f"fault: SIGKILL at {MODE} #{AT}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
"""


def child_env(**extra: str) -> dict[str, str]:
    """Environment of a child interpreter that imports this checkout (not another install)."""
    path = os.pathsep.join([str(ROOT), str(Path(__file__).parent)])
    return {
        **os.environ,
        "PYTHONPATH": path,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def run_script(
    script: str, *args: str, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python -c script args`` from the repository root and wait for it."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        cwd=ROOT,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def fault_rng() -> tuple[int, random.Random]:
    """(seed, generator) choosing the kill points; FAULTS_SEED=<seed> replays a failure, and
    every assertion message of a randomised test shows the seed."""
    seed = int(os.environ.get("FAULTS_SEED") or random.SystemRandom().randrange(1_000_000))
    return seed, random.Random(seed)


# --- a small benchmark over generated images, for scoring in a child process ---------------

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220)}
BENCHMARK = """\
name: {name}
version: 1
dataset:
  reader: labelled_csv
  path: {csv}
tasks:
  - type: zeroshot
    name: colour
    field: label
    templates: ["a photo of a {{}} square."]
  - type: text_to_image
    name: search
    queries: queries.jsonl
    k: 5
    ks: [1, 5]
"""
QUERIES = "".join(
    f'{{"id": "{colour}", "text": "a {colour} square", "where": {{"label": "{colour}"}}}}\n'
    for colour in COLOURS
)
TABLES = ("runs", "metrics", "class_metrics", "confusion", "predictions", "retrievals",
          "skipped_images")  # fmt: skip


def write_images_csv(folder: Path, per_colour: int = 4) -> Path:
    """``labels.csv`` (path,label) over small squares of three colours, with some noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["path,label"]
    for colour, rgb in COLOURS.items():
        for i in range(per_colour):
            noise = rng.integers(-20, 20, (24, 24, 3))
            pixels = np.clip(np.array(rgb) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{colour}{i}.png")
            lines.append(f"{colour}{i}.png,{colour}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return folder / "labels.csv"


def write_benchmarks(folder: Path, csv: Path, names: tuple[str, ...]) -> Path:
    """A benchmarks folder (for EVALSUITE_BENCHMARKS_DIR) of identical benchmarks on ``csv``."""
    for name in names:
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / f"{name}.yaml").write_text(BENCHMARK.format(name=name, csv=csv))
        (folder / name / "queries.jsonl").write_text(QUERIES)
    return folder


def score_args(db: Path, model: Path, benchmarks: tuple[str, ...], cache: Path) -> list[str]:
    """`evalsuite` argv scoring ``model`` quickly (no decode workers, few resamples)."""
    return ["--db", str(db), "score", str(model), "--benchmarks", ",".join(benchmarks),
            "--workers", "0", "--bootstrap", "50", "--cache-dir", str(cache), "--json"]  # fmt: skip


def table_counts(db: Path) -> dict[str, dict[str, int]]:
    """Rows per table and benchmark: {table: {benchmark: count}}; orphans under "<orphan>"."""
    import duckdb

    counts: dict[str, dict[str, int]] = {}
    with duckdb.connect(str(db), read_only=True) as con:
        for table in TABLES:
            rows = con.execute(
                f"SELECT coalesce(r.benchmark, '<orphan>'), count(*) FROM {table} t "
                "LEFT JOIN runs r USING (run_id) GROUP BY ALL"
            ).fetchall()
            counts[table] = dict(rows)
    return counts


# a ~0.4M-parameter CLIP (testkit/configs/tiny-train.json): a run of a few steps
# takes seconds
TINY_TRAIN = {"name": "tiny-train"}


def tiny_training_inputs(folder: Path) -> tuple[Path, Path]:
    """A tiny HF model folder and a synthetic catalogue (8 train, 4 val items) in ``folder``."""
    from testkit.synthetic import write_synthetic_catalogue
    from testkit.tiny import build_tiny_hf

    model = build_tiny_hf(folder / "model", seed=0, **TINY_TRAIN)
    return model, write_synthetic_catalogue(folder / "catalogue", train=8, val=4, test=0)
