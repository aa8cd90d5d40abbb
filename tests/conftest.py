"""Shared fixtures: the real data in ../shared/data (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures.leaderboard_sample import write_sample_db

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FASHION_SHARED_DATA", ROOT.parent / "shared" / "data"))

# Tests never touch the network: the suite must work offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set FASHION_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def catalogue_dir(shared_data: Path) -> Path:
    path = shared_data / "fashion-product-images-small"
    if not (path / "styles.csv").is_file():
        pytest.skip(f"Kaggle catalogue subset not found at {path}")
    return path


@pytest.fixture(scope="session")
def fmnist_dir(shared_data: Path) -> Path:
    path = shared_data / "fashion-mnist-test"
    if not (path / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST test files not found at {path}")
    return path


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Embedding caches of tests go to a temporary folder, never to ~/.cache."""
    os.environ["EVALSUITE_CACHE_DIR"] = str(tmp_path_factory.mktemp("embedding-cache"))


@pytest.fixture(scope="session")
def tiny_hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random CLIP saved as a Hugging Face folder (like patrickjohncyh/fashion-clip)."""
    from testkit.tiny import build_tiny_hf

    return build_tiny_hf(tmp_path_factory.mktemp("models") / "tiny-hf", seed=0)


@pytest.fixture(scope="session")
def tiny_open_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same weights as ``tiny_hf_dir``, saved in open_clip's Hub layout."""
    from testkit.tiny import build_tiny_open_clip

    return build_tiny_open_clip(tmp_path_factory.mktemp("models") / "tiny-open-clip", seed=0)


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The leaderboard's sample database (``tests/fixtures/leaderboard_sample.py``): a
    FashionCLIP base, a fine-tune and two WiSE-FT models; with what wrote it."""
    return write_sample_db(tmp_path_factory.mktemp("leaderboard-sample"))
