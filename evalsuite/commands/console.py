"""The console the ``evalsuite`` commands print their tables and messages to (one for all, so
a test or a caller can widen it once)."""

from __future__ import annotations

import sys

from rich.console import Console

# Logs and CI captures are not terminals: give tables room instead of 80 columns.
console = Console(width=None if sys.stdout.isatty() else 140)
