"""LoRA on both backends: only adapters train, merging gives a plain checkpoint."""

from __future__ import annotations

import copy

import open_clip
import pytest
import torch
import torch.nn.functional as F
from transformers import CLIPModel

from evalsuite.errors import ConfigError
from evalsuite.models import ClipModel, load_model
from finetune.config import LockConfig, LoraConfig
from finetune.freeze import GradualUnfreezer, apply_locking, build_param_groups
from finetune.lora import apply_lora, has_lora, merge_lora

LORA = LoraConfig(enabled=True, rank=4, alpha=8.0)
SCALE = LORA.alpha / LORA.rank


@pytest.fixture(scope="module")
def loaded(tiny_hf_dir, tiny_open_clip_dir) -> dict[str, ClipModel]:
    return {"hf": load_model(tiny_hf_dir), "open_clip": load_model(tiny_open_clip_dir)}


def batch(model: ClipModel) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    size = model.preprocess_config.image_size
    pixels = torch.randn(3, 3, size, size, generator=generator)
    return pixels, model.tokenize(["a red shoe", "a blue boot", "a sandal"])


def contrastive_step(model: ClipModel, optimizer: torch.optim.Optimizer) -> None:
    model.module.train()
    image, text, scale = model.forward_normalized(*batch(model))
    logits = scale * image @ text.T
    labels = torch.arange(len(logits))
    loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    model.module.eval()


@torch.no_grad()
def features(model: ClipModel) -> tuple[torch.Tensor, torch.Tensor]:
    pixels, ids = batch(model)
    return model.image_features(pixels), model.text_features(ids)


def adapters(model: ClipModel) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.module.named_parameters() if "lora_" in n}


def base_name(name: str) -> str:
    """The plain model's name of a base weight inside a LoRA wrapper."""
    return name.replace(".base_layer", "")


@pytest.fixture(scope="module", params=["hf", "open_clip"])
def trained(request, loaded) -> tuple[ClipModel, ClipModel]:
    """(plain model, LoRA copy after one AdamW step) of one backend. The step runs with
    gradient checkpointing: the adapters must still get gradients through it."""
    plain = loaded[request.param]
    model = copy.deepcopy(plain)
    assert apply_lora(model, LORA)
    model.set_grad_checkpointing(True)
    optimizer = torch.optim.AdamW(build_param_groups(model, lr=1e-2, weight_decay=0.0))
    contrastive_step(model, optimizer)
    return plain, model


def test_only_adapters_train_and_base_weights_stay_exact(trained):
    plain, model = trained
    trainable = [n for n, p in model.module.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    base = plain.module.state_dict()
    for name, tensor in model.module.state_dict().items():
        if "lora_" not in name:
            assert torch.equal(tensor, base[base_name(name)]), name
    # B starts at zero: after one step (A's gradient is still zero) every B has moved.
    assert all(p.abs().sum() > 0 for n, p in adapters(model).items() if "lora_B" in n)


def test_merge_gives_base_plus_delta_and_a_plain_checkpoint(trained, tmp_path):
    plain, trained_model = trained
    model = copy.deepcopy(trained_model)
    before = features(model)
    lora = adapters(model)
    merge_lora(model)
    assert not has_lora(model)
    state = model.module.state_dict()
    assert state.keys() == plain.module.state_dict().keys()
    assert all(p.requires_grad for p in model.module.parameters())
    # One adapted weight per backend, by hand: W + alpha / r * B @ A.
    if model.backend == "hf":
        weight, prefix = "vision_model.encoder.layers.0.self_attn.q_proj.weight", "q_proj"
        key = "vision_model.encoder.layers.0.self_attn.q_proj.lora_{}.default.weight"
    else:
        weight, prefix = "visual.transformer.resblocks.0.attn.in_proj_weight", "in_proj"
        key = "visual.transformer.resblocks.0.attn.lora_in_proj.lora_{}"
    assert prefix in weight
    delta = SCALE * lora[key.format("B")] @ lora[key.format("A")]
    expected = plain.module.state_dict()[weight] + delta
    torch.testing.assert_close(state[weight], expected, rtol=0, atol=1e-6)

    after = features(model)
    for a, b in zip(before, after, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)

    model.save(tmp_path)  # plain library loaders, no peft, no evalsuite
    pixels, _ = batch(model)
    with torch.no_grad():
        if model.backend == "hf":
            clip = CLIPModel.from_pretrained(str(tmp_path)).eval()
            image = clip.visual_projection(clip.vision_model(pixel_values=pixels).pooler_output)
        else:
            clip = open_clip.create_model(f"local-dir:{tmp_path}").eval()
            image = clip.encode_image(pixels)
    torch.testing.assert_close(image, before[0], rtol=1e-5, atol=1e-5)


def test_merging_a_copy_leaves_the_training_model_intact(trained):
    _, model = trained
    before = features(model)
    merge_lora(copy.deepcopy(model))
    assert has_lora(model)
    for a, b in zip(before, features(model), strict=True):
        assert torch.equal(a, b)


def test_lora_and_locking_do_not_mix(loaded):
    model = copy.deepcopy(loaded["open_clip"])
    assert apply_lora(model, LoraConfig(enabled=False)) == []
    assert not has_lora(model)
    apply_lora(model, LORA)
    with pytest.raises(ConfigError, match="cannot be combined with lora"):
        apply_locking(model, LockConfig(lock_image=True))
    with pytest.raises(ConfigError, match="cannot be combined with lora"):
        GradualUnfreezer(model, LockConfig(gradual_unfreeze=True))
    with pytest.raises(ConfigError, match="already has LoRA"):
        apply_lora(model, LORA)
