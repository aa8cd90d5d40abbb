"""User-facing errors: the CLI prints their message and exits with status 2."""

from __future__ import annotations


class EvalSuiteError(Exception):
    """Base class for errors caused by user input (a spec, a file, a flag), not by a bug."""


class ModelLoadError(EvalSuiteError):
    """A model spec could not be resolved or loaded."""


class DataError(EvalSuiteError):
    """Bad input data; the message names the file, row or field."""


class ItemError(DataError):
    """One item of a data set is unreadable (the others may be fine): scoring skips it by its
    image policy, training on a streamed source replaces and counts it."""


class ImageError(ItemError):
    """One image could not be read; carries the item id and path."""

    def __init__(self, message: str, *, item_id: str | None = None, path: str | None = None):
        super().__init__(message)
        self.item_id = item_id
        self.path = path


class SpecError(EvalSuiteError):
    """A benchmark YAML or query set is invalid; the message names the file and field."""


class ConfigError(EvalSuiteError):
    """A fine-tuning config is invalid; the message names the key."""


class TrainingError(EvalSuiteError):
    """Training cannot go on (e.g. the loss became NaN); names the step and what was kept."""
