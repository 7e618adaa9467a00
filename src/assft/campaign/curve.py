"""A campaign's Dice curve as a person reads it: source model -> adapted model (round 0) -> each round, with the
AUBC once there are two points and the gap closed once an upper reference is known (pure; reads ledger fields)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from assft.campaign.ledger import LedgerMeta, RoundRecord
from assft.errors import AssftError
from assft.metrics.curves import compute_aubc, compute_gap_closed

__all__ = ["CurvePoint", "campaign_curve", "curve_aubc"]


@dataclass(frozen=True)
class CurvePoint:
    """One point: what it is ("source model", "adapted (adabn)", "round 2"), labeled volumes, mean Dice, gap closed
    (None without an upper reference), and whether it belongs on the Dice-vs-budget curve."""

    name: str
    labeled: int
    dice: float | None
    gap_closed: float | None
    on_curve: bool = True


def _dice(metrics: Mapping[str, Any] | None) -> float | None:
    value = (metrics or {}).get("mean_dice")
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def campaign_curve(meta: LedgerMeta, rounds: Sequence[RoundRecord]) -> list[CurvePoint]:
    """Points in order: the source model as is (when round 0 adapted it), the start model at 0 labels, then every
    evaluated round. Gap closed = (Dice - source) / (upper - source)."""
    start, source = meta.baseline_metrics, meta.unadapted_metrics
    lower = _dice(source if source is not None else start)
    upper = _dice(meta.upper_metrics)

    def gap(dice: float | None) -> float | None:
        if None in (dice, lower, upper):
            return None
        try:
            return compute_gap_closed(dice, lower, upper)  # type: ignore[arg-type]
        except AssftError:  # upper == lower: undefined
            return None

    points = []
    if source is not None:  # adapted in round 0: the model as the user had it is not on the campaign's curve
        points.append(CurvePoint("source model", 0, _dice(source), gap(_dice(source)), on_curve=False))
    if start is not None:
        method = (meta.adaptation or {}).get("method")
        name = f"adapted ({method})" if source is not None and method else "source model"
        points.append(CurvePoint(name, 0, _dice(start), gap(_dice(start))))
    for record in rounds:
        if record.status == "evaluated" and record.metrics is not None:
            dice = _dice(record.metrics)
            points.append(CurvePoint(f"round {record.round}", record.labeled_total or 0, dice, gap(dice)))
    return points


def curve_aubc(points: Sequence[CurvePoint]) -> float | None:
    """Normalised AUBC of the points on the curve (labeled volumes, Dice); None with fewer than two."""
    pairs = [(p.labeled, p.dice) for p in points if p.on_curve and p.dice is not None]
    if len(pairs) < 2:
        return None
    try:
        return compute_aubc([x for x, _ in pairs], [y for _, y in pairs])
    except AssftError:  # e.g. two points at one budget
        return None
