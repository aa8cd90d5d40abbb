"""Hugging Face SigLIP (``SiglipModel``) behind the suite's interface, checked against
transformers itself: same embeddings and the model's own sigmoid scores, SigLIP's squash
preprocessing, refusals with advice, and the tower layout that locking and LoRA read."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import SiglipImageProcessor, SiglipModel, SiglipProcessor
from transformers.models.siglip import SiglipImageProcessorPil

from evalsuite.errors import ModelLoadError
from evalsuite.models import ClipModel, PreprocessConfig, load_model
from evalsuite.models.hf_siglip import HFSiglipModel
from evalsuite.models.layout import named_parameters, tower_layout
from finetune.config import LockConfig, LoraConfig
from finetune.freeze import apply_locking
from finetune.lora import apply_lora, merge_lora
from testkit.tiny_siglip import build_tiny_hf_siglip

GENDERS = ("Men", "Women", "Boys", "Girls", "Unisex")
COLOURS = ("Black", "White", "Blue", "Navy Blue", "Red", "Brown", "Grey", "Green", "Pink")
ARTICLES = ("Casual Shoes", "Sports Shoes", "Heels", "Flip Flops", "Tshirts", "Jeans", "Watches")
TEXTS = ["Nike Men Black Casual Shoes", "a photo of red heels", "Puma Women Grey Track Pants"]
# SiglipImageProcessor (torchvision backend) rounds resized pixels to 8 bits where PIL does
# not: at most one grey level apart, 1/255 of [0, 1], i.e. 2/255 after (x - 0.5) / 0.5.
ONE_GREY_LEVEL = 2 / 255 + 1e-6
SIGLIP_HUB_ID = "google/siglip-base-patch16-224"


def generated_captions() -> list[str]:
    """Catalogue-style product names (brand-free), to train the tiny SentencePiece model."""
    return [f"{g} {c} {a}" for g in GENDERS for c in COLOURS for a in ARTICLES]


@pytest.fixture(scope="module")
def siglip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models") / "tiny-siglip"
    return build_tiny_hf_siglip(folder, generated_captions(), seed=0)


@pytest.fixture(scope="module")
def model(siglip_dir: Path) -> ClipModel:
    return load_model(siglip_dir)


@pytest.fixture(scope="module")
def reference(siglip_dir: Path) -> SiglipModel:
    return SiglipModel.from_pretrained(siglip_dir).eval()


def non_square_images(n: int = 3) -> list[Image.Image]:
    """Random 60x80 images (the catalogue's shape): a centre crop would cut off rows."""
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (80, 60, 3), dtype=np.uint8)) for _ in range(n)]


def normalized(features: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.normalize(features, dim=-1).numpy()


# --- against transformers ------------------------------------------------------------------


def test_loads_as_siglip_with_its_own_head(model: ClipModel) -> None:
    assert isinstance(model, HFSiglipModel) and model.backend == "hf"
    assert model.objective == "sigmoid"
    formula = model.score_formula()
    assert formula.kind == "sigmoid"
    assert formula.logit_scale == pytest.approx(10.0) and formula.logit_bias == pytest.approx(-10)
    assert model.preprocess_config == PreprocessConfig(
        32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), resize_mode="squash"
    )


def test_embeddings_equal_transformers_on_the_same_inputs(
    model: ClipModel, reference: SiglipModel, siglip_dir: Path
) -> None:
    processor = SiglipProcessor.from_pretrained(siglip_dir)
    inputs = processor(
        text=TEXTS, images=non_square_images(), padding="max_length", return_tensors="pt"
    )
    assert torch.equal(model.tokenize(TEXTS), inputs["input_ids"])
    with torch.no_grad():
        ref_images = reference.get_image_features(pixel_values=inputs["pixel_values"])
        ref_texts = reference.get_text_features(input_ids=inputs["input_ids"])
        ours = model.image_features(inputs["pixel_values"])
    np.testing.assert_allclose(normalized(ours), normalized(ref_images.pooler_output), atol=1e-5)
    np.testing.assert_allclose(
        model.encode_texts(TEXTS), normalized(ref_texts.pooler_output), atol=1e-5
    )


def test_encode_images_equals_transformers_pil_processor(
    model: ClipModel, reference: SiglipModel, siglip_dir: Path
) -> None:
    """End to end, preprocessing included: the PIL image processor resizes as we do."""
    images = non_square_images()
    pixels = SiglipImageProcessorPil.from_pretrained(siglip_dir)(images, return_tensors="pt")
    with torch.no_grad():
        ref = reference.get_image_features(pixel_values=pixels["pixel_values"]).pooler_output
    np.testing.assert_allclose(model.encode_images(images), normalized(ref), atol=1e-5)


def test_preprocessing_squashes_real_images_without_a_crop(
    model: ClipModel, siglip_dir: Path, catalogue_dir: Path
) -> None:
    with open(catalogue_dir / "styles.csv", newline="", encoding="utf-8") as handle:
        ids = [row["id"] for row, _ in zip(csv.DictReader(handle), range(4), strict=False)]
    images = [Image.open(catalogue_dir / "images" / f"{i}.jpg").convert("RGB") for i in ids]
    assert all(im.size[0] != im.size[1] for im in images)  # 60x80: a crop would show
    ours = torch.stack([model.preprocess(im) for im in images])
    pil = SiglipImageProcessorPil.from_pretrained(siglip_dir)(images, return_tensors="pt")
    fast = SiglipImageProcessor.from_pretrained(siglip_dir)(images, return_tensors="pt")
    assert ours.shape == fast["pixel_values"].shape == (4, 3, 32, 32)
    torch.testing.assert_close(ours, pil["pixel_values"], atol=1e-6, rtol=0)
    torch.testing.assert_close(ours, fast["pixel_values"], atol=ONE_GREY_LEVEL, rtol=0)
    cropped = PreprocessConfig(32, (0.5,) * 3, (0.5,) * 3).build_transform()  # CLIP's way
    crop_error = (torch.stack([cropped(im) for im in images]) - fast["pixel_values"]).abs()
    assert crop_error.max() > 50 * ONE_GREY_LEVEL


def test_score_formula_is_the_models_own_sigmoid(
    model: ClipModel, reference: SiglipModel, siglip_dir: Path
) -> None:
    inputs = SiglipProcessor.from_pretrained(siglip_dir)(
        text=TEXTS, images=non_square_images(), padding="max_length", return_tensors="pt"
    )
    with torch.no_grad():
        # No attention_mask, though the processor returns one: SigLIP attends to its padding,
        # and transformers' conversion script checked the original's logits without a mask.
        out = reference(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"])
        image = normalized(model.image_features(inputs["pixel_values"]))
    cosines = image @ model.encode_texts(TEXTS).T
    formula = model.score_formula()
    np.testing.assert_allclose(formula.logits(cosines), out.logits_per_image.numpy(), atol=1e-5)
    np.testing.assert_allclose(
        formula.probabilities(cosines), torch.sigmoid(out.logits_per_image).numpy(), rtol=1e-5
    )


def test_tokens_pad_to_the_context_length_and_truncate(model: ClipModel) -> None:
    ids = model.tokenize(["red", " ".join(["Navy Blue Jeans"] * 40)])
    assert ids.shape == (2, model.context_length) == (2, 32)
    assert int(ids[0, -1]) == model.tokenizer.pad_token_id  # the pooled position is padding


# --- identity, saving ------------------------------------------------------------------------


def test_fingerprint_is_stable_and_survives_save(
    model: ClipModel, siglip_dir: Path, tmp_path: Path
) -> None:
    assert load_model(siglip_dir).fingerprint == model.fingerprint
    model.save(tmp_path / "saved")
    saved = load_model(tmp_path / "saved")
    assert isinstance(saved, HFSiglipModel)
    assert saved.fingerprint == model.fingerprint
    assert saved.preprocess_config == model.preprocess_config
    images = non_square_images(2)
    np.testing.assert_array_equal(saved.encode_images(images), model.encode_images(images))
    np.testing.assert_array_equal(saved.encode_texts(TEXTS), model.encode_texts(TEXTS))
    plain = SiglipModel.from_pretrained(tmp_path / "saved")  # no code of ours needed
    assert float(plain.logit_bias.detach()) == pytest.approx(-10.0)


# --- refusals --------------------------------------------------------------------------------


def copy_without_tokenizer(siglip_dir: Path, folder: Path) -> Path:
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "preprocessor_config.json"):
        shutil.copy(siglip_dir / name, folder)
    return folder


def test_folder_without_tokenizer_is_refused_with_the_files_to_fetch(
    siglip_dir: Path, tmp_path: Path
) -> None:
    folder = copy_without_tokenizer(siglip_dir, tmp_path / "no-tokenizer")
    with pytest.raises(ModelLoadError) as err:
        load_model(folder)
    message = str(err.value)
    assert str(folder) in message and "SigLIP" in message
    for name in ("spiece.model", "tokenizer_config.json", "special_tokens_map.json"):
        assert name in message
    assert "hf download ORG/NAME" in message and "google/siglip-base-patch16-224" in message
    # the vocabulary is there but cannot be read (here a class transformers does not know;
    # sentencepiece missing reads the same): no advice to download what is already there
    shutil.copy(siglip_dir / "spiece.model", folder)
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "NoSuchTok"}))
    with pytest.raises(ModelLoadError, match="could not be read") as err:
        load_model(folder)
    assert "sentencepiece" in str(err.value) and "hf download" not in str(err.value)


def write_config(folder: Path, config: dict) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes(b"")  # never read: the type is refused first
    return folder


def test_siglip2_is_refused_with_the_open_clip_route(tmp_path: Path) -> None:
    folder = write_config(tmp_path / "siglip2", {"model_type": "siglip2"})
    with pytest.raises(ModelLoadError, match="NaFlex") as err:
        load_model(folder)
    assert "'hf-hub:timm/ViT-B-16-SigLIP2'" in str(err.value)


def test_unknown_model_type_is_named(tmp_path: Path) -> None:
    folder = write_config(tmp_path / "bert", {"model_type": "bert"})
    with pytest.raises(ModelLoadError, match=r"model_type 'bert'.*'clip', 'siglip'"):
        load_model(folder)


def test_config_that_does_not_fit_the_weights_is_refused(siglip_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "wrong-config"
    shutil.copytree(siglip_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["text_config"]["vocab_size"] += 5
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"SigLIP .* does not match the weights.*shape"):
        load_model(folder)


def hub_cache(hf_home: Path, hub_id: str, files: Path) -> None:
    """``files`` as the cached snapshot of ``hub_id``, laid out as huggingface_hub does."""
    repo = hf_home / "hub" / f"models--{hub_id.replace('/', '--')}"
    commit = "0" * 40
    shutil.copytree(files, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


HUB_SCRIPT = """
from evalsuite.errors import ModelLoadError
from evalsuite.models import load_model
model = load_model("tiny-org/siglip")
print(model.fingerprint, model.preprocess_config.interpolation)
for spec in ("tiny-org/siglip-no-tokenizer", "google/siglip-base-patch16-224"):
    try:
        load_model(spec)
    except ModelLoadError as err:
        print(type(err).__name__, err)
"""


def test_hub_ids_load_from_the_cache_and_fail_at_once_without_network(
    siglip_dir: Path, tmp_path: Path
) -> None:
    """As tests/test_hub_unreachable.py: offline mode off, and a Hub that refuses connections.
    A cached id loads; an uncached or partly cached one fails without download retries."""
    from test_hub_unreachable import no_network_env

    env = no_network_env(tmp_path)
    bilinear = tmp_path / "bilinear"  # a processor unlike the defaults: it must be read
    shutil.copytree(siglip_dir, bilinear)
    processor = json.loads((bilinear / "preprocessor_config.json").read_text())
    processor["resample"] = 2
    (bilinear / "preprocessor_config.json").write_text(json.dumps(processor))
    hub_cache(Path(env["HF_HOME"]), "tiny-org/siglip", bilinear)
    no_tokenizer = copy_without_tokenizer(siglip_dir, tmp_path / "no-tokenizer")
    hub_cache(Path(env["HF_HOME"]), "tiny-org/siglip-no-tokenizer", no_tokenizer)
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", HUB_SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert time.monotonic() - start < 60, "transformers' download retries were not skipped"
    assert done.returncode == 0, done.stderr
    loaded, partial, missing = done.stdout.strip().splitlines()[-3:]
    assert loaded == f"{load_model(bilinear).fingerprint} bilinear"
    for line, hub_id in ((partial, "tiny-org/siglip-no-tokenizer"), (missing, SIGLIP_HUB_ID)):
        assert line.startswith("HubModelNotCached") and hub_id in line
        assert "cannot be reached" in line and f"hf download {hub_id}" in line
    assert "only partly in the Hugging Face cache" in partial and "tokenizer" in partial
    assert "neither a local folder nor in the Hugging Face cache" in missing


def test_without_a_processor_file_siglip_defaults_apply(
    model: ClipModel, siglip_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "no-processor"
    shutil.copytree(siglip_dir, folder)
    (folder / "preprocessor_config.json").unlink()
    assert load_model(folder).preprocess_config == model.preprocess_config  # squash, 0.5


# --- layout: locking and LoRA ----------------------------------------------------------------


def test_layout_covers_every_parameter(model: ClipModel) -> None:
    layout = tower_layout(model)  # raises on a parameter in no part or in two
    assert layout.image.embed == ("vision_model.embeddings",)
    assert layout.image.head == ("vision_model.post_layernorm", "vision_model.head")
    assert layout.text.head == ("text_model.final_layer_norm", "text_model.head")
    assert layout.logit == ("logit_scale", "logit_bias")
    assert len(layout.image.blocks) == len(layout.text.blocks) == 2
    assert len(layout.image.attention) == len(layout.text.attention) == 8


def test_lock_image_freezes_the_vision_tower_only(siglip_dir: Path) -> None:
    model = load_model(siglip_dir)
    apply_locking(model, LockConfig(lock_image=True, lock_image_unlock_projection=True))
    head = {n for n, _ in named_parameters(model.module, tower_layout(model).image.head)}
    for name, param in model.module.named_parameters():
        vision = name.startswith("vision_model.")
        assert param.requires_grad == (not vision or name in head), name
    assert model.module.logit_bias.requires_grad


def test_lora_trains_adapters_only_and_merges_to_a_plain_siglip(
    siglip_dir: Path, tmp_path: Path
) -> None:
    model = load_model(siglip_dir)
    keys = set(model.module.state_dict())
    before = model.encode_texts(TEXTS)
    targets = apply_lora(model, LoraConfig(enabled=True, rank=2, alpha=4.0))
    assert len(targets) == 16 and all(t.endswith("_proj") for t in targets)
    tower_layout(model)  # the adapters fall inside the blocks
    trainable = [n for n, p in model.module.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    np.testing.assert_allclose(model.encode_texts(TEXTS), before, atol=1e-6)  # B starts at 0
    image, text, _ = model.forward_normalized(torch.randn(2, 3, 32, 32), model.tokenize(TEXTS[:2]))
    (image @ text.T).sum().backward()
    assert all(p.grad is not None for n, p in model.module.named_parameters() if "lora_B" in n)
    merge_lora(model)
    assert set(model.module.state_dict()) == keys
    model.save(tmp_path / "merged")
    assert isinstance(load_model(tmp_path / "merged"), HFSiglipModel)
