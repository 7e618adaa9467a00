"""Lazy package exports (PEP 562): a package's public names, imported from their modules on first use.

Why: the CLI imports each package's `config` module for its option defaults, and an eager package `__init__` would
pull torch and MONAI (~5 s) into every `assft` command, so even a usage error would wait for them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, homes: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(`__getattr__`, `__dir__`) for `package`, where `homes` maps each exported name to its absolute module."""

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(homes[name]), name)

    def __dir__() -> list[str]:
        return sorted(homes)

    return __getattr__, __dir__
