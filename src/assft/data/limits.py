"""Safety limits on input data: the largest volume read, and whether dataset.json may point outside its folder.

Both are read from the environment at call time (set by `assft --max-voxels` / `--allow-outside-root`), so worker
processes inherit them and library callers can set them once per process.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from assft.errors import ConfigError, DataError

ENV_MAX_VOXELS = "ASSFT_MAX_VOXELS"
ENV_ALLOW_OUTSIDE_ROOT = "ASSFT_ALLOW_OUTSIDE_ROOT"
DEFAULT_MAX_VOXELS = 512**3  # 0.5 GB as float32: far above any MSD task, far below what a 2000^3 header would claim
_TRUE = {"1", "true", "yes", "on"}


def max_voxels() -> int:
    """The voxel cap: ASSFT_MAX_VOXELS when set, else 512^3."""
    raw = os.environ.get(ENV_MAX_VOXELS, "").strip()
    if not raw:
        return DEFAULT_MAX_VOXELS
    try:
        value = int(float(raw))
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{ENV_MAX_VOXELS}={raw!r} is not a positive voxel count.",
                          fix=f"unset it or set e.g. {ENV_MAX_VOXELS}=200000000")
    return value


def check_voxel_count(shape: tuple[int, ...], path: str | Path) -> None:
    """DataError when a header's shape declares more voxels than the cap (checked before any data is read)."""
    count = math.prod(int(s) for s in shape)
    cap = max_voxels()
    if count > cap:
        raise DataError(f"the header declares {count:,} voxels {tuple(shape)}, over the limit of {cap:,}.",
                        path=path, fix=f"crop or downsample the volume, or raise the limit with --max-voxels N "
                                       f"({ENV_MAX_VOXELS}=N) if this machine has the memory")


def check_requested_size(shape: tuple[int, ...], option: str) -> None:
    """ConfigError when a size the user asks for (a window, a patch, a generated volume) exceeds the voxel cap:
    such a request would allocate petabytes or run for days before failing, so it fails now."""
    count = math.prod(int(s) for s in shape)
    cap = max_voxels()
    if count > cap:
        raise ConfigError(f"{option} {'x'.join(str(int(s)) for s in shape)} is {count:,} voxels, over the limit of "
                          f"{cap:,}.", fix=f"ask for a smaller {option}, or raise the limit with --max-voxels N "
                                           f"({ENV_MAX_VOXELS}=N) if this machine has the memory")


def check_free_space(folder: str | Path, needed_bytes: int, what: str) -> None:
    """ConfigError when writing `needed_bytes` (an upper estimate) under `folder` cannot fit on its file system."""
    import shutil

    anchor = Path(os.path.abspath(folder))
    while not anchor.exists() and anchor != anchor.parent:
        anchor = anchor.parent
    free = shutil.disk_usage(anchor).free
    if needed_bytes > free:
        raise ConfigError(f"{what} needs up to {needed_bytes / 1e9:,.1f} GB but {anchor} has {free / 1e9:,.1f} GB "
                          "free.", path=folder, fix="ask for fewer or smaller volumes, or free space first")


def allow_outside_root() -> bool:
    """True when ASSFT_ALLOW_OUTSIDE_ROOT opts in to dataset.json paths outside the dataset folder."""
    return os.environ.get(ENV_ALLOW_OUTSIDE_ROOT, "").strip().lower() in _TRUE
