"""Small pictures of volumes for people: slices cut to at most MAX_SIDE pixels as uint8, composed into PNGs.

Shared by the query figures (`assft.query.figures`) and the SSFT pseudo-label gallery (`assft.finetune.gallery`).
Panels are composed with numpy and written with Pillow (matplotlib's own image library) rather than drawn with
matplotlib: a 2 x 3 matplotlib figure costs ~0.2 s to lay out and save, the same picture composed here ~10 ms,
which is what keeps the query figures within a tenth of the query pass (docs/query.md, Figures).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["MAX_SIDE", "PLANES", "Panel", "class_legend", "colour_bar", "colour_map", "compose", "cut", "overlay",
           "shrink", "to_uint8"]

MAX_SIDE = 128  # pixels on a slice's longer side; larger slices are subsampled (nearest, same step both ways)
PLANES = ("axial", "coronal", "sagittal")  # cut along array axes 2, 1, 0 of (D, H, W)
PANEL = 168  # pixels on a drawn panel's longer side (slices are enlarged by an integer factor, nearest)
ALPHA = 0.45  # opacity of a label overlay
# matplotlib's tab10 colours for classes 1..9 (0 = background stays transparent), as RGB bytes
CLASS_COLOURS = np.array([[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
                          [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]], np.uint8)

Panel = tuple[np.ndarray, str]  # (H, W, 3) uint8 picture, caption above it


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


def _upright(plane: np.ndarray) -> np.ndarray:
    """Array (x, y) -> picture rows from the top, as imshow(plane.T, origin='lower') shows it."""
    return np.ascontiguousarray(plane.T[::-1])


def overlay(image: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """Grey slice (uint8) with the label map's foreground classes in colour -> (H, W, 3) uint8, upright."""
    rgb = np.repeat(_upright(image)[..., None], 3, axis=2).astype(np.float32)
    if labels is not None:
        lab = _upright(labels).astype(np.int64)
        fg = lab > 0
        colours = CLASS_COLOURS[(lab[fg] - 1) % len(CLASS_COLOURS)].astype(np.float32)
        rgb[fg] = (1 - ALPHA) * rgb[fg] + ALPHA * colours
    return rgb.astype(np.uint8)


def colour_map(values: np.ndarray, name: str = "magma") -> np.ndarray:
    """A uint8 slice through a matplotlib colour map -> (H, W, 3) uint8, upright."""
    return _lut(name)[_upright(values)]


def class_colour(label: int) -> np.ndarray:
    """The RGB bytes a foreground class is drawn in (`overlay` blends them with the image)."""
    return CLASS_COLOURS[(int(label) - 1) % len(CLASS_COLOURS)]


def class_legend(class_names: Mapping[int, str]) -> np.ndarray:
    """A key of the label colours: one swatch per foreground class with its value and name -> (H, W, 3) uint8."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=11)
    names = [(int(k), str(v)) for k, v in sorted(class_names.items()) if int(k) > 0]
    lines = [f"{k} {name}" for k, name in names] or ["no foreground class"]
    # at least a panel wide: `compose` enlarges narrower pictures by an integer factor, text included
    width = max(int(max(font.getlength(text) for text in lines)) + 30, PANEL)
    canvas = Image.new("RGB", (width, 16 * len(lines) + 4), "white")
    draw = ImageDraw.Draw(canvas)
    for row, text in enumerate(lines):
        y = 2 + 16 * row
        if names:
            draw.rectangle((2, y + 1, 16, y + 13), fill=tuple(int(c) for c in class_colour(names[row][0])))
        draw.text((22, y), text, fill="black", font=font)
    return np.asarray(canvas)


def colour_bar(low: str, high: str, name: str = "magma", length: int = PANEL) -> np.ndarray:
    """A horizontal colour bar of `colour_map`'s 0..255 range, labelled `low` and `high` at its ends ->
    (H, W, 3) uint8."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=11)
    ramp = _lut(name)[np.linspace(0, 255, length).round().astype(np.uint8)]  # (length, 3)
    canvas = Image.new("RGB", (length, 32), "white")
    canvas.paste(Image.fromarray(np.ascontiguousarray(np.repeat(ramp[None], 14, axis=0))), (0, 0))
    draw = ImageDraw.Draw(canvas)
    draw.text((0, 17), low, fill="black", font=font)
    draw.text((length - font.getlength(high), 17), high, fill="black", font=font)
    return np.asarray(canvas)


@lru_cache(maxsize=4)
def _lut(name: str) -> np.ndarray:
    import matplotlib

    return (matplotlib.colormaps[name](np.arange(256))[:, :3] * 255).astype(np.uint8)


def _enlarge(rgb: np.ndarray) -> np.ndarray:
    factor = max(1, PANEL // max(rgb.shape[:2]))
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


def compose(rows: Sequence[Sequence[Panel | None]], title: str, path: str | Path) -> Path:
    """Panels on a white grid (rows of columns, None = empty cell), each captioned, a title on top; a PNG."""
    from PIL import Image, ImageDraw, ImageFont

    font, title_font = ImageFont.load_default(size=11), ImageFont.load_default(size=13)
    cells = [[(_enlarge(p[0]), p[1]) if p is not None else None for p in row] for row in rows]
    n_cols = max(len(row) for row in cells)
    line, gap = 14, 8
    caption_lines = max((c[1].count("\n") + 1 for row in cells for c in row if c is not None), default=1)
    text_w = max((font.getlength(text) for row in cells for c in row if c is not None
                  for text in c[1].splitlines()), default=0)
    cell_w = max(int(text_w) + 2, max((c[0].shape[1] for row in cells for c in row if c is not None), default=PANEL))
    cell_h = max((c[0].shape[0] for row in cells for c in row if c is not None), default=PANEL)
    cell_h += caption_lines * line + 4
    title_h = (title.count("\n") + 1) * (line + 3) + gap
    title_w = max((title_font.getlength(text) for text in title.splitlines()), default=0)
    width = max(n_cols * (cell_w + gap) + gap, int(title_w) + 2 * gap)
    height = title_h + len(cells) * (cell_h + gap) + gap
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.multiline_text((gap, gap // 2), title, fill="black", font=title_font, spacing=3)
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            if cell is None:
                continue
            x, y = gap + c * (cell_w + gap), title_h + r * (cell_h + gap)
            draw.multiline_text((x, y), cell[1], fill="black", font=font, spacing=2)
            canvas.paste(Image.fromarray(cell[0]), (x, y + caption_lines * line + 4))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, compress_level=3)  # fast; these are small pictures
    return path
