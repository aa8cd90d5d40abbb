"""benchmarks/speed/gpu_check.py rehearsed on the CPU (`--device cpu --quick`): the one script
a lent GPU runs must work before the GPU is there. Every path runs with the CPU as the
device: the three scoring runs and their verdicts, both 30-step fine-tunes, the engine and raw
rates, and the three training loops (finetune, bare, open_clip_train)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "speed" / "gpu_check.py"


@pytest.mark.slow
def test_gpu_check_rehearsal_on_cpu(shared_data: Path, catalogue_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "FASHION_SHARED_DATA": str(shared_data)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["correct"] is True
    (scoring,) = report["scoring"].values()
    assert scoring["fp32_cosine"]["image_min"] >= 0.999
    assert scoring["fp32_cosine"]["image_n"] > 100  # the footwear split's images, all compared
    assert scoring["bf16_pass"] and not scoring["bf16_untied"]
    assert {"cpu-fp32", "dev-fp32", "dev-bf16"} == set(scoring["runs"])
    curve = report["curve"]
    assert len(curve["cpu"]) == len(curve["bf16"]["device"]) == len(curve["fp32"]["device"]) == 30
    assert curve["cpu"] != curve["bf16"]["device"]  # bf16 autocast really ran: other numbers
    assert curve["fp32"]["device"] == curve["cpu"]  # on the CPU, fp32 twice: the same numbers
    assert curve["cpu"][-1] < curve["cpu"][0]  # the curve moves, so a difference could show
    for precision in ("fp32", "bf16"):
        speed = report["score_speed"][precision]
        assert speed["raw"] > 0 and speed["engine"] > 0
    train = report["train_speed"]
    for loop in ("finetune", "bare", "open_clip_train", "bare_fp32"):
        assert train[loop]["steps_timed"] == 6, loop  # 8 steps, the first 2 dropped: each
        assert train[loop]["samples_per_s"] > 0  # loop stopped where it was told
    assert 0 < train["text_tower_share"] < 1
    for line in ("headline metrics tied PASS", "[train] finetune / open_clip_train:",
                 "correctness: PASS"):  # fmt: skip
        assert line in done.stdout
