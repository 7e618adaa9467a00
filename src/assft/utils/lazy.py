"""Lazy package exports (PEP 562): a package's public names, imported from their modules on first use.

Why: the CLI imports each package's `config` module for its option defaults, and an eager package `__init__` would
pull torch and MONAI (~5 s) into every `assft` command, so even a usage error would wait for them. Hand-written
rather than scientific-python's `lazy_loader` (which does the same from a submodule -> names table): fifteen lines
do not justify a new runtime dependency, and the package root and `assft.data` already used this exact pattern."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(`__getattr__`, `__dir__`) for `package`; `exports` maps each public name to its module (absolute).

    A resolved name is stored on the package, so `__getattr__` runs once per name."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
