"""Report figures (matplotlib Agg, no pyplot state): Dice-vs-budget curves per domain, the win-matrix heatmap, and
the per-round pseudo-label diagnostic (paper Fig. 5, drawn by `pseudo_labels_plot.plot_pseudo_label_dice`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assft.utils.atomic import atomic_write

__all__ = ["plot_budget_curves", "plot_pseudo_label_rounds", "plot_win_matrix", "strategy_colors"]

_PALETTE = ("#e63946", "#457b9d", "#2a9d8f", "#f4a261", "#6a4c93", "#8d99ae", "#bc6c25", "#1d3557", "#ff70a6",
            "#606c38")


def strategy_colors(strategies: Sequence[str]) -> dict[str, str]:
    """A fixed colour per strategy, in the given order (the method of interest first gets red)."""
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(strategies)}


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, out_png: Path) -> Path:
    return atomic_write(out_png, lambda tmp: fig.savefig(tmp, format="png"))


def plot_budget_curves(curves: dict[str, dict[str, list[dict[str, Any]]]], bounds: dict[str, dict[str, Any]],
                       pool_sizes: dict[str, int | None], out_png: str | Path, *, spread: str = "minmax") -> Path:
    """Mean Dice vs labeled volumes, one panel per domain and one line per strategy with a band over seeds.

    Args:
        curves: {domain: {strategy: [{"budget", "mean", "std", "min", "max", "n"}, ...]}} (`summarize_runs`).
        bounds: {domain: {"lower": mean Dice or None, "upper": mean Dice or None}}, drawn as dashed lines.
        pool_sizes: {domain: pool size}, for the secondary "% of pool" axis (skipped when None).
        out_png: the PNG to write (atomically).
        spread: "minmax" (band from the worst to the best seed) or "std" (mean ± one standard deviation).
    """
    domains = list(curves)
    strategies = list(dict.fromkeys(s for d in domains for s in curves[d]))
    colors = strategy_colors(strategies)
    ncols = min(len(domains), 3) or 1
    nrows = math.ceil(len(domains) / ncols) or 1
    fig = _new_figure(4.6 * ncols, 3.8 * nrows + 0.6)
    for index, domain in enumerate(domains):
        ax = fig.add_subplot(nrows, ncols, index + 1)
        for strategy, points in curves[domain].items():
            points = [p for p in points if p["mean"] is not None]
            x = [p["budget"] for p in points]
            mean = [p["mean"] for p in points]
            if spread == "std":
                low = [p["mean"] - p["std"] for p in points]
                high = [p["mean"] + p["std"] for p in points]
            else:
                low, high = [p["min"] for p in points], [p["max"] for p in points]
            ax.plot(x, mean, marker="o", ms=3.5, lw=1.8, color=colors[strategy], label=strategy)
            ax.fill_between(x, low, high, color=colors[strategy], alpha=0.15, lw=0)
        for key, style in (("lower", ":"), ("upper", "--")):
            value = (bounds.get(domain) or {}).get(key)
            if value is not None:
                ax.axhline(value, ls=style, lw=1.2, color="black", alpha=0.7)
                ax.annotate(f"{key} bound", (1.0, value), xycoords=("axes fraction", "data"), ha="right",
                            va="bottom", fontsize=7, color="black", alpha=0.8)
        pool = pool_sizes.get(domain)
        if pool:
            top = ax.secondary_xaxis("top", functions=(lambda v, p=pool: 100.0 * v / p,
                                                       lambda v, p=pool: v * p / 100.0))
            top.set_xlabel("% of pool", fontsize=8)
            top.tick_params(labelsize=7)
        ax.set_title(domain, fontsize=10)
        ax.set_xlabel("labeled volumes", fontsize=9)
        ax.set_ylabel("mean Dice", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    handles, labels = fig.axes[0].get_legend_handles_labels() if fig.axes else ([], [])
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6) or 1, fontsize=8, frameon=False)
    band = "min-max over seeds" if spread != "std" else "±1 std over seeds"
    fig.suptitle(f"Dice vs annotation budget (band: {band})", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return _save(fig, Path(out_png))


def plot_win_matrix(matrix: dict[str, Any], out_png: str | Path) -> Path:
    """Heatmap of a `win_matrix` result: green = row strategy significantly better, red = worse; cells show p."""
    from matplotlib.colors import ListedColormap

    names = matrix["strategies"]
    size = len(names)
    fig = _new_figure(1.2 + 0.9 * size, 1.0 + 0.8 * size)
    ax = fig.add_subplot(1, 1, 1)
    cmap = ListedColormap(["#e76f51", "#f1f1f1", "#52b788"])
    ax.imshow(matrix["matrix"], cmap=cmap, vmin=-1.5, vmax=1.5)
    for i in range(size):
        for j in range(size):
            p_value = matrix["p_values"][i][j]
            text = "–" if i == j else ("p=–" if p_value is None or p_value != p_value else f"p={p_value:.3g}")
            ax.text(j, i, text, ha="center", va="center", fontsize=7)
    ax.set_xticks(range(size), names, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(size), names, fontsize=8)
    ax.set_title(f"row vs column, AUBC ({matrix['method']}, α={matrix['alpha']}, n={matrix['n_pairs']})",
                 fontsize=9)
    fig.tight_layout()
    return _save(fig, Path(out_png))


def plot_pseudo_label_rounds(by_round: dict[int, list[dict[str, Any]]], out_png: str | Path, *,
                             title: str) -> Path | None:
    """Fig. 5 for one (domain, strategy): true Dice of selected vs unselected pseudo-labels per round (None if the
    pseudo-label plotting module is unavailable)."""
    try:
        from assft.reporting.pseudo_labels_plot import plot_pseudo_label_dice
    except ImportError:
        return None
    rounds = list(by_round)
    tables = [[{"case_id": p["case_id"], "conf": p.get("conf") or 0.0, "sd": p.get("sd") or 0.0,
                "selected": bool(p.get("selected")), "true_dice": p["true_dice"]} for p in by_round[r]]
              for r in rounds]
    return plot_pseudo_label_dice(tables, out_png, names=[f"round {r}" for r in rounds], title=title)
