"""One prepared check of a GPU: correct first (against the CPU), then fast, in one run.

    python benchmarks/speed/gpu_check.py --device cuda --out gpu_check.json   # full, on a GPU
    python benchmarks/speed/gpu_check.py --device cpu --quick                  # the rehearsal

Correctness, the device against the CPU:
- scoring: ``evalsuite score`` of the same seeded random weights (the tiny CLIP and a
  ViT-B/32-sized open_clip model) on the real footwear test split, on the CPU in fp32 and on
  the device in fp32 and in bf16, each run with its own empty cache. fp32: the cosine of every
  image and text embedding to the CPU's is >= 0.999. bf16: every headline (gated) metric is
  "tied" with the CPU's fp32 run by ``evalsuite.verdicts`` (paired over the shared items,
  corrected across the metrics): within its bootstrap noise.
- training: ``python -m finetune`` for 30 steps on the device (bf16 autocast, fused AdamW on
  CUDA) and on the CPU (fp32), relative loss differences within CURVE_TOLERANCE: the first
  step (one bf16 forward of the same weights) within 1%, the mean over the 30 steps within
  1.5%, every step within 10% (bf16 rounding changes each update a little and the
  trajectories drift apart slowly; a device bug, e.g. a parameter left out of the update or
  the wrong scale, moves the mean by far more).
Speed, as ratios measured in this run on this machine:
- scoring: the embedding engine (hashing, decode workers, pinned memory, forward, cache write)
  in images/s over the raw forward over pre-decoded tensors already on the device, fp32 and
  bf16 (goal >= 0.85x); the whole ``evalsuite score`` command beside it (tasks, bootstraps).
- training: ``finetune`` samples/s over a bare PyTorch loop (goal >= 0.9x) and over
  open_clip_train's loop (goal >= 1.0x), same model, batches and optimizer, bf16, batch 256;
  peak GPU memory of each (``gpu_loops.py`` says how the loops are made equal).
- what limits: per loop the share of step time spent waiting for data, the decode workers, the
  text tower's share of a forward+backward, the bare loop in fp32 and with ``torch.compile``.
``--device cpu`` runs every path with the CPU as "the device" (bf16 autocast on the CPU), so
the script is tested without a GPU (tests/test_gpu_check.py); its ratios mean little there.
Exit 0 when every correctness check passes, 1 when one fails (speed goals only print MISS), 2
when the check cannot run (no GPU, no data, a command failed).
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
from typing import Any, NoReturn

import numpy as np
import torch
import yaml
from embed import SHARED_DATA, load_average, machine, model_spec, predecode, raw_forward_rate, sync
from gpu_loops import bare_loop, finetune_loop, open_clip_train_loop, timed_steps
from score import cached_vectors

from evalsuite.data.items import Item
from evalsuite.data.prepare import prepare_footwear
from evalsuite.device import autocast
from evalsuite.embedding import EmbeddingEngine
from evalsuite.models import load_model
from evalsuite.verdicts import TIED, compare_models
from finetune.config import validate_config

COSINE_MIN = 0.999
# relative loss differences, bf16 device against fp32 CPU. A ViT-B/32-sized rehearsal on
# the CPU (batch 4, lr 1e-4) drifted to 5.9% at one step with a mean of 0.7%.
CURVE_TOLERANCE = {"first": 0.01, "mean": 0.015, "max": 0.10}
# IEEE fp32 on both sides: only the order of reductions differs (not yet measured on a GPU)
FP32_TOLERANCE = {"first": 1e-4, "mean": 0.005, "max": 0.02}
GOALS = {"score_engine_vs_raw": 0.85, "finetune_vs_bare": 0.9, "finetune_vs_open_clip_train": 1.0}
SIZES = {  # quick: the CPU rehearsal; full: a GPU
    "quick": {"models": ("tiny-openclip",), "train_model": "tiny-openclip", "curve_batch": 16,
              "speed_batch": 8, "speed_steps": 8, "warmup": 2, "images": 256, "bootstrap": 200,
              "footwear_rows": 700, "resamples": 2000},
    "full": {"models": ("tiny", "vit-b-32"), "train_model": "vit-b-32", "curve_batch": 32,
             "speed_batch": 256, "speed_steps": 30, "warmup": 5, "images": 8000,
             "bootstrap": 1000, "footwear_rows": None, "resamples": 10_000},
}  # fmt: skip


def fail(message: str) -> NoReturn:
    """Exit 2: the check could not run (1 is kept for a correctness failure)."""
    print(message, file=sys.stderr)
    raise SystemExit(2)


def run(command: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        fail(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-3000:]}")
    return time.perf_counter() - start, done.stdout


def footwear_styles(styles: Path, work: Path, rows: int | None) -> Path:
    """styles.csv, or (quick) its header and first ``rows`` footwear rows: a smaller split."""
    if rows is None:
        return styles
    lines = styles.read_text(encoding="utf-8").splitlines()
    footwear = [line for line in lines[1:] if ",Footwear," in line][:rows]
    out = work / "styles.csv"
    out.write_text("\n".join([lines[0], *footwear]) + "\n", encoding="utf-8")
    return out


def cpu_env() -> dict[str, str]:
    return {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # accelerate then picks the CPU


# --- correctness: scoring --------------------------------------------------------------------
def score_runs(model: str, spec: str, work: Path, footwear: Path, device: str, size: dict):
    """CPU fp32, device fp32 and device bf16 runs of ``spec`` on the footwear test split."""
    out = {}
    for label, where, precision in (("cpu-fp32", "cpu", "fp32"), ("dev-fp32", device, "fp32"),
                                    ("dev-bf16", device, "bf16")):  # fmt: skip
        command = [sys.executable, "-m", "evalsuite", "--db", str(work / "scores.duckdb"),
                   "score", spec, "--benchmarks", "footwear", "--data", f"footwear={footwear}",
                   "--name", f"{model}-{label}", "--device", where, "--precision", precision,
                   "--cache-dir", str(work / "cache" / model / label), "--batch-size", "128",
                   "--bootstrap", str(size["bootstrap"]), "--json"]  # fmt: skip
        wall, stdout = run(command)
        runs = json.loads(stdout)
        out[label] = {"wall_s": wall, "runner_s": sum(r["seconds"] for r in runs),
                      "n_items": sum(r["n_items"] for r in runs)}  # fmt: skip
    return out


def embedding_cosines(work: Path, model: str, label: str, precision: str) -> dict[str, float]:
    cpu = cached_vectors(work / "cache" / model / "cpu-fp32", "fp32")
    dev = cached_vectors(work / "cache" / model / label, precision)
    out = {}
    for kind, is_text in (("image", False), ("text", True)):
        keys = sorted(k for k in cpu.keys() & dev.keys() if k.startswith("text:") == is_text)
        a, b = np.stack([cpu[k] for k in keys]), np.stack([dev[k] for k in keys])
        cos = np.einsum("ij,ij->i", a, b)  # both are L2-normalised
        out[f"{kind}_min"], out[f"{kind}_n"] = float(cos.min()), len(keys)
    return out


def check_scoring(model: str, spec: str, work: Path, footwear: Path, device: str, size: dict):
    runs = score_runs(model, spec, work, footwear, device, size)
    fp32 = embedding_cosines(work, model, "dev-fp32", "fp32")
    bf16 = embedding_cosines(work, model, "dev-bf16", "bf16")
    comparison = compare_models(
        work / "scores.duckdb", f"{model}-cpu-fp32", f"{model}-dev-bf16",
        n_resamples=size["resamples"],
    )  # fmt: skip
    gated = [v for v in comparison.verdicts if v.gated]
    untied = [f"{v.task}/{v.metric}: {v.verdict} ({v.baseline:.4g} -> {v.candidate:.4g})"
              for v in gated if v.verdict != TIED]  # fmt: skip
    largest = max(gated, key=lambda v: abs(v.delta))
    fp32_ok = min(fp32["image_min"], fp32["text_min"]) >= COSINE_MIN
    print(f"[{model}] fp32 {device} vs cpu: min cosine image {fp32['image_min']:.6f} "
          f"({fp32['image_n']}), text {fp32['text_min']:.6f} ({fp32['text_n']}) "
          f"{'PASS' if fp32_ok else 'FAIL'} (>= {COSINE_MIN})")  # fmt: skip
    print(
        f"[{model}] bf16 {device} vs cpu fp32: min cosine image {bf16['image_min']:.4f}, "
        f"text {bf16['text_min']:.4f}; {len(gated) - len(untied)}/{len(gated)} headline "
        f"metrics tied {'PASS' if not untied else 'FAIL: ' + '; '.join(untied)}; largest "
        f"{largest.task}/{largest.metric} |d| {abs(largest.delta):.4g} (MDD {largest.mdd:.4g})"
    )
    return {"runs": runs, "fp32_cosine": fp32, "bf16_cosine": bf16, "fp32_pass": fp32_ok,
            "bf16_untied": untied, "bf16_pass": not untied and bool(gated)}  # fmt: skip


# --- correctness: training -------------------------------------------------------------------
def train_config(
    spec: str, data: Path, out: Path, batch: int, steps: int, bf16: bool, log_every: int = 1,
    val: bool = False,
) -> dict:  # fmt: skip
    return {
        "model": {"spec": spec},
        "data": {"path": str(data), "val_split": "val" if val else None},
        "optim": {"lr": 1e-4},  # the curve must move for a difference to show
        "schedule": {"name": "constant"},
        "train": {"epochs": 1000, "batch_size": batch, "max_steps": steps, "log_every": log_every,
                  "mixed_precision": "bf16" if bf16 else "no", "early_stopping_patience": None},
        "output": {"dir": str(out), "save_best": False, "save_last": False},
    }  # fmt: skip


def losses(spec: str, data: Path, out: Path, batch: int, bf16: bool, env: dict) -> list[float]:
    """The 30 logged losses of ``python -m finetune``; its validation runs before the first
    step (on the device: accelerate's prepared loader and gather_for_metrics)."""
    config = out.with_suffix(".yaml")
    config.write_text(yaml.safe_dump(train_config(spec, data, out, batch, 30, bf16, val=True)))
    run([sys.executable, "-m", "finetune", "--config", str(config)], env=env)
    lines = (out / "steps.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines if "loss" in json.loads(line)]


def compare_curves(name: str, cpu: list[float], dev: list[float], bounds: dict) -> dict:
    rel = np.abs(np.array(dev) - np.array(cpu)) / np.abs(np.array(cpu))
    measured = {"first": rel[0], "mean": rel.mean(), "max": rel.max()}
    ok = len(cpu) == len(dev) == 30 and all(measured[k] <= t for k, t in bounds.items())
    print(f"[train] {name}: loss {dev[0]:.4f} -> {dev[-1]:.4f} against the CPU's fp32 "
          f"{cpu[0]:.4f} -> {cpu[-1]:.4f}; relative difference "
          + ", ".join(f"{k} {measured[k]:.2g} (<= {t})" for k, t in bounds.items())
          + f" {'PASS' if ok else 'FAIL'}")  # fmt: skip
    return {"device": dev, **{k: float(v) for k, v in measured.items()}, "pass": bool(ok)}


def check_curve(spec: str, data: Path, work: Path, device: str, batch: int) -> dict[str, Any]:
    """30 steps on the CPU in fp32, then on the device in IEEE fp32 (tight) and in bf16."""
    cpu = losses(spec, data, work / "curve-cpu", batch, False, cpu_env())
    dev_env = cpu_env() if device == "cpu" else None
    fp32 = losses(spec, data, work / "curve-dev-fp32", batch, False, dev_env)
    bf16 = losses(spec, data, work / "curve-dev-bf16", batch, True, dev_env)
    out: dict[str, Any] = {"cpu": cpu, "batch": batch}
    out["fp32"] = compare_curves(f"{device} fp32, batch {batch}", cpu, fp32, FP32_TOLERANCE)
    out["bf16"] = compare_curves(f"{device} bf16, batch {batch}", cpu, bf16, CURVE_TOLERANCE)
    out["pass"] = out["fp32"]["pass"] and out["bf16"]["pass"]
    return out


# --- speed -----------------------------------------------------------------------------------
def score_speed(name: str, work: Path, device: torch.device, size: dict) -> dict[str, Any]:
    model = load_model(model_spec(name, work)).to(device)
    paths = sorted((SHARED_DATA / "fashion-product-images-small" / "images").glob("*.jpg"))
    items = [Item(id=p.stem, path=p) for p in paths[: size["images"]]]
    pixels = predecode(model, items[:2048]).to(device)  # moved once, timed on the device
    out: dict[str, Any] = {}
    for precision in ("fp32", "bf16"):
        raw = raw_forward_rate(model, pixels, 256, precision)[0]
        cache = work / f"speed-cache-{precision}"
        engine = EmbeddingEngine(
            model, batch_size=256, precision=precision, device=device, cache_dir=cache,
            progress=False,
        )  # fmt: skip
        start = time.perf_counter()
        engine.embed_items(items)
        sync(device)
        rate = len(items) / (time.perf_counter() - start)
        ratio = rate / raw
        out[precision] = {"raw": raw, "engine": rate, "ratio": ratio, "workers": engine.num_workers}
        print(f"[score {precision}] {name}, {len(items)} real images, batch 256, "
              f"{engine.num_workers} decode workers: engine {rate:.0f} img/s, raw forward "
              f"{raw:.0f} img/s: {ratio:.2f}x {verdict(ratio, 'score_engine_vs_raw')}")  # fmt: skip
    return out


def verdict(ratio: float, goal: str) -> str:
    return f"{'PASS' if ratio >= GOALS[goal] else 'MISS'} (goal >= {GOALS[goal]}x)"


def train_speed(
    name: str, data: Path, work: Path, device: torch.device, size: dict, compile_: bool
) -> dict[str, Any]:
    spec, batch, steps = model_spec(name, work), size["speed_batch"], size["speed_steps"]

    def timed(label: str, loop, bf16: bool = True, **kw) -> dict[str, Any]:
        # a loss line every 10 steps, as users run it
        cfg = validate_config(train_config(spec, data, work / label, batch, steps, bf16, 10))
        with timed_steps(device) as timing:
            loop(cfg, device, **kw)
        result = timing.summary(batch, size["warmup"])
        memory = result["peak_memory_gb"]
        print(f"[train {label}] {result['samples_per_s']:.1f} samples/s (median of "
              f"{result['steps_timed']} steps; mean {result['samples_per_s_mean']:.1f}), waiting "
              f"for data {result['data_wait_fraction']:.0%}"
              f"{f', peak GPU memory {memory:.2f} GiB' if memory is not None else ''}")  # fmt: skip
        return result

    out = {"finetune": timed("finetune", finetune_loop), "bare": timed("bare", bare_loop),
           "open_clip_train": timed("open_clip_train", open_clip_train_loop),
           "bare_fp32": timed("bare_fp32", bare_loop, bf16=False)}  # fmt: skip
    if compile_:
        out["bare_compiled"] = timed("bare_compiled", bare_loop, compile_model=True)
    rate = {k: v["samples_per_s"] for k, v in out.items()}
    for goal, other in (("finetune_vs_bare", "bare"),
                        ("finetune_vs_open_clip_train", "open_clip_train")):  # fmt: skip
        out[goal] = rate["finetune"] / rate[other]
        print(f"[train] finetune / {other}: {out[goal]:.2f}x {verdict(out[goal], goal)}")
    out["text_tower_share"] = text_tower_share(spec, device, batch)
    return out


def text_tower_share(spec: str, device: torch.device, batch: int) -> float:
    """The text tower's share of one bf16 forward+backward of both towers."""
    model = load_model(spec).to(device)
    size = model.preprocess_config.image_size
    pixels = torch.randn(batch, 3, size, size, device=device)
    ids = model.tokenize(["a pair of brown leather shoes"] * batch).to(device)
    seconds = {}
    for tower, call in (("image", lambda: model.image_features(pixels)),
                        ("text", lambda: model.text_features(ids))):  # fmt: skip
        times = []
        for _ in range(4):
            sync(device)
            start = time.perf_counter()
            with autocast("bf16", device):
                call().float().sum().backward()
            sync(device)
            times.append(time.perf_counter() - start)
        seconds[tower] = min(times[1:])
    share = seconds["text"] / (seconds["image"] + seconds["text"])
    print(f"[train] text tower: {share:.0%} of a forward+backward at batch {batch}")
    return share


# --- the run ---------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--quick", action="store_true", help="small sizes: the CPU rehearsal")
    parser.add_argument(
        "--compile", choices=("auto", "on", "off"), default="auto",
        help="time the bare loop under torch.compile (auto: not with --quick)",
    )  # fmt: skip
    parser.add_argument(
        "--size", action="append", default=[], metavar="KEY=VALUE",
        help="override one of SIZES' values, e.g. models=[tiny,vit-b-32]",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="also write every figure to this JSON file")
    args = parser.parse_args()
    size = dict(SIZES["quick" if args.quick else "full"])
    for pair in args.size:  # a rehearsal of the full run's paths at small sizes
        key, _, value = pair.partition("=")
        if key not in size:
            fail(f"--size {pair}: unknown key; known: {', '.join(size)}")
        size[key] = yaml.safe_load(value)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before CUDA starts: every path on the CPU
    elif not torch.cuda.is_available():
        fail("--device cuda: torch sees no CUDA device here; use --device cpu --quick")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    catalogue = SHARED_DATA / "fashion-product-images-small"
    if not (catalogue / "styles.csv").is_file():
        fail(f"no catalogue at {catalogue}; set FASHION_SHARED_DATA")
    print(f"{machine()}; device {args.device} ({name}); {'quick' if args.quick else 'full'}")
    print(f"start: {load_average()}")
    report: dict[str, Any] = {"device": name, "quick": args.quick, "sizes": size}
    report["machine"] = machine()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        footwear = work / "footwear"
        styles = footwear_styles(catalogue / "styles.csv", work, size["footwear_rows"])
        prepare_footwear(catalogue / "images", styles, footwear)
        train_model = size["train_model"]
        compile_ = args.compile == "on" or (args.compile == "auto" and not args.quick)

        def scoring() -> dict[str, Any]:
            return {
                model: check_scoring(
                    model, model_spec(model, work), work, footwear, args.device, size
                )
                for model in size["models"]
            }

        sections = {  # each saved to --out as soon as it is done: a cut-off run keeps them
            "scoring": scoring,
            "curve": lambda: check_curve(
                model_spec(train_model, work), footwear, work, args.device, size["curve_batch"]
            ),
            "score_speed": lambda: score_speed(train_model, work, device, size),
            "train_speed": lambda: train_speed(train_model, footwear, work, device, size, compile_),
        }
        report["seconds"] = {"prepare": time.perf_counter() - started}
        for section, measure in sections.items():
            begun = time.perf_counter()
            report[section] = measure()
            report["seconds"][section] = time.perf_counter() - begun
            if args.out:
                args.out.write_text(json.dumps(report, indent=2, default=float))
    passed = all(r["fp32_pass"] and r["bf16_pass"] for r in report["scoring"].values())
    passed = passed and report["curve"]["pass"]
    report["correct"] = passed
    parts = ", ".join(f"{k} {v:.0f}" for k, v in report["seconds"].items())
    print(f"correctness: {'PASS' if passed else 'FAIL'}; {time.perf_counter() - started:.0f} s "
          f"({parts}); end: {load_average()}")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, default=float))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
