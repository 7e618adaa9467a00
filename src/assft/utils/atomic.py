"""Atomic file writes: write a temp file in the same directory, fsync, then os.replace."""

from __future__ import annotations

import errno
import json
import os
import tempfile
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def atomic_write(path: str | Path, writer: Callable[[Path], None]) -> Path:
    """Call `writer(tmp_path)` then atomically move tmp_path onto `path`; a crash leaves the old file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name carries the final one for a person reading the folder mid-write, cut so that a final name at
    # the file system's limit (255 bytes) still leaves room for mkstemp's random part and the suffix.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:200]}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        # mkstemp makes the file 0600; a shared campaign's files must follow the umask like any other file.
        os.chmod(tmp_path, 0o666 & ~current_umask())
        try:
            writer(tmp_path)
        except RuntimeError as exc:
            raise _as_os_error(exc, path) from exc
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def current_umask() -> int:
    """The process's umask (read without changing it where /proc says it, else set and restored at once)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _as_os_error(exc: RuntimeError, path: Path) -> BaseException:
    """torch.save reports a full disk as a RuntimeError ("[enforce fail at inline_container.cc] ... unexpected pos");
    as an OSError(ENOSPC) naming the file, the CLI's error boundary answers it like any other full disk."""
    text = str(exc)
    if "unexpected pos" in text or "PytorchStreamWriter failed" in text or "file write failed" in text:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return exc


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Atomically write text (UTF-8)."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Atomically write JSON (indented, keys in insertion order)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def atomic_torch_save(path: str | Path, obj: Any) -> Path:
    """Atomically torch.save an object."""
    import torch

    return atomic_write(path, lambda p: torch.save(obj, p))


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Build a whole folder at a hidden staging path beside `path`, then swap it into place in one rename.

    A failure (or Ctrl-C) inside the block removes the staging folder and leaves `path` exactly as it was; an
    existing `path` is replaced only after the new folder is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name[:40]}.", suffix=".partial", dir=path.parent))
    os.chmod(staging, 0o777 & ~current_umask())
    try:
        yield staging
        previous = None
        if path.exists():
            previous = Path(tempfile.mkdtemp(prefix=f".{path.name[:40]}.", suffix=".old", dir=path.parent))
            os.replace(path, previous / "old")
        os.replace(staging, path)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
