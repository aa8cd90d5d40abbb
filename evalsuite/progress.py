"""Progress bars for a person at a terminal; a line per unit of work for a log.

A tqdm bar redraws itself with carriage returns: at a terminal it updates one line, but in a
log file or a CI console every update is kept (hundreds per epoch), and the libraries' own
bars add theirs (transformers' "Loading weights" and "Writing model shards", huggingface_hub's
downloads). So when stderr, where bars go, is not a terminal, the bars are off
(:func:`interactive`, :func:`quiet_library_bars`) and the caller writes one line per epoch or
benchmark instead (:func:`progress_line`).
"""

from __future__ import annotations

import os
import sys

HUB_BARS_ENV = "HF_HUB_DISABLE_PROGRESS_BARS"  # read by huggingface_hub, and so transformers


def interactive() -> bool:
    """Whether progress bars can redraw in place: stderr is a terminal."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object without it, or closed
        return False


def quiet_library_bars() -> None:
    """When stderr is not a terminal, turn the bars of huggingface_hub and transformers off
    for this process and the processes it starts (unless the user set HF_HUB_DISABLE_PROGRESS_BARS
    either way). Imports nothing: libraries not loaded yet read the environment variable."""
    if interactive() or os.environ.get(HUB_BARS_ENV) is not None:
        return
    os.environ[HUB_BARS_ENV] = "1"
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers.utils.logging" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


def progress_line(text: str) -> None:
    """One line on stderr (where a bar would have been), written at once."""
    print(text, file=sys.stderr, flush=True)
