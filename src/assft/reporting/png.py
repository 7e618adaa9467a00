"""Writing a matplotlib figure as a PNG that assft can later recognise as its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assft.utils.atomic import atomic_write


def save_png(fig: Any, out_png: str | Path) -> Path:
    """Atomically write `fig` as a PNG tagged "Software: assft" (a re-run may replace its own figure, nothing else)."""
    return atomic_write(Path(out_png), lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": "assft"}))
