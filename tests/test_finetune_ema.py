"""ModelEMA: the update worked by hand, swapping in and out, resume, late-trainable params."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from evalsuite.models import load_model
from finetune.config import LockConfig
from finetune.ema import ModelEMA
from finetune.freeze import GradualUnfreezer


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor([1.0, 10.0]))
        self.frozen = nn.Parameter(torch.tensor([5.0]), requires_grad=False)
        self.register_buffer("running", torch.tensor([0.0]))
        self.register_buffer("steps", torch.tensor([0]))  # integer: not averaged
        # A derived constant like open_clip's causal mask: not averaged (lerp(-inf) is NaN).
        self.register_buffer("mask", torch.tensor([0.0, -torch.inf]), persistent=False)

    def set(self, weight: list[float], running: float) -> None:
        with torch.no_grad():
            self.weight.copy_(torch.tensor(weight))
            self.running.fill_(running)


def test_update_worked_by_hand():
    module = Tiny()
    ema = ModelEMA(module, decay=0.9)
    assert set(ema.shadow) == {"weight", "running"}  # trainable + persistent float buffers
    module.set([2.0, 0.0], running=1.0)
    ema.update(module)  # 0.9 * [1, 10] + 0.1 * [2, 0]
    torch.testing.assert_close(ema.shadow["weight"], torch.tensor([1.1, 9.0]))
    torch.testing.assert_close(ema.shadow["running"], torch.tensor([0.1]))
    module.set([3.0, 0.0], running=1.0)
    ema.update(module)  # 0.9 * [1.1, 9] + 0.1 * [3, 0]
    torch.testing.assert_close(ema.shadow["weight"], torch.tensor([1.29, 8.1]))
    torch.testing.assert_close(ema.shadow["running"], torch.tensor([0.19]))
    assert ema.num_updates == 2


def test_warmup_follows_the_weights_early():
    module = Tiny()
    ema = ModelEMA(module, decay=0.999, warmup=True)
    assert ema.current_decay() == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    module.set([2.0, 0.0], running=0.0)
    ema.update(module)  # 0.1 * [1, 10] + 0.9 * [2, 0]
    torch.testing.assert_close(ema.shadow["weight"], torch.tensor([1.9, 1.0]))
    assert ema.current_decay() == pytest.approx(2 / 11)
    ema.num_updates = 10_000
    assert ema.current_decay() == 0.999


def test_swapped_puts_the_average_in_and_restores_even_on_error():
    module = Tiny()
    ema = ModelEMA(module, decay=0.5)
    module.set([3.0, 4.0], running=2.0)
    ema.update(module)  # [2, 7], running 1
    with ema.swapped(module):
        torch.testing.assert_close(module.weight.detach(), torch.tensor([2.0, 7.0]))
        torch.testing.assert_close(module.running, torch.tensor([1.0]))
    torch.testing.assert_close(module.weight.detach(), torch.tensor([3.0, 4.0]))
    torch.testing.assert_close(module.running, torch.tensor([2.0]))
    with pytest.raises(RuntimeError, match="boom"), ema.swapped(module):
        raise RuntimeError("boom")
    torch.testing.assert_close(module.weight.detach(), torch.tensor([3.0, 4.0]))
    ema.copy_to(module)
    torch.testing.assert_close(module.weight.detach(), torch.tensor([2.0, 7.0]))


def test_state_dict_round_trip_is_tensors_only():
    module = Tiny()
    ema = ModelEMA(module, decay=0.9)
    module.set([2.0, 0.0], running=1.0)
    ema.update(module)
    buffer = io.BytesIO()
    torch.save(ema.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())

    resumed = ModelEMA(Tiny(), decay=0.9)
    resumed.load_state_dict(state)
    assert resumed.num_updates == 1
    assert resumed.shadow.keys() == ema.shadow.keys()
    for name, tensor in ema.shadow.items():
        assert torch.equal(resumed.shadow[name], tensor)

    bad = dict(state, **{"shadow.weight": torch.zeros(3)})
    with pytest.raises(ValueError, match="shape"):
        resumed.load_state_dict(bad)
    with pytest.raises(KeyError, match=r"shadow\.nope"):
        resumed.load_state_dict(dict(state, **{"shadow.nope": torch.zeros(1)}))


def test_parameters_unfrozen_later_join_at_their_current_value():
    module = Tiny()
    ema = ModelEMA(module, decay=0.9)
    module.frozen.requires_grad_(True)
    with torch.no_grad():
        module.frozen.fill_(7.0)
    ema.update(module)
    torch.testing.assert_close(ema.shadow["frozen"], torch.tensor([7.0]))


def test_tracks_what_the_gradual_unfreezer_will_train(tiny_open_clip_dir):
    """Built before the first on_epoch_start, like the optimizer, the EMA covers every
    parameter the schedule opens; swapping works on a ClipModel and drops its fingerprint."""
    model = load_model(tiny_open_clip_dir)
    unfreezer = GradualUnfreezer(model, LockConfig(gradual_unfreeze=True))
    ema = ModelEMA(model.module, decay=0.5)
    unfreezer.on_epoch_start(0)
    assert set(ema.shadow) >= {n for n, _ in model.module.named_parameters()}
    original = copy.deepcopy(model.module.visual.proj.detach())
    fingerprint = model.fingerprint
    with torch.no_grad():
        model.module.visual.proj.add_(1.0)
    ema.update(model.module)
    with ema.swapped(model):
        torch.testing.assert_close(model.module.visual.proj.detach(), original + 0.5)
        assert model.module.attn_mask.isneginf().any()  # the causal mask is no average
        assert not model.module.attn_mask.isnan().any()
        assert model.fingerprint != fingerprint  # the EMA weights hash differently
    assert model.fingerprint != fingerprint  # the live (changed) weights: recomputed
    torch.testing.assert_close(model.module.visual.proj.detach(), original + 1.0)
