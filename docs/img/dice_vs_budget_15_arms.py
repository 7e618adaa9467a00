"""Draws docs/img/dice_vs_budget_15_arms.png: the report's Dice-vs-budget figure with 15 arms on SYNTHETIC curves.

The curves are made up (saturating curves, no campaign was run); the figure shows how the plot reads with as many
arms as the fair benchmark compares. Run: python docs/img/dice_vs_budget_15_arms.py
"""

from __future__ import annotations

import math
from pathlib import Path

from assft.reporting.plots import plot_budget_curves

ARMS = ("assft", "assft+ssft", "assft-sum", "dkd", "asd", "kd", "fg-random", "fg-random+ssft", "random", "entropy",
        "margin", "bald", "coreset", "badge", "typiclust")
START, POOL, BUDGETS = 0.55, 60, (0, 3, 6, 9, 12, 15)


def synthetic_curves() -> dict[str, list[dict[str, float]]]:
    """Per arm: Dice = START + gain * (1 - exp(-budget / 6)), a band of ± spread (made-up numbers)."""
    curves = {}
    for index, arm in enumerate(ARMS):
        gain = 0.30 - 0.012 * index
        spread = 0.01 + 0.002 * (index % 5)
        points = []
        for budget in BUDGETS:
            mean = START + gain * (1 - math.exp(-budget / 6))
            width = 0.0 if budget == 0 else spread
            points.append({"budget": budget, "mean": mean, "std": width / 2, "min": mean - width, "max": mean + width,
                           "n": 3})
        curves[arm] = points
    return curves


if __name__ == "__main__":
    out = Path(__file__).with_suffix(".png")
    bounds = {"t2like (synthetic)": {"lower": START, "upper": 0.88, "adabn": 0.60, "tent": 0.62}}
    plot_budget_curves({"t2like (synthetic)": synthetic_curves()}, bounds, {"t2like (synthetic)": POOL}, out)
    print(out, out.stat().st_size, "bytes")
