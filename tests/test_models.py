"""evalsuite.models: both backends load from disk, agree, and fail clearly on bad specs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, CLIPModel

from evalsuite.errors import ModelLoadError
from evalsuite.models import load_model
from evalsuite.models.factory import MODEL_SPECS
from evalsuite.models.tokenizer import build_hf_tokenizer

CAT_IDS = [49406, 320, 1125, 539, 320, 2368, 49407]
TEXTS = ["a photo of a cat", "white sneakers with red laces", "Men's black FORMAL shoes, 2012!"]


def _images(n: int = 4) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (80, 60, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.mark.parametrize("fixture", ["tiny_hf_dir", "tiny_open_clip_dir"])
def test_backend_loads_from_disk_and_embeds(fixture: str, request: pytest.FixtureRequest) -> None:
    model = load_model(request.getfixturevalue(fixture))
    images = model.encode_images(_images())
    texts = model.encode_texts(TEXTS)
    for emb, n in ((images, 4), (texts, 3)):
        assert emb.shape == (n, model.embed_dim) and emb.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert model.logit_scale == pytest.approx(np.exp(2.6592), rel=1e-5)  # CLIP init value
    assert model.preprocess_config.image_size == 64
    assert model.preprocess(_images(1)[0]).shape == (3, 64, 64)


def test_both_backends_agree_on_the_same_weights(
    tiny_hf_dir: Path, tiny_open_clip_dir: Path
) -> None:
    hf, oc = load_model(tiny_hf_dir), load_model(tiny_open_clip_dir)
    assert (hf.backend, oc.backend) == ("hf", "open_clip")
    np.testing.assert_allclose(hf.encode_images(_images()), oc.encode_images(_images()), atol=1e-5)
    np.testing.assert_allclose(hf.encode_texts(TEXTS), oc.encode_texts(TEXTS), atol=1e-5)
    assert hf.logit_scale == pytest.approx(oc.logit_scale)


def test_clip_score_formula_is_the_models_own_softmax(tiny_hf_dir: Path) -> None:
    """The formula a run records gives transformers' own CLIP probabilities from cosines."""
    model = load_model(tiny_hf_dir)
    reference = CLIPModel.from_pretrained(tiny_hf_dir, local_files_only=True).eval()
    processor = AutoProcessor.from_pretrained(tiny_hf_dir, local_files_only=True)
    inputs = processor(text=TEXTS, images=_images(), return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = reference(**inputs).logits_per_image.softmax(dim=-1).numpy()
    pixels = inputs["pixel_values"]
    with torch.no_grad():
        image = torch.nn.functional.normalize(model.image_features(pixels), dim=-1)
    cosines = image.numpy() @ model.encode_texts(TEXTS).T
    formula = model.score_formula()
    assert (formula.kind, formula.logit_bias, model.objective) == ("softmax", None, "contrastive")
    np.testing.assert_allclose(formula.probabilities(cosines), expected, rtol=1e-4, atol=1e-6)


def test_saved_folders_load_without_this_suite(tiny_hf_dir: Path, tiny_open_clip_dir: Path) -> None:
    CLIPModel.from_pretrained(tiny_hf_dir, local_files_only=True)
    processor = AutoProcessor.from_pretrained(tiny_hf_dir, local_files_only=True)
    assert processor(text=["a photo of a cat"])["input_ids"][0] == CAT_IDS
    _, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{tiny_open_clip_dir}")
    assert preprocess(_images(1)[0]).shape == (3, 64, 64)


def test_tokenizer_ids_match_openai_clip(tiny_hf_dir: Path, tiny_open_clip_dir: Path) -> None:
    assert build_hf_tokenizer()("a photo of a cat")["input_ids"] == CAT_IDS
    for folder in (tiny_hf_dir, tiny_open_clip_dir):
        ids = load_model(folder).tokenize(["a photo of a cat"])[0].tolist()
        assert ids[:7] == CAT_IDS and len(ids) == 77


def test_tokenizer_truncation_keeps_end_of_text(
    tiny_hf_dir: Path, tiny_open_clip_dir: Path
) -> None:
    long_text = " ".join(["shoe"] * 200)
    for folder in (tiny_hf_dir, tiny_open_clip_dir):
        ids = load_model(folder).tokenize([long_text])[0]
        assert ids.shape == (77,) and int(ids[-1]) == 49407


def test_fingerprint_is_stable_and_sensitive(tiny_hf_dir: Path, tmp_path: Path) -> None:
    first, second = load_model(tiny_hf_dir), load_model(tiny_hf_dir)
    assert first.fingerprint == second.fingerprint and len(first.fingerprint) == 64
    with torch.no_grad():
        second.module.visual_projection.weight[0, 0] += 1e-3
    del second.__dict__["fingerprint"]  # cached_property: recompute after the edit
    assert second.fingerprint != first.fingerprint

    copy = tmp_path / "other-preprocessing"
    shutil.copytree(tiny_hf_dir, copy)
    config = (copy / "preprocessor_config.json").read_text()
    (copy / "preprocessor_config.json").write_text(config.replace("0.26862954", "0.3"))
    assert load_model(copy).fingerprint != first.fingerprint


def test_open_clip_architecture_with_pretrained_file(tiny_open_clip_dir: Path) -> None:
    weights = tiny_open_clip_dir / "open_clip_model.safetensors"
    with pytest.raises(ModelLoadError, match="unknown open_clip architecture"):
        load_model(f"openclip:NoSuchArch/{weights}")
    model = load_model("openclip:ViT-B-32", pretrained=None)  # random init, real architecture
    assert model.embed_dim == 512 and model.preprocess_config.image_size == 224


# --- bad specs ------------------------------------------------------------------------------
def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nope")


def test_folder_without_weights(
    tiny_hf_dir: Path, tiny_open_clip_dir: Path, tmp_path: Path
) -> None:
    hf = tmp_path / "hf"
    hf.mkdir()
    shutil.copy(tiny_hf_dir / "config.json", hf)
    with pytest.raises(ModelLoadError, match="no weights"):
        load_model(hf)
    oc = tmp_path / "oc"
    oc.mkdir()
    shutil.copy(tiny_open_clip_dir / "open_clip_config.json", oc)
    with pytest.raises(ModelLoadError, match="no weights"):
        load_model(oc)
    with pytest.raises(ModelLoadError, match=r"neither config\.json"):
        load_model(tmp_path)


@pytest.mark.parametrize(
    "fixture,weights",
    [("tiny_hf_dir", "model.safetensors"), ("tiny_open_clip_dir", "open_clip_model.safetensors")],
)
def test_corrupt_safetensors(
    fixture: str, weights: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    folder = tmp_path / "corrupt"
    shutil.copytree(request.getfixturevalue(fixture), folder)
    data = (folder / weights).read_bytes()
    (folder / weights).write_bytes(data[: len(data) // 2])  # truncated download
    with pytest.raises(ModelLoadError, match="cannot load"):
        load_model(folder)


def test_pickled_weights_never_run_code(tiny_open_clip_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "pickle"
    folder.mkdir()
    shutil.copy(tiny_open_clip_dir / "open_clip_config.json", folder)
    marker = tmp_path / "pwned"
    torch.save({"x": _Exploit(str(marker))}, folder / "open_clip_pytorch_model.bin")
    with pytest.raises(ModelLoadError):
        load_model(folder)
    assert not marker.exists()  # torch.load(weights_only=True) refused the object


class _Exploit:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_file_and_unparseable_specs(tiny_hf_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="is a file"):
        load_model(tiny_hf_dir / "config.json")
    with pytest.raises(ModelLoadError, match="cannot interpret"):
        load_model("not a model")


def test_spec_kinds_are_tried_in_the_documented_order() -> None:
    # explicit prefixes first, then an existing path, then an open_clip name, then a Hub id
    assert [kind.name for kind in MODEL_SPECS.values()] == [
        "embeddings",
        "hf-hub",
        "openclip",
        "local-dir",
        "existing path",
        "missing path",
        "open_clip name",
        "hub id",
    ]


@pytest.mark.parametrize("spec", ["patrickjohncyh/fashion-clip", "hf-hub:Marqo/marqo-fashionCLIP"])
def test_offline_hub_model_fails_fast_with_advice(spec: str, tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}
    code = (  # HubModelNotCached, the error of a Hub id, is a ModelLoadError
        "import sys; from evalsuite.errors import ModelLoadError\n"
        "from evalsuite.models import load_model\n"
        f"try: load_model({spec!r})\n"
        "except ModelLoadError as err: sys.exit(f'ModelLoadError: {err}')"
    )
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert time.monotonic() - start < 60
    assert done.returncode != 0
    message = done.stderr.strip().splitlines()[-1]
    assert "ModelLoadError" in message and spec.removeprefix("hf-hub:") in message
    assert "pass the folder" in message
