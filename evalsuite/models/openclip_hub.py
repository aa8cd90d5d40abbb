"""What an open_clip model reads besides its spec, checked before anything is built.

open_clip fetches on demand from the Hugging Face Hub: the weights of an ``hf-hub:`` id or of
a pretrained tag (``ViT-B-16-SigLIP/webli`` -> ``timm/ViT-B-16-SigLIP``), and the tokenizer
that ``text_cfg.hf_tokenizer_name`` names (every SigLIP has one; the built-in SigLIPs name
``timm/ViT-B-16-SigLIP`` and the like). The tokenizer is fetched only after the model is
built, and offline each missing file costs a minute of retries before a message that names
neither the repository nor a fix. :func:`check_hub_files` asks the cache first; when a file
is missing and the Hub cannot be reached it raises :class:`OpenClipFilesNotCached`, naming
each repository, its files and the commands that fetch them.

A local folder whose config names a Hugging Face tokenizer must hold the tokenizer files
itself: open_clip's ``local-dir:`` tokenizer reads them from the folder, whatever the name
says (:func:`check_folder_tokenizer`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import open_clip

from evalsuite.errors import ModelLoadError
from evalsuite.hub import SCORE_ADVICE, HubModelNotCached, cache_folder, cached, not_downloadable

WEIGHTS_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
TOKENIZER_CONFIG = "tokenizer_config.json"
# Any one of these is a whole vocabulary: a fast tokenizer's, or a SentencePiece model
# (SigLIP's T5 vocabulary: spiece.model).
VOCAB_FILES = ("tokenizer.json", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model")
# What a saved tokenizer may consist of: copied into, and saved with, open_clip folders.
TOKENIZER_FILES = (TOKENIZER_CONFIG, "special_tokens_map.json", "added_tokens.json", *VOCAB_FILES)
# `hf download` patterns that fetch a tokenizer and no weights
TOKENIZER_INCLUDE = '--include "*token*" --include "*.model"'


@dataclass(frozen=True)
class HubFiles:
    """Files of one Hub repository a model needs: of each group, any one file will do."""

    repo: str
    what: str  # "weights" or "tokenizer"
    groups: tuple[tuple[str, ...], ...]

    def missing(self) -> bool:
        return not all(any(cached(self.repo, name) for name in group) for group in self.groups)

    def describe(self) -> str:
        files = [
            group[0] if len(group) == 1 else f"one of {', '.join(group)}" for group in self.groups
        ]
        return f"{self.what} of {self.repo} ({' and '.join(files)})"


def hub_files(model_name: str, pretrained: str | None, model_cfg: dict[str, Any]) -> list[HubFiles]:
    """The Hub files open_clip will fetch for ``model_name`` (``hf-hub:`` id or built-in
    name; nothing for a ``local-dir:`` folder), tokenizer first."""
    if model_name.startswith("local-dir:"):
        return []
    needs = []
    tokenizer = model_cfg.get("text_cfg", {}).get("hf_tokenizer_name")
    if tokenizer and not Path(tokenizer).expanduser().is_dir():  # a folder: nothing to fetch
        needs.append(HubFiles(tokenizer, "tokenizer", ((TOKENIZER_CONFIG,), VOCAB_FILES)))
    if model_name.startswith("hf-hub:"):
        needs.append(HubFiles(model_name.removeprefix("hf-hub:"), "weights", (WEIGHTS_FILES,)))
    elif pretrained:
        needs += _pretrained_weights(model_name, pretrained)
    return needs


def _pretrained_weights(arch: str, tag: str) -> list[HubFiles]:
    """The weights of a pretrained tag hosted on the Hub (``hf_hub: ORG/NAME/[FILE]``); tags
    with a plain URL download elsewhere, and a weights file is not a tag."""
    from open_clip.pretrained import _get_safe_alternatives  # open_clip's own fallbacks

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg.get("hf_hub"):
        return []
    repo, filename = os.path.split(cfg["hf_hub"])
    if not filename:
        return [HubFiles(repo, "weights", (WEIGHTS_FILES,))]
    return [HubFiles(repo, "weights", ((*_get_safe_alternatives(filename), filename),))]


def check_hub_files(
    spec: str, model_name: str, pretrained: str | None, model_cfg: dict[str, Any]
) -> None:
    """Raise :class:`OpenClipFilesNotCached` when a file open_clip needs from the Hub is
    neither cached nor downloadable now; asks the Hub once, without retries."""
    needs = hub_files(model_name, pretrained, model_cfg)
    missing = [files for files in needs if files.missing()]
    if not missing:
        return
    why = not_downloadable(missing[0].repo, missing[0].groups[0][0])
    if why is not None:
        # where the weights come from a Hub repository, that repository is the whole model
        model_repo = next((files.repo for files in needs if files.what == "weights"), None)
        tokenizer = model_cfg.get("text_cfg", {}).get("hf_tokenizer_name")
        raise OpenClipFilesNotCached(spec, missing, why, model_repo, tokenizer)


def tokenizer_cached(model_cfg: dict[str, Any]) -> bool:
    """Whether the config names a Hugging Face tokenizer whose files are all cached (then it
    is read with ``local_files_only``, without asking the Hub for newer versions)."""
    name = model_cfg.get("text_cfg", {}).get("hf_tokenizer_name")
    if name and Path(name).expanduser().is_dir():  # open_clip's HFTokenizer reads a folder too
        return True
    return bool(name) and not HubFiles(name, "", ((TOKENIZER_CONFIG,), VOCAB_FILES)).missing()


class OpenClipFilesNotCached(HubModelNotCached):
    """Files an open_clip model needs from the Hub, neither cached nor downloadable.
    ``model_repo``: the repository holding the whole model (config, weights, usually its
    tokenizer), which can be downloaded as a folder instead; None for a random init.
    ``tokenizer_repo``: the config's ``hf_tokenizer_name``, if any."""

    def __init__(
        self,
        spec: str,
        missing: Sequence[HubFiles],
        why: str,
        model_repo: str | None,
        tokenizer_repo: str | None,
        use_folder: str = SCORE_ADVICE,
    ) -> None:
        self.hub_id, self.why = missing[0].repo, why
        self.spec, self.missing = spec, list(missing)
        self.model_repo, self.tokenizer_repo = model_repo, tokenizer_repo
        repos = list(dict.fromkeys(files.repo for files in missing))
        folders = ", ".join(f"models--{repo.replace('/', '--')}" for repo in repos)
        advice = (
            f"On a machine with network run {_cache_commands(missing)} and copy {folders} "
            f"from its Hugging Face cache into {cache_folder()} here"
        )
        if model_repo:
            advice += f"; or {_folder_commands(model_repo, tokenizer_repo)}, copy DIR here and "
            advice += f"pass the folder instead: {use_folder}"
        ModelLoadError.__init__(
            self,
            f"open_clip model {spec!r} needs files that are not in the Hugging Face cache "
            f"({cache_folder()}; {why}): {', '.join(f.describe() for f in missing)}. {advice}",
        )

    def advise(self, use_folder: str) -> OpenClipFilesNotCached:
        return OpenClipFilesNotCached(
            self.spec, self.missing, self.why, self.model_repo, self.tokenizer_repo, use_folder
        )


def _cache_commands(missing: Sequence[HubFiles]) -> str:
    """One `hf download` per repository; the tokenizer's files alone where no weights of it
    are missing (a SigLIP's repository holds its weights too: about 800 MB for a base)."""
    commands = []
    for repo in dict.fromkeys(files.repo for files in missing):
        tokenizer_only = all(f.what == "tokenizer" for f in missing if f.repo == repo)
        commands.append(f"`hf download {repo}{' ' + TOKENIZER_INCLUDE if tokenizer_only else ''}`")
    return " and ".join(commands)


def _folder_commands(model_repo: str, tokenizer_repo: str | None) -> str:
    """A folder open_clip loads by itself: the model's repository, plus the tokenizer files
    where the config names a tokenizer kept in another repository."""
    command = f"run `hf download {model_repo} --local-dir DIR`"
    if tokenizer_repo and tokenizer_repo != model_repo:
        command += f" and `hf download {tokenizer_repo} {TOKENIZER_INCLUDE} --local-dir DIR`"
    return command


def check_folder_tokenizer(folder: Path, model_cfg: dict[str, Any]) -> None:
    """A local open_clip folder whose config names a Hugging Face tokenizer holds its files."""
    name = model_cfg.get("text_cfg", {}).get("hf_tokenizer_name")
    if not name:
        return  # open_clip's own CLIP tokenizer, shipped with the library
    lacking = []
    if not (folder / TOKENIZER_CONFIG).is_file():
        lacking.append(TOKENIZER_CONFIG)
    if not any((folder / vocab).is_file() for vocab in VOCAB_FILES):
        lacking.append(" or ".join(VOCAB_FILES))
    if lacking:
        raise ModelLoadError(
            f"open_clip folder {folder} names the Hugging Face tokenizer {name!r} "
            "(text_cfg.hf_tokenizer_name), which open_clip reads from the folder itself, but "
            f"the folder has no {' and no '.join(lacking)}. Copy the tokenizer files of {name} "
            f"into it (`hf download {name} {TOKENIZER_INCLUDE} --local-dir {folder}`)"
        )
