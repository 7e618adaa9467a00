"""Report figures (matplotlib Agg, no pyplot state): Dice-vs-budget curves per domain, the win-matrix heatmap, and
the per-round pseudo-label diagnostic (paper Fig. 5, drawn by `pseudo_labels_plot.plot_pseudo_label_dice`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assft.reporting.png import save_png

__all__ = ["REFERENCE_BASELINE", "bound_label", "build_budget_figure", "build_win_matrix_figure", "plot_budget_curves",
           "plot_pseudo_label_rounds", "plot_win_matrix", "strategy_colors", "strategy_styles"]

# Okabe & Ito's colour-blind-safe palette without yellow (too light on white) and black (kept for reference lines);
# six colours x four line styles give 24 distinct (colour, style) pairs, and markers cycle on a different period.
_COLORS = ("#D55E00", "#0072B2", "#009E73", "#E69F00", "#CC79A7", "#56B4E9")
_LINESTYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "^", "D", "v", "P", "X", "*")  # "s" (square) is the reference baseline's
REFERENCE_BASELINE = "fg-random"  # the baseline the method must beat (foreground-aware random; docs/method.md)
_REFERENCE_STYLE = (_COLORS[1], "-")  # blue, solid: kept for the reference baseline
# Horizontal reference lines of `bounds`: known keys get a fixed label and style, others their own name.
_BOUND_LABELS = {"lower": "start model (0 labels)", "upper": "upper bound (whole pool labeled)"}
_BOUND_STYLES = ((0, (1, 1.5)), (0, (5, 2)), (0, (6, 2, 1, 2)), (0, (2, 2, 2, 2, 6, 2)), (0, (10, 3)))
_BOUND_COLORS = ("#000000", "#000000", "#5A5A5A", "#8C8C8C", "#5A5A5A")
_NOT_LINES = ("pool_size", "seconds")  # bookkeeping fields of bounds.json, should a raw one be passed


def _is_method(name: str) -> bool:
    return name.startswith("assft")


def _emphasised(name: str) -> bool:
    return _is_method(name) or name == REFERENCE_BASELINE


def _legend_order(strategies: Sequence[str]) -> list[str]:
    """The method's arms, then the reference baseline, then the others (each group in the given order)."""
    names = list(dict.fromkeys(strategies))
    return ([n for n in names if _is_method(n)] + [n for n in names if n == REFERENCE_BASELINE]
            + [n for n in names if not _emphasised(n)])


def strategy_styles(strategies: Sequence[str]) -> dict[str, dict[str, Any]]:
    """A fixed line style per strategy: colour, line style, marker, width and z-order (matplotlib keywords).

    The method's arms (names starting with "assft") come first, thick and on top; the reference baseline
    ("fg-random") is always solid blue and emphasised; every (colour, line style) pair is used once up to 23 arms.
    """
    names = list(dict.fromkeys(strategies))
    free = [(c, ls) for ls in _LINESTYLES for c in _COLORS if (c, ls) != _REFERENCE_STYLE]
    styles: dict[str, dict[str, Any]] = {}
    others = [n for n in _legend_order(names) if n != REFERENCE_BASELINE]
    for index, name in enumerate(others):
        color, linestyle = free[index % len(free)]
        method = _is_method(name)
        styles[name] = {"color": color, "linestyle": linestyle, "marker": _MARKERS[index % len(_MARKERS)],
                        "linewidth": 2.6 if method else 1.4, "markersize": 5.0 if method else 3.5,
                        "zorder": 5 if method else 2}
    if REFERENCE_BASELINE in names:
        styles[REFERENCE_BASELINE] = {"color": _REFERENCE_STYLE[0], "linestyle": _REFERENCE_STYLE[1], "marker": "s",
                                      "linewidth": 2.2, "markersize": 4.5, "zorder": 4}
    return {name: styles[name] for name in names}


def strategy_colors(strategies: Sequence[str]) -> dict[str, str]:
    """A fixed colour per strategy (see `strategy_styles`: the method's arms first, the reference baseline blue)."""
    return {name: style["color"] for name, style in strategy_styles(strategies).items()}


def _new_figure(width: float, height: float, *, constrained: bool = False) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained" if constrained else None)
    FigureCanvasAgg(fig)
    return fig


def _bound_value(value: Any) -> float | None:
    """A finite number, else None (bounds may hold None, or extra fields such as a pool size)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _bound_keys(bounds: dict[str, dict[str, Any]], domains: Sequence[str]) -> list[str]:
    """Keys of reference lines with a value in some domain: lower, upper, then the others in order of appearance."""
    keys = list(dict.fromkeys(k for d in domains for k, v in (bounds.get(d) or {}).items()
                              if _bound_value(v) is not None and k not in _NOT_LINES))
    return [k for k in _BOUND_LABELS if k in keys] + [k for k in keys if k not in _BOUND_LABELS]


def bound_label(key: str) -> str:
    """The legend label of a reference line: "lower" -> "start model (0 labels)", "adabn" -> "adabn (0 labels)"."""
    return _BOUND_LABELS.get(key, f"{key} (0 labels)")


def build_budget_figure(curves: dict[str, dict[str, list[dict[str, Any]]]], bounds: dict[str, dict[str, Any]],
                        pool_sizes: dict[str, int | None], *, spread: str = "minmax",
                        x_label: str = "labeled volumes") -> Any:
    """The Dice-vs-budget figure (a matplotlib Figure on an Agg canvas); see `plot_budget_curves`.

    The legend sits right of the panels, outside them; the figure grows to fit it (one column up to 24 entries).
    """
    from matplotlib.lines import Line2D

    domains = list(curves)
    strategies = list(dict.fromkeys(s for d in domains for s in curves[d]))
    styles = strategy_styles(strategies)
    crowded = len(strategies) > 6  # then only the emphasised arms keep a visible band
    keys = _bound_keys(bounds, domains)
    ncols = min(len(domains), 3) or 1
    nrows = math.ceil(len(domains) / ncols) or 1
    panels_w, panels_h = 4.6 * ncols, 3.8 * nrows + 0.6
    fig = _new_figure(panels_w, panels_h, constrained=True)
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
            style = styles[strategy]
            ax.plot(x, mean, label=strategy, **style)
            alpha = 0.15 if _emphasised(strategy) or not crowded else 0.05
            ax.fill_between(x, low, high, color=style["color"], alpha=alpha, lw=0, zorder=style["zorder"] - 0.5)
        for k, key in enumerate(keys):
            value = _bound_value((bounds.get(domain) or {}).get(key))
            if value is not None:
                ax.axhline(value, ls=_BOUND_STYLES[k % len(_BOUND_STYLES)], lw=1.3,
                           color=_BOUND_COLORS[k % len(_BOUND_COLORS)], alpha=0.8, zorder=1)
        pool = pool_sizes.get(domain)
        if pool:
            top = ax.secondary_xaxis("top", functions=(lambda v, p=pool: 100.0 * v / p,
                                                       lambda v, p=pool: v * p / 100.0))
            top.set_xlabel("% of pool", fontsize=8)
            top.tick_params(labelsize=7)
        ax.set_title(domain, fontsize=10)
        ax.set_xlabel(x_label, fontsize=9)
        ax.set_ylabel("mean Dice", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    # One entry per arm and per reference line, whichever panel drew it (the lines' values differ per domain).
    handles = [Line2D([], [], **styles[s]) for s in _legend_order(strategies)]
    labels = _legend_order(strategies)
    for k, key in enumerate(keys):
        handles.append(Line2D([], [], ls=_BOUND_STYLES[k % len(_BOUND_STYLES)], lw=1.3,
                              color=_BOUND_COLORS[k % len(_BOUND_COLORS)], alpha=0.8))
        labels.append(bound_label(key))
    width = panels_w
    if handles:
        ncol = math.ceil(len(handles) / 24)
        legend = fig.legend(handles, labels, loc="outside right upper", ncol=ncol, fontsize=8, frameon=False,
                            handlelength=3.2)  # long enough to show a dash-dot pattern whole
        for text in legend.get_texts():
            if _emphasised(text.get_text()):
                text.set_fontweight("bold")
        width = _grow_for_legend(fig, legend, panels_w, panels_h)
    band = "min-max over seeds" if spread != "std" else "±1 std over seeds"
    # Centred over the panels, not the figure: centred on the figure it would run into the legend.
    what = "annotation budget" if x_label == "labeled volumes" else x_label
    fig.suptitle(f"Dice vs {what} (band: {band})", x=0.5 * panels_w / width, fontsize=10)
    return fig


def _grow_for_legend(fig: Any, legend: Any, panels_w: float, panels_h: float) -> float:
    """Widen (and if needed heighten) the figure by the legend's size so the panels keep theirs; the new width."""
    box = legend.get_window_extent(fig.canvas.get_renderer())
    width = panels_w + box.width / fig.dpi + 0.3
    fig.set_size_inches(width, max(panels_h, box.height / fig.dpi + 0.8))
    return width


def plot_budget_curves(curves: dict[str, dict[str, list[dict[str, Any]]]], bounds: dict[str, dict[str, Any]],
                       pool_sizes: dict[str, int | None], out_png: str | Path, *, spread: str = "minmax",
                       x_label: str = "labeled volumes") -> Path:
    """Mean Dice vs labeled volumes (or another cost, named by `x_label`), one panel per domain and one line per
    strategy with a band over seeds.

    Args:
        curves: {domain: {strategy: [{"budget", "mean", "std", "min", "max", "n"}, ...]}} (`summarize_runs`).
        bounds: {domain: {key: mean Dice or None}}, each key a labelled horizontal line: "lower" (the start model),
            "upper" (fine-tuned on the whole labeled pool), any other (e.g. "adabn", "tent") by its name.
        pool_sizes: {domain: pool size}, for the secondary "% of pool" axis (skipped when None).
        out_png: the PNG to write (atomically).
        spread: "minmax" (band from the worst to the best seed) or "std" (mean ± one standard deviation).
    """
    return save_png(build_budget_figure(curves, bounds, pool_sizes, spread=spread, x_label=x_label), Path(out_png))


def build_win_matrix_figure(matrix: dict[str, Any]) -> Any:
    """The win-matrix heatmap (a matplotlib Figure); cells and fonts shrink and the figure grows with the count."""
    from matplotlib.colors import ListedColormap

    names = matrix["strategies"]
    size = len(names)
    cell = 0.9 if size <= 6 else max(0.5, 0.9 - 0.05 * (size - 6))  # inches; 15 strategies: 0.5
    cell_font = 7 if size <= 6 else 6
    tick_font = 8 if size <= 10 else 7
    label_in = max((len(n) for n in names), default=1) * tick_font * 0.62 / 72  # the longest tick label, in inches
    fig = _new_figure(label_in + cell * size + 0.5, label_in + cell * size + 0.7, constrained=True)
    ax = fig.add_subplot(1, 1, 1)
    cmap = ListedColormap(["#e76f51", "#f1f1f1", "#52b788"])
    ax.imshow(matrix["matrix"], cmap=cmap, vmin=-1.5, vmax=1.5)
    prefix = "p=" if size <= 6 else ""  # narrow cells: the number alone (the title says cells are p-values)
    for i in range(size):
        for j in range(size):
            p_value = matrix["p_values"][i][j]
            text = "–" if i == j else (f"{prefix}–" if p_value is None or p_value != p_value
                                       else f"{prefix}{p_value:.2g}")
            ax.text(j, i, text, ha="center", va="center", fontsize=cell_font)
    # Vertical column labels when there are many: rotated ones would overlap their neighbours' boxes.
    ax.set_xticks(range(size), names, rotation=35 if size <= 6 else 90, ha="right" if size <= 6 else "center",
                  fontsize=tick_font)
    ax.set_yticks(range(size), names, fontsize=tick_font)
    for label in (*ax.get_xticklabels(), *ax.get_yticklabels()):
        if _emphasised(label.get_text()):
            label.set_fontweight("bold")
    ax.set_title(f"row vs column, AUBC ({matrix['method']}, α={matrix['alpha']}, n={matrix['n_pairs']}); cells: p",
                 fontsize=9)
    return fig


def plot_win_matrix(matrix: dict[str, Any], out_png: str | Path) -> Path:
    """Heatmap of a `win_matrix` result: green = row strategy significantly better, red = worse; cells show p."""
    return save_png(build_win_matrix_figure(matrix), Path(out_png))


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
