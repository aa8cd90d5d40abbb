"""open_clip SigLIPs (a timm ViT trunk and a CustomTextCLIP text tower) behind the suite's
model interface: the same weights as a Hugging Face SiglipModel give the same embeddings and
logits, folders load with plain open_clip, images are squashed, offline errors name what to
download, and locking and LoRA reach every part of the tiny SigLIP."""

from __future__ import annotations

import copy
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import SiglipImageProcessor, SiglipModel, SiglipTokenizer

from evalsuite.errors import ModelLoadError
from evalsuite.models import ClipModel
from evalsuite.models.factory import load_model
from evalsuite.models.layout import TOWERS, named_parameters, tower_layout
from evalsuite.models.openclip_hub import OpenClipFilesNotCached, check_hub_files
from finetune.config import LockConfig, LoraConfig
from finetune.freeze import apply_locking, tower_units, unit_parameters
from finetune.lora import apply_lora, has_lora, merge_lora
from testkit.tiny_siglip import (
    TINY_TIMM_MODEL,
    build_tiny_hf_siglip,
    build_tiny_open_clip_siglip,
    register_tiny_timm_model,
)

ROOT = Path(__file__).resolve().parents[1]
# Captions the tiny SentencePiece tokenizer is trained on (the model tests need no real data).
CAPTIONS = [
    "Puma Men Ferrari Vintage Black Polo T-shirt",
    "Nike Women's Red/White Running Shoes",
    "Adidas Men Navy Blue Track Pants",
    "Catwalk Women Black Heels",
    "Baggit Women Brown Handbag",
    "Fila Men Grey Flip Flops",
    "Levis Men Blue Slim Fit Jeans",
    "Reebok Unisex White Sports Sandals",
    "Lino Perros Women Beige Clutch",
    "Red Tape Men Brown Formal Shoes",
    "United Colors of Benetton Girls Pink Dress",
    "Woodland Men Khaki Casual Shoes",
]
LORA = LoraConfig(enabled=True, rank=4, alpha=8.0)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_hf_siglip(tmp_path_factory.mktemp("siglip") / "hf", CAPTIONS, seed=0)


@pytest.fixture(scope="module")
def oc_dir(hf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_open_clip_siglip(tmp_path_factory.mktemp("siglip") / "open-clip", hf_dir)


@pytest.fixture(scope="module")
def siglip(oc_dir: Path) -> ClipModel:
    return load_model(oc_dir)


@pytest.fixture(scope="module")
def real_captions(catalogue_dir: Path) -> list[str]:
    with open(catalogue_dir / "styles.csv", newline="", encoding="utf-8") as f:
        return [row["productDisplayName"] for row in csv.DictReader(f)][:500]


def pixels(n: int = 4, size: int = 32) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def normalized(features: torch.Tensor) -> torch.Tensor:
    return F.normalize(features, dim=-1)


# --- the same weights in both formats ---------------------------------------------------------


@torch.no_grad()
def test_same_weights_give_transformers_embeddings_and_logits(
    siglip: ClipModel, hf_dir: Path
) -> None:
    hf = SiglipModel.from_pretrained(hf_dir, local_files_only=True).eval()
    images, ids = pixels(), siglip.tokenize(CAPTIONS[:5])
    theirs_image = hf.get_image_features(pixel_values=images).pooler_output
    theirs_text = hf.get_text_features(input_ids=ids).pooler_output
    ours_image, ours_text = siglip.image_features(images), siglip.text_features(ids)
    torch.testing.assert_close(normalized(ours_image), normalized(theirs_image), rtol=0, atol=1e-5)
    torch.testing.assert_close(normalized(ours_text), normalized(theirs_text), rtol=0, atol=1e-5)

    formula = siglip.score_formula()
    assert (formula.kind, siglip.objective) == ("sigmoid", "sigmoid")
    assert formula.logit_bias == pytest.approx(-10.0)
    cosine = normalized(ours_image) @ normalized(ours_text).T
    logits = formula.logit_scale * cosine + formula.logit_bias
    expected = hf(input_ids=ids, pixel_values=images).logits_per_image
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-5)


def test_open_clip_tokenizer_gives_transformers_ids_for_real_captions(
    siglip: ClipModel, hf_dir: Path, real_captions: list[str]
) -> None:
    """open_clip's HFTokenizer on the folder (canonicalize clean, as the built-in SigLIPs)
    gives SiglipTokenizer's ids with SigLIP's max_length padding; long texts keep </s>."""
    texts = [*real_captions, " ".join(real_captions[:20])]
    tokenizer = SiglipTokenizer.from_pretrained(hf_dir, local_files_only=True)
    expected = tokenizer(
        texts, padding="max_length", max_length=32, truncation=True, return_tensors="pt"
    ).input_ids
    ids = siglip.tokenize(texts)
    assert torch.equal(ids, expected)
    assert ids[-1, -1] == tokenizer.eos_token_id


def test_folder_loads_with_plain_open_clip(siglip: ClipModel, oc_dir: Path) -> None:
    register_tiny_timm_model()  # the only code of ours: timm must know the tiny trunk
    name = f"local-dir:{oc_dir}"
    module, _, preprocess = open_clip.create_model_and_transforms(name)
    tokenizer = open_clip.get_tokenizer(name)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 60, 3), np.uint8))
    assert torch.equal(preprocess(image), siglip.preprocess(image))  # open_clip squashes too
    ids = tokenizer(CAPTIONS)
    assert torch.equal(ids, siglip.tokenize(CAPTIONS))
    with torch.no_grad():
        torch.testing.assert_close(module.eval().encode_text(ids), siglip.text_features(ids))
        torch.testing.assert_close(module.encode_image(pixels()), siglip.image_features(pixels()))
    assert module.logit_bias.item() == pytest.approx(-10.0)


def test_fresh_process_loads_the_folder_once_the_trunk_is_registered(oc_dir: Path) -> None:
    """The library knows no test model: a fresh process registers the tiny trunk with timm
    (as the owner of any custom timm trunk does), then loads the folder; without that,
    load_model refuses with a ModelLoadError naming the trunk, not open_clip's bare error."""
    load = (
        "import sys; from evalsuite.models import load_model\n"
        "model = load_model(sys.argv[1]); print(model.logit_bias, model.encode_texts(['a']).shape)"
    )
    register = (
        "from testkit.tiny_siglip import register_tiny_timm_model\nregister_tiny_timm_model()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", register + load, str(oc_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["-10.0", "(1,", "32)"]

    unregistered = subprocess.run(
        [sys.executable, "-c", load, str(oc_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert unregistered.returncode != 0
    assert "ModelLoadError" in unregistered.stderr
    assert f"the timm model {TINY_TIMM_MODEL!r}" in unregistered.stderr


def test_real_non_square_image_is_squashed_not_cropped(
    siglip: ClipModel, hf_dir: Path, catalogue_dir: Path
) -> None:
    path = sorted((catalogue_dir / "images").glob("*.jpg"))[0]
    image = Image.open(path).convert("RGB")
    assert image.size[0] != image.size[1]
    config = siglip.preprocess_config
    assert (config.resize_mode, config.mean, config.std) == ("squash", (0.5,) * 3, (0.5,) * 3)
    ours = siglip.preprocess(image)
    squashed = np.asarray(image.resize((32, 32), Image.Resampling.BICUBIC), np.float32) / 255
    expected = (torch.from_numpy(squashed).permute(2, 0, 1) - 0.5) / 0.5
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)
    processor = SiglipImageProcessor.from_pretrained(hf_dir, local_files_only=True)
    theirs = processor(images=image, return_tensors="pt").pixel_values[0]
    # transformers 5 resizes uint8 tensors with torchvision, PIL resizes here: a few values
    # land one grey level (2/255 after the 0.5 normalisation) apart
    difference = (ours - theirs).abs()
    assert difference.max() <= 2 / 255 + 1e-6 and (difference > 1e-5).float().mean() < 0.02
    cropped = (config.__class__(image_size=32, mean=config.mean, std=config.std)).build_transform()
    assert not torch.allclose(ours, cropped(image), atol=1e-2)  # CLIP's crop cuts the top off


def test_fingerprint_is_stable_and_save_round_trips(
    siglip: ClipModel, oc_dir: Path, tmp_path: Path
) -> None:
    assert load_model(oc_dir).fingerprint == siglip.fingerprint
    assert siglip.preprocess_config.to_dict()["resize_mode"] == "squash"
    siglip.save(tmp_path / "saved")
    config = json.loads((tmp_path / "saved" / "open_clip_config.json").read_text())
    assert config["preprocess_cfg"]["resize_mode"] == "squash"
    assert {"spiece.model", "tokenizer_config.json"} <= {p.name for p in tmp_path.glob("saved/*")}
    again = load_model(tmp_path / "saved")
    assert again.fingerprint == siglip.fingerprint
    np.testing.assert_array_equal(again.encode_texts(CAPTIONS), siglip.encode_texts(CAPTIONS))


# --- errors -----------------------------------------------------------------------------------


def test_folder_without_tokenizer_files_names_them(oc_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "no-tokenizer"
    shutil.copytree(oc_dir, folder)
    for name in ("spiece.model", "tokenizer_config.json"):
        (folder / name).unlink()
    with pytest.raises(ModelLoadError) as err:
        load_model(folder)
    message = str(err.value)
    assert str(folder) in message and "tiny-siglip" in message
    assert "tokenizer_config.json" in message and "spiece.model" in message


def test_unknown_timm_model_is_a_clear_error(oc_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "unknown-timm"
    shutil.copytree(oc_dir, folder)
    config = json.loads((folder / "open_clip_config.json").read_text())
    config["model_cfg"]["vision_cfg"]["timm_model_name"] = "vit_nonexistent_patch16"
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="timm model 'vit_nonexistent_patch16'"):
        load_model(folder)


def test_architecture_with_a_weights_file_is_preprocessed_as_its_tags_say(
    oc_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Built without a tag, open_clip would preprocess a SigLIP's weights file like a CLIP
    (OpenAI mean/std, resize and crop): the tags' preprocessing is used, or it is refused."""
    cfg = json.loads((oc_dir / "open_clip_config.json").read_text())["model_cfg"]
    cfg["text_cfg"]["hf_tokenizer_name"] = str(oc_dir)  # the tokenizer files, on disk
    (tmp_path / "TinySigLIP-arch.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "TinySigLIP-arch.json")
    spec = f"openclip:TinySigLIP-arch/{oc_dir / 'open_clip_model.safetensors'}"
    with pytest.raises(ModelLoadError, match="no pretrained tag to say how its images"):
        load_model(spec)  # an architecture of ours: no tag says how

    webli = open_clip.get_pretrained_cfg("ViT-B-16-SigLIP", "webli")
    monkeypatch.setattr(open_clip, "list_pretrained_tags_by_model", lambda arch: ["webli"])
    monkeypatch.setattr(
        open_clip, "get_pretrained_cfg", lambda arch, tag: webli if tag == "webli" else {}
    )
    from_file, folder = load_model(spec), load_model(oc_dir)
    assert from_file.preprocess_config == folder.preprocess_config
    assert from_file.preprocess_config.resize_mode == "squash"
    images = [Image.new("RGB", (60, 80), (200, 30, 30)), Image.new("RGB", (80, 60), (9, 9, 9))]
    np.testing.assert_allclose(from_file.encode_images(images), folder.encode_images(images))


def fake_hub_cache(hf_home: Path, repo: str, files: dict[str, str]) -> None:
    """``files`` of ``repo`` in the Hugging Face cache layout, as if downloaded."""
    folder = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    commit = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    for name, text in files.items():
        (folder / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
        (folder / "snapshots" / commit / name).write_text(text)


OFFLINE_SPECS = [
    "openclip:ViT-B-16-SigLIP",
    "openclip:ViT-B-16-SigLIP/webli",
    "hf-hub:Marqo/marqo-fashionSigLIP",
    "hf-hub:someone/cached-config-siglip",
]


@pytest.fixture(scope="module")
def offline_errors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The error of each of OFFLINE_SPECS, loaded in one process with an empty Hugging Face
    cache (but the config of the last) and HF_HUB_OFFLINE set."""
    hf_home = tmp_path_factory.mktemp("hf-home")
    model_cfg = open_clip.get_model_config("ViT-B-16-SigLIP")
    config = json.dumps({"model_cfg": model_cfg, "preprocess_cfg": {"resize_mode": "squash"}})
    fake_hub_cache(hf_home, "someone/cached-config-siglip", {"open_clip_config.json": config})
    code = (
        "import json, sys, time; from evalsuite.models import load_model\n"
        "errors = {}\n"
        "for spec in sys.argv[1:]:\n"
        "    start = time.monotonic()\n"
        "    try: load_model(spec); errors[spec] = 'loaded'\n"
        "    except Exception as err: errors[spec] = f'{type(err).__name__}: {err}'\n"
        "    errors[spec + ' seconds'] = time.monotonic() - start\n"
        "print(json.dumps(errors))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home)}
    done = subprocess.run(
        [sys.executable, "-c", code, *OFFLINE_SPECS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_offline_built_in_siglip_names_its_tokenizer_repository(offline_errors) -> None:
    message = offline_errors["openclip:ViT-B-16-SigLIP"]
    assert message.startswith("OpenClipFilesNotCached: open_clip model 'openclip:ViT-B-16-SigLIP'")
    assert "tokenizer of timm/ViT-B-16-SigLIP (tokenizer_config.json and one of " in message
    assert "HF_HUB_OFFLINE is set" in message
    assert '`hf download timm/ViT-B-16-SigLIP --include "*token*"' in message
    assert "models--timm--ViT-B-16-SigLIP" in message
    assert "--local-dir" not in message  # a random init: no folder holds it
    assert offline_errors["openclip:ViT-B-16-SigLIP seconds"] < 5


def test_offline_pretrained_siglip_names_weights_tokenizer_and_a_folder(offline_errors) -> None:
    message = offline_errors["openclip:ViT-B-16-SigLIP/webli"]
    assert "weights of timm/ViT-B-16-SigLIP (one of open_clip_model.safetensors, " in message
    assert "tokenizer of timm/ViT-B-16-SigLIP" in message
    assert "run `hf download timm/ViT-B-16-SigLIP` and copy" in message
    assert "`hf download timm/ViT-B-16-SigLIP --local-dir DIR`, copy DIR here" in message
    assert message.endswith("pass the folder instead: `evalsuite score DIR`")


def test_offline_hub_siglip_names_what_to_download(offline_errors) -> None:
    message = offline_errors["hf-hub:Marqo/marqo-fashionSigLIP"]
    assert message.startswith("HubModelNotCached: model 'Marqo/marqo-fashionSigLIP'")
    assert "`hf download Marqo/marqo-fashionSigLIP --local-dir DIR`" in message
    # config cached, the rest not: the weights and the tokenizer its config names
    message = offline_errors["hf-hub:someone/cached-config-siglip"]
    assert "weights of someone/cached-config-siglip" in message
    assert "tokenizer of timm/ViT-B-16-SigLIP" in message
    assert (
        "`hf download someone/cached-config-siglip --local-dir DIR` and `hf download "
        'timm/ViT-B-16-SigLIP --include "*token*"'
    ) in message


def test_offline_error_takes_the_commands_advice() -> None:
    cfg = open_clip.get_model_config("ViT-B-16-SigLIP")
    with pytest.raises(OpenClipFilesNotCached) as err:
        check_hub_files("openclip:ViT-B-16-SigLIP/webli", "ViT-B-16-SigLIP", "webli", cfg)
    advised = err.value.advise("`--set model.spec=DIR`")
    assert str(advised).endswith("pass the folder instead: `--set model.spec=DIR`")
    assert isinstance(advised, ModelLoadError) and advised.hub_id == "timm/ViT-B-16-SigLIP"


# --- layout, locking, LoRA --------------------------------------------------------------------


def sigmoid_step(model: ClipModel, optimizer: torch.optim.Optimizer) -> None:
    model.module.train()
    image, text, scale = model.forward_normalized(pixels(3), model.tokenize(CAPTIONS[:3]))
    logits = scale * image @ text.T + model.logit_bias_parameter
    labels = 2 * torch.eye(3) - 1  # SigLIP: +1 on the diagonal, -1 elsewhere
    loss = -F.logsigmoid(labels * logits).sum() / 3
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    model.module.eval()


def test_layout_covers_the_timm_trunk_and_text_tower(siglip: ClipModel, hf_dir: Path) -> None:
    layout = tower_layout(siglip)  # raises if a parameter lies outside the layout
    assert layout.image.blocks == ("visual.trunk.blocks.0", "visual.trunk.blocks.1")
    assert layout.image.embed[:2] == ("visual.trunk.patch_embed", "visual.trunk.pos_embed")
    assert "visual.trunk.attn_pool" in layout.image.head
    assert "visual.trunk.blocks.1.attn.qkv" in layout.image.attention
    assert layout.text.head[-1] == "text.text_projection"
    assert layout.logit == ("logit_scale", "logit_bias")
    total = sum(p.numel() for _, p in named_parameters(siglip.module, layout.logit))
    for tower in TOWERS:
        for unit in tower_units(layout, tower):
            total += sum(p.numel() for _, p in unit_parameters(siglip.module, unit))
    assert total == siglip.parameter_count
    hf = SiglipModel.from_pretrained(hf_dir, local_files_only=True)
    assert total == sum(p.numel() for p in hf.parameters())  # nothing lost in the conversion


def test_locked_image_tower_keeps_embeddings_and_lower_block(siglip: ClipModel) -> None:
    model = copy.deepcopy(siglip)
    apply_locking(model, LockConfig(lock_image=True, lock_image_unlocked_blocks=1))
    before = {n: p.detach().clone() for n, p in model.module.named_parameters()}
    trainable = [p for p in model.module.parameters() if p.requires_grad]
    sigmoid_step(model, torch.optim.SGD(trainable, lr=0.5))
    changed = {n for n, p in model.module.named_parameters() if not torch.equal(p, before[n])}
    frozen = ("visual.trunk.patch_embed", "visual.trunk.pos_embed", "visual.trunk.blocks.0.")
    assert not {n for n in changed if n.startswith(frozen)}
    assert {"visual.trunk.blocks.1.attn.qkv.weight", "logit_bias"} <= changed
    assert "text.transformer.resblocks.0.attn.in_proj_weight" in changed


def test_lora_adapts_timm_and_text_attention_and_merges_to_a_plain_folder(
    siglip: ClipModel, tmp_path: Path
) -> None:
    model = copy.deepcopy(siglip)
    targets = apply_lora(model, LORA)
    assert "visual.trunk.blocks.0.attn.qkv" in targets  # peft on timm's Linear layers
    assert "visual.trunk.blocks.0.attn.proj" in targets
    assert "text.transformer.resblocks.0.attn" in targets  # the suite's MHA wrapper
    model.set_grad_checkpointing(True)
    trainable = [p for p in model.module.parameters() if p.requires_grad]
    sigmoid_step(model, torch.optim.AdamW(trainable, lr=1e-2))
    names = [n for n, p in model.module.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    assert any(n.startswith("visual.trunk.blocks.0.attn.qkv.lora_B") for n in names)
    model.set_grad_checkpointing(False)
    with torch.no_grad():
        before = model.image_features(pixels()), model.text_features(model.tokenize(CAPTIONS))
    merge_lora(model)
    assert not has_lora(model)
    assert model.module.state_dict().keys() == siglip.module.state_dict().keys()
    qkv = "visual.trunk.blocks.0.attn.qkv.weight"
    assert not torch.equal(model.module.state_dict()[qkv], siglip.module.state_dict()[qkv])
    model.save(tmp_path)  # plain open_clip, no peft, no suite code but the timm registration
    plain = open_clip.create_model(f"local-dir:{tmp_path}").eval()
    with torch.no_grad():
        torch.testing.assert_close(plain.encode_image(pixels()), before[0], rtol=1e-5, atol=1e-5)
        ids = open_clip.get_tokenizer(f"local-dir:{tmp_path}")(CAPTIONS)
        torch.testing.assert_close(plain.encode_text(ids), before[1], rtol=1e-5, atol=1e-5)
