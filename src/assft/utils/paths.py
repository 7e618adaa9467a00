"""Output locations checked before any work: a bad --out fails in a second, not after the compute with a traceback."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from assft.errors import ConfigError


def _nearest_existing(path: Path) -> Path:
    """`path` or its closest ancestor that exists."""
    current = Path(os.path.abspath(path))
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def _check_parent(path: Path, option: str) -> None:
    """The existing part of `path`'s parent must be a writable folder (the rest is created later)."""
    anchor = _nearest_existing(Path(os.path.abspath(path)).parent)
    if not anchor.is_dir():
        raise ConfigError(f"{option} lies under {anchor}, which is a file, not a folder.", path=path,
                          fix=f"choose a {option} path whose parent folders are folders")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise ConfigError(f"{option}: cannot write into {anchor} (permission denied).", path=path,
                          fix=f"choose a {option} location you can write to")


def check_output_dir(path: str | Path, option: str = "--out") -> Path:
    """Raise ConfigError unless `path` is, or can become, a writable folder; creates nothing."""
    path = Path(path)
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"{option}: the folder is not writable (permission denied).", path=path,
                              fix=f"choose a {option} folder you can write to")
        return path
    if path.exists() or path.is_symlink():
        raise ConfigError(f"{option} is an existing file, not a folder.", path=path,
                          fix=f"pass a folder for {option} (a new or an existing one), or move the file away")
    _check_parent(path, option)
    return path


def check_output_file(path: str | Path, option: str = "--out") -> Path:
    """Raise ConfigError unless `path` is, or can become, a writable file; creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{option} is an existing folder, not a file.", path=path,
                          fix=f"pass a file path for {option}, e.g. {path / 'name'}")
    # Files are written atomically (a temporary file beside the target, then a rename): the folder must be writable.
    _check_parent(path, option)
    return path


def check_not_inputs(out_dir: str | Path, inputs: Iterable[str | Path | None], option: str = "--out") -> None:
    """Raise ConfigError when `out_dir` is a folder that holds one of `inputs` (writing there could overwrite it)."""
    target = Path(out_dir).resolve()
    for item in inputs:
        if item is None:
            continue
        p = Path(item)
        # Both the folder that lists the file and the folder of a symlink's target would be overwritten.
        if target in (p.parent.resolve(), p.resolve().parent):
            raise ConfigError(f"{option} is the folder that holds the input {p.name}; writing there would overwrite "
                              "inputs.", path=out_dir, fix=f"choose a new {option} folder")
