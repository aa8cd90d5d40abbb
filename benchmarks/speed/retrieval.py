"""Exact top-k retrieval over a synthetic 1,000,000 x 512 float32 gallery, in bounded memory.

    python benchmarks/speed/retrieval.py [--gallery 1000000] [--queries 1000] [--k 10]

The gallery (random unit vectors, 2 GB at the defaults) is written to a temporary file in
chunks and opened as an ``np.memmap``: ``evalsuite.metrics.retrieval.top_k`` reads it
``chunk_size`` rows at a time. The search runs in a fresh process that samples its own
memory every 10 ms from /proc/self/status: anonymous memory (RssAnon: what the search
allocates) and file-backed memory (RssFile: gallery pages the kernel keeps cached in the
mapping, reclaimable, bounded by the file, not by the search). Then two equality checks
against brute force (all scores, then a stable sort by score descending and index
ascending): a small gallery searched in many small chunks, and a few queries of the big run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from evalsuite.metrics.retrieval import top_k


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((n, dim), dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def write_gallery(path: Path, n: int, dim: int, seed: int, chunk: int = 65536) -> None:
    gallery = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    rng = np.random.default_rng(seed)
    for start in range(0, n, chunk):
        gallery[start : start + chunk] = unit_rows(rng, min(chunk, n - start), dim)
    gallery.flush()
    del gallery


def brute_force(queries: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    scores = queries @ np.asarray(gallery).T
    index = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    order = np.lexsort((index, -scores), axis=1)[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def memory_status() -> dict[str, int]:
    """RssAnon, RssFile and VmHWM of this process, bytes."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def search(args: argparse.Namespace) -> None:
    """(Run in a fresh process.) Time top_k over the memmap; print figures as JSON."""
    gallery = np.load(args.gallery_file, mmap_mode="r")
    queries = unit_rows(np.random.default_rng(args.seed + 1), args.queries, gallery.shape[1])
    base = memory_status()
    peaks = dict(base)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for key, value in memory_status().items():
                peaks[key] = max(peaks[key], value)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    indices, scores = top_k(
        queries, gallery, args.k, chunk_size=args.chunk_size, query_chunk_size=args.query_chunk
    )
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    check = min(args.check_queries, args.queries)
    expected_indices, expected_scores = brute_force(queries[:check], gallery, args.k)
    print(json.dumps({
        "seconds": seconds,
        "anon_before": base["RssAnon"], "anon_peak": peaks["RssAnon"],
        "file_before": base["RssFile"], "file_peak": peaks["RssFile"], "hwm": peaks["VmHWM"],
        "equal": bool(np.array_equal(indices[:check], expected_indices)
                      and np.allclose(scores[:check], expected_scores, atol=1e-5)),
        "checked": check,
    }))  # fmt: skip


def small_case_equal(seed: int) -> bool:
    """A 20,000-item gallery (memmap) in 1,000-row chunks against brute force."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "small.npy"
        write_gallery(path, 20_000, 64, seed)
        gallery = np.load(path, mmap_mode="r")
        queries = unit_rows(rng, 200, 64)
        queries[:10] = gallery[:10]  # exact duplicates: ties at the top
        got = top_k(queries, gallery, 25, chunk_size=1000, query_chunk_size=64)
        expected = brute_force(queries, gallery, 25)
        return bool(np.array_equal(got[0], expected[0]) and np.allclose(got[1], expected[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gallery", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--chunk-size", type=int, default=65536)
    parser.add_argument("--query-chunk", type=int, default=512)
    parser.add_argument("--check-queries", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gallery-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--search", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.search:
        search(args)
        return
    from embed import load_average, machine  # torch: kept out of the measured process

    print(machine())
    print(f"start: {load_average()}")
    print(f"small case (20,000 x 64 memmap, 1,000-row chunks, ties) equals brute force: "
          f"{small_case_equal(args.seed)}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gallery.npy"
        start = time.perf_counter()
        write_gallery(path, args.gallery, args.dim, args.seed)
        print(
            f"gallery {args.gallery:,} x {args.dim} float32 "
            f"({path.stat().st_size / 2**30:.2f} GiB) written in "
            f"{time.perf_counter() - start:.1f} s; {load_average()}"
        )
        command = [sys.executable, __file__, "--search", "--gallery-file", str(path)]
        for name in ("queries", "k", "chunk_size", "query_chunk", "check_queries", "seed"):
            command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(done.stderr[-3000:])
        result = json.loads(done.stdout.strip().splitlines()[-1])
    mib = 2**20
    scanned = args.queries * args.gallery / result["seconds"]
    print(
        f"top-{args.k} of {args.queries} queries over {args.gallery:,} items "
        f"(chunk {args.chunk_size} rows x {args.query_chunk} queries): {result['seconds']:.1f} s"
        f" = {args.queries / result['seconds']:.1f} queries/s "
        f"({scanned / 1e6:.0f} M query-item scores/s); {load_average()}"
    )
    anon, file = (
        result["anon_peak"] - result["anon_before"],
        result["file_peak"] - result["file_before"],
    )
    print(
        f"memory: anonymous {result['anon_before'] / mib:.0f} MiB before the search, peak "
        f"{result['anon_peak'] / mib:.0f} MiB (+{anon / mib:.0f} MiB: the search's own); "
        f"file-backed +{file / mib:.0f} MiB (gallery pages cached in the mapping: page cache, "
        f"reclaimable); VmHWM {result['hwm'] / mib:.0f} MiB"
    )
    print(f"{result['checked']} queries of the big run equal brute force: {result['equal']}")
    print(f"end: {load_average()}")


if __name__ == "__main__":
    main()
