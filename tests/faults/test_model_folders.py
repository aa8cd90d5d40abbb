"""Model folders whose files disagree: a ModelLoadError naming the folder, the file and the
weights (a few names and how many), exit 2 from the CLI; never a model with a layer randomly
initialised or silently dropped, scored and stored under the real model's name."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from faultkit import write_benchmarks, write_images_csv
from safetensors.torch import load_file, save_file

from evalsuite.cli import main
from evalsuite.errors import ConfigError, ModelLoadError
from evalsuite.models import load_model
from testkit.tiny import build_tiny_hf, build_tiny_open_clip

# One transformer block of the tiny CLIP: 16 tensors in Hugging Face's naming (q/k/v/out
# projections, two layer norms, two MLP layers, weights and biases), 12 in open_clip's.
HF_BLOCK, OPEN_CLIP_BLOCK = 16, 12


def _edit_json(file: Path, edit) -> None:
    data = json.loads(file.read_text())
    edit(data)
    file.write_text(json.dumps(data, indent=2))


def _hf_folder(tmp_path: Path, edit) -> Path:
    folder = build_tiny_hf(tmp_path / "fashion-clip-ft", seed=0)
    _edit_json(folder / "config.json", edit)
    return folder


def test_text_layer_declared_but_absent_from_the_weights_names_folder_and_weights(
    tmp_path: Path,
) -> None:
    """config.json says 3 text layers, model.safetensors holds 2: transformers would
    initialise layer 2 at random and only print a load report."""
    folder = _hf_folder(tmp_path, lambda c: c["text_config"].update(num_hidden_layers=3))
    with pytest.raises(ModelLoadError) as err:
        load_model(folder)
    message = str(err.value)
    assert str(folder) in message and "config.json" in message, message
    assert f"{HF_BLOCK} weights missing" in message, message
    assert "text_model.encoder.layers.2." in message, message
    assert "randomly initialised" in message, message


def test_vision_layer_in_the_weights_but_not_declared_names_folder_and_weights(
    tmp_path: Path,
) -> None:
    """config.json says 1 vision layer, the file holds 2: the second would be dropped."""
    folder = _hf_folder(tmp_path, lambda c: c["vision_config"].update(num_hidden_layers=1))
    with pytest.raises(ModelLoadError) as err:
        load_model(folder)
    message = str(err.value)
    assert str(folder) in message, message
    assert f"{HF_BLOCK} weights in the file unused" in message, message
    assert "vision_model.encoder.layers.1." in message, message


def test_weight_of_another_shape_names_the_weight_and_both_shapes(tmp_path: Path) -> None:
    """transformers' own error says only 'look at the above report' (on stderr)."""
    folder = _hf_folder(tmp_path, lambda c: c["text_config"].update(intermediate_size=256))
    with pytest.raises(ModelLoadError) as err:
        load_model(folder)
    message = str(err.value)
    assert str(folder) in message, message
    assert "6 weights of another shape" in message, message  # fc1 (w, b), fc2.w of 2 layers
    assert "text_model.encoder.layers.0.mlp.fc1.bias: file [512], config [256]" in message


def test_open_clip_folder_whose_config_disagrees_names_folder_and_weights(
    tmp_path: Path,
) -> None:
    """open_clip loads strictly already, but its error lists every key with no count and
    no hint of the cause; the same message as for Hugging Face folders instead."""
    folder = build_tiny_open_clip(tmp_path / "oc", seed=0)
    _edit_json(
        folder / "open_clip_config.json", lambda c: c["model_cfg"]["text_cfg"].update(layers=3)
    )
    with pytest.raises(ModelLoadError) as err:
        load_model(folder)
    message = str(err.value)
    assert str(folder) in message and "open_clip_config.json" in message, message
    assert f"{OPEN_CLIP_BLOCK} weights missing" in message, message
    assert "transformer.resblocks.2." in message, message
    # the same file through --pretrained / openclip:ARCH/FILE of a folder's architecture
    # is covered by open_clip's strict load; here a tidy message is what changed
    assert message.count("resblocks.2.") <= 3, message


def test_correct_folders_still_load_with_legacy_buffers(
    tiny_hf_dir: Path, tiny_open_clip_dir: Path, tmp_path: Path
) -> None:
    """Keys that are legitimately absent or extra do not count: older transformers saved the
    position_ids buffers in model.safetensors (patrickjohncyh/fashion-clip has them)."""
    assert load_model(tiny_hf_dir).embed_dim == 128
    assert load_model(tiny_open_clip_dir).embed_dim == 128
    legacy = build_tiny_hf(tmp_path / "legacy", seed=0)
    weights = load_file(str(legacy / "model.safetensors"))
    weights["text_model.embeddings.position_ids"] = torch.arange(77).unsqueeze(0)
    weights["vision_model.embeddings.position_ids"] = torch.arange(17).unsqueeze(0)
    save_file(weights, str(legacy / "model.safetensors"), metadata={"format": "pt"})
    assert load_model(legacy).embed_dim == 128


def test_correct_open_clip_folder_loads_without_a_random_init_warning(
    tiny_open_clip_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The weights are loaded after open_clip builds the model, which it then reports as
    "initialized randomly": a false alarm that must not reach the user."""
    with caplog.at_level(logging.INFO):
        load_model(tiny_open_clip_dir)
    assert not [r for r in caplog.records if "randomly" in r.getMessage()], caplog.text


def test_mismatched_folder_is_not_scored_or_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through `evalsuite score`: exit 2 with the message, no database written."""
    folder = _hf_folder(tmp_path, lambda c: c["text_config"].update(num_hidden_layers=3))
    csv = write_images_csv(tmp_path / "data", per_colour=2)
    monkeypatch.setenv(
        "EVALSUITE_BENCHMARKS_DIR", str(write_benchmarks(tmp_path / "b", csv, ("colours",)))
    )
    db = tmp_path / "results.duckdb"
    code = main(["--db", str(db), "score", str(folder), "--workers", "0", "--no-cache", "--json"])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2, error
    assert error.startswith(f"error: Hugging Face CLIP {folder}"), error
    assert not db.exists()


@pytest.mark.parametrize("config_file", ["config.json", "preprocessor_config.json"])
def test_config_that_is_not_json_names_the_file_and_the_position(
    config_file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hand-edited config with a stray quote: exit 2 naming the file, line and column."""
    folder = build_tiny_hf(tmp_path / "hand-edited", seed=0)
    text = (folder / config_file).read_text()
    (folder / config_file).write_text(text.replace('"', "", 1))  # first key unquoted
    code = main(["--db", str(tmp_path / "r.duckdb"), "score", str(folder), "--no-store"])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2, error
    assert error.startswith(f"error: {folder / config_file}: not valid JSON"), error
    assert "line 2 column" in error, error


def test_open_clip_config_that_is_not_json_names_the_file_and_the_position(
    tmp_path: Path,
) -> None:
    folder = build_tiny_open_clip(tmp_path / "oc", seed=0)
    file = folder / "open_clip_config.json"
    file.write_text(file.read_text()[:-20])  # truncated
    with pytest.raises(ModelLoadError, match=rf"^{file}: not valid JSON \(.* line \d+ column"):
        load_model(folder)


def test_resume_state_of_another_shape_is_a_config_error(tmp_path: Path) -> None:
    """--resume into a model whose layers have other shapes than the saved state's: a
    ConfigError naming the state file (torch raised a bare RuntimeError)."""
    from finetune.checkpoint import load_state

    state = tmp_path / "state"
    state.mkdir()
    (state / "progress.json").write_text("{}")
    save_file(
        {"weight": torch.zeros(3, 2), "bias": torch.zeros(3)}, str(state / "model.safetensors")
    )
    with pytest.raises(
        ConfigError,
        match=r"state was saved from another model.*weight: file \[3, 2\], model \[4, 2\]",
    ):
        load_state(state, torch.nn.Linear(2, 4), {}, rank=0)
    save_file({"weight": torch.zeros(4, 2)}, str(state / "model.safetensors"))
    with pytest.raises(ConfigError, match=r"--resume: .*1 weight missing from the file \(bias\)"):
        load_state(state, torch.nn.Linear(2, 4), {}, rank=0)
