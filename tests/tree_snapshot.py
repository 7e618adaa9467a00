"""Test helpers for the hardening rules: run the real console script, and hash every entry of a folder tree."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ASSFT = shutil.which("assft")
ENTRY = [ASSFT] if ASSFT else [sys.executable, "-c", "from assft.cli.app import main; main()"]


def snapshot(*roots: Path) -> dict[str, str]:
    """Every entry under each root -> content hash (files), 'dir', 'link -> target', or 'absent' for a missing root.

    A campaign's .lock counts by presence only (taking the lock writes the holder's pid into it, by design).
    """
    out: dict[str, str] = {}
    for root in roots:
        root = Path(root)
        if not root.exists() and not root.is_symlink():
            out[str(root)] = "absent"
            continue
        entries = [root] + sorted(root.rglob("*")) if root.is_dir() and not root.is_symlink() else [root]
        for path in entries:
            key = str(path)
            if path.name == ".lock":
                out[key] = "lock"
            elif path.is_symlink():
                out[key] = f"link -> {os.readlink(path)}"
            elif path.is_dir():
                out[key] = "dir"
            else:
                out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def run_assft(*args: object, cwd: Path | None = None, env: dict[str, str] | None = None,
              inject: str | None = None, umask: int | None = None) -> subprocess.CompletedProcess:
    """The real console entry point (`inject`: Python run first in the same process, to plant a fault)."""
    full_env = {**os.environ, "ASSFT_THREADS": "1", "COLUMNS": "400", "NO_COLOR": "1", **(env or {})}
    entry = ENTRY
    if inject is not None:
        entry = [sys.executable, "-c", f"{inject}\nimport sys\nsys.argv[0] = 'assft'\n"
                 "from assft.cli.app import main\nmain()"]
    preexec = (lambda: os.umask(umask)) if umask is not None else None
    return subprocess.run([*entry, *map(str, args)], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=300, preexec_fn=preexec)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The single `error: ... Fix: ...` line a refused command prints (asserts there is exactly one)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    text = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 2, text
    assert "Traceback" not in result.stderr and "unexpected error" not in result.stderr, text
    # one line; a step that lists several problems (e.g. import-labels) indents one more line per problem
    assert lines and lines[0].startswith("error: ") and " Fix: " in lines[-1], text
    assert all(line.startswith("  ") for line in lines[1:]), text
    return "\n".join(lines)


def tiny_model(path: Path) -> Path:
    """An untrained two-level UNet checkpoint for the phantom labels (0..4), trained on 16^3 patches."""
    from assft.config import ModelConfig
    from assft.data.synthetic import PHANTOM_LABELS
    from assft.models import build_model, make_checkpoint, save_checkpoint

    config = ModelConfig(out_channels=5, params={"channels": (4, 8, 16), "strides": (2, 2)})
    return save_checkpoint(path, make_checkpoint(build_model(config), config, PHANTOM_LABELS,
                                                 metadata={"train_config": {"patch_size": [16, 16, 16]}}))


def phantoms(path: Path, n: int = 3) -> Path:
    """`n` 16^3 phantoms in the MSD layout."""
    from assft.data.synthetic import make_phantom_dataset

    return make_phantom_dataset(path, n, shape=(16, 16, 16), seed=0)
