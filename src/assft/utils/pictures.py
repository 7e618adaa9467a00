"""Small pictures of volumes for people: slices cut to at most MAX_SIDE pixels as uint8, drawn with a label overlay.

Shared by the query figures (`assft.query.figures`) and the SSFT pseudo-label gallery (`assft.finetune.gallery`);
matplotlib is imported only when something is drawn.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["MAX_SIDE", "PLANES", "cut", "draw_overlay", "pyplot", "shrink", "to_uint8"]

MAX_SIDE = 128  # pixels on a slice's longer side; larger slices are subsampled (nearest, same step both ways)
PLANES = ("axial", "coronal", "sagittal")  # cut along array axes 2, 1, 0 of (D, H, W)


def cut(volume: np.ndarray, plane: str, centre: tuple[int, int, int]) -> np.ndarray:
    """The 2D slice of `volume` (D, H, W) in `plane` through `centre`."""
    d, h, w = centre
    if plane == "axial":
        return volume[:, :, w]
    if plane == "coronal":
        return volume[:, h, :]
    return volume[d, :, :]


def shrink(plane: np.ndarray) -> np.ndarray:
    """Every k-th pixel both ways so the longer side is <= MAX_SIDE (a copy, C-contiguous)."""
    step = max(1, -(-max(plane.shape) // MAX_SIDE))
    return np.ascontiguousarray(plane[::step, ::step])


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Intensities to 0..255 between the 0.5th and 99.5th percentiles."""
    image = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(image, (0.5, 99.5)) if image.size else (0.0, 1.0)
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.clip((image - lo) * scale, 0, 255).astype(np.uint8)


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_overlay(ax: Any, image: np.ndarray, labels: np.ndarray | None, n_classes: int) -> None:
    """Grey image with the label map's foreground classes in colour (background transparent); no ticks."""
    ax.imshow(image.T, cmap="gray", vmin=0, vmax=255, origin="lower")
    if labels is not None:
        masked = np.ma.masked_where(labels.T == 0, labels.T)
        ax.imshow(masked, cmap="tab10", vmin=0, vmax=max(9, n_classes - 1), alpha=0.45, origin="lower",
                  interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
