"""A small generic name -> object registry: duplicates raise, misses suggest close names.

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


class RegistryError(EvalSuiteError, LookupError):
    """A name is not registered (a user error: the CLI prints the message)."""


def suggest(name: str, known: list[str], n: int = 3) -> str:
    """' (did you mean 'x'?)' for the closest known names, or '' when none is close."""
    lowered = {k.casefold(): k for k in known}  # case-insensitive: 'Black' suggests 'black'
    close = [lowered[c] for c in difflib.get_close_matches(name.casefold(), list(lowered), n=n)]
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


class Registry(Generic[T]):
    """Maps names to objects; ``kind`` names what is registered in error messages."""

    def __init__(self, kind: str, error: type[Exception] = RegistryError) -> None:
        self.kind = kind
        self._error = error
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
            known = self.names()
            listing = ", ".join(known) if known else "(none registered)"
            hint = suggest(name, known)
            raise self._error(f"unknown {self.kind} {name!r}{hint}; known: {listing}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
