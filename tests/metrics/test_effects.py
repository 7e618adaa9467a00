"""Effect tables: arms matched by their settings, known paired differences, Holm, and unequal compute marked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from assft.reporting import load_runs, write_report
from assft.reporting.effects import compute_effects

# AUBC offsets over fg-random (a flat curve: AUBC = its Dice); assft adds 0.02, SSFT adds 0.01 on either query.
OFFSET = {"fg-random": 0.0, "assft": 0.02, "fg-random+ssft": 0.01, "assft+ssft": 0.03, "assft+ssft-long": 0.05}
PLAIN = {"steps_per_round": 20, "pseudo": {"reliability": "none"}}
SSFT = {"steps_per_round": 20}
ARMS = {"fg-random": ("fg-random", PLAIN, 20), "assft": ("assft", PLAIN, 20),
        "fg-random+ssft": ("fg-random", SSFT, 20), "assft+ssft": ("assft", SSFT, 20),
        # an SSFT arm that spends 40 steps a round (unmatched on purpose): compared, but marked
        "assft+ssft-long": ("assft", {"steps_per_round": 40}, 40)}


def _write(root: Path, domain: str, arm: str, seed: int) -> None:
    strategy, finetune, steps = ARMS[arm]
    folder = root / domain / arm / f"seed{seed}"
    folder.mkdir(parents=True)
    value = 0.6 + OFFSET[arm] + 0.001 * seed  # same seed offset for every arm: the paired difference is exact
    rounds = [{"round": r, "status": "evaluated", "labeled_total": 3 * r, "metrics": {"mean_dice": value},
               "compute": {"optimizer_steps": steps, "patches": 2 * steps}} for r in (1, 2)]
    meta = {"pool_size": 30, "budget_total": 6, "rounds": 2, "strategy": strategy, "arm": arm, "seed": seed,
            "baseline_metrics": {"mean_dice": value}}
    (folder / "ledger.json").write_text(json.dumps({"meta": meta, "rounds": rounds}))
    (folder / "campaign.yaml").write_text(yaml.safe_dump({"strategy": strategy, "arm": arm, "seed": seed,
                                                          "finetune": finetune, "query": {}}))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("effects")
    for domain in ("a", "b"):
        for arm in ARMS:
            for seed in range(5):
                _write(root, domain, arm, seed)
    return root


def test_query_effect_matches_arms_by_their_fine_tuning(runs: Path) -> None:
    effects = compute_effects(load_runs(runs))
    plain, ssft = effects["query_effect"]
    assert (plain["ssft"], plain["reference"]) == (False, "fg-random")
    assert [(r["arm"], r["vs"]) for r in plain["rows"]] == [("assft", "fg-random")]
    assert (ssft["ssft"], ssft["reference"]) == (True, "fg-random+ssft")
    rows = {r["arm"]: r for r in ssft["rows"]}
    assert set(rows) == {"assft+ssft", "assft+ssft-long"}  # same recipe apart from the step count
    pooled = rows["assft+ssft"]["pooled"]
    assert pooled["mean_diff"] == pytest.approx(0.02) and (pooled["wins"], pooled["n"]) == (10, 10)
    assert pooled["ci_low"] == pytest.approx(0.02) and pooled["ci_high"] == pytest.approx(0.02)
    assert pooled["p_value"] == pytest.approx(0.001953125)  # exact Wilcoxon, 10 of 10 positive: 2 / 2**10
    assert pooled["p_holm"] == pytest.approx(2 * 0.001953125)  # two comparisons in the family
    assert rows["assft+ssft"]["equal_compute"] and not rows["assft+ssft-long"]["equal_compute"]
    assert rows["assft+ssft-long"]["steps_per_round"] == [[40], [20]]
    assert rows["assft+ssft"]["by_domain"]["a"]["n"] == 5


def test_ssft_effect_pairs_each_ssft_arm_with_its_labeled_only_twin(runs: Path) -> None:
    rows = {r["arm"]: r for r in compute_effects(load_runs(runs))["ssft_effect"]["rows"]}
    assert {a: r["vs"] for a, r in rows.items()} == {"assft+ssft": "assft", "assft+ssft-long": "assft",
                                                      "fg-random+ssft": "fg-random"}
    assert rows["fg-random+ssft"]["pooled"]["mean_diff"] == pytest.approx(0.01)
    assert rows["assft+ssft-long"]["pooled"]["mean_diff"] == pytest.approx(0.03)
    assert not rows["assft+ssft-long"]["equal_compute"] and rows["assft+ssft"]["equal_compute"]


def test_report_prints_steps_per_arm_and_marks_unequal_compute(runs: Path, tmp_path: Path) -> None:
    text = write_report(runs, tmp_path).markdown.read_text()
    assert "| assft+ssft-long | 40 |" in text and "| fg-random | 20 |" in text
    assert "**Unequal compute:**" in text
    assert "assft+ssft-long vs fg-random+ssft (unequal compute: 40 vs 20 steps)" in text
    assert "| assft+ssft vs fg-random+ssft | pooled | +0.0200 |" in text
