"""`evalsuite score` on every benchmark against the raw model forward, measured in one run.

    python benchmarks/speed/score.py [--model tiny|vit-b-32] [--precision fp32|bf16|both]

The data are the real ones: the footwear benchmark prepared from the Kaggle catalogue subset
(``prepare_footwear``, test split) and the Fashion-MNIST test files, both under
$FASHION_SHARED_DATA (default ../shared/data). For each precision the script times

- raw: the model's forward + normalisation alone over tensors decoded beforehand, at the
  same batch size, the better of 1 and all torch threads (before and after, averaged);
- cold: ``python -m evalsuite score MODEL --benchmarks footwear,fmnist`` in a subprocess with
  an empty embedding cache: the whole user path (defaults: 1000 bootstrap resamples, DB write);
- warm: the same command again, unchanged model and data (cache hits, no forward);
- warm with ``--skip-existing``: the runs already in the database are found and not redone.

Ratios: suite images/s over raw images/s, counted two ways: "runner" uses the seconds the
runner reports per benchmark (data loading, hashing, decoding, forward, text prompts, tasks
and bootstraps), "CLI" the wall time of the command (adds interpreter start, imports, model
load and the database writes: a fixed cost, not proportional to the data). With both
precisions it also compares bf16 with fp32: the cosine between the cached embeddings of
every image, and the largest metric differences.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import torch
from embed import (
    SHARED_DATA,
    best_raw_rate,
    build_model,
    cpu_seconds,
    fmt_rates,
    load_average,
    machine,
    model_spec,
    predecode,
    raw_text_rate,
)

from evalsuite.data.prepare import prepare_footwear
from evalsuite.spec import load_benchmark
from evalsuite.spec_data import resolve_dataset

BENCHMARKS = ("footwear", "fmnist")


def prepare_data(workdir: Path) -> dict[str, Path]:
    catalogue = SHARED_DATA / "fashion-product-images-small"
    if not (catalogue / "styles.csv").is_file():
        raise SystemExit(f"no catalogue at {catalogue}; set FASHION_SHARED_DATA")
    out = workdir / "footwear"
    prepare_footwear(catalogue / "images", catalogue / "styles.csv", out)
    return {"footwear": out}


def fmnist_subset(workdir: Path, n: int) -> Path:
    """The first ``n`` Fashion-MNIST test images and labels, as IDX files in a new folder."""
    from evalsuite.data.fmnist import load_split

    images, labels = load_split(SHARED_DATA / "fashion-mnist-test", "test")
    out = workdir / "fmnist"
    out.mkdir()
    n = min(n, len(labels))
    header = np.array([0x803, n, 28, 28], ">u4").tobytes()
    (out / "t10k-images-idx3-ubyte").write_bytes(header + images[:n].astype(np.uint8).tobytes())
    header = np.array([0x801, n], ">u4").tobytes()
    (out / "t10k-labels-idx1-ubyte").write_bytes(header + labels[:n].astype(np.uint8).tobytes())
    return out


def load_items(overrides: dict[str, Path]) -> list:
    items = []
    for name in BENCHMARKS:
        spec = load_benchmark(name)
        items += resolve_dataset(spec, SHARED_DATA, overrides.get(name)).load()
    return items


def score_command(spec: str, workdir: Path, overrides: dict[str, Path], precision: str,
                  batch_size: int) -> list[str]:  # fmt: skip
    command = [sys.executable, "-m", "evalsuite", "--db", str(workdir / f"{precision}.duckdb"),
               "score", spec, "--benchmarks", ",".join(BENCHMARKS), "--data-root",
               str(SHARED_DATA), "--cache-dir", str(workdir / "cache"), "--precision", precision,
               "--batch-size", str(batch_size), "--json"]  # fmt: skip
    for name, path in overrides.items():
        command += ["--data", f"{name}={path}"]
    return command


def run_cli(command: list[str]) -> tuple[float, float, list[dict]]:
    """(wall seconds, CPU seconds of the command and its workers, its JSON output)."""
    start, cpu = time.perf_counter(), cpu_seconds()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    if done.returncode != 0:
        raise SystemExit(f"evalsuite score failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, cpu, json.loads(done.stdout)


def forwards(db: Path) -> list[int]:
    """images_forwarded of every run in ``db``, oldest first."""
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT extra FROM runs ORDER BY started_at").fetchall()
    return [json.loads(extra)["images_forwarded"] for (extra,) in rows]


def startup_seconds(spec: str) -> tuple[float, float]:
    """(wall, CPU) seconds of interpreter start, the CLI's imports and the model load: the
    fixed cost of a run."""
    code = (
        "import evalsuite.cli, evalsuite.commands, evalsuite.runner\n"
        "from evalsuite.models import load_model\n"
        f"load_model({spec!r})\n"
    )
    start, cpu = time.perf_counter(), cpu_seconds()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - start, cpu_seconds() - cpu


def metric_values(runs: list[dict]) -> dict[tuple[str, str, str], float]:
    return {
        (run["benchmark"], m["task"], m["name"]): m["value"] for run in runs for m in run["metrics"]
    }


def cached_vectors(cache: Path, precision: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for shard in sorted(cache.glob(f"*/{precision}/shard-*.npz")):
        with np.load(shard) as data:
            out.update(zip(data["keys"].tolist(), data["vectors"], strict=True))
    return out


def compare_precisions(workdir: Path, runs: dict[str, list[dict]]) -> None:
    fp32, bf16 = (
        cached_vectors(workdir / "cache", "fp32"),
        cached_vectors(workdir / "cache", "bf16"),
    )
    keys = sorted(k for k in fp32.keys() & bf16.keys() if not k.startswith("text:"))
    cosine = np.sum(np.stack([fp32[k] for k in keys]) * np.stack([bf16[k] for k in keys]), 1)
    texts = sorted(k for k in fp32.keys() & bf16.keys() if k.startswith("text:"))
    text_cos = np.sum(np.stack([fp32[k] for k in texts]) * np.stack([bf16[k] for k in texts]), 1)
    print(
        f"bf16 vs fp32 cosine over {len(keys)} image embeddings: min {cosine.min():.4f}, "
        f"mean {cosine.mean():.4f}; over {len(texts)} text embeddings: min "
        f"{text_cos.min():.4f}, mean {text_cos.mean():.4f}"
    )
    a, b = metric_values(runs["fp32"]), metric_values(runs["bf16"])
    diffs = sorted(((abs(a[k] - b[k]), k) for k in a.keys() & b.keys()), reverse=True)
    print(f"metric differences bf16 - fp32 over {len(diffs)} metrics (largest first):")
    for diff, key in diffs[:8]:
        print(f"  {'/'.join(key):45s} fp32 {a[key]:10.4f}  bf16 {b[key]:10.4f}  |d| {diff:.4f}")
    headline = [k for k in diffs if k[1][2] in ("acc@1", "f1_macro", "Recall@10", "MRR")]
    print(f"  headline (acc@1, f1_macro, Recall@10, MRR): largest |d| {headline[0][0]:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny, vit-b-32 or a model spec")
    parser.add_argument("--precision", choices=("fp32", "bf16", "both"), default="fp32")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--raw-n", type=int, default=1024, help="images timed for the raw rate")
    parser.add_argument("--fmnist-n", type=int, help="score only the first N Fashion-MNIST images")
    args = parser.parse_args()
    precisions = ("fp32", "bf16") if args.precision == "both" else (args.precision,)

    print(machine())
    print(f"start: {load_average()}")
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        overrides = prepare_data(workdir)
        if args.fmnist_n:
            overrides["fmnist"] = fmnist_subset(workdir, args.fmnist_n)
        items = load_items(overrides)
        model = build_model(args.model, workdir)
        spec = model_spec(args.model, workdir)
        step = max(1, len(items) // args.raw_n)  # a spread over both benchmarks
        pixels = predecode(model, items[::step][: args.raw_n])
        startup, startup_cpu = startup_seconds(spec)
        print(
            f"model {args.model} ({model.parameter_count / 1e6:.1f} M params, "
            f"{model.preprocess_config.image_size} px), {len(items)} images "
            f"({', '.join(BENCHMARKS)}), batch {args.batch_size}; start-up (interpreter, "
            f"imports, model load) {startup:.1f} s; {load_average()}"
        )
        for precision in precisions:
            raw_before, rates_before, cpu_before = best_raw_rate(
                model, pixels, args.batch_size, precision
            )
            command = score_command(spec, workdir, overrides, precision, args.batch_size)
            cold_wall, cold_cpu, cold_runs = run_cli(command)
            cold_forwarded = forwards(workdir / f"{precision}.duckdb")
            warm_wall, _, warm_runs = run_cli(command)  # replaces the cold runs in the database
            warm_forwarded = forwards(workdir / f"{precision}.duckdb")
            # what CI re-runs: unchanged model, data and benchmarks are found in the database
            # (content hashes are still computed) and not scored again
            skip_wall, _, skip_runs = run_cli([*command, "--skip-existing"])
            raw_after, rates_after, cpu_after = best_raw_rate(
                model, pixels, args.batch_size, precision
            )
            raw = (raw_before + raw_after) / 2
            runs[precision] = cold_runs
            cold_runner = sum(run["seconds"] for run in cold_runs)
            warm_runner = sum(run["seconds"] for run in warm_runs)
            n = sum(run["n_items"] for run in cold_runs)
            print(f"[{precision}] raw forward {raw:.1f} img/s (before: {fmt_rates(rates_before)};"
                  f" after: {fmt_rates(rates_after)})")  # fmt: skip
            print(
                f"[{precision}] cold: runner {cold_runner:.1f} s = {n / cold_runner:.1f} img/s, "
                f"ratio {n / cold_runner / raw:.2f}x; CLI wall {cold_wall:.1f} s = "
                f"{n / cold_wall:.1f} img/s, ratio {n / cold_wall / raw:.2f}x"
            )
            print(
                f"[{precision}] warm: runner {warm_runner:.1f} s ({warm_runner / cold_runner:.2f}x "
                f"of cold), CLI wall {warm_wall:.1f} s ({warm_wall / cold_wall:.2f}x of cold); "
                f"images forwarded cold {sum(cold_forwarded)}, warm {sum(warm_forwarded)}; "
                f"{load_average()}"
            )
            print(
                f"[{precision}] warm with --skip-existing: CLI wall {skip_wall:.1f} s "
                f"({skip_wall / cold_wall:.2f}x of cold), {len(skip_runs)} runs scored again"
            )
            texts = sum(k.startswith("text:") for k in cached_vectors(workdir / "cache", precision))
            text_rate = raw_text_rate(model, batch_size=args.batch_size, precision=precision)
            model_seconds = n / raw + texts / text_rate
            print(
                f"[{precision}] the model's own work, images and the {texts} prompts and queries "
                f"(raw text tower {text_rate:.1f} texts/s): {model_seconds:.1f} s; over the "
                f"runner's {cold_runner:.1f} s: ratio {model_seconds / cold_runner:.2f}x"
            )
            raw_cpu = (cpu_before + cpu_after) / 2 * n
            print(
                f"[{precision}] CPU: raw forward on 1 thread {raw_cpu:.1f} s for {n} images; "
                f"the cold command {cold_cpu:.1f} s, {cold_cpu - startup_cpu:.1f} s beyond "
                f"start-up: ratio {raw_cpu / (cold_cpu - startup_cpu):.2f}x"
            )
            for run in cold_runs:
                print(f"    {run['benchmark']}: {run['n_items']} items, {run['seconds']:.1f} s")
        if len(precisions) == 2:
            compare_precisions(workdir, runs)
    print(f"end: {load_average()}; torch threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
