"""Lazy package exports (PEP 562): a package's public names, imported from their modules on first use.

Why: the CLI imports each package's `config` module for its option defaults, and an eager package `__init__` would
pull torch and MONAI (~5 s) into every `assft` command, so even a usage error would wait for them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, tuple[str, ...]]
                 ) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """(`__all__`, `__getattr__`, `__dir__`) for `package`; `exports` maps each module (absolute) to its names."""
    homes = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(homes[name]), name)

    def __dir__() -> list[str]:
        return sorted(homes)

    return sorted(homes), __getattr__, __dir__
