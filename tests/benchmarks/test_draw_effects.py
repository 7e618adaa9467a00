"""Declared comparisons paired by draw: known effects, Holm across the comparisons per scope, the pooled line without
multisite, in the report and in benchmarks/experiments/paired_arms.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from assft.reporting import load_runs, write_report
from assft.reporting.effects import paired_effects

ROOT = Path(__file__).resolve().parents[2]
DOMAINS = ("a", "b", "multisite")
DRAWS = range(6)  # 6 pairs per domain: the smallest exact two-sided p is 2 / 2**6 = 0.03125


def _offset(arm: str, domain: str, draw: int) -> float:
    """X beats the reference by 0.01 everywhere; Y wins 0.02 on multisite only and loses 0.005 elsewhere. A distinct
    1e-5 per (domain, draw) keeps the differences' magnitudes untied, so the Wilcoxon p is exact."""
    jitter = 1e-5 * (draw + len(DRAWS) * DOMAINS.index(domain))
    if arm == "X":
        return 0.01 + jitter
    if arm == "Y":
        return 0.02 + jitter if domain == "multisite" else -0.005 - jitter
    return 0.0


def _scores() -> dict[str, dict[tuple[str, int], float]]:
    return {arm: {(d, draw): 0.5 + 0.01 * draw + 0.1 * i + _offset(arm, d, draw) for i, d in enumerate(DOMAINS)
                  for draw in DRAWS} for arm in ("R", "X", "Y")}


def test_paired_effects_known_answers_and_holm_per_scope() -> None:
    x, y = paired_effects(_scores(), [("X", "R"), ("Y", "R")], without=("multisite",))
    exact = 2 / 2**6
    for domain in DOMAINS:
        assert x["by_domain"][domain]["mean_diff"] == pytest.approx(0.01, abs=2e-4)
        assert (x["by_domain"][domain]["wins"], x["by_domain"][domain]["n"]) == (6, 6)
        assert x["by_domain"][domain]["p_value"] == pytest.approx(exact)
        assert y["by_domain"][domain]["p_value"] == pytest.approx(exact)
        # two comparisons with equal p in each domain: Holm doubles both
        assert x["by_domain"][domain]["p_holm"] == pytest.approx(2 * exact)
        assert y["by_domain"][domain]["p_holm"] == pytest.approx(2 * exact)
    assert y["by_domain"]["a"]["mean_diff"] == pytest.approx(-0.005, abs=2e-4) and y["by_domain"]["a"]["losses"] == 6
    assert x["pooled"]["mean_diff"] == pytest.approx(0.01, abs=2e-4) and x["pooled"]["n"] == 18
    assert x["pooled"]["p_value"] == pytest.approx(2 / 2**18)
    assert y["pooled"]["mean_diff"] == pytest.approx((6 * 0.02 - 12 * 0.005) / 18, abs=2e-4)
    # Holm over the two pooled tests: the smaller p doubled, the larger kept (it is already above that)
    assert x["pooled"]["p_holm"] == pytest.approx(2 * x["pooled"]["p_value"])
    assert y["pooled"]["p_holm"] == pytest.approx(max(y["pooled"]["p_value"], x["pooled"]["p_holm"]))
    # the second line: without multisite Y's pooled win disappears
    assert y["pooled_without"]["excluded"] == ["multisite"] and y["pooled_without"]["n"] == 12
    assert y["pooled_without"]["mean_diff"] == pytest.approx(-0.005, abs=2e-4) and y["pooled_without"]["wins"] == 0
    assert x["pooled_without"]["p_value"] == pytest.approx(2 / 2**12)
    assert x["pooled_without"]["p_holm"] == pytest.approx(2 * 2 / 2**12)


def test_no_second_line_without_multisite_or_with_it_alone() -> None:
    scores = _scores()
    only_ab = {arm: {k: v for k, v in by.items() if k[0] != "multisite"} for arm, by in scores.items()}
    assert "pooled_without" not in paired_effects(only_ab, [("X", "R")], without=("multisite",))[0]
    only_ms = {arm: {k: v for k, v in by.items() if k[0] == "multisite"} for arm, by in scores.items()}
    assert "pooled_without" not in paired_effects(only_ms, [("X", "R")], without=("multisite",))[0]


def _write_runs(root: Path) -> Path:
    """Flat-curve ledgers (AUBC = the Dice) with the scores above, the seed being the draw."""
    for arm, by_key in _scores().items():
        for (domain, draw), value in by_key.items():
            folder = root / f"draw{draw}" / domain / arm / f"seed{draw}"
            folder.mkdir(parents=True)
            rounds = [{"round": 1, "status": "evaluated", "labeled_total": 3, "metrics": {"mean_dice": value},
                       "compute": {"optimizer_steps": 20, "patches": 40}}]
            meta = {"pool_size": 30, "budget_total": 3, "rounds": 1, "strategy": "random", "arm": arm, "seed": draw,
                    "baseline_metrics": {"mean_dice": value}}
            (folder / "ledger.json").write_text(json.dumps({"meta": meta, "rounds": rounds}))
            (folder / "campaign.yaml").write_text(yaml.safe_dump({"strategy": "random", "arm": arm, "seed": draw,
                                                                  "finetune": {}, "query": {}}))
    return root


def test_report_and_paired_arms_show_the_declared_family(tmp_path: Path) -> None:
    runs = _write_runs(tmp_path / "runs")
    assert {r.domain for r in load_runs(runs).runs} == set(DOMAINS)  # the draw folder is above the domain
    result = write_report(runs, tmp_path / "report", comparisons=[("X", "R"), ("Y", "R"), ("Z", "R")])
    declared = result.summary["effects"]["declared"]
    assert [(r["arm"], r["vs"]) for r in declared["rows"]] == [("X", "R"), ("Y", "R")]
    assert declared["missing"] == [["Z", "R"]]
    text = result.markdown.read_text()
    assert "## Declared comparisons" in text and "Declared but not run: Z vs R." in text
    assert "| Y vs R | pooled without multisite | -0.0051 |" in text  # -0.005 - the mean jitter
    out = tmp_path / "effects.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "experiments" / "paired_arms.py"), str(runs),
                           "--pairs", "X:R,Y:R", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    x, y = json.loads(out.read_text())["comparisons"]
    assert x["per_domain"]["a"]["arm_sd"] == pytest.approx(0.01001 * 1.8708287, rel=1e-5)  # sd of draws 0..5 x (0.01 + jitter)
    assert y["pooled_without"]["mean_diff"] == pytest.approx(-0.005, abs=2e-4)
    assert x["pooled"]["p_holm"] == pytest.approx(declared["rows"][0]["pooled"]["p_holm"])
