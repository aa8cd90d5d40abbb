"""finetune losses: same-label masking, hard negatives, zeroshot_ce, and gradient accumulation
that enlarges the negatives pool exactly like one big batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from accelerate.state import AcceleratorState
from torch.optim.optimizer import register_optimizer_step_pre_hook

from finetune.captions import HardNegatives, swap_attribute
from finetune.config import validate_config
from finetune.loop import train
from finetune.loss import ContrastiveLoss, ZeroShotCELoss, same_label_mask
from testkit.synthetic import write_synthetic_catalogue

# a ~0.4M-parameter CLIP (testkit/configs/tiny-train.json): several training
# steps per test stay fast
TINY = {"name": "tiny-train"}


def features(n: int, dim: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    image = F.normalize(torch.randn(n, dim, generator=generator), dim=-1)
    text = F.normalize(torch.randn(n, dim, generator=generator), dim=-1)
    return image, text


def test_plain_loss_is_open_clips_cliploss() -> None:
    from open_clip.loss import ClipLoss

    image, text = features(6)
    scale = torch.tensor(10.0)
    assert torch.allclose(ContrastiveLoss()(image, text, scale), ClipLoss()(image, text, scale))


def test_all_labels_equal_leaves_only_the_diagonal() -> None:
    image, text = features(5)
    labels = torch.zeros(5, dtype=torch.long)
    loss = ContrastiveLoss(same_label_masking=True)
    per_image, per_text, _ = loss.logits(image, text, torch.tensor(10.0), labels)
    off_diagonal = ~torch.eye(5, dtype=torch.bool)
    assert torch.isinf(per_image[off_diagonal]).all() and torch.isinf(per_text[off_diagonal]).all()
    assert torch.isfinite(per_image.diagonal()).all()
    # softmax over the diagonal entry alone: the loss over only diagonal entries is zero
    assert loss(image, text, torch.tensor(10.0), labels).item() == pytest.approx(0.0, abs=1e-6)


def test_masking_removes_same_label_pairs_only() -> None:
    image, text = features(6, seed=1)
    labels = torch.tensor([0, 1, 0, 2, -1, -1])  # -1: no label, matches nothing
    scale = torch.tensor(5.0)
    mask = same_label_mask(labels, labels, torch.arange(6))
    expected = torch.zeros(6, 6, dtype=torch.bool)
    expected[0, 2] = expected[2, 0] = True
    assert torch.equal(mask, expected)
    masked = ContrastiveLoss(same_label_masking=True)(image, text, scale, labels)
    # by hand: cross-entropy over each row without the masked columns, both directions
    logits = scale * image @ text.T
    keep = ~expected
    rows_i = [F.cross_entropy(logits[i][keep[i]][None], keep[i][:i].sum()[None]) for i in range(6)]
    rows_t = [
        F.cross_entropy(logits.T[i][keep[i]][None], keep[i][:i].sum()[None]) for i in range(6)
    ]
    by_hand = (torch.stack(rows_i).mean() + torch.stack(rows_t).mean()) / 2
    assert masked.item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert masked < ContrastiveLoss()(image, text, scale, labels)


def test_swap_attribute_in_caption() -> None:
    caption = "White casual shoes for men: Nike White Shoes. It has white shoelaces."
    assert swap_attribute(caption, "white", "red") == (
        "Red casual shoes for men: Nike Red Shoes. It has red shoelaces."
    )
    assert swap_attribute("Black heels for women.", "Heels", "Flats") == "Black flats for women."
    assert swap_attribute("A whitewashed look.", "white", "red") is None  # whole words only
    negatives = HardNegatives(["White", "Red", "Black"], 2, "{caption} With {value} laces.", 0)
    made = negatives.captions("A shoe. It has white shoelaces.", "White", index=3, epoch=0)
    assert sorted(made) == ["A shoe. It has black shoelaces.", "A shoe. It has red shoelaces."]
    assert negatives.captions("A sandal.", "", 1, 0)[0].startswith("A sandal. With ")
    assert made == negatives.captions("A shoe. It has white shoelaces.", "White", 3, 0)


def test_hard_negatives_extend_only_the_image_side() -> None:
    image, text = features(4)
    negatives = F.normalize(torch.randn(8, 16), dim=-1)  # two per item
    loss = ContrastiveLoss()
    per_image, per_text, _ = loss.logits(image, text, torch.tensor(10.0), None, negatives)
    assert per_image.shape == (4, 4 + 8) and per_text.shape == (4, 4)
    with_negatives = loss(image, text, torch.tensor(10.0), None, negatives)
    assert with_negatives > loss(image, text, torch.tensor(10.0))


def test_zeroshot_ce_is_cross_entropy_against_class_embeddings() -> None:
    image, classes = features(3, seed=2)
    labels = torch.tensor([0, 2, 1])
    loss = ZeroShotCELoss(classes, logit_scale=50.0)
    assert loss(image, labels).item() == pytest.approx(
        F.cross_entropy(50.0 * image @ classes.T, labels).item(), rel=1e-6
    )


# --- accumulation through the real loop ----------------------------------------------------------


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    from testkit.tiny import build_tiny_hf

    model = build_tiny_hf(tmp_path / "model", seed=0, **TINY)
    return model, write_synthetic_catalogue(tmp_path / "catalogue", train=32, val=0, test=0)


def first_step(model: Path, data: Path, out: Path, batch: int, accum: int) -> tuple[float, list]:
    """Train one step; return its loss and every parameter's gradient before the update."""
    cfg = validate_config(
        {
            "model": {"spec": str(model)},
            "data": {"path": str(data), "val_split": None, "target_field": "articleType"},
            "optim": {"grad_clip_norm": None},
            "schedule": {"name": "constant"},
            "train": {
                "epochs": 1,
                "batch_size": batch,
                "accum_steps": accum,
                "max_steps": 1,
                "log_every": 1,
            },
            "loss": {"same_label_masking": True, "hard_negatives": {"enabled": True}},
            "output": {"dir": str(out), "save_best": False, "save_last": False},
        }
    )
    grads: list = []

    def capture(optimizer, args, kwargs) -> None:
        grads.extend(
            None if p.grad is None else p.grad.clone()
            for group in optimizer.param_groups
            for p in group["params"]
        )

    handle = register_optimizer_step_pre_hook(capture)
    try:
        train(cfg)
    finally:
        handle.remove()
        AcceleratorState._reset_state(True)
    loss = json.loads((out / "steps.jsonl").read_text().splitlines()[0])["loss"]
    return loss, grads


def test_accumulating_4x8_equals_one_batch_of_32(setup, tmp_path: Path) -> None:
    loss_big, grads_big = first_step(*setup, tmp_path / "big", batch=32, accum=1)
    loss_acc, grads_acc = first_step(*setup, tmp_path / "acc", batch=8, accum=4)
    assert loss_acc == pytest.approx(loss_big, rel=1e-5)
    assert len(grads_acc) == len(grads_big) > 0
    for acc, big in zip(grads_acc, grads_big, strict=True):
        assert (acc is None) == (big is None)
        if big is not None:
            torch.testing.assert_close(acc, big, rtol=1e-4, atol=1e-6)
    # the pool of negatives matters: 4 separate batches of 8 give another loss
    loss_small, _ = first_step(*setup, tmp_path / "small", batch=8, accum=1)
    assert abs(loss_small - loss_big) > 1e-3
