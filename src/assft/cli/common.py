"""Shared CLI pieces: console, options parsing helpers, config loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

STATE: dict[str, Any] = {"debug": False}
console = Console(stderr=False)
err_console = Console(stderr=True)


def parse_triple(text: str | None) -> tuple[int, int, int] | None:
    """'40,56,40' -> (40, 56, 40)."""
    if text is None:
        return None
    from assft.errors import ConfigError

    try:
        parts = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError as exc:
        raise ConfigError(f"cannot parse size {text!r}.", fix="write three integers, e.g. 40,56,40") from exc
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3:
        raise ConfigError(f"size {text!r} needs 3 values.", fix="write three integers, e.g. 40,56,40")
    return parts  # type: ignore[return-value]


def parse_fractions(text: str) -> dict[str, float]:
    """'source=0.3,pool=0.5,test=0.2' -> dict."""
    from assft.errors import ConfigError

    out: dict[str, float] = {}
    for item in text.split(","):
        if "=" not in item:
            raise ConfigError(f"cannot parse {item!r} in --fractions.", fix="write name=value pairs, e.g. source=0.3,test=0.2")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = float(value)
        except ValueError as exc:
            raise ConfigError(f"{value!r} is not a number in --fractions.", fix="use fractions or counts") from exc
    return out


def load_data(path: Path, split: Path | None = None, subset: str | None = None, limit: int | None = None):
    """Dataset at `path`, restricted to a split subset and/or the first `limit` cases."""
    from assft.data.layout import load_dataset
    from assft.data.splits import select_cases

    return select_cases(load_dataset(path), split, subset, limit)
