"""Training set-ups that used to train nothing, mix two runs, or end in a traceback: each is
now refused up front (or stopped) with a message naming the key, flag or file, exit 2, and
nothing half-written."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from accelerate.state import AcceleratorState
from faultkit import TINY_TRAIN, tiny_training_inputs
from safetensors import SafetensorError

import finetune.checkpoint as checkpoint
from evalsuite.errors import ConfigError, ModelLoadError
from evalsuite.models import load_model
from finetune.__main__ import main
from finetune.config import validate_config
from finetune.loop import train
from finetune.loss import ContrastiveLoss, validation_loss
from testkit.synthetic import write_synthetic_catalogue


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    yield
    AcceleratorState._reset_state(True)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return tiny_training_inputs(tmp_path_factory.mktemp("setup"))


def config(inputs: tuple[Path, Path], out: Path, **train: object) -> dict:
    return {
        "model": {"spec": str(inputs[0])},
        "data": {"path": str(inputs[1])},
        "optim": {"lr": 1e-3},
        "train": {"epochs": 1, "batch_size": 4, "log_every": 1, **train},
        "output": {"dir": str(out)},
    }


def write_config(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The CLI's error line (the last of stderr, after logs and progress bars)."""
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def finished(inputs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-epoch run: best/, last/, state/ and steps.jsonl (copy before changing)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    train(validate_config(config(inputs, out)))
    AcceleratorState._reset_state(True)
    return out


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --- item 4: a step must have something to contrast ------------------------------------------


def test_batch_of_one_is_a_config_error_naming_the_key(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One item per contrastive step scores each image against its own caption only: the loss
    is 0 whatever the weights, nothing trains, yet a "fine-tuned" checkpoint was saved. Hard
    negatives do not rescue it (the caption->image half and the validation loss still have a
    single column), so the contrastive objective refuses any step pool under 2 items; per
    process batches of 1 stay allowed with several processes, whose features are gathered."""
    out = tmp_path / "run"
    path = write_config(tmp_path / "run.yaml", config(inputs, out, batch_size=1))
    assert main(["--config", str(path)]) == 2
    error = error_line(capsys)
    assert error.startswith("finetune: error: train.batch_size 1 x train.accum_steps 1 x 1 "
                            "process(es) = 1 item per optimizer step"), error  # fmt: skip
    assert "loss.objective: zeroshot_ce" in error
    assert not out.exists()  # refused before anything was written


def test_pool_of_one_is_allowed_when_accumulation_or_processes_make_it_larger(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    """batch_size 1 with accum_steps 2 contrasts 2 items per step (the cached features of the
    step's micro-batches): it trains, with a positive loss, and changes the weights. So does
    a per-process batch of 1 on 2 processes (ClipLoss gathers the features of every process;
    tests/test_finetune_distributed.py checks that gather)."""
    from finetune.build import check_contrast_pool

    check_contrast_pool(validate_config(config(inputs, tmp_path, batch_size=1)), processes=2)
    with pytest.raises(ConfigError, match=r"train\.batch_size 1"):
        check_contrast_pool(validate_config(config(inputs, tmp_path, batch_size=1)), processes=1)
    out = tmp_path / "run"
    train(validate_config(config(inputs, out, batch_size=1, accum_steps=2, max_steps=2)))
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    assert len(steps) == 2 and all(s["loss"] > 0 for s in steps)
    assert load_model(out / "last").fingerprint != load_model(inputs[0]).fingerprint


def test_one_item_validation_tail_is_contrasted_with_the_chunk_before() -> None:
    """The validation loss is computed over chunks of one step's batch; a last chunk of a
    single item has loss 0 by construction and used to pull the mean down. It joins the
    chunk before it (one more negative there is closer to training than no negative)."""
    generator = torch.Generator().manual_seed(0)
    image, text = (torch.nn.functional.normalize(torch.randn(5, 8, generator=generator), dim=-1)
                   for _ in range(2))  # fmt: skip
    labels, scale = torch.full((5,), -1), torch.tensor(10.0)
    whole = ContrastiveLoss()(image, text, scale, labels).item()
    got = validation_loss(ContrastiveLoss(), image, text, labels, scale, chunk=4)
    assert got == pytest.approx(whole, rel=1e-6)


def test_a_training_split_too_small_for_one_step_names_the_data(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    """Two items are the least a contrastive step can use; a one-item training split makes
    no step at all and must say which data folder and split, not just "data"."""
    data = write_synthetic_catalogue(tmp_path / "catalogue", train=1, val=4, test=0)
    raw = config((inputs[0], data), tmp_path / "run", batch_size=2)
    with pytest.raises(ConfigError) as caught:
        train(validate_config(raw))
    message = str(caught.value)
    assert f"data.path {data} (split 'train'): 1 training item(s)" in message, message
    assert not (tmp_path / "run").exists()


def test_a_one_item_validation_split_names_the_split(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    """One validation item has no negative: its contrastive loss is 0 in every epoch, which
    would drive the plateau schedule, early stopping and best/ with a constant."""
    data = write_synthetic_catalogue(tmp_path / "catalogue", train=8, val=1, test=0)
    with pytest.raises(ConfigError) as caught:
        train(validate_config(config((inputs[0], data), tmp_path / "run")))
    message = str(caught.value)
    expected = f"data.path {data} (split 'val'): 1 usable validation item(s); the contrastive"
    assert message.startswith(f"{expected} validation loss needs at least 2"), message
    assert not (tmp_path / "run").exists()


# --- item 5: another run's folder ------------------------------------------------------------


def test_output_folder_of_another_run_is_refused_without_resume_or_overwrite(
    inputs: tuple[Path, Path], finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second run into a finished run's folder used to overwrite its best/, last/, state/
    and steps.jsonl one by one (and blame them as "the last good checkpoints" on divergence).
    Refused, naming the folder and what it holds; the old run stays byte for byte."""
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    before = snapshot(out)
    path = write_config(tmp_path / "run.yaml", config(inputs, out))
    assert main(["--config", str(path)]) == 2
    error = error_line(capsys)
    assert error.startswith(f"finetune: error: output.dir {out} already holds another run: "
                            "best/, last/, state/ (step 2), steps.jsonl"), error  # fmt: skip
    assert "--resume" in error and "--overwrite" in error
    assert snapshot(out) == before


def test_overwrite_removes_the_old_runs_files_before_writing(
    inputs: tuple[Path, Path], finished: Path, tmp_path: Path
) -> None:
    """--overwrite replaces the old run as a whole: here the new run saves no best/ (no
    validation), so an old best/ left behind would pass for this run's best checkpoint."""
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    (out / "notes.txt").write_text("mine")  # not the run's: kept
    raw = config(inputs, out, max_steps=1)
    raw["data"]["val_split"] = None
    raw["schedule"] = {"name": "constant"}
    path = write_config(tmp_path / "run.yaml", raw)
    assert main(["--config", str(path), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["last", "notes.txt", "state", "steps.jsonl"]
    assert len((out / "steps.jsonl").read_text().splitlines()) == 1
    assert load_model(out / "last").source.training["global_step"] == 1


def test_overwrite_with_resume_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--config", "x.yaml", "--resume", "--overwrite"])
    assert caught.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


# --- item 11: bad files and folders ----------------------------------------------------------


def test_training_json_that_is_a_list_names_the_file(
    inputs: tuple[Path, Path], finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fine-tuning (or scoring) a checkpoint whose training.json is a JSON list: the record of
    its training is unusable, so loading it is an error naming the file."""
    model = tmp_path / "model"
    shutil.copytree(finished / "last", model)
    (model / "training.json").write_text("[1, 2]\n")
    with pytest.raises(ModelLoadError, match=r"training\.json: expected a JSON object"):
        load_model(model)
    out = tmp_path / "run"
    path = write_config(tmp_path / "run.yaml", config((model, inputs[1]), out))
    assert main(["--config", str(path)]) == 2
    assert error_line(capsys) == (
        f"finetune: error: {model / 'training.json'}: expected a JSON object (the training "
        "record finetune writes), found a list"
    )
    assert not out.exists()


@pytest.mark.parametrize("content", ["[]", "{not json"], ids=["list", "invalid"])
def test_resume_from_a_bad_progress_json_names_the_file(
    inputs: tuple[Path, Path],
    finished: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
) -> None:
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    (out / "state" / "progress.json").write_text(content)
    path = write_config(tmp_path / "run.yaml", config(inputs, out, epochs=2))
    assert main(["--config", str(path), "--resume"]) == 2
    error = error_line(capsys)
    assert error.startswith(f"finetune: error: --resume: {out / 'state' / 'progress.json'}: "
                            "not a progress record"), error  # fmt: skip


@pytest.mark.parametrize(
    "change", [{"vision_cfg__layers": 2}, {"embed_dim": 32}], ids=["more-layers", "narrower"]
)
def test_resume_with_another_architecture_names_the_state(
    inputs: tuple[Path, Path],
    finished: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict,
) -> None:
    """Used to be ``TypeError: 'set' object is not subscriptable`` (more layers) or torch's
    size-mismatch RuntimeError (narrower) instead of the message."""
    from testkit.tiny import build_tiny_hf

    other = build_tiny_hf(tmp_path / "other", seed=0, **TINY_TRAIN, **change)
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    before = snapshot(out)
    path = write_config(tmp_path / "run.yaml", config((other, inputs[1]), out, epochs=2))
    assert main(["--config", str(path), "--resume"]) == 2
    error = error_line(capsys)
    assert error.startswith(f"finetune: error: --resume: {out / 'state'} was saved from "
                            "another model or config"), error  # fmt: skip
    assert "vision_model" in error or "projection" in error  # names some weights
    assert snapshot(out) == before


def test_output_dir_that_is_a_file_names_the_key(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    out.write_text("not a folder")
    path = write_config(tmp_path / "run.yaml", config(inputs, out))
    assert main(["--config", str(path)]) == 2
    assert error_line(capsys) == (
        f"finetune: error: output.dir {out}: is a file, not a folder; choose another "
        "output.dir (or --output-dir)"
    )
    assert out.read_text() == "not a folder"


@pytest.mark.parametrize(
    "failure",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        # what safetensors raises on a full disk (its Rust writer keeps no errno)
        SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        ),
    ],
    ids=["oserror", "safetensors"],
)
def test_disk_full_while_saving_state_keeps_the_previous_state(
    inputs: tuple[Path, Path],
    finished: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    failure: Exception,
) -> None:
    """A full disk while writing state/ (here: its rng.safetensors) stops the run with a
    message naming the folder and the cause; the previous state/ stays complete (a --resume
    after freeing space replays from it) and no temporary folder is left behind."""
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    before = snapshot(out / "state")

    def save_file(*args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(checkpoint, "save_file", save_file)
    path = write_config(tmp_path / "run.yaml", config(inputs, out, epochs=2))
    assert main(["--config", str(path), "--resume"]) == 2
    assert error_line(capsys) == (
        f"finetune: error: training stopped: cannot save {out / 'state'}: the disk is full "
        f"(No space left on device). Nothing was half-written: the previous {out / 'state'} "
        "is kept. Free some space, then run again with --resume"
    )
    assert snapshot(out / "state") == before
    assert not list(out.glob(".*"))  # no temporary or .old folders


class _FullDiskFile:
    """A text file whose first write stores half its text, then fails as a full disk does."""

    def __init__(self, handle) -> None:
        self.handle = handle

    def __enter__(self) -> _FullDiskFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()

    def write(self, text: str) -> int:
        self.handle.write(text[: len(text) // 2])
        self.handle.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str):
        return getattr(self.handle, name)


def test_disk_full_while_logging_a_step_keeps_checkpoints_and_whole_lines(
    inputs: tuple[Path, Path],
    finished: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """ENOSPC while appending to steps.jsonl was a bare OSError traceback and left half a
    JSON line, which the --resume that follows cannot parse. Now: the message of a full disk
    naming the file, the half line cut off, and the saved checkpoints untouched (the resume
    after freeing space logs the step again)."""
    import builtins

    import finetune.logging_utils as logging_utils

    out = tmp_path / "run"
    shutil.copytree(finished, out)
    before = snapshot(out)

    def full_disk_open(file, mode="r", *args, **kwargs):
        handle = builtins.open(file, mode, *args, **kwargs)  # noqa: SIM115 (closed by the caller)
        return _FullDiskFile(handle) if "a" in mode else handle

    monkeypatch.setattr(logging_utils, "open", full_disk_open, raising=False)
    path = write_config(tmp_path / "run.yaml", config(inputs, out, epochs=2))
    assert main(["--config", str(path), "--resume"]) == 2
    steps = out / "steps.jsonl"
    assert error_line(capsys) == (
        f"finetune: error: training stopped: cannot save {steps}: the disk is full (No space "
        f"left on device). Nothing was half-written: {steps} ends with its last complete line, "
        "and the checkpoints saved so far are kept. Free some space, then run again with "
        "--resume"
    )
    assert snapshot(out) == before  # best/, last/, state/ and every complete line
