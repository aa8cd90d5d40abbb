"""A Hub id that is not cached, on a machine that cannot reach the Hub: the error comes at
once (no minute of Hugging Face retries and their warnings), and its advice names the way the
command that raised it takes a downloaded folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HUB_ID = "patrickjohncyh/fashion-clip"  # the default model.spec of configs/footwear.yaml

# The command's main() is timed after the heavy imports: what is measured is the error, not
# loading torch (which the `evalsuite` start-up issue is about).
TIMED_MAIN = """
import sys, time
import evalsuite.models.factory, finetune.loop, {module}
start = time.perf_counter()
code = {module}.main(sys.argv[1:])
print(f"main took {{time.perf_counter() - start:.2f}} s", file=sys.stderr)
sys.exit(code)
"""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def no_network_env(tmp_path: Path) -> dict[str, str]:
    """An empty Hugging Face cache, offline mode off, and a Hub that refuses connections."""
    env = {
        k: v for k, v in os.environ.items() if k not in {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"}
    }
    env["HF_HOME"] = str(tmp_path / "hf-home")
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{closed_port()}"
    return env


@pytest.mark.parametrize(
    ("module", "argv", "advice"),
    [
        (
            "finetune.__main__",
            ["--config", "configs/footwear.yaml", "--output-dir", "{tmp}/run"],
            "`--set model.spec=DIR`",
        ),
        ("evalsuite.cli", ["score", HUB_ID, "--no-store"], "`evalsuite score DIR`"),
    ],
)
def test_uncached_hub_id_without_network_fails_at_once_with_the_commands_advice(
    tmp_path: Path, module: str, argv: list[str], advice: str
) -> None:
    argv = [arg.format(tmp=tmp_path) for arg in argv]
    code = TIMED_MAIN.format(module=module)
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=ROOT,
        env=no_network_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert "Retry" not in done.stderr and "thrown while requesting" not in done.stderr
    error = lines[-2]
    assert HUB_ID in error and "neither a local folder nor in the Hugging Face cache" in error
    assert "cannot be reached" in error and f"hf download {HUB_ID} --local-dir DIR" in error
    assert error.split("pass the folder instead: ")[1].startswith(advice)
    seconds = float(lines[-1].split()[2])
    assert seconds < 5, lines[-1]


def test_finetune_fails_before_loading_torch(tmp_path: Path) -> None:
    """`finetune` checks a Hub id before torch and transformers load: about a second."""
    code = (
        "import sys; from finetune.__main__ import main; code = main(sys.argv[1:]); "
        "print('loaded:', sorted({'torch', 'transformers'} & set(sys.modules))); sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "--config", "configs/footwear.yaml"],
        cwd=ROOT,
        env=no_network_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("finetune: error: model 'patrickjohncyh/fashion-clip'")
    assert len(done.stderr.strip().splitlines()) == 1  # the error alone, no warnings
    assert done.stdout.strip() == "loaded: []"
