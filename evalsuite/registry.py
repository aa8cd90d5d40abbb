"""The one registry style of the suite: a name -> object table; duplicates raise, misses
suggest close names (the shape of timm's ``_registry.py`` and CLIP_benchmark's ``TYPE2FUNC``).

Every table that dispatches on a name a user gives is a :class:`Registry`: dataset readers
(``evalsuite.data.READERS``), task types (``evalsuite.tasks.registry``), model spec kinds and
Hugging Face ``model_type`` loaders (``evalsuite.models.factory``, ``hf_loading``), the tasks and
benchmarks of a spec. Each table is filled by explicit ``register`` calls in the module that
owns it, so nothing is registered as a side effect of importing something else.

READERS: Registry[Reader] = Registry("dataset reader")

@READERS.register("catalogue")
def read_catalogue(path, split=None, **options): ...

READERS.get("catalogue")   # READERS.get("catalog") -> "unknown dataset reader 'catalog'
                           #  (did you mean 'catalogue'?); known: catalogue, ..."
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

from evalsuite.errors import EvalSuiteError

T = TypeVar("T")

# (name asked for, the known names sorted) -> the message of the error a miss raises
MissMessage = Callable[[str, list[str]], str]


class RegistryError(EvalSuiteError, LookupError):
    """A name is not registered (a user error: the CLI prints the message)."""


def close_names(name: str, known: list[str], n: int = 3) -> list[str]:
    """The known names closest to ``name``, best first (case-insensitive: 'Black' finds
    'black')."""
    lowered = {k.casefold(): k for k in known}
    return [lowered[c] for c in difflib.get_close_matches(name.casefold(), list(lowered), n=n)]


def suggest(name: str, known: list[str], n: int = 3) -> str:
    """' (did you mean 'x'?)' for the closest known names, or '' when none is close."""
    close = close_names(name, known, n)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


class Registry(Generic[T]):
    """Maps names to objects; ``kind`` names what is registered in error messages, and
    ``miss_message`` (optional) words the error of an unknown name where a surface has its
    own wording. Entries keep their registration order (:meth:`values`): an ordered registry,
    such as the model spec kinds tried one after the other, relies on it."""

    def __init__(
        self,
        kind: str,
        error: type[Exception] = RegistryError,
        miss_message: MissMessage | None = None,
    ) -> None:
        self.kind = kind
        self._error = error
        self._miss_message = miss_message
        self._entries: dict[str, T] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...
    @overload
    def register(self, name: str, obj: T) -> T: ...

    def register(self, name: str, obj: T | None = None) -> T | Callable[[T], T]:
        """Register ``obj`` under ``name``; without ``obj``, return a decorator that does."""
        if obj is None:
            return lambda target: self.register(name, target)
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = obj
        return obj

    def get(self, name: str) -> T:
        """The object registered as ``name``; an unknown name raises with close suggestions."""
        try:
            return self._entries[name]
        except KeyError:
            words = self._miss_message or self._default_miss_message
            raise self._error(words(name, self.names())) from None

    def names(self) -> list[str]:
        """The registered names, sorted (for listings and messages)."""
        return sorted(self._entries)

    def values(self) -> list[T]:
        """The registered objects in registration order."""
        return list(self._entries.values())

    def copy(self) -> Registry[T]:
        """A registry with the same entries, to extend without changing this one (a test
        registers a reader of its own on a copy it swaps in)."""
        twin: Registry[T] = Registry(self.kind, self._error, self._miss_message)
        twin._entries = dict(self._entries)
        return twin

    def _default_miss_message(self, name: str, known: list[str]) -> str:
        listing = ", ".join(known) if known else "(none registered)"
        return f"unknown {self.kind} {name!r}{suggest(name, known)}; known: {listing}"

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
