"""A real campaign's "did it get better?": source -> adapted -> rounds, AUBC and gap closed (known answers)."""

from __future__ import annotations

import pytest

from assft.campaign.curve import campaign_curve, curve_aubc
from assft.campaign.ledger import LedgerMeta, RoundRecord
from assft.reporting.runs import campaign_bounds

ROUNDS = [RoundRecord(round=1, status="evaluated", labeled_total=2, metrics={"mean_dice": 0.70}),
          RoundRecord(round=2, status="queried", selected=["x"])]


def test_source_adapted_rounds_with_gap_closed_and_aubc() -> None:
    meta = LedgerMeta(unadapted_metrics={"mean_dice": 0.50}, baseline_metrics={"mean_dice": 0.60},
                      adaptation={"method": "adabn"}, upper_metrics={"mean_dice": 0.90})
    points = campaign_curve(meta, ROUNDS)
    assert [(p.name, p.labeled, p.dice) for p in points] == [("source model", 0, 0.50), ("adapted (adabn)", 0, 0.60),
                                                              ("round 1", 2, 0.70)]
    assert [p.gap_closed for p in points] == pytest.approx([0.0, 0.25, 0.5])  # (Dice - 0.5) / (0.9 - 0.5)
    assert curve_aubc(points) == pytest.approx(0.65)  # trapezoid 0.60 -> 0.70 over 0..2, source off the curve


def test_without_adaptation_or_upper_the_start_is_the_source_and_no_gap() -> None:
    points = campaign_curve(LedgerMeta(baseline_metrics={"mean_dice": 0.6}), ROUNDS)
    assert [p.name for p in points] == ["source model", "round 1"] and all(p.gap_closed is None for p in points)
    assert curve_aubc(points) == pytest.approx(0.65)
    alone = campaign_curve(LedgerMeta(), ROUNDS)  # round 0 not evaluated: the one-point curve of before
    assert [p.name for p in alone] == ["round 1"] and curve_aubc(alone) is None


def test_report_bounds_come_from_the_campaigns_own_round_0() -> None:
    meta = LedgerMeta(unadapted_metrics={"mean_dice": 0.5}, baseline_metrics={"mean_dice": 0.6},
                      adaptation={"method": "tent"}, upper_metrics={"mean_dice": 0.9})
    assert campaign_bounds(meta) == {"lower": {"mean_dice": 0.5}, "upper": {"mean_dice": 0.9},
                                     "tent": {"mean_dice": 0.6}}
    assert campaign_bounds(LedgerMeta(baseline_metrics={"mean_dice": 0.6})) == {"lower": {"mean_dice": 0.6},
                                                                                "upper": None}
    assert campaign_bounds(LedgerMeta()) is None
