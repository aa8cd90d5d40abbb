"""WiSE-FT: exact ends, the midpoint, marking, the sweep CLI, incompatible models."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from evalsuite.errors import ConfigError
from evalsuite.models import ClipModel, load_model
from evalsuite.models.tiny import build_tiny_hf, build_tiny_open_clip
from finetune.wise import main, save_checkpoint, wise_interpolate


@pytest.fixture(scope="module")
def finetuned_dir(tmp_path_factory) -> Path:
    """Another tiny HF CLIP (seed 1) standing in for a fine-tuned checkpoint."""
    path = build_tiny_hf(tmp_path_factory.mktemp("ft") / "shoes-ft", seed=1)
    training = {"run_name": "shoes-ft", "epoch": 3, "base_model": {"spec": "tiny"}}
    (path / "training.json").write_text(json.dumps(training))
    return path


@pytest.fixture(scope="module")
def pair(tiny_hf_dir, finetuned_dir) -> tuple[ClipModel, ClipModel]:
    return load_model(tiny_hf_dir), load_model(finetuned_dir)


def state(model: ClipModel) -> dict[str, torch.Tensor]:
    return model.module.state_dict()


def test_ends_are_exact_and_the_middle_is_the_midpoint(pair):
    base, tuned = pair
    base_state, tuned_state = state(base), state(tuned)
    assert any(not torch.equal(base_state[k], tuned_state[k]) for k in base_state)
    _ = tuned.fingerprint  # hashed once, carried by the copies
    at_0 = state(wise_interpolate(base, copy.deepcopy(tuned), 0.0))
    at_1 = state(wise_interpolate(base, copy.deepcopy(tuned), 1.0))
    half = state(wise_interpolate(base, copy.deepcopy(tuned), 0.5))
    for name, tensor in base_state.items():
        assert torch.equal(at_0[name], tensor), name
        assert torch.equal(at_1[name], tuned_state[name]), name
        if tensor.is_floating_point():
            torch.testing.assert_close(half[name], (tensor + tuned_state[name]) / 2)


def test_result_is_marked_as_wise(pair):
    base, tuned = pair
    fingerprint = tuned.fingerprint
    model = wise_interpolate(base, copy.deepcopy(tuned), 0.25)
    assert model.name == "shoes-ft-wise-0.25"
    wise = model.source.training["wise"]
    assert wise == {
        "alpha": 0.25,
        "base_spec": base.spec,
        "base_fingerprint": base.fingerprint,
        "finetuned_spec": tuned.spec,
        "finetuned_fingerprint": fingerprint,
    }
    assert model.source.training["epoch"] == 3  # the rest of training.json is kept
    assert model.fingerprint not in {fingerprint, base.fingerprint}
    assert tuned.source.training.get("wise") is None  # the original is untouched


def test_incompatible_models_are_a_clear_error(pair, tiny_open_clip_dir, tmp_path):
    base, tuned = pair
    with pytest.raises(ConfigError, match=r"one backend.*hf and open_clip"):
        wise_interpolate(base, load_model(tiny_open_clip_dir), 0.5)
    deeper = load_model(build_tiny_hf(tmp_path / "deeper", seed=0, vision_cfg__layers=3))
    with pytest.raises(ConfigError, match=r"same architecture.*num_hidden_layers"):
        wise_interpolate(base, deeper, 0.5)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        wise_interpolate(base, copy.deepcopy(tuned), 1.5)


def test_cli_sweep_writes_checkpoints_that_load_model_reads(
    tiny_hf_dir, finetuned_dir, pair, tmp_path
):
    base, tuned = pair
    out = tmp_path / "wise"
    argv = ["--base", str(tiny_hf_dir), "--finetuned", str(finetuned_dir), "--out", str(out)]
    assert main([*argv, "--alphas", "0,0.5,1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["alpha-0", "alpha-0.5", "alpha-1"]
    for alpha, reference in (("0", base), ("1", tuned)):
        loaded = load_model(out / f"alpha-{alpha}")
        assert loaded.name == f"shoes-ft-wise-{alpha}"
        for name, tensor in state(reference).items():
            assert torch.equal(state(loaded)[name], tensor), name
    training = json.loads((out / "alpha-0.5" / "training.json").read_text())
    assert training["run_name"] == "shoes-ft-wise-0.5"
    assert training["wise"]["alpha"] == 0.5
    assert training["wise"]["finetuned_fingerprint"] == tuned.fingerprint
    assert training["wise"]["base_spec"] == str(tiny_hf_dir)

    single = tmp_path / "single"
    argv[-1] = str(single)
    assert main([*argv, "--alpha", "0.5"]) == 0
    assert run_name(single) == "shoes-ft-wise-0.5"
    assert main([*argv, "--alpha", "0.75"]) == 2  # exists: refused before loading anything
    save_checkpoint(wise_interpolate(base, copy.deepcopy(tuned), 0.75), single, overwrite=True)
    assert run_name(single) == "shoes-ft-wise-0.75"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temps


def run_name(folder: Path) -> str:
    return json.loads((folder / "training.json").read_text())["run_name"]


def test_open_clip_models_interpolate_too(tiny_open_clip_dir, tmp_path):
    base = load_model(tiny_open_clip_dir)
    tuned = load_model(build_tiny_open_clip(tmp_path / "tuned", seed=1))
    half = wise_interpolate(base, copy.deepcopy(tuned), 0.5)
    name = "visual.proj"
    expected = (state(base)[name] + state(tuned)[name]) / 2
    torch.testing.assert_close(state(half)[name], expected)
    assert half.name == "tuned-wise-0.5"
