"""Device choice and fp32/bf16 semantics (evalsuite.device), `score --device`, and the
training loaders' decode workers and pinned memory per device."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from evalsuite.cli import main
from evalsuite.device import autocast, ieee_fp32, resolve_device
from evalsuite.errors import EvalSuiteError
from finetune.config import validate_config
from finetune.data import loader_workers

NO_CUDA = not torch.cuda.is_available()


def test_ieee_fp32_turns_tf32_off_on_cuda_and_restores_the_flags() -> None:
    flags = (torch.backends.cuda.matmul, torch.backends.cudnn.conv, torch.backends.cudnn.rnn)
    before = [flag.fp32_precision for flag in flags]
    with pytest.raises(RuntimeError, match="inside"), ieee_fp32(torch.device("cuda")):
        assert [flag.fp32_precision for flag in flags] == ["ieee"] * 3
        raise RuntimeError("inside")
    assert [flag.fp32_precision for flag in flags] == before
    with ieee_fp32(torch.device("cpu")):  # no TF32 on a CPU: nothing to change
        assert [flag.fp32_precision for flag in flags] == before


def test_autocast_is_bf16_only_for_bf16() -> None:
    x = torch.ones(2, 2)
    with autocast("bf16", torch.device("cpu")):
        assert (x @ x).dtype == torch.bfloat16
    with autocast("fp32", torch.device("cpu")):
        assert (x @ x).dtype == torch.float32
    with pytest.raises(EvalSuiteError, match="precision must be one of"):
        autocast("fp16", torch.device("cpu"))


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type in ("cpu", "cuda", "mps")
    with pytest.raises(EvalSuiteError, match="not a device"):
        resolve_device("gpu")


def _custom_data(tmp_path: Path) -> Path:
    """A custom benchmark's CSV (path,label) over six small images of two labels."""
    from PIL import Image

    folder = tmp_path / "custom"
    folder.mkdir()
    rows = ["path,label"]
    for k, label in enumerate(("boot", "sandal")):
        for i in range(3):
            Image.new("RGB", (16, 16), (40 * i, 90 * k, 200)).save(folder / f"{label}{i}.png")
            rows.append(f"{label}{i}.png,{label}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.mark.skipif(not NO_CUDA, reason="this machine has a CUDA device")
def test_score_on_a_missing_gpu_exits_2_and_writes_nothing(
    tiny_hf_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "results.duckdb"
    folder = _custom_data(tmp_path)
    code = main(
        ["--db", str(db), "score", str(tiny_hf_dir), "--benchmarks", "custom",
         "--data", f"custom={folder}", "--device", "cuda", "--bootstrap", "10"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "--device cuda: this machine has no CUDA device" in err
    assert "--device cpu" in err
    assert not db.exists()


def test_score_records_the_device_it_was_told(tiny_hf_dir: Path, tmp_path: Path) -> None:
    from evalsuite.runner import ScoreOptions, score_model

    folder = _custom_data(tmp_path)
    opts = ScoreOptions(
        benchmarks=("custom",), db_path=None, data_overrides={"custom": folder}, device="cpu",
        num_workers=0, n_bootstrap=10, use_cache=False, progress=False,
    )  # fmt: skip
    (run,) = score_model(str(tiny_hf_dir), opts)
    assert run.device == "cpu"


def _cfg(tmp_path: Path, workers: int | None) -> object:
    data = {"path": str(tmp_path)} | ({} if workers is None else {"num_workers": workers})
    return validate_config(
        {"model": {"spec": "x"}, "data": data, "output": {"dir": str(tmp_path / "out")}}
    )


def test_training_decode_workers_per_device(tmp_path: Path, monkeypatch) -> None:
    import evalsuite.device

    monkeypatch.setattr(evalsuite.device, "available_cores", lambda: 16)
    auto = _cfg(tmp_path, None)
    assert loader_workers(auto, "cpu", 1) == 0  # the forward has every core
    assert loader_workers(auto, "cuda", 1) == 8  # one per spare core, at most 8
    assert loader_workers(auto, "cuda", 4) == 3  # 16 cores shared by 4 processes
    assert loader_workers(_cfg(tmp_path, 2), "cuda", 1) == 2  # as configured
    assert loader_workers(_cfg(tmp_path, 0), "cuda", 1) == 0
