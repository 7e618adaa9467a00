"""A small named registry with loud duplicates and did-you-mean lookups (models, strategies, domains)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from assft.errors import UnknownNameError

T = TypeVar("T")


def unknown_name(kind: str, name: str, known: Iterable[str]) -> UnknownNameError:
    """The error for a name not among `known`, with the closest one suggested."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return UnknownNameError(f"unknown {kind} {name!r}.{hint} Known: {', '.join(known)}.",
                            fix=f"pass one of the known {kind} names")


class Registry(Generic[T]):
    """Maps a name to an object; `register` is a decorator, `get` suggests the closest name on a miss."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering `obj` under `name`; a duplicate name raises ValueError at import time."""

        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        """Return the object registered as `name` or raise UnknownNameError with suggestions."""
        if name in self._items:
            return self._items[name]
        raise unknown_name(self.kind, name, self._items)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def describe(self) -> dict[str, str]:
        """Name -> first docstring line, for `list` commands."""
        out = {}
        for name in self.names():
            doc = (getattr(self._items[name], "__doc__", None) or "").strip().splitlines()
            out[name] = doc[0] if doc else ""
        return out

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
