"""The query decision rule of query_val_v3 (benchmarks/experiments/query_choice.py): known answers on made-up AUBCs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "experiments" / "query_choice.py"
spec = importlib.util.spec_from_file_location("query_choice", SCRIPT)
query_choice = importlib.util.module_from_spec(spec)
spec.loader.exec_module(query_choice)  # type: ignore[union-attr]

PAIRS = [(domain, draw) for domain in ("multisite", "mixed", "t2like") for draw in range(3)]  # 9 pairs: any n works


def _table(offsets: dict[str, list[float]]) -> dict:
    return {arm: {pair: 0.70 + d for pair, d in zip(PAIRS, values, strict=True)} for arm, values in offsets.items()}


def test_holm_known_answer() -> None:
    assert query_choice.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_a_candidate_winning_every_pair_becomes_the_default() -> None:
    table = _table({"random": [0.0] * 9, "assft": [0.001 * i for i in range(9)],
                    "strata": [0.01 + 0.001 * i for i in range(9)], "power": [-0.002] * 9})
    result = query_choice.decide(table, "assft", "random", ["strata", "power"])
    strata, power = result["versus_baseline"]
    assert strata["wins"] == 9 and strata["p_one_sided"] == pytest.approx(1 / 512)
    assert strata["p_holm"] == pytest.approx(2 / 512) and power["p_holm"] == 1.0
    assert result["passing"] == ["strata"] and result["new_default"] == "strata"


def test_a_candidate_that_beats_random_but_loses_to_the_default_by_more_than_the_margin_is_not_adopted() -> None:
    table = _table({"random": [0.0] * 9, "assft": [0.03] * 9, "strata": [0.02 + 0.0001 * i for i in range(9)]})
    result = query_choice.decide(table, "assft", "random", ["strata"])
    assert result["versus_baseline"][0]["p_holm"] < 0.05
    assert result["versus_default"][0]["mean_diff"] == pytest.approx(-0.0096)
    assert result["new_default"] is None
