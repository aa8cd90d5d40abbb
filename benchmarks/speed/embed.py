"""Images/s of the embedding engine against the raw model forward, measured in one run.

    python benchmarks/speed/embed.py [--model tiny|vit-b-32|SPEC] [--n 2000] [--repeats 3]

The raw figure is the model's forward pass alone over tensors decoded and preprocessed
beforehand (the best any pipeline could do), at the same batch size and precision, with the
better of 1 and all torch threads (on a busy 2-core machine 2 OpenMP threads can be many
times slower than 1). The engine figure is the whole path a user gets: hashing, cache
lookup, decoding in worker processes, preprocessing, forward, normalisation, cache write.
A third figure is the engine again on the same data (cache hits). Each repeat measures raw,
engine and raw again back to back, so a change of machine load shows in the spread.

The other scripts here import the helpers below (machine, load average, models, raw rate).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

# A script's sys.path starts with its own folder: the repository root goes first, for
# testkit/ (not installed) and this checkout's evalsuite (not another one's installed copy).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # testkit/: not installed

from evalsuite.cpu_threads import default_num_workers
from evalsuite.data.items import Item
from evalsuite.device import autocast, available_cores, ieee_fp32
from evalsuite.embedding import EmbeddingEngine
from evalsuite.images import load_item_image
from evalsuite.models import ClipModel, load_model
from testkit.tiny import build_tiny_hf, build_tiny_open_clip

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("FASHION_SHARED_DATA", ROOT.parent / "shared" / "data"))
DEFAULT_IMAGES = SHARED_DATA / "fashion-product-images-small" / "images"


# --- helpers shared by the speed scripts ----------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """One line naming the machine the figures come from."""
    return (
        f"{available_cores()} cores ({cpu_model()}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, python {platform.python_version()}"
    )


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def model_spec(name: str, workdir: Path) -> str:
    """What ``load_model`` and ``evalsuite score`` take for ``name``: the tiny model and the
    randomly initialised ViT-B/32 are written to a folder under ``workdir`` once (seeded), so
    that every process loads the same weights and the embedding cache can hit."""
    if name in ("tiny", "tiny-openclip"):  # the same weights, Hugging Face or open_clip layout
        folder = workdir / name
        if not folder.is_dir():
            (build_tiny_hf if name == "tiny" else build_tiny_open_clip)(folder, seed=0)
        return str(folder)
    if name == "vit-b-32":  # ViT-B/32-sized, randomly initialised: the cost of a real CLIP
        folder = workdir / "vit-b-32"
        if not folder.is_dir():
            torch.manual_seed(0)
            load_model("openclip:ViT-B-32").save(folder)
        return str(folder)
    return name


def build_model(name: str, workdir: Path) -> ClipModel:
    return load_model(model_spec(name, workdir))


def sync(device: torch.device) -> None:
    """Wait for the device's queued work: a GPU timer must not stop at the kernel launches."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def predecode(model: ClipModel, items: Sequence[Item]) -> torch.Tensor:
    """Every item's image decoded and preprocessed exactly as ``model.preprocess`` does."""
    return torch.stack([model.preprocess(load_item_image(item)) for item in items])


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its children that have ended."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@torch.inference_mode()
def raw_forward_rate(
    model: ClipModel, pixels: torch.Tensor, batch_size: int, precision: str = "fp32"
) -> tuple[float, float]:
    """(images/s, CPU seconds per image) of the forward and normalisation alone over tensors
    already on the model's device, at the current thread count, in the precision the engine
    uses (IEEE fp32 or bf16 autocast: evalsuite.device)."""
    device = model.device
    pixels = pixels.to(device)
    with ieee_fp32(device), autocast(precision, device):
        model.image_features(pixels[:batch_size])  # warm-up: first call allocates
        sync(device)
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(pixels), batch_size):
            features = model.image_features(pixels[i : i + batch_size])
            torch.nn.functional.normalize(features.float(), dim=-1)
        sync(device)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return len(pixels) / seconds, cpu / len(pixels)


def best_raw_rate(
    model: ClipModel, pixels: torch.Tensor, batch_size: int, precision: str = "fp32"
) -> tuple[float, dict[int, float], float]:
    """The better raw rate over 1 and all torch threads, the rate of each, and the CPU
    seconds per image on one thread (the model's own work, whatever the machine's load)."""
    before = torch.get_num_threads()
    rates, cpu = {}, {}
    try:
        for threads in sorted({1, available_cores()}):
            torch.set_num_threads(threads)
            rates[threads], cpu[threads] = raw_forward_rate(model, pixels, batch_size, precision)
    finally:
        torch.set_num_threads(before)
    return max(rates.values()), rates, cpu[1]


@torch.inference_mode()
def raw_text_rate(model: ClipModel, n: int = 128, batch_size: int = 64, precision: str = "fp32"):
    """Texts/s of the text tower alone, the better of 1 and all threads. Every text is padded
    to the context length, so the cost of a text does not depend on its words."""
    ids = model.tokenize([f"a product photo of item {i}" for i in range(n)])
    before, rates = torch.get_num_threads(), []
    try:
        for threads in sorted({1, available_cores()}):
            torch.set_num_threads(threads)
            with autocast(precision, model.device):
                model.text_features(ids[:batch_size])  # warm-up
                start = time.perf_counter()
                for i in range(0, n, batch_size):
                    model.text_features(ids[i : i + batch_size])
            rates.append(n / (time.perf_counter() - start))
    finally:
        torch.set_num_threads(before)
    return max(rates)


def fmt_rates(rates: dict[int, float]) -> str:
    return ", ".join(f"{t} thread{'s' * (t > 1)} {r:.0f}" for t, r in rates.items())


# --- this script ----------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny, vit-b-32 or a model spec")
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="forward threads (auto)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.images.is_dir():
        raise SystemExit(f"no images at {args.images}; pass --images DIR")

    print(machine())
    print(f"start: {load_average()}")
    ratios, cpu_ratios, colds, raws, warms = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model = build_model(args.model, workdir)
        paths = sorted(args.images.glob("*.jpg"), key=lambda p: p.stem)[: args.n]
        items = [Item(id=p.stem, path=p) for p in paths]
        pixels = predecode(model, items)
        for repeat in range(args.repeats):
            raw_before, rates_before, cpu_before = best_raw_rate(
                model, pixels, args.batch_size, args.precision
            )
            engine = EmbeddingEngine(
                model,
                batch_size=args.batch_size,
                num_workers=args.workers,
                precision=args.precision,
                cache_dir=workdir / f"cache{repeat}",
                progress=False,
                threads=args.threads,
            )
            start, cpu = time.perf_counter(), cpu_seconds()
            engine.embed_items(items)
            cold, cold_cpu = len(items) / (time.perf_counter() - start), cpu_seconds() - cpu
            start = time.perf_counter()
            engine.embed_items(items)
            warm_seconds = time.perf_counter() - start
            raw_after, rates_after, cpu_after = best_raw_rate(
                model, pixels, args.batch_size, args.precision
            )
            raw = (raw_before + raw_after) / 2
            cpu_ratio = (cpu_before + cpu_after) / 2 * len(items) / cold_cpu
            ratios.append(cold / raw)
            cpu_ratios.append(cpu_ratio)
            colds.append(cold)
            raws.append(raw)
            warms.append(warm_seconds)
            print(
                f"repeat {repeat + 1}: raw {raw:7.1f} img/s (before: {fmt_rates(rates_before)}; "
                f"after: {fmt_rates(rates_after)}), engine cold {cold:7.1f} img/s, ratio "
                f"{cold / raw:.2f}x, CPU ratio {cpu_ratio:.2f}x, warm {warm_seconds:.2f} s "
                f"({engine.images_forwarded - len(items)} forwards); {load_average()}"
            )

    workers = args.workers if args.workers is not None else default_num_workers()
    print(
        f"model {args.model} ({model.parameter_count / 1e6:.1f} M params, "
        f"{model.preprocess_config.image_size} px), {len(items)} real images, batch "
        f"{args.batch_size}, {workers} decode workers, precision {args.precision}"
    )
    print(f"raw forward (pre-decoded tensors): {statistics.median(raws):8.1f} images/s (median)")
    print(
        f"engine, cold cache:                {statistics.median(colds):8.1f} images/s  "
        f"ratio {statistics.median(ratios):.2f}x (median; {min(ratios):.2f}-{max(ratios):.2f})"
    )
    print(
        f"CPU seconds, raw forward on 1 thread / engine (all its processes): "
        f"{statistics.median(cpu_ratios):.2f}x (median; {min(cpu_ratios):.2f}"
        f"-{max(cpu_ratios):.2f})"
    )
    print(
        f"engine, warm cache:                {len(items) / statistics.median(warms):8.1f} "
        f"images/s ({statistics.median(warms):.2f} s)"
    )
    print(f"end: {load_average()}")


if __name__ == "__main__":
    main()
