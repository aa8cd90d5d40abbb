"""Peak memory of `evalsuite score` over 2,000 and 8,000 real images: does it stay flat?

    python benchmarks/speed/memory.py [--model tiny|vit-b-32|SPEC] [--sizes 2000 8000]

A benchmark written for the occasion (a labelled CSV of the first N catalogue images by id,
with zero-shot, text->image and image->image tasks, in a temporary benchmarks folder that
EVALSUITE_BENCHMARKS_DIR points at) is scored by ``python -m evalsuite score`` with an empty
cache and the defaults (1000 bootstrap resamples, database write). Each size runs under a
fresh measuring process, so that nothing of an earlier run counts:

- peak RSS of the scoring process: ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` of the measuring
  process, i.e. the largest process it waited for (the CLI; its decode worker is smaller);
- peak RSS of the whole tree (CLI + decode workers), sampled every 20 ms with psutil; pages
  that the forked worker shares with its parent count twice there, so it is an upper bound.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
from embed import SHARED_DATA, load_average, machine, model_spec

CATALOGUE = SHARED_DATA / "fashion-product-images-small"
BENCHMARK = """\
name: scale
version: 1
description: The first N catalogue images by id (memory and speed measurements).
dataset:
  reader: labelled_csv
  path: scale.csv
image_policy: skip
tasks:
  - type: zeroshot
    name: article_type
    field: label
    min_class_count: 5
  - type: text_to_image
    name: text_search
    queries: queries_text.jsonl
  - type: image_to_image
    name: image_search
    queries: queries_image.jsonl
"""
TEXT_QUERIES = [
    {"id": "t1", "text": "black shoes", "where": {"masterCategory": "Footwear",
                                                  "baseColour": "Black"}},
    {"id": "t2", "text": "a white t-shirt", "where": {"masterCategory": "Apparel",
                                                      "baseColour": "White"}},
    {"id": "t3", "text": "a blue garment", "where": {"masterCategory": "Apparel",
                                                     "baseColour": "Blue"}},
    {"id": "t4", "text": "a fashion accessory", "where": {"masterCategory": "Accessories"}},
]  # fmt: skip
IMAGE_QUERIES = [
    {"id": f"i{i}", "image_where": {"masterCategory": category}, "pick": i,
     "where": {"masterCategory": category}}
    for i, category in enumerate(["Footwear", "Apparel", "Accessories", "Footwear"])
]  # fmt: skip


def write_benchmark(workdir: Path, n: int) -> tuple[Path, Path]:
    """(benchmarks folder, data CSV) of the first ``n`` catalogue images with a styles row."""
    styles = pd.read_csv(CATALOGUE / "styles.csv", dtype=str, on_bad_lines="skip")
    styles = styles.dropna(subset=["id", "articleType"]).drop_duplicates("id").set_index("id")
    ids = sorted((p.stem for p in (CATALOGUE / "images").glob("*.jpg")), key=int)
    ids = [i for i in ids if i in styles.index][:n]
    if len(ids) < n:
        raise SystemExit(f"only {len(ids)} catalogue images with a styles row; asked for {n}")
    rows = styles.loc[ids]
    frame = pd.DataFrame(
        {
            "path": [str(CATALOGUE / "images" / f"{i}.jpg") for i in ids],
            "label": rows["articleType"].to_numpy(),
            "masterCategory": rows["masterCategory"].to_numpy(),
            "baseColour": rows["baseColour"].fillna("").to_numpy(),
        }
    )
    data = workdir / f"data{n}"
    data.mkdir()
    frame.to_csv(data / "scale.csv", index=False)
    folder = workdir / "benchmarks" / "scale"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        (folder / "scale.yaml").write_text(BENCHMARK)
        for name, queries in (("text", TEXT_QUERIES), ("image", IMAGE_QUERIES)):
            lines = [json.dumps(query) for query in queries]
            (folder / f"queries_{name}.jsonl").write_text("\n".join(lines) + "\n")
    return folder.parent, data / "scale.csv"


def measure(command: list[str]) -> None:
    """(Run in a fresh process.) Run ``command``, print its peak memory as JSON."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(process.pid)
    peak_tree, peak_workers, stop = 0, 0, threading.Event()

    def sample() -> None:
        nonlocal peak_tree, peak_workers
        while not stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                rss = [p.memory_info().rss for p in procs]
            except psutil.Error:
                break
            peak_tree = max(peak_tree, sum(rss))
            peak_workers = max(peak_workers, len(procs) - 1)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    sampler.start()
    _, stderr = process.communicate()
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"evalsuite score failed:\n{stderr.decode()[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
    print(json.dumps({"peak_rss": peak, "peak_tree_rss": peak_tree, "seconds": seconds,
                      "child_processes": peak_workers}))  # fmt: skip


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--measure":
        measure(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny, vit-b-32 or a model spec")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    print(machine())
    print(f"start: {load_average()}")
    results: dict[int, list[dict]] = {n: [] for n in args.sizes}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        spec = model_spec(args.model, workdir)  # writes the folder the CLI loads
        csvs = {}
        for n in args.sizes:
            benchmarks, csvs[n] = write_benchmark(workdir, n)
        env = {**os.environ, "EVALSUITE_BENCHMARKS_DIR": str(benchmarks), "HF_HUB_OFFLINE": "1"}
        for repeat in range(args.repeats):
            for n in args.sizes:
                cache = workdir / f"cache-{n}-{repeat}"
                cli = [sys.executable, "-m", "evalsuite", "--db", str(workdir / f"{n}.duckdb"),
                       "score", spec, "--benchmarks", "scale", "--data", f"scale={csvs[n]}",
                       "--cache-dir", str(cache), "--json"]  # fmt: skip
                done = subprocess.run(
                    [sys.executable, __file__, "--measure", *cli],
                    env=env, capture_output=True, text=True, check=False,
                )  # fmt: skip
                if done.returncode != 0:
                    raise SystemExit(done.stderr[-3000:])
                result = json.loads(done.stdout.strip().splitlines()[-1])
                results[n].append(result)
                print(
                    f"{n:6d} images: peak RSS {result['peak_rss'] / 2**20:7.1f} MiB (scoring "
                    f"process), {result['peak_tree_rss'] / 2**20:7.1f} MiB (tree, "
                    f"{result['child_processes']} workers), {result['seconds']:.1f} s; "
                    f"{load_average()}"
                )
    small, large = min(args.sizes), max(args.sizes)
    peak = {n: min(r["peak_rss"] for r in results[n]) for n in args.sizes}
    tree = {n: min(r["peak_tree_rss"] for r in results[n]) for n in args.sizes}
    seconds = {n: min(r["seconds"] for r in results[n]) for n in args.sizes}
    print(
        f"model {args.model}: peak RSS {large} / {small} images = {peak[large] / peak[small]:.3f}x"
        f" (scoring process), {tree[large] / tree[small]:.3f}x (tree); "
        f"time {large} / {small} = {seconds[large] / seconds[small]:.2f}x"
    )
    print(f"end: {load_average()}")


if __name__ == "__main__":
    main()
