"""The sigmoid (SigLIP) objective: open_clip's SigLipLoss, plus same-label masking and hard
negatives checked against the definition, accumulation like one big batch, the objective
chosen from the model, and short fine-tunes of a tiny open_clip CLIP with a logit bias."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from accelerate.state import AcceleratorState
from open_clip.loss import SigLipLoss

from evalsuite.errors import ConfigError
from evalsuite.models import load_model
from finetune.config import validate_config
from finetune.loop import train
from finetune.loss import DualEncoder, SigmoidLoss, same_label_mask, splice, validation_loss
from testkit.synthetic import write_synthetic_catalogue
from tests.fixtures.biased_open_clip import SIGLIP_INIT_BIAS, build_biased_open_clip

# a ~0.4M-parameter CLIP (testkit/configs/tiny-train.json): several training
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


# --- fine-tuning ---------------------------------------------------------------------------


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    model = build_biased_open_clip(tmp_path / "model", seed=0, **TINY)
    return model, write_synthetic_catalogue(tmp_path / "catalogue", train=32, val=8, test=0)


def run_config(model: Path, catalogue: Path, out: Path, **sections: dict) -> dict:
    cfg = {
        "model": {"spec": str(model)},
        "data": {"path": str(catalogue), "target_field": "articleType"},
        "optim": {"lr": 1e-3},
        "train": {"epochs": 2, "batch_size": 8, "log_every": 1},
        "output": {"dir": str(out), "run_name": "tiny-siglip"},
    }
    for name, values in sections.items():
        cfg[name] = {**cfg.get(name, {}), **values}
    return cfg


def test_sigmoid_objective_is_chosen_from_the_model_and_trains(setup, tmp_path: Path) -> None:
    from finetune.data import build_loaders

    model_dir, data = setup
    cfg = run_config(model_dir, data, tmp_path / "run", train={"epochs": 3})
    progress = train(validate_config(cfg))
    assert progress.epoch == 3

    training = json.loads((tmp_path / "run" / "last" / "training.json").read_text())
    assert training["objective"] == "sigmoid"
    assert training["config"]["loss"]["objective"] == "sigmoid"
    assert "objective `sigmoid`" in (tmp_path / "run" / "last" / "README.md").read_text()
    tuned, base = load_model(str(tmp_path / "run" / "last")), load_model(str(model_dir))
    assert tuned.objective == "sigmoid" and tuned.logit_bias != SIGLIP_INIT_BIAS
    assert tuned.logit_scale != base.logit_scale
    val = [h["val_loss"] for h in training["history"]]
    assert val[-1] < val[0]  # the easy synthetic set: colour and type in every caption

    # epoch 0's val loss is open_clip's SigLipLoss of the base model on the 8 val items
    # (one chunk: val_batch_size defaults to batch_size 8)
    loaders = build_loaders(validate_config(cfg), base)
    batch = next(iter(loaders.val))
    with torch.no_grad():
        image = F.normalize(base.image_features(batch["pixel_values"]), dim=-1)
        text = F.normalize(base.text_features(batch["input_ids"]), dim=-1)
        scale, bias = base.logit_scale_parameter.exp(), base.logit_bias_parameter
        expected = SigLipLoss()(image, text, scale, bias).item()
    assert len(batch["labels"]) == 8
    assert val[0] == pytest.approx(expected, rel=1e-5)


def test_accumulation_in_the_loop_equals_one_big_batch(setup, tmp_path: Path) -> None:
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    model_dir, data = setup

    def first_step(out: str, batch: int, accum: int) -> tuple[float, list]:
        cfg = run_config(
            model_dir,
            data,
            tmp_path / out,
            data={"val_split": None},
            optim={"grad_clip_norm": None},
            schedule={"name": "constant"},
            train={"epochs": 1, "batch_size": batch, "accum_steps": accum, "max_steps": 1},
            loss={"same_label_masking": True, "hard_negatives": {"enabled": True}},
            output={"save_best": False, "save_last": False},
        )
        grads: list = []

        def capture(optimizer, args, kwargs) -> None:
            grads.extend(p.grad.clone() for g in optimizer.param_groups for p in g["params"])

        handle = register_optimizer_step_pre_hook(capture)
        try:
            train(validate_config(cfg))
        finally:
            handle.remove()
            AcceleratorState._reset_state(True)
        steps = (tmp_path / out / "steps.jsonl").read_text().splitlines()
        return json.loads(steps[0])["loss"], grads

    loss_big, grads_big = first_step("big", 16, 1)
    loss_acc, grads_acc = first_step("acc", 4, 4)
    assert loss_acc == pytest.approx(loss_big, rel=1e-5)
    assert len(grads_acc) == len(grads_big) > 0
    for acc, big in zip(grads_acc, grads_big, strict=True):
        torch.testing.assert_close(acc, big, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("sections", "bias_trains"),
    [
        ({"lock": {"lock_image": True, "lock_image_unlocked_blocks": 1}}, True),
        ({"lora": {"enabled": True}}, False),  # LoRA trains the adapters only
        ({"loss": {"objective": "contrastive"}}, False),  # softmax: the bias has no use
        ({"loss": {"objective": "zeroshot_ce"}}, False),
        ({"ema": {"enabled": True, "decay": 0.5}}, True),
    ],
    ids=["lock", "lora", "contrastive", "zeroshot_ce", "ema"],
)
def test_bias_trains_only_where_it_should(
    setup, tmp_path: Path, sections: dict, bias_trains: bool, caplog
) -> None:
    model_dir, data = setup
    train_section = {"epochs": 1, "max_steps": 2}
    cfg = run_config(model_dir, data, tmp_path / "run", train=train_section, **sections)
    with caplog.at_level(logging.INFO, logger="finetune"):
        progress = train(validate_config(cfg))
    assert progress.global_step == 2
    last = load_model(str(tmp_path / "run" / "last"))
    assert (last.logit_bias != SIGLIP_INIT_BIAS) == bias_trains
    objective = sections.get("loss", {}).get("objective", "sigmoid")
    assert last.source.training["objective"] == objective
    # a SigLIP fine-tuned with the softmax loss scores with softmax: its bias is unused
    own = "contrastive" if objective == "contrastive" else "sigmoid"
    assert last.objective == own
    assert last.score_formula().kind == {"contrastive": "softmax", "sigmoid": "sigmoid"}[own]
    said = "its logit bias stays frozen" in caplog.text
    assert said == (objective == "contrastive")
    scale_frozen = "lora" in sections or objective == "zeroshot_ce"
    assert (last.logit_scale == load_model(str(model_dir)).logit_scale) == scale_frozen


def test_sigmoid_on_a_model_without_bias_is_a_config_error(tmp_path: Path, capsys) -> None:
    import yaml

    from finetune.__main__ import main
    from testkit.tiny import build_tiny_open_clip

    model = build_tiny_open_clip(tmp_path / "model", seed=0, **TINY)
    data = write_synthetic_catalogue(tmp_path / "catalogue", train=8, val=0, test=0)
    cfg = run_config(model, data, tmp_path / "run", loss={"objective": "sigmoid"})
    cfg["data"]["val_split"], cfg["schedule"] = None, {"name": "constant"}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["--config", str(tmp_path / "run.yaml")]) == 2
    error = capsys.readouterr().err
    assert "loss.objective 'sigmoid' needs a model with a logit bias" in error
    assert "SigLIP models have one" in error and not (tmp_path / "run" / "state").exists()
    with pytest.raises(ConfigError, match="has none"):
        train(validate_config(cfg))


def test_ema_and_wise_carry_the_bias(tmp_path: Path) -> None:
    from finetune.ema import ModelEMA
    from finetune.wise import wise_interpolate

    base = load_model(str(build_biased_open_clip(tmp_path / "base", **TINY)))
    tuned = load_model(str(tmp_path / "base"))
    with torch.no_grad():
        tuned.logit_bias_parameter.fill_(-2.0)
    ema = ModelEMA(base.module, decay=0.5)
    assert "logit_bias" in ema.shadow
    with torch.no_grad():
        base.logit_bias_parameter.fill_(-6.0)
    ema.update(base.module)
    assert ema.shadow["logit_bias"].item() == pytest.approx(-8.0)
    with torch.no_grad():
        base.logit_bias_parameter.fill_(SIGLIP_INIT_BIAS)
    mixed = wise_interpolate(base, tuned, 0.25)
    assert mixed.logit_bias == pytest.approx(0.75 * SIGLIP_INIT_BIAS + 0.25 * -2.0)


@pytest.mark.parametrize(
    ("objective", "trains", "after"),
    [
        ("sigmoid", True, 4.7215),  # Google's SO400M SigLIP: exp(4.7215) = 112, kept
        (None, False, 4.7215),  # frozen (LoRA, zeroshot_ce): never moved
        ("contrastive", True, math.log(100)),  # open_clip's softmax ceiling
        ("contrastive", False, 4.7215),
    ],
)
def test_logit_scale_ceiling_only_for_a_trained_softmax_temperature(
    objective: str | None, trains: bool, after: float
) -> None:
    from finetune.loop import clamp_logit_scale

    scale = torch.nn.Parameter(torch.tensor(4.7215), requires_grad=trains)
    clamp_logit_scale(scale, objective)
    assert scale.item() == pytest.approx(after)
