"""Loose ends of the first reliability round: a model silently resized, an absolute weights
path read as a tag, a full disk under steps.jsonl, cutoffs no data can reach, ids that are
NaN. Each is now an error naming the file and the field (exit 2), or works as written."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import open_clip
import pytest
import torch

from evalsuite.errors import ModelLoadError
from evalsuite.models import load_model
from testkit.tiny import build_tiny_open_clip, tiny_model_cfg

# --- a. open_clip weights of another image size or context length ------------------------


def _edit_config(folder: Path, **changes: dict) -> None:
    file = folder / "open_clip_config.json"
    config = json.loads(file.read_text())
    for section, values in changes.items():
        config["model_cfg"][section].update(values)
    file.write_text(json.dumps(config, indent=2))


def test_open_clip_folder_of_another_image_size_names_the_weight_and_both_shapes(
    tmp_path: Path,
) -> None:
    """The weights were trained at 64 px (a 4x4 grid + 1 = 17 positions), the config says
    32: open_clip interpolated the position embeddings to 2x2 + 1 and logged it at INFO, so
    another model than the saved one was scored under its name."""
    folder = build_tiny_open_clip(tmp_path / "oc", seed=0)
    _edit_config(folder, vision_cfg={"image_size": 32})
    with pytest.raises(ModelLoadError) as err:
        load_model(folder)
    message = str(err.value)
    assert f"open_clip folder {folder.resolve()}: open_clip_config.json" in message, message
    assert str(folder.resolve() / "open_clip_model.safetensors") in message, message
    assert "visual.positional_embedding: file [17, 128], config [5, 128]" in message, message
    assert "resize the position embeddings" in message, message


def test_open_clip_folder_of_another_context_length_names_the_weight_and_both_shapes(
    tmp_path: Path,
) -> None:
    """The text side alike: 77 positions saved, 40 declared (open_clip cut them)."""
    folder = build_tiny_open_clip(tmp_path / "oc", seed=0)
    _edit_config(folder, text_cfg={"context_length": 40})
    with pytest.raises(ModelLoadError) as err:
        load_model(folder)
    assert "positional_embedding: file [77, 128], config [40, 128]" in str(err.value)


@pytest.fixture
def tiny_arch(tmp_path: Path) -> str:
    """A built-in open_clip architecture name for the tiny CLIP at 32 px (open_clip's own
    registry, as a user's added config would be), unique per test."""
    name = f"tiny-32-{uuid.uuid4().hex[:8]}"
    cfg = tiny_model_cfg(vision_cfg__image_size=32)
    (tmp_path / "arch").mkdir()
    (tmp_path / "arch" / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "arch")
    return name


def test_pretrained_file_of_another_image_size_names_the_architecture_and_shapes(
    tmp_path: Path, tiny_arch: str
) -> None:
    """--pretrained FILE with an architecture of another image size: the same refusal,
    naming the architecture (no config file is involved)."""
    weights = build_tiny_open_clip(tmp_path / "oc", seed=0) / "open_clip_model.safetensors"
    with pytest.raises(ModelLoadError) as err:
        load_model(f"openclip:{tiny_arch}", pretrained=str(weights))
    message = str(err.value)
    assert message.startswith(f"open_clip architecture {tiny_arch} does not match {weights}")
    assert "visual.positional_embedding: file [17, 128], architecture [5, 128]" in message


# --- b. openclip:ARCH/ABS_PATH -------------------------------------------------------------


@pytest.fixture
def tiny_arch_64(tmp_path: Path) -> str:
    name = f"tiny-64-{uuid.uuid4().hex[:8]}"
    (tmp_path / "arch64").mkdir()
    (tmp_path / "arch64" / f"{name}.json").write_text(json.dumps(tiny_model_cfg()))
    open_clip.add_model_config(tmp_path / "arch64")
    return name


def test_absolute_weights_path_after_the_architecture_loads_with_one_slash(
    tmp_path: Path, tiny_arch_64: str
) -> None:
    """`openclip:ARCH/PRETRAINED` with PRETRAINED = /abs/w.safetensors is naturally written
    with one slash; it read the tag 'abs/w.safetensors' ("not a known tag"). A tag never
    holds a '/', so a path as written is looked for first, then from the root; '//' works as
    before. Both give the saved weights."""
    folder = build_tiny_open_clip(tmp_path / "oc", seed=0)
    weights = (folder / "open_clip_model.safetensors").resolve()
    assert weights.is_absolute()
    expected = load_model(folder).module.state_dict()
    for spec in (f"openclip:{tiny_arch_64}{weights}", f"openclip:{tiny_arch_64}/{weights}"):
        loaded = load_model(spec).module.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in expected.items()), spec


def test_weights_path_that_does_not_exist_names_the_spec(tiny_arch_64: str) -> None:
    spec = f"openclip:{tiny_arch_64}/no/such/weights.safetensors"
    with pytest.raises(ModelLoadError) as err:
        load_model(spec)
    assert str(err.value).startswith(
        f"model spec {spec!r}: weights file 'no/such/weights.safetensors' not found"
    ), err.value


# --- c. a full disk under finetune wise ------------------------------------------------------


def test_disk_full_in_finetune_wise_names_the_folder_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """finetune wise writes through the same atomic folder swap as training, whose message
    said "training stopped ... run again with --resume": neither is true of wise. Its own
    words now, exit 2, no output folder and no temporary folder left."""
    import errno

    from evalsuite.models.hf import HFClipModel
    from finetune.wise import main as wise_main
    from testkit.tiny import build_tiny_hf

    base, tuned = build_tiny_hf(tmp_path / "base", 0), build_tiny_hf(tmp_path / "tuned", 1)

    def full_disk(self: HFClipModel, folder: Path) -> None:
        (Path(folder) / "model.safetensors").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(HFClipModel, "save", full_disk)
    out = tmp_path / "wise"
    argv = ["--base", str(base), "--finetuned", str(tuned), "--alpha", "0.5", "--out", str(out)]
    assert wise_main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: finetune wise: cannot save {out}: the disk is full (No space left on device). "
        f"Nothing was half-written: {out} was not created. Free some space, then run "
        "finetune wise again"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "tuned"]


# --- e. ids of prepared catalogue records -----------------------------------------------------


def _catalogue_line(item_id: str) -> str:
    """One prepared record with its id given as raw JSON text (NaN is what Python's json
    and pandas write for a missing number)."""
    return f'{{"id": {item_id}, "image": "x.jpg", "articleType": "Heels", "description": "d"}}'


@pytest.mark.parametrize(
    ("raw", "shown"),
    [("NaN", "NaN"), ("null", "null"), ('""', '""'), ('"nan"', '"nan"'), ("12.0", "12.0"),
     ("true", "true"), ("[12]", "[12]")],
)  # fmt: skip
def test_catalogue_record_whose_id_is_not_an_id_names_file_and_line(
    tmp_path: Path, raw: str, shown: str
) -> None:
    """{"id": NaN} became the item "nan" (and two such rows one id); a float id 12.0 from a
    pandas column with gaps became "12.0", which names no image. An id is a non-empty string
    or an integer (written as its digits): anything else, a missing-value marker included,
    is refused naming the file, the line and the value."""
    from evalsuite.data.catalogue import read_catalogue
    from evalsuite.errors import DataError

    file = tmp_path / "test.jsonl"
    file.write_text(_catalogue_line('"1"') + "\n" + _catalogue_line(raw) + "\n")
    with pytest.raises(DataError) as err:
        read_catalogue(file)
    assert str(err.value) == (
        f"{file}, line 2: id must be a non-empty string or an integer, got {shown}"
    )


def test_catalogue_record_ids_as_strings_or_integers_still_read(tmp_path: Path) -> None:
    from evalsuite.data.catalogue import read_catalogue

    file = tmp_path / "test.jsonl"
    file.write_text(_catalogue_line('"a-1"') + "\n" + _catalogue_line("12") + "\n")
    assert [item.id for item in read_catalogue(file)] == ["a-1", "12"]
