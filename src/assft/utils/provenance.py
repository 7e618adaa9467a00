"""Provenance stamped on every benchmark result: date, machine, package versions, git commit."""

from __future__ import annotations

import platform
import subprocess
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def versions() -> dict[str, str]:
    """Versions of assft, torch, monai, numpy and Python."""
    import monai
    import numpy as np
    import torch

    return {"assft": _assft_version(), "torch": torch.__version__, "monai": monai.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def _assft_version() -> str:
    """The installed package's version, read from its metadata: utils sits below the package root."""
    try:
        return version("assft")
    except PackageNotFoundError:  # a source tree on PYTHONPATH that was never installed
        return "unknown"


def run_provenance(repo: str | Path | None = None) -> dict[str, Any]:
    """{"date", "machine", "versions", "git_sha"} for the current process (git_sha None outside a checkout)."""
    import torch

    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=repo or Path.cwd(), timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        sha = None
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or 'CPU'}, {torch.get_num_threads()} torch threads, {gpu}",
        "versions": versions(),
        "git_sha": sha,
    }
