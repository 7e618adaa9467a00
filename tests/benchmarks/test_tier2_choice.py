"""The decision rules of tier2_val (benchmarks/experiments/tier2_choice.py): known answers on made-up AUBCs and Dice."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "experiments" / "tier2_choice.py"
spec = importlib.util.spec_from_file_location("tier2_choice", SCRIPT)
tier2_choice = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tier2_choice)  # type: ignore[union-attr]

PAIRS = [(domain, draw) for domain in ("multisite", "t2like") for draw in range(3)]


def _table(offsets: dict[str, float]) -> dict:
    return {arm: {pair: 0.70 + d + 0.001 * i for i, pair in enumerate(PAIRS)} for arm, d in offsets.items()}


def test_the_best_candidate_is_the_query_when_it_beats_random() -> None:
    table = _table({"random": 0.0, "fg-random": -0.01, "intensity": 0.004, "pool": 0.010, "fingerprint": 0.02})
    result = tier2_choice.choose_kd_source(table, ["intensity", "pool"], reference="fingerprint")
    assert result["best_candidate"] == "pool" and result["query"] == "pool"
    pool_vs_random = next(r for r in result["versus_baseline"] if r["arm"] == "pool")
    assert pool_vs_random["mean_diff"] == pytest.approx(0.010) and pool_vs_random["wins"] == 6
    assert pool_vs_random["p_one_sided"] == pytest.approx(1 / 64)  # exact: 6 of 6 positive
    assert [r["mean_diff"] for r in result["versus_reference"]] == pytest.approx([-0.016, -0.010])


def test_without_a_candidate_above_random_the_better_random_is_the_query() -> None:
    table = _table({"random": 0.0, "fg-random": 0.003, "intensity": -0.004, "pool": -0.002})
    result = tier2_choice.choose_kd_source(table, ["intensity", "pool"])
    assert result["best_candidate"] == "pool" and result["query"] == "fg-random"


def test_tent_replaces_no_adaptation_only_in_five_of_six_pairs_and_by_more_than_the_margin() -> None:
    five_of_six = {pair: {"auto": 0.60, "tent": 0.61 if i else 0.59} for i, pair in enumerate(PAIRS)}
    result = tier2_choice.choose_round0(five_of_six)
    assert result["wins"] == 5 and result["mean_diff"] == pytest.approx(0.04 / 6) and result["round0"] == "tent"
    four_of_six = {pair: {"auto": 0.60, "tent": 0.62 if i > 1 else 0.59} for i, pair in enumerate(PAIRS)}
    assert tier2_choice.choose_round0(four_of_six)["round0"] == "auto"  # mean +0.01 but only 4/6
    small = {pair: {"auto": 0.60, "tent": 0.604} for pair in PAIRS}
    assert tier2_choice.choose_round0(small)["round0"] == "auto"  # 6/6 but +0.004 < 0.005
