"""The sigmoid (SigLIP) objective: open_clip's SigLipLoss, plus same-label masking and hard
negatives checked against the definition, accumulation like one big batch, the objective
chosen from the model, and short fine-tunes of a tiny open_clip CLIP with a logit bias."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from accelerate.state import AcceleratorState
from open_clip.loss import SigLipLoss

from evalsuite.models import load_model
from finetune.loss import DualEncoder, SigmoidLoss, same_label_mask, splice, validation_loss
from tests.biased_open_clip import SIGLIP_INIT_BIAS, build_biased_open_clip

# a ~0.4M-parameter CLIP (evalsuite/models/configs/tiny-train.json): several training
# steps per test stay fast
TINY = {"name": "tiny-train"}


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    yield
    AcceleratorState._reset_state(True)


def features(n: int, dim: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    image = F.normalize(torch.randn(n, dim, generator=generator), dim=-1)
    text = F.normalize(torch.randn(n, dim, generator=generator), dim=-1)
    return image, text


def scalars(scale: float = 10.0, bias: float = -5.0) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(float(scale), requires_grad=True), torch.tensor(
        float(bias), requires_grad=True
    )


def reference(image, text, scale, bias, labels=None, negatives=None) -> torch.Tensor:
    """The definition, pair by pair: -(1/images) sum over pairs of log sigmoid(z * logit),
    z = +1 for an image and its own caption, -1 for any other caption or hard negative;
    same-label pairs off the diagonal are no pair at all."""
    total = torch.zeros(())
    columns = [(j, t) for j, t in enumerate(text)] + [
        (None, t) for t in ([] if negatives is None else negatives)
    ]
    for i, u in enumerate(image):
        for j, t in columns:
            same = labels is not None and j is not None and labels[i] == labels[j] >= 0
            if same and j != i:
                continue
            z = 1.0 if j == i else -1.0
            total = total - F.logsigmoid(z * (scale * (u @ t) + bias))
    return total / len(image)


# --- the loss ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "seed", "scale", "bias"), [(2, 0, 10, -10), (6, 1, 1, 0), (9, 2, 50, -3)]
)
def test_plain_loss_is_open_clips_siglip_loss(n: int, seed: int, scale: float, bias: float) -> None:
    image, text = features(n, seed=seed)
    ours, theirs = scalars(scale, bias), scalars(scale, bias)
    got = SigmoidLoss()(image, text, *ours)
    expected = SigLipLoss()(image, text, *theirs)
    torch.testing.assert_close(got, expected)
    got.backward()
    expected.backward()
    for mine, open_clips in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine.grad, open_clips.grad)
    torch.testing.assert_close(got, reference(image, text, *scalars(scale, bias)))


def test_masking_and_hard_negatives_follow_the_definition() -> None:
    image, text = features(6, seed=3)
    labels = torch.tensor([0, 1, 0, 2, -1, -1])  # -1: no label, matches nothing
    negatives, _ = features(12, seed=4)
    loss = SigmoidLoss(same_label_masking=True)
    for labels_, negatives_ in [(labels, None), (None, negatives), (labels, negatives)]:
        ours, ref = scalars(), scalars()
        got = loss(image, text, *ours, labels_, negatives_)
        expected = reference(image, text, *ref, labels_, negatives_)
        torch.testing.assert_close(got, expected)
        got.backward()
        expected.backward()
        for mine, by_hand in zip(ours, ref, strict=True):
            torch.testing.assert_close(mine.grad, by_hand.grad)
    # a masked pair adds nothing: two identical items of one class (as a negative, each pair
    # would add -log sigmoid(-5) ~ 5) score like one item alone
    twins = torch.stack([image[0], image[0]])
    scale, bias = torch.tensor(50.0), torch.tensor(-45.0)
    alone = SigmoidLoss()(image[:1], image[:1], scale, bias)
    masked = loss(twins, twins, scale, bias, torch.tensor([7, 7]))
    torch.testing.assert_close(masked, alone)
    assert SigmoidLoss()(twins, twins, scale, bias) > alone + 4


def test_masked_pairs_get_no_gradient() -> None:
    image, text = features(4, seed=5)
    text = text.clone().requires_grad_(True)
    labels = torch.tensor([0, 0, 1, 2])
    SigmoidLoss(same_label_masking=True)(image, text, *scalars(), labels).backward()
    dropped = same_label_mask(labels, labels, torch.arange(4))
    assert dropped.sum() == 2  # (0, 1) and (1, 0)
    # by hand: caption 1 is pulled by image 1 only (image 0 is its class mate)
    t = text.detach()
    logit = 10.0 * image[1] @ t[1] - 5.0
    pulls = -(1 - torch.sigmoid(logit)) * 10.0 * image[1]  # d/dt of -log sigmoid(logit)
    pushes = sum(torch.sigmoid(10.0 * image[i] @ t[1] - 5.0) * 10.0 * image[i] for i in (2, 3))
    torch.testing.assert_close(text.grad[1], (pulls + pushes) / 4)


def test_splice_accumulation_equals_one_big_batch() -> None:
    """k micro-batches, each live in turn among the others' cached features (the loop's
    accumulation): the summed gradients of the towers, the scale and the bias are those of
    one batch of all the items."""
    torch.manual_seed(0)
    towers = torch.nn.ModuleDict({"image": torch.nn.Linear(8, 16), "text": torch.nn.Linear(8, 16)})
    log_scale, bias = torch.nn.Parameter(torch.tensor(2.3)), torch.nn.Parameter(torch.tensor(-4.0))
    params = [*towers.parameters(), log_scale, bias]
    pixels, captions, negatives = torch.randn(12, 8), torch.randn(12, 8), torch.randn(24, 8)
    labels = torch.tensor([0, 1, 2, 0, 1, 3, 2, 2, 0, -1, 4, 5])
    loss_fn = SigmoidLoss(same_label_masking=True)

    def encode(part: slice, negatives_part: slice) -> dict[str, torch.Tensor]:
        return {
            "image": F.normalize(towers["image"](pixels[part]), dim=-1),
            "text": F.normalize(towers["text"](captions[part]), dim=-1),
            "negatives": F.normalize(towers["text"](negatives[negatives_part]), dim=-1),
            "scale": log_scale.exp(),
            "bias": bias.reshape(()),
        }

    def run(k: int) -> tuple[float, list[torch.Tensor]]:
        for p in params:
            p.grad = None
        size = 12 // k
        parts = [
            (slice(j * size, (j + 1) * size), slice(2 * j * size, 2 * (j + 1) * size))
            for j in range(k)
        ]
        with torch.no_grad():
            cached = [encode(*part) for part in parts]
        for j, part in enumerate(parts):
            live = encode(*part)
            step = splice(cached, live, j, scale_grad=j == k - 1)
            loss = loss_fn(
                step["image"], step["text"], step["scale"], step["bias"], labels, step["negatives"]
            )
            loss.backward()
        return loss.item(), [p.grad.clone() for p in params]

    loss_big, grads_big = run(1)
    for k in (3, 4):
        loss_acc, grads_acc = run(k)
        assert loss_acc == pytest.approx(loss_big, rel=1e-6)
        for acc, big in zip(grads_acc, grads_big, strict=True):
            torch.testing.assert_close(acc, big, rtol=1e-5, atol=1e-6)


def test_validation_loss_is_the_chunked_sigmoid_loss() -> None:
    image, text = features(10, seed=6)
    labels = torch.tensor([0, 1, 0, 1, 2, 2, 0, 1, 2, 0])
    scale, bias = torch.tensor(10.0), torch.tensor(-5.0)
    got = validation_loss(SigmoidLoss(), image, text, labels, scale, chunk=4, bias=bias)
    # chunks of 4: the last holds 2 (a last chunk of one item would join the one before)
    parts = [(0, 4), (4, 8), (8, 10)]
    expected = sum(SigLipLoss()(image[a:b], text[a:b], scale, bias) * (b - a) for a, b in parts)
    assert got == pytest.approx(expected.item() / 10, rel=1e-6)
    masked = validation_loss(
        SigmoidLoss(same_label_masking=True), image, text, labels, scale, chunk=10, bias=bias
    )
    assert masked == pytest.approx(reference(image, text, scale, bias, labels).item(), rel=1e-6)


def test_dual_encoder_gives_the_bias_for_the_sigmoid_objective(tmp_path: Path) -> None:
    model = load_model(str(build_biased_open_clip(tmp_path / "model", **TINY)))
    pixels = torch.zeros(2, 3, 32, 32)
    ids = model.tokenize(["a shoe", "a boot"])
    out = DualEncoder(model, with_text=True, with_bias=True)(pixels, ids)
    assert out["bias"].shape == () and out["bias"].item() == SIGLIP_INIT_BIAS
    assert out["bias"].requires_grad and "bias" not in DualEncoder(model, True)(pixels, ids)
    # splice passes the bias like the scale: with its gradient in the last pass only
    spliced = splice([out, out], out, 0, scale_grad=False)
    assert not spliced["bias"].requires_grad and len(spliced["image"]) == 4
