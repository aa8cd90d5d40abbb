"""Hugging Face Hub ids: the local cache first, and a quick answer when the Hub is out of reach.

Asked for a Hub id that is not cached, transformers (and open_clip) request each of the
model's files with five retries apiece: offline that took 52 s and printed 46 warnings before
saying the files are not cached. ``load_model`` asks the cache first (:func:`cached`); when the
id is not there it checks once, without retries, that the Hub answers at all
(:func:`unreachable`), so an offline machine fails within seconds. The error
(:class:`HubModelNotCached`) says how to bring the model over; the command that raised it
rewords the last step for its own arguments (:meth:`HubModelNotCached.advise`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from evalsuite.errors import ModelLoadError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # ORG/NAME
OPEN_CLIP_CONFIG = "open_clip_config.json"  # of an ``hf-hub:`` repository (models.openclip)
PROBE_TIMEOUT = 5.0  # seconds; a Hub that answers at all does so well within this
SCORE_ADVICE = "`evalsuite score DIR`"


def hub_offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in {"1", "true", "yes", "on"}


def cache_folder() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached(hub_id: str, filename: str) -> bool:
    """Whether ``filename`` of ``hub_id`` is in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(hub_id, filename), str)


def unreachable(hub_id: str, filename: str) -> str | None:
    """None when the Hub answers one request for the file, whatever the status (a missing or
    gated repository is the download's error to report); else why it cannot be reached."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    url = f"{constants.ENDPOINT}/{hub_id}/resolve/main/{filename}"
    try:
        get_session().head(url, timeout=PROBE_TIMEOUT)
    except Exception as exc:  # the HTTP client's connection errors (requests or httpx)
        return f"{constants.ENDPOINT} cannot be reached: {exc or type(exc).__name__}"
    return None


def not_downloadable(hub_id: str, filename: str) -> str | None:
    """Why ``hub_id`` cannot be downloaded now (offline mode, or the Hub out of reach), or
    None when a download may work; asks the Hub once, without retries."""
    if hub_offline():
        return "HF_HUB_OFFLINE is set"
    return unreachable(hub_id, filename)


def check_hub_spec(spec: str) -> None:
    """Before anything heavy is imported: a model spec naming a Hub id (``ORG/NAME`` that is
    not a local folder, or ``hf-hub:ORG/NAME``) that is neither cached nor downloadable raises
    :class:`HubModelNotCached` now; any other spec is left to ``load_model``."""
    if spec.startswith("hf-hub:"):
        hub_id, filename = spec.removeprefix("hf-hub:"), OPEN_CLIP_CONFIG
    elif HUB_ID.match(spec) and not Path(spec).expanduser().exists():
        hub_id, filename = spec, "config.json"
    else:
        return
    if not cached(hub_id, filename):
        why = not_downloadable(hub_id, filename)
        if why is not None:
            raise HubModelNotCached(hub_id, why)


class HubModelNotCached(ModelLoadError):
    """A Hub id neither in the local cache nor downloadable. The last step of the advice, how
    to pass a downloaded folder, depends on the command: ``evalsuite score DIR`` by default,
    another wording through :meth:`advise` (``finetune``: ``--set model.spec=DIR``)."""

    def __init__(
        self, hub_id: str, why: str, use_folder: str = SCORE_ADVICE, partly: bool = False
    ) -> None:
        self.hub_id, self.why, self.partly = hub_id, why, partly
        where = (
            "is only partly in the Hugging Face cache"  # e.g. its config but not its tokenizer
            if partly
            else "is neither a local folder nor in the Hugging Face cache"
        )
        super().__init__(
            f"model {hub_id!r} {where} ({cache_folder()}; {why}). On a machine with network "
            f"run `hf download {hub_id} --local-dir DIR`, copy DIR here and pass the folder "
            f"instead: {use_folder}"
        )

    def advise(self, use_folder: str) -> HubModelNotCached:
        """The same error, its last step worded for the command that raised it."""
        return HubModelNotCached(self.hub_id, self.why, use_folder, self.partly)
