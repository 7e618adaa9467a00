"""Figure 5 diagnostic: true Dice of selected vs unselected pseudo-labels, one pair of boxes per round (Agg PNG)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assft.errors import DataError
from assft.finetune.pseudo_labels import PseudoLabelStats, read_pseudo_label_table, stats_from_row
from assft.reporting.png import save_png

TableLike = str | Path | Sequence[Mapping[str, Any]] | Sequence[PseudoLabelStats] | Any  # Any: a pandas DataFrame
COLORS = {"selected": "#2a9d8f", "unselected": "#9e9e9e"}


def load_table(table: TableLike) -> list[PseudoLabelStats]:
    """A pseudo_labels.csv path, a list of row dicts / PseudoLabelStats, or a DataFrame -> list of PseudoLabelStats."""
    if isinstance(table, str | Path):
        return read_pseudo_label_table(table)
    if hasattr(table, "to_dict") and not isinstance(table, Mapping):  # a pandas DataFrame, without importing pandas
        table = table.to_dict("records")
    return [row if isinstance(row, PseudoLabelStats) else stats_from_row(row) for row in table]


def plot_pseudo_label_dice(tables: TableLike | Sequence[TableLike], out_png: str | Path, *,
                           names: Sequence[str] | None = None, title: str | None = None) -> Path:
    """Box + strip plot of the true Dice of selected vs unselected pseudo-labels, per round; writes a PNG.

    Args:
        tables: one table or a list of them (one per round), each a pseudo_labels.csv path, row dicts, or a frame.
        out_png: the PNG to write (atomically).
        names: a label per table (default "round 1", "round 2", ...; "all" for a single table).
        title: the figure title.

    Returns:
        out_png as a Path.

    Raises:
        DataError: a table has no true Dice values (they exist only when the pool's ground truth is known).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    items = [tables] if isinstance(tables, str | Path) or _is_single_table(tables) else list(tables)
    loaded = [load_table(t) for t in items]
    if not loaded:
        raise DataError("no pseudo-label tables to plot.", fix="pass at least one pseudo_labels.csv")
    names = list(names) if names is not None else \
        (["all volumes"] if len(loaded) == 1 else [f"round {i + 1}" for i in range(len(loaded))])
    if len(names) != len(loaded):
        raise DataError(f"{len(names)} names for {len(loaded)} tables.", fix="give one name per table")
    for name, rows in zip(names, loaded):
        if not any(r.true_dice is not None for r in rows):
            raise DataError(f"table {name!r} has no true Dice values.",
                            fix="run SSFT on a pool with ground truth (simulation) so true_dice is recorded")

    fig = Figure(figsize=(max(4.0, 1.9 * len(loaded) + 1.5), 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    rng = np.random.default_rng(0)  # jitter of the strip points only
    for r, rows in enumerate(loaded):
        for k, group in enumerate(("selected", "unselected")):
            values = np.array([s.true_dice for s in rows if s.selected is (group == "selected")
                               and s.true_dice is not None], dtype=float)
            x = 3 * r + k
            if values.size:
                ax.boxplot(values, positions=[x], widths=0.6, showfliers=False, patch_artist=True,
                           boxprops={"facecolor": COLORS[group], "alpha": 0.35},
                           medianprops={"color": "black"})
                ax.scatter(x + rng.uniform(-0.18, 0.18, values.size), values, s=10, color=COLORS[group],
                           edgecolor="none", zorder=3)
                ax.annotate(f"n={values.size}\nmed {np.median(values):.2f}", (x, 1.04), ha="center", va="bottom",
                            fontsize=7, annotation_clip=False)
            else:
                ax.annotate("n=0", (x, 1.04), ha="center", va="bottom", fontsize=7, annotation_clip=False)
    ax.set_xticks([3 * r + 0.5 for r in range(len(loaded))], names)
    ax.set_xlim(-0.8, 3 * len(loaded) - 1.2)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("true Dice of the pseudo-label")
    handles = [ax.scatter([], [], color=COLORS[g], label=g) for g in ("selected", "unselected")]
    ax.legend(handles=handles, loc="lower left", fontsize=8, frameon=False)
    fig.suptitle(title or "Pseudo-label quality: selected vs unselected", fontsize=10)
    fig.tight_layout()
    out_png = Path(out_png)
    return save_png(fig, out_png)


def _is_single_table(obj: Any) -> bool:
    """True for one table given in memory (a frame, or a list of rows) rather than a list of tables."""
    if hasattr(obj, "to_dict") and not isinstance(obj, Mapping):
        return True
    if isinstance(obj, Sequence) and obj and isinstance(obj[0], Mapping | PseudoLabelStats):
        return True
    return False
