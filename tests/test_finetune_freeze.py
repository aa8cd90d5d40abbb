"""Tower layout, locking, gradual unfreezing and AdamW parameter groups on both backends."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from evalsuite.errors import ConfigError
from evalsuite.models import ClipModel, load_model
from evalsuite.models.layout import TOWERS, named_parameters, tower_layout
from finetune.config import LockConfig
from finetune.freeze import (
    GradualUnfreezer,
    apply_locking,
    build_param_groups,
    tower_units,
    trainable_parameter_count,
    unit_parameters,
)

BACKENDS = ("hf", "open_clip")


@pytest.fixture(scope="module")
def loaded(tiny_hf_dir, tiny_open_clip_dir) -> dict[str, ClipModel]:
    return {"hf": load_model(tiny_hf_dir), "open_clip": load_model(tiny_open_clip_dir)}


@pytest.fixture(params=BACKENDS)
def model(request, loaded) -> ClipModel:
    return copy.deepcopy(loaded[request.param])


def contrastive_step(model: ClipModel, optimizer: torch.optim.Optimizer) -> None:
    torch.manual_seed(0)
    size = model.preprocess_config.image_size
    pixels = torch.randn(3, 3, size, size)
    ids = model.tokenize(["a red shoe", "a blue boot", "a sandal"])
    image, text, scale = model.forward_normalized(pixels, ids)
    logits = scale * image @ text.T
    labels = torch.arange(3)
    loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def snapshot(model: ClipModel) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.module.named_parameters()}


def changed_units(model: ClipModel, before: dict[str, torch.Tensor]) -> set[str]:
    layout = tower_layout(model)
    changed = set()
    for tower in TOWERS:
        for unit in tower_units(layout, tower):
            params = unit_parameters(model.module, unit)
            if any(not torch.equal(p, before[name]) for name, p in params):
                changed.add(unit.label)
    return changed


ALL_UNITS = {
    f"{tower}.{unit}" for tower in TOWERS for unit in ("head", "blocks.1", "blocks.0", "embed")
}


# --- layout ----------------------------------------------------------------------------------


def test_layout_splits_both_backends_into_the_same_units(loaded):
    """Every parameter lies in one unit, and each unit holds as many weights in either
    backend (the tiny models hold identical weights)."""
    sizes = {}
    for backend, model in loaded.items():
        layout = tower_layout(model)  # raises if a parameter lies outside the layout
        assert len(layout.image.blocks) == len(layout.text.blocks) == 2
        units = {
            unit.label: sum(p.numel() for _, p in unit_parameters(model.module, unit))
            for tower in TOWERS
            for unit in tower_units(layout, tower)
        }
        units["logit"] = sum(p.numel() for _, p in named_parameters(model.module, layout.logit))
        assert sum(units.values()) == model.parameter_count
        sizes[backend] = units
    assert sizes["hf"] == sizes["open_clip"]
    assert set(sizes["hf"]) == ALL_UNITS | {"logit"}


# --- locking ---------------------------------------------------------------------------------


def test_locked_image_tower_stays_put_except_unlocked_block_and_head(model):
    cfg = LockConfig(
        lock_image=True, lock_image_unlocked_blocks=1, lock_image_unlock_projection=True
    )
    apply_locking(model, cfg)
    before = snapshot(model)
    optimizer = torch.optim.SGD([p for p in model.module.parameters() if p.requires_grad], lr=0.5)
    contrastive_step(model, optimizer)
    assert changed_units(model, before) == ALL_UNITS - {"image.blocks.0", "image.embed"}
    assert not torch.equal(model.logit_scale_parameter, before["logit_scale"])
    trainable, total = trainable_parameter_count(model.module)
    layout = tower_layout(model)
    frozen = sum(
        p.numel()
        for unit in tower_units(layout, "image")
        if unit.name in {"blocks.0", "embed"}
        for _, p in unit_parameters(model.module, unit)
    )
    assert (trainable, total) == (total - frozen, model.parameter_count)


def test_locking_a_whole_tower_keeps_the_logit_scale_trainable(loaded):
    model = copy.deepcopy(loaded["hf"])
    apply_locking(model, LockConfig(lock_text=True))
    before = snapshot(model)
    optimizer = torch.optim.SGD([p for p in model.module.parameters() if p.requires_grad], lr=0.5)
    contrastive_step(model, optimizer)
    assert changed_units(model, before) == {u for u in ALL_UNITS if u.startswith("image.")}
    assert model.logit_scale_parameter.requires_grad


def test_locking_more_blocks_than_the_tower_has_is_a_config_error(loaded):
    model = copy.deepcopy(loaded["hf"])
    with pytest.raises(ConfigError, match=r"lock_image_unlocked_blocks is 5.*only 2 blocks"):
        apply_locking(model, LockConfig(lock_image=True, lock_image_unlocked_blocks=5))


def test_without_lock_flags_nothing_is_frozen(loaded):
    model = copy.deepcopy(loaded["open_clip"])
    apply_locking(model, LockConfig())
    trainable, total = trainable_parameter_count(model.module)
    assert trainable == total


# --- gradual unfreezing ----------------------------------------------------------------------


def test_gradual_schedule_opens_heads_then_blocks_top_down(loaded):
    model = copy.deepcopy(loaded["hf"])
    unfreezer = GradualUnfreezer(model, LockConfig(gradual_unfreeze=True))
    expected = {
        0: ["image.head", "image.blocks.1", "text.head", "text.blocks.1"],
        1: ["image.blocks.0", "text.blocks.0"],
        2: ["image.embed", "text.embed"],
        3: [],
    }
    counts = []
    for epoch, new in expected.items():
        assert unfreezer.on_epoch_start(epoch) == new
        counts.append(trainable_parameter_count(model.module)[0])
    assert counts[0] < counts[1] < counts[2] == counts[3] == model.parameter_count
    assert unfreezer.finished
    # A resumed run jumps straight to its epoch and gets the same state.
    resumed = GradualUnfreezer(copy.deepcopy(loaded["hf"]), LockConfig(gradual_unfreeze=True))
    assert sorted(resumed.on_epoch_start(1)) == sorted(expected[0] + expected[1])


def test_gradual_schedule_starts_a_locked_tower_from_its_lock(loaded):
    model = copy.deepcopy(loaded["open_clip"])
    cfg = LockConfig(
        lock_image=True,
        lock_image_unlocked_blocks=1,
        gradual_unfreeze=True,
        unfreeze_blocks_per_epoch=2,
    )
    apply_locking(model, cfg)  # gradual: the unfreezer applies the lock, per epoch
    assert trainable_parameter_count(model.module)[0] == model.parameter_count
    unfreezer = GradualUnfreezer(model, cfg)
    assert unfreezer.schedule(0) == [
        "image.blocks.1",
        "text.head",
        "text.blocks.1",
        "text.blocks.0",
    ]
    assert unfreezer.on_epoch_start(1) == [
        "image.blocks.1",
        "image.head",
        "image.blocks.0",
        "text.head",
        "text.blocks.1",
        "text.blocks.0",
        "text.embed",
    ]
    assert unfreezer.on_epoch_start(2) == ["image.embed"]


def test_frozen_then_unfrozen_parameters_train_with_adamw(loaded):
    """Groups built before the first on_epoch_start hold every parameter; AdamW skips the
    frozen ones (no gradient: no update, no weight decay) until they are unfrozen."""
    model = copy.deepcopy(loaded["open_clip"])
    unfreezer = GradualUnfreezer(model, LockConfig(gradual_unfreeze=True))
    groups = build_param_groups(model, lr=1e-2, weight_decay=0.5, layer_decay=0.5)
    optimizer = torch.optim.AdamW(groups)
    assert sum(len(g["params"]) for g in groups) == len(list(model.module.parameters()))

    unfreezer.on_epoch_start(0)
    before = snapshot(model)
    contrastive_step(model, optimizer)
    assert changed_units(model, before) == {
        "image.head",
        "image.blocks.1",
        "text.head",
        "text.blocks.1",
    }

    unfreezer.on_epoch_start(1)
    before = snapshot(model)
    contrastive_step(model, optimizer)
    assert changed_units(model, before) == ALL_UNITS - {"image.embed", "text.embed"}


# --- parameter groups ------------------------------------------------------------------------


def test_param_groups_exempt_biases_norms_embeddings_and_logit_scale(model):
    apply_locking(model, LockConfig(lock_text=True, lock_text_unlock_projection=True))
    groups = build_param_groups(model, lr=1e-3, weight_decay=0.2)
    decay = {n for g in groups if g["weight_decay"] > 0 for n in g["param_names"]}
    no_decay = {n for g in groups if g["weight_decay"] == 0 for n in g["param_names"]}
    trainable = {n for n, p in model.module.named_parameters() if p.requires_grad}
    assert decay | no_decay == trainable and not decay & no_decay  # frozen text left out
    params = dict(model.module.named_parameters())
    layout = tower_layout(model)
    embed = {n for n, _ in named_parameters(model.module, layout.image.embed)}
    for name in decay:
        assert params[name].ndim >= 2 and "bias" not in name and name not in embed
    for name in no_decay - embed:
        assert params[name].ndim < 2 or "logit_scale" in name
    assert "logit_scale" in no_decay and embed <= no_decay
    assert {g["lr"] for g in groups} == {1e-3}  # no layer decay: one learning rate


def test_layer_decay_scales_lr_by_depth_from_the_top(loaded):
    lrs = {}
    for backend, model in loaded.items():
        groups = build_param_groups(copy.deepcopy(model), lr=1.0, weight_decay=0.1, layer_decay=0.5)
        lrs[backend] = {g["name"]: (g["lr"], g["lr_scale"], g["weight_decay"]) for g in groups}
    assert lrs["hf"] == lrs["open_clip"]
    by_unit = {name.split("/")[0]: lr for name, (lr, _, _) in lrs["hf"].items()}
    assert by_unit == {
        "logit": 1.0,
        **{f"{t}.head": 1.0 for t in TOWERS},
        **{f"{t}.blocks.1": 0.5 for t in TOWERS},
        **{f"{t}.blocks.0": 0.25 for t in TOWERS},
        **{f"{t}.embed": 0.125 for t in TOWERS},
    }
    with pytest.raises(ConfigError, match="layer_decay"):
        build_param_groups(loaded["hf"], lr=1.0, weight_decay=0.1, layer_decay=1.5)
