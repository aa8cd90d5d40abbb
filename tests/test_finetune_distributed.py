"""finetune on 2 CPU processes (gloo, accelerate's debug_launcher): the loss (contrastive and
sigmoid) sees the other process's negatives, validation gives what it gives on one process,
and a 2 x 8 run ends with the weights of a 1 x 16 run.

The launcher runs in a fresh interpreter (``python this_file.py WORKER OUT``): it forks, and
a pytest process that already holds accelerate state or OpenMP threads must not be forked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
# a ~0.4M-parameter CLIP (testkit/configs/tiny-train.json): several training
# steps per test stay fast
TINY = {"name": "tiny-train"}
LOCAL, DIM = 4, 8
SIGLIP_DIST_IMPLS = ("gather", "bidir", "shift", "reduce")  # open_clip's options, all on gloo


def global_batch(world: int) -> tuple[torch.Tensor, ...]:
    """The same features, negatives and labels on every process (then sliced per rank)."""
    generator = torch.Generator().manual_seed(0)
    n = LOCAL * world
    image = F.normalize(torch.randn(n, DIM, generator=generator), dim=-1)
    text = F.normalize(torch.randn(n, DIM, generator=generator), dim=-1)
    negatives = F.normalize(torch.randn(n, DIM, generator=generator), dim=-1)
    labels = torch.tensor([0, 1, 0, 2, 1, -1, 2, 3])[:n]
    return image, text, negatives, labels


def loss_worker(out: str) -> None:
    from accelerate import Accelerator

    from finetune.loss import ContrastiveLoss

    accelerator = Accelerator()
    rank, world = accelerator.process_index, accelerator.num_processes
    image, text, negatives, labels = global_batch(world)
    part = slice(rank * LOCAL, (rank + 1) * LOCAL)
    mine = [t[part].clone().requires_grad_(True) for t in (image, text, negatives)]
    loss_fn = ContrastiveLoss(rank, world, same_label_masking=True)
    scale = torch.tensor(10.0)
    per_image, per_text, targets = loss_fn.logits(mine[0], mine[1], scale, labels[part], mine[2])
    loss = loss_fn(mine[0], mine[1], scale, labels[part], mine[2])
    loss.backward()
    result = {
        "per_image": list(per_image.shape),
        "per_text": list(per_text.shape),
        "targets": targets.tolist(),
        "loss": accelerator.reduce(loss.detach(), "mean").item(),
        "grads": [t.grad.tolist() for t in mine],
        "sigmoid": sigmoid_results(accelerator, image, text, negatives, labels, part),
    }
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(result))


def sigmoid_results(accelerator, image, text, negatives, labels, part) -> dict:
    """This process's sigmoid loss (mean over processes) and gradients (features, scale,
    bias): with masking and hard negatives, and plain with each of open_clip's dist_impl."""
    from finetune.loss import SigmoidLoss

    rank, world = accelerator.process_index, accelerator.num_processes
    runs = {"masked": ("gather", True)} | {impl: (impl, False) for impl in SIGLIP_DIST_IMPLS}
    out = {}
    for name, (impl, options) in runs.items():
        mine = [t[part].clone().requires_grad_(True) for t in (image, text, negatives)]
        scalars = [torch.tensor(10.0, requires_grad=True), torch.tensor(-5.0, requires_grad=True)]
        loss_fn = SigmoidLoss(rank, world, same_label_masking=options, dist_impl=impl)
        extra = (labels[part], mine[2]) if options else ()
        loss = loss_fn(mine[0], mine[1], *scalars, *extra)
        loss.backward()
        out[name] = {
            "loss": accelerator.reduce(loss.detach(), "mean").item(),
            "grads": [t.grad.tolist() for t in mine[: 3 if options else 2]],
            "scalar_grads": [t.grad.item() for t in scalars],
        }
    return out


def train_worker(config: str) -> None:
    from finetune.config import load_config
    from finetune.loop import train

    train(load_config(config))


def launch(worker: str, argument: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two processes on a small machine
    # A script's sys.path starts with its own folder (tests/), not the cwd: without this the
    # workers would import an installed copy of the project (e.g. another git worktree's).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, __file__, worker, str(argument)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """What loss_worker computed on each of 2 processes (one launch for both losses)."""
    out = tmp_path_factory.mktemp("loss")
    launch("loss", out)
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_loss_gathers_negatives_from_the_other_process(ranks: list[dict]) -> None:
    from finetune.loss import ContrastiveLoss

    for rank, result in enumerate(ranks):
        assert result["per_text"] == [LOCAL, 2 * LOCAL]  # columns: the global batch
        assert result["per_image"] == [LOCAL, 2 * LOCAL + 2 * LOCAL]  # + global hard negatives
        assert result["targets"] == list(range(rank * LOCAL, (rank + 1) * LOCAL))

    image, text, negatives, labels = global_batch(2)
    leaves = [t.clone().requires_grad_(True) for t in (image, text, negatives)]
    single = ContrastiveLoss(same_label_masking=True)(
        *leaves[:2], torch.tensor(10.0), labels, leaves[2]
    )
    single.backward()
    assert ranks[0]["loss"] == pytest.approx(single.item(), rel=1e-5)
    # each process's features get world x the gradient of the global loss; DDP's average
    # over the two processes then gives exactly the single-process gradient
    for rank, result in enumerate(ranks):
        part = slice(rank * LOCAL, (rank + 1) * LOCAL)
        for got, leaf in zip(result["grads"], leaves, strict=True):
            torch.testing.assert_close(torch.tensor(got), 2 * leaf.grad[part], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("run", ["masked", *SIGLIP_DIST_IMPLS])
def test_sigmoid_loss_on_two_processes_is_the_global_batch_loss(ranks: list[dict], run) -> None:
    """Per process: its images against both processes' captions (and hard negatives, with
    same-label masking across processes). The mean loss is the one-process loss of the
    16-item batch; DDP's mean of the scale and bias gradients is its gradient, and each
    process's features get 2 x theirs (as for the contrastive loss)."""
    from finetune.loss import SigmoidLoss

    image, text, negatives, labels = global_batch(2)
    options = run == "masked"
    leaves = [t.clone().requires_grad_(True) for t in (image, text, negatives)]
    scalars = [torch.tensor(10.0, requires_grad=True), torch.tensor(-5.0, requires_grad=True)]
    extra = (labels, leaves[2]) if options else ()
    single = SigmoidLoss(same_label_masking=options)(*leaves[:2], *scalars, *extra)
    single.backward()
    results = [result["sigmoid"][run] for result in ranks]
    assert results[0]["loss"] == pytest.approx(single.item(), rel=1e-5)
    mean_scalar_grads = torch.tensor([r["scalar_grads"] for r in results]).mean(dim=0)
    torch.testing.assert_close(mean_scalar_grads, torch.stack([t.grad for t in scalars]))
    for rank, result in enumerate(results):
        part = slice(rank * LOCAL, (rank + 1) * LOCAL)
        for got, leaf in zip(result["grads"], leaves, strict=False):
            torch.testing.assert_close(torch.tensor(got), 2 * leaf.grad[part], rtol=1e-4, atol=1e-6)


def test_validation_does_not_depend_on_the_process_count(tmp_path: Path) -> None:
    """The base model's (epoch 0) val loss and accuracy on 1 and 2 processes: 9 val items,
    shares of 5 and 4, in chunks of train.val_batch_size (default batch_size x accum_steps =
    4), not of one step's pool (x processes: 4 items on one process, 8 on two)."""
    import yaml
    from accelerate.state import AcceleratorState

    from finetune.config import validate_config
    from finetune.loop import train
    from testkit.synthetic import write_synthetic_catalogue
    from testkit.tiny import build_tiny_hf

    model = build_tiny_hf(tmp_path / "model", seed=0, **TINY)
    data = write_synthetic_catalogue(tmp_path / "catalogue", train=16, val=9, test=0)

    def config(out: str) -> dict:
        return {
            "model": {"spec": str(model)},
            "data": {"path": str(data)},
            "train": {"epochs": 1, "batch_size": 4, "max_steps": 1},
            "loss": {"same_label_masking": True},
            "output": {"dir": str(tmp_path / out), "save_best": False, "save_last": False},
        }

    (tmp_path / "two.yaml").write_text(yaml.safe_dump(config("two")))
    launch("train", tmp_path / "two.yaml")
    train(validate_config(config("one")))
    AcceleratorState._reset_state(True)

    one, two = (
        json.loads((tmp_path / out / "state" / "progress.json").read_text())["history"][0]
        for out in ("one", "two")
    )
    assert one["epoch"] == two["epoch"] == 0
    assert two["val_loss"] == pytest.approx(one["val_loss"], rel=1e-5, abs=1e-6)
    assert two["val_accuracy"] == pytest.approx(one["val_accuracy"], abs=1e-6)


def test_contrastive_on_a_biased_model_trains_on_two_processes(tmp_path: Path) -> None:
    """loss.objective contrastive on a model with a logit bias: the bias is frozen, so DDP
    (find_unused_parameters off) does not wait for its gradient at the second step."""
    import yaml

    from evalsuite.models import load_model
    from testkit.synthetic import write_synthetic_catalogue
    from tests.fixtures.biased_open_clip import SIGLIP_INIT_BIAS, build_biased_open_clip

    model = build_biased_open_clip(tmp_path / "model", seed=0, **TINY)
    data = write_synthetic_catalogue(tmp_path / "catalogue", train=16, val=0, test=0)
    config = {
        "model": {"spec": str(model)},
        "data": {"path": str(data), "val_split": None},
        "schedule": {"name": "constant"},
        "train": {"epochs": 1, "batch_size": 4},
        "loss": {"objective": "contrastive"},
        "output": {"dir": str(tmp_path / "run"), "save_best": False},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    launch("train", tmp_path / "run.yaml")
    last = load_model(str(tmp_path / "run" / "last"))
    assert last.source.training["global_step"] == 2
    assert (
        last.logit_bias == SIGLIP_INIT_BIAS and last.source.training["objective"] == "contrastive"
    )


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["contrastive", "sigmoid"])
def test_two_processes_train_like_one_with_the_global_batch(tmp_path: Path, objective) -> None:
    """contrastive: a tiny Hugging Face CLIP; sigmoid: a tiny open_clip CLIP with a logit
    bias, its objective chosen from the model."""
    import yaml
    from accelerate.state import AcceleratorState
    from safetensors.torch import load_file

    from finetune.config import validate_config
    from finetune.loop import train
    from testkit.synthetic import write_synthetic_catalogue
    from testkit.tiny import build_tiny_hf
    from tests.fixtures.biased_open_clip import build_biased_open_clip

    build = build_tiny_hf if objective == "contrastive" else build_biased_open_clip
    model = build(tmp_path / "model", seed=0, **TINY)
    data = write_synthetic_catalogue(tmp_path / "catalogue", train=32, val=7, test=0)

    def config(out: str, batch: int) -> dict:
        return {
            "model": {"spec": str(model)},
            "data": {"path": str(data)},
            "optim": {"lr": 1e-3},
            "train": {"epochs": 1, "batch_size": batch, "log_every": 1},
            "loss": {"same_label_masking": True, "hard_negatives": {"enabled": True}},
            "output": {"dir": str(tmp_path / out), "save_best": False},
        }

    (tmp_path / "two.yaml").write_text(yaml.safe_dump(config("two", 8)))
    launch("train", tmp_path / "two.yaml")
    train(validate_config(config("one", 16)))
    AcceleratorState._reset_state(True)

    one = json.loads((tmp_path / "one" / "last" / "training.json").read_text())
    two = json.loads((tmp_path / "two" / "last" / "training.json").read_text())
    assert two["global_step"] == one["global_step"] == 2
    assert one["objective"] == two["objective"] == objective
    for a, b in zip(one["history"], two["history"], strict=True):  # val: all 7 items, in order
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-5)
        assert b["val_accuracy"] == pytest.approx(a["val_accuracy"])
    weights = "model.safetensors" if objective == "contrastive" else "open_clip_model.safetensors"
    expected = load_file(tmp_path / "one" / "last" / weights)
    got = load_file(tmp_path / "two" / "last" / weights)
    # Float noise of the sums (~1e-7) becomes ~1e-6 in the key biases, whose gradient is zero
    # in exact arithmetic (softmax ignores a constant shift) and which AdamW normalises;
    # a real difference in the gradients moves weights by ~lr = 1e-3.
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=1e-4, atol=1e-5, msg=name)


if __name__ == "__main__":
    from accelerate import debug_launcher

    worker = {"loss": loss_worker, "train": train_worker}[sys.argv[1]]
    debug_launcher(partial(worker, sys.argv[2]), num_processes=2)
