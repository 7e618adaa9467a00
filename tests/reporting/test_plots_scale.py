"""Report figures with many arms: a 15-arm report through `write_report` has every arm in a legend that lies inside
the saved figure and outside the panels, arms are pairwise distinguishable, the method and the reference baseline
stand out; any reference line of `bounds` is labelled; the win matrix's 15 labels do not overlap."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

import assft.reporting.plots as plots
from assft.reporting import write_report

ARMS = ("random", "entropy", "assft", "margin", "bald", "fg-random", "coreset", "badge", "typiclust", "dkd", "asd",
        "kd", "assft+ssft", "fg-random+ssft", "probcover")  # method arms and the baseline in the middle on purpose
ROUNDS, PER_ROUND, POOL = 3, 2, 20
# The report lists arms alphabetically ("assft" first); the legend puts the method's arms, then the baseline, first.
EXPECTED_ORDER = ["assft", "assft+ssft", "fg-random", "asd", "badge", "bald", "coreset", "dkd", "entropy",
                  "fg-random+ssft", "kd", "margin", "probcover", "random", "typiclust"]


def dice(index: int, seed: int, rnd: int) -> float:
    return 0.5 if rnd == 0 else 0.5 + (0.02 + 0.005 * index) * rnd + 0.003 * seed


def metrics(value: float) -> dict[str, Any]:
    return {"mean_dice": value, "mean_hd95": 1.0, "mean_nsd": value, "n_cases": 4, "dice": {"organ": value},
            "hd95": {"organ": 1.0}}


def write_ledger(folder: Path, arm: str, index: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    records = [{"round": r, "status": "evaluated", "selected": [f"{r}a", f"{r}b"], "budget": PER_ROUND,
                "labeled_before": PER_ROUND * (r - 1), "labeled_total": PER_ROUND * r,
                "budget_fraction": PER_ROUND * r / POOL, "metrics": metrics(dice(index, seed, r)), "pseudo_labels": [],
                "timings": {"query_s": 1.0, "finetune_s": 2.0, "evaluate_s": 1.0}} for r in range(1, ROUNDS + 1)]
    meta = {"pool_size": POOL, "budget_total": PER_ROUND * ROUNDS, "rounds": ROUNDS, "per_round": [PER_ROUND] * ROUNDS,
            "strategy": arm.split("+")[0], "arm": arm, "seed": seed, "baseline_metrics": metrics(0.5),
            "started_at": "t0", "finished_at": "t1", "versions": {}}
    (folder / "ledger.json").write_text(json.dumps({"meta": meta, "rounds": records}))


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """write_report on 15 arms x 2 seeds (one domain with both bounds), keeping the figures it saves."""
    root = tmp_path_factory.mktemp("runs15")
    for index, arm in enumerate(ARMS):
        for seed in (0, 1):
            write_ledger(root / "t2like" / arm / f"seed{seed}", arm, index, seed)
    (root / "t2like" / "bounds.json").write_text(json.dumps({"lower": metrics(0.5), "upper": metrics(0.9)}))
    saved: dict[str, Any] = {}
    original = plots.save_png

    def keep(fig: Any, out_png: Path) -> Path:
        saved[Path(out_png).name] = fig
        return original(fig, out_png)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plots, "save_png", keep)
        report = write_report(root, tmp_path_factory.mktemp("report15"))
    return {"report": report, "figures": saved}


def legend_of(fig: Any) -> Any:
    (legend,) = fig.legends
    return legend


def test_every_arm_is_in_the_legend_in_emphasis_order(drawn: dict[str, Any]) -> None:
    legend = legend_of(drawn["figures"]["dice_vs_budget.png"])
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts == EXPECTED_ORDER + ["start model (0 labels)", "upper bound (whole pool labeled)"]
    bold = {t.get_text() for t in legend.get_texts() if t.get_fontweight() == "bold"}
    assert bold == {"assft", "assft+ssft", "fg-random"}


def test_legend_lies_inside_the_saved_figure_and_outside_the_panels(drawn: dict[str, Any]) -> None:
    from PIL import Image

    fig = drawn["figures"]["dice_vs_budget.png"]
    renderer = fig.canvas.get_renderer()
    box = legend_of(fig).get_window_extent(renderer)
    with Image.open(drawn["report"].out_dir / "dice_vs_budget.png") as image:
        width, height = image.size
    # The figure inspected is the PNG (up to the fractional pixel Agg drops).
    assert abs(width - fig.bbox.width) < 1 and abs(height - fig.bbox.height) < 1
    assert 0 <= box.x0 and box.x1 <= width and 0 <= box.y0 and box.y1 <= height
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent(renderer)), "the legend covers a panel"
    for text in fig.legends[0].get_texts():  # each entry, not just the frame, is inside the image
        entry = text.get_window_extent(renderer)
        assert entry.x1 <= width and entry.y0 >= 0


def test_fifteen_arms_are_pairwise_distinguishable_and_the_method_on_top(drawn: dict[str, Any]) -> None:
    fig = drawn["figures"]["dice_vs_budget.png"]
    lines = {line.get_label(): line for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")}
    assert set(lines) == set(ARMS)
    looks = {(line.get_color(), line.get_linestyle(), line.get_marker()) for line in lines.values()}
    assert len(looks) == len(ARMS)
    plain = [line for name, line in lines.items() if name not in ("assft", "assft+ssft", "fg-random")]
    for name in ("assft", "assft+ssft"):
        assert lines[name].get_linewidth() > lines["fg-random"].get_linewidth()
        assert lines[name].get_zorder() > lines["fg-random"].get_zorder()
    assert min(line.get_linewidth() for line in (lines["fg-random"],)) > max(p.get_linewidth() for p in plain)
    assert lines["fg-random"].get_zorder() > max(p.get_zorder() for p in plain)
    assert lines["fg-random"].get_color() == "#0072B2" and lines["fg-random"].get_linestyle() == "-"


def test_every_bounds_key_is_a_labelled_reference_line() -> None:
    curves = {"bias": {"assft": [{"budget": 0, "mean": 0.5, "std": 0, "min": 0.5, "max": 0.5, "n": 1},
                                 {"budget": 3, "mean": 0.7, "std": 0, "min": 0.7, "max": 0.7, "n": 1}]}}
    bounds = {"bias": {"tent": 0.58, "upper": 0.9, "adabn": 0.55, "lower": 0.5, "pool_size": 60, "broken": None}}
    fig = plots.build_budget_figure(curves, bounds, {"bias": 60})
    texts = [t.get_text() for t in legend_of(fig).get_texts()]
    assert texts == ["assft", "start model (0 labels)", "upper bound (whole pool labeled)", "tent (0 labels)",
                     "adabn (0 labels)"]
    handles = legend_of(fig).legend_handles[1:]
    # Distinct (colour, dash pattern); matplotlib has no public getter for a custom dash pattern.
    assert len({(h.get_color(), str(h._unscaled_dash_pattern)) for h in handles}) == 4
    levels = sorted(line.get_ydata()[0] for line in fig.axes[0].get_lines() if line.get_label().startswith("_"))
    assert levels == [0.5, 0.55, 0.58, 0.9]  # pool_size (bookkeeping) and None are not drawn


def test_old_bounds_and_signature_still_work(tmp_path: Path) -> None:
    curves = {"bias": {"random": [{"budget": 2, "mean": 0.6, "std": 0.01, "min": 0.59, "max": 0.61, "n": 2}]}}
    out = plots.plot_budget_curves(curves, {"bias": {"lower": None, "upper": 0.8}}, {"bias": None},
                                   tmp_path / "c.png", spread="std")
    assert out.exists() and out.stat().st_size > 0
    assert plots.strategy_colors(["random", "assft"]) == {"random": "#009E73", "assft": "#D55E00"}


def test_win_matrix_labels_do_not_overlap_with_fifteen_strategies(drawn: dict[str, Any]) -> None:
    fig = drawn["figures"]["win_matrix.png"]
    renderer = fig.canvas.get_renderer()
    (ax,) = fig.axes
    figure_box = fig.bbox
    for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
        assert [t.get_text() for t in labels] == list(drawn["report"].summary["win_matrix"]["strategies"])
        assert len(labels) == 15
        boxes = [t.get_window_extent(renderer) for t in labels]
        for a, b in itertools.combinations(boxes, 2):
            assert not a.overlaps(b)
        for box in boxes:
            assert figure_box.x0 <= box.x0 and box.x1 <= figure_box.x1 and figure_box.y0 <= box.y0
    cell = ax.get_window_extent(renderer).width / 15
    widest = max(t.get_window_extent(renderer).width for t in ax.texts)
    assert widest < cell  # every p-value fits in its cell
