"""Training samples/s of `finetune`'s loop against a bare PyTorch loop, measured in one run.

    python benchmarks/speed/train.py [--model tiny|vit-b-32|SPEC] [--steps 24] [--batch-size 32]
                                     [--repeats 3] [--threads N] [--processes 2]

Fair by construction: both loops train the same model (loaded afresh for each run) on the
same batches from the same DataLoader (``finetune.data.build_loaders``: decoding, model
preprocessing, tokenisation, same seeded order), with the same AdamW parameter groups and
gradient clipping. The bare loop is what one writes by hand: ``forward_normalized``,
open_clip's ``ClipLoss``, backward, clip, step. The finetune figure is ``finetune.loop.train``
itself, with everything it does per step (accelerate's wrappers, the dual-encoder forward,
the loss reduction, temperature clamp, steps.jsonl line, progress bar).

Both are timed at the same point, after every optimizer step (a global optimizer hook), in
wall time and in this process's CPU time; set-up (model load, data scan, epoch-0
validation, final state save) is outside the timed steps. The first ``--warmup`` steps of
each run are dropped, runs alternate (bare, finetune, bare, ...) and the rate is the batch
size over the median step time of all repeats. On a small shared machine use ``--threads 1``
(two OpenMP threads on two busy cores spin and halve throughput) and read the CPU-time
figure, the steadier one (other processes' load inflates the wall time of whichever run it
hits). Measured on the 2-core dev box (tiny model, batch 32, --threads 1): 1.01x and 0.98x
CPU, 1.03x and 0.90x wall in two runs.
``--processes 2`` also times finetune on two CPU processes (gloo, accelerate's
debug_launcher, half the batch each; wall time from steps.jsonl).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # testkit/: not installed

import torch
import yaml
from accelerate.state import AcceleratorState
from open_clip.loss import ClipLoss
from torch.optim.optimizer import register_optimizer_step_post_hook

from evalsuite.models import load_model
from finetune.build import build_optimizer
from finetune.config import TrainConfig, validate_config
from finetune.data import build_loaders, set_epoch
from finetune.loop import train
from testkit.synthetic import write_synthetic_catalogue
from testkit.tiny import build_tiny_hf


def model_spec(name: str, workdir: Path) -> str:
    if name == "tiny":
        return str(build_tiny_hf(workdir / "tiny", seed=0))
    if name == "vit-b-32":  # ViT-B/32-sized, randomly initialised: the cost of a real CLIP
        return "openclip:ViT-B-32"
    return name


def config(spec: str, data: Path, out: Path, args: argparse.Namespace, batch: int) -> dict:
    return {
        "model": {"spec": spec},
        "data": {"path": str(data), "val_split": None, "num_workers": args.workers},
        "schedule": {"name": "constant"},
        "train": {"epochs": 1, "batch_size": batch, "max_steps": args.steps, "log_every": 1},
        "output": {"dir": str(out), "save_best": False, "save_last": False},
    }


class StepClock:
    """Wall and CPU (this process, all threads) time after every optimizer step, taken by a
    global optimizer hook: the same point in both loops."""

    def __init__(self) -> None:
        self.stamps: list[tuple[float, float]] = []
        self.handle = register_optimizer_step_post_hook(self.tick)

    def tick(self, *_: object) -> None:
        self.stamps.append((time.perf_counter(), time.process_time()))

    def intervals(self, warmup: int) -> tuple[list[float], list[float]]:
        self.handle.remove()
        pairs = list(itertools.pairwise(self.stamps))[warmup:]
        return [b[0] - a[0] for a, b in pairs], [b[1] - a[1] for a, b in pairs]


def finetune_loop(cfg: TrainConfig) -> None:
    train(cfg)
    AcceleratorState._reset_state(True)


def bare_loop(cfg: TrainConfig) -> None:
    torch.manual_seed(cfg.train.seed)
    model = load_model(cfg.model.spec)
    loaders = build_loaders(cfg, model)
    set_epoch(loaders.train, 0)
    optimizer = build_optimizer(model, cfg, torch.device("cpu"))
    loss_fn = ClipLoss()
    model.module.train()
    for step, batch in enumerate(loaders.train):
        image, text, scale = model.forward_normalized(batch["pixel_values"], batch["input_ids"])
        loss = loss_fn(image, text, scale)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.module.parameters(), cfg.optim.grad_clip_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step + 1 == cfg.train.max_steps:
            break


def two_process_step_times(cfg_path: Path, out: Path) -> list[float]:
    code = (
        "from accelerate import debug_launcher; from finetune.config import load_config; "
        "from finetune.loop import train; "
        f"debug_launcher(lambda: train(load_config({str(cfg_path)!r})), num_processes=2)"
    )
    threads = str(max(1, torch.get_num_threads() // 2))  # no oversubscription of the cores
    env = {**os.environ, "OMP_NUM_THREADS": threads}
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)
    stamps = [json.loads(line)["time"] for line in (out / "steps.jsonl").read_text().splitlines()]
    return [b - a for a, b in itertools.pairwise(stamps)]


def rate(times: list[float], batch: int) -> float:
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny, vit-b-32 or a model spec")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--processes", type=int, choices=(1, 2), default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batch = args.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        spec = model_spec(args.model, work)
        data = write_synthetic_catalogue(work / "data", train=batch * args.steps, val=0, test=0)
        loops = {"bare": bare_loop, "finetune": finetune_loop}
        wall: dict[str, list[float]] = {name: [] for name in loops}
        cpu: dict[str, list[float]] = {name: [] for name in loops}
        for repeat in range(args.repeats):
            for name, loop in loops.items():
                cfg = validate_config(config(spec, data, work / f"{name}{repeat}", args, batch))
                clock = StepClock()
                loop(cfg)
                w, c = clock.intervals(args.warmup)
                wall[name] += w
                cpu[name] += c
        print(
            f"model {args.model}, batch {batch}, {args.steps} steps x {args.repeats} repeats "
            f"(first {args.warmup} dropped), {torch.get_num_threads()} threads, cpu"
        )
        for name in loops:
            print(
                f"{name:9s} loop: {rate(wall[name], batch):7.1f} samples/s wall, "
                f"{rate(cpu[name], batch):7.1f} samples per CPU-second"
            )
        ratio_wall = rate(wall["finetune"], batch) / rate(wall["bare"], batch)
        ratio_cpu = rate(cpu["finetune"], batch) / rate(cpu["bare"], batch)
        print(f"ratio finetune / bare: {ratio_wall:.2f}x wall, {ratio_cpu:.2f}x CPU (goal >= 0.9x)")
        if args.processes == 2:
            cfg_path = work / "two.yaml"
            two = config(spec, data, work / "two", args, batch // 2)
            cfg_path.write_text(yaml.safe_dump(two))
            step_times = two_process_step_times(cfg_path, work / "two")
            two_rate = rate(step_times[args.warmup :], batch)
            print(
                f"finetune, 2 processes: {two_rate:7.1f} samples/s wall (batch {batch // 2} each)"
            )


if __name__ == "__main__":
    main()
