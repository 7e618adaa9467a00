"""Dice against annotated foreground slices: known AUBC on the cost axis over a common range, ledgers without the
cost still load and report, and a domain's bounds averaged over pool draws."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from assft.campaign.ledger import read_ledger
from assft.reporting import load_runs, write_report
from assft.reporting.summary import cost_axis_summary

SLICES = {"cheap": 10, "dear": 20}  # foreground slices of every pick of the arm


def _ledger(folder: Path, arm: str, draw: int, *, with_cost: bool) -> None:
    folder.mkdir(parents=True)
    rounds = []
    for r, dice in ((1, 0.6), (2, 0.7)):  # the same curve against labeled volumes for every arm
        case = f"{arm}{draw}_{r}"
        record = {"round": r, "status": "evaluated", "selected": [case], "labeled_total": r,
                  "metrics": {"mean_dice": dice}, "compute": {"optimizer_steps": 20}}
        if with_cost:
            cost = SLICES.get(arm, 15)
            record["annotation_cost"] = {case: {"fg_slices": cost, "fg_slices_min": cost - 5, "fg_voxels": 100 * cost,
                                                "structures": 2, "acquisition_axis": 2}}
        rounds.append(record)
    meta = {"pool_size": 10, "budget_total": 2, "rounds": 2, "strategy": "random", "arm": arm, "seed": draw,
            "baseline_metrics": {"mean_dice": 0.5}}
    (folder / "ledger.json").write_text(json.dumps({"meta": meta, "rounds": rounds}))
    (folder / "campaign.yaml").write_text(yaml.safe_dump({"strategy": "random", "arm": arm, "seed": draw}))


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    for draw, lower in ((0, 0.4), (1, 0.6)):
        for arm in ("cheap", "dear"):
            _ledger(root / f"draw{draw}" / "dom" / arm / f"seed{draw}", arm, draw, with_cost=True)
        _ledger(root / f"draw{draw}" / "dom" / "old" / f"seed{draw}", "old", draw, with_cost=False)
        bounds = {"lower": {"mean_dice": lower}, "references": {"adabn": {"mean_dice": lower + 0.1}},
                  "upper": {"mean_dice": 0.9, "mean_dice_sd": 0.01 * (draw + 1)}, "upper_seeds": [0, 1, 2],
                  "upper_steps": 200}
        (root / f"draw{draw}" / "dom" / "bounds.json").write_text(json.dumps(bounds))
    return root


def test_aubc_on_the_slice_axis_over_the_common_range(runs: Path) -> None:
    runset = load_runs(runs)
    cost = cost_axis_summary(runset, "fg_slices")
    # cheap: (0, .5) (10, .6) (20, .7); dear: (0, .5) (20, .6) (40, .7); common range [0, 20]
    assert cost["range"]["dom"] == [0.0, 20.0]
    assert cost["aubc"]["dom"]["cheap"]["mean"] == pytest.approx(0.6)
    assert cost["aubc"]["dom"]["dear"]["mean"] == pytest.approx(0.55)
    assert "old" not in cost["aubc"]["dom"]  # no recorded cost: left out of the cost axis only
    assert cost["per_volume"]["dom"]["dear"]["mean"] == pytest.approx(20.0)
    assert [p["budget"] for p in cost["curves"]["dom"]["cheap"]] == [0.0, 10.0, 20.0]
    assert next(r for r in runset.runs if r.strategy == "old").costs("fg_slices") is None


def test_report_puts_both_axes_side_by_side_and_averages_bounds_over_draws(runs: Path, tmp_path: Path) -> None:
    result = write_report(runs, tmp_path / "report")
    summary = result.summary
    assert summary["aubc"]["dom"]["old"]["mean"] == pytest.approx(0.6)  # the old ledgers still report on volumes
    assert summary["bounds"]["dom"]["lower"] == pytest.approx(0.5)  # mean of 0.4 and 0.6 over the two draws
    assert summary["bounds"]["dom"]["adabn"] == pytest.approx(0.6)
    assert summary["upper_bound"]["dom"]["mean_dice_sd"] == pytest.approx(0.015)
    assert summary["upper_bound"]["dom"]["steps"] == 200  # equal in every draw: kept as is
    text = result.markdown.read_text()
    assert "## Annotation cost: Dice vs annotated foreground slices" in text
    assert "| dom | cheap | 0.600 ± 0.000 | 1 | 0.600 ± 0.000 | 1 | 10.0 ± 0.0 | 2.0 ± 0.0 | 0–20 |" in text
    assert "| dom | dear | 0.600 ± 0.000 | 1 | 0.550 ± 0.000 | 2 |" in text
    assert (tmp_path / "report" / "dice_vs_fg_slices.png").is_file()


def test_a_ledger_without_the_cost_field_still_validates(runs: Path) -> None:
    ledger = read_ledger(runs / "draw0" / "dom" / "old" / "seed0" / "ledger.json")
    assert all(r.annotation_cost is None for r in ledger.rounds)
    ledger = read_ledger(runs / "draw0" / "dom" / "cheap" / "seed0" / "ledger.json")
    assert ledger.rounds[0].annotation_cost == {"cheap0_1": {"fg_slices": 10, "fg_slices_min": 5, "fg_voxels": 1000,
                                                             "structures": 2, "acquisition_axis": 2}}
