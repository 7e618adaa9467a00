"""Known answers for every score-based strategy on hand-made summaries, fg-random's foreground rule, and the full Q
(alpha weighting, product DKD, greedy Div update) on a three-volume example computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from assft.query import CaseSummary, QueryConfig, SelectionContext, make_strategy

SQRT_HALF = math.sqrt(0.5)


def _select(name: str, pool: list[CaseSummary], budget: int, seed: int = 0, **options):
    config = QueryConfig(strategy=name, **options)
    return make_strategy(name, config).select(pool, SelectionContext(config), budget, np.random.default_rng(seed))


@pytest.mark.parametrize(("name", "field"), [("entropy", "entropy"), ("bald", "bald"), ("kd", "kd"),
                                             ("asd", "asd")])
def test_top_score_strategies_pick_the_highest_scores_in_order(name: str, field: str) -> None:
    values = {"v0": 0.20, "v1": 0.90, "v2": 0.05, "v3": 0.70, "v4": 0.40}
    pool = [CaseSummary(c, **{field: v}) for c, v in values.items()]
    for seed in range(5):  # no ties: the seed must not matter
        assert _select(name, pool, 1, seed).selected == ["v1"]
        assert _select(name, pool, 3, seed).selected == ["v1", "v3", "v4"]
        assert _select(name, pool, 3, seed).ranking == ["v1", "v3", "v4", "v0", "v2"]


def test_fg_random_never_picks_an_empty_foreground_while_others_remain() -> None:
    sizes = {"e0": 0, "f1": 10, "e2": 0, "f3": 500, "e4": 0, "f5": 1, "e6": 0}
    pool = [CaseSummary(c, predicted_foreground_voxels=v) for c, v in sizes.items()]
    nonempty = {c for c, v in sizes.items() if v > 0}
    for seed in range(100):
        for budget in (1, 2, 3):
            assert set(_select("fg-random", pool, budget, seed).selected) <= nonempty
        picks = _select("fg-random", pool, 5, seed).selected
        assert set(picks[:3]) == nonempty and not set(picks[3:]) & nonempty  # the empty ones only come last


def test_fg_random_weights_by_foreground_size() -> None:
    pool = [CaseSummary("small", predicted_foreground_voxels=1), CaseSummary("large", predicted_foreground_voxels=99)]
    firsts = [_select("fg-random", pool, 1, seed).selected[0] for seed in range(400)]
    assert 0.96 <= firsts.count("large") / 400 <= 1.0  # P = 0.99 (fixed seeds: a deterministic count)


def test_fg_random_33_mixes_one_foreground_draw_in_three_with_uniform_draws() -> None:
    """Known answer: one volume of four has a foreground, so P(first pick = it) = 1/3 + 2/3 * 1/4 = 1/2; with
    fg-random it is 1 and with random 1/4. Over 2000 fixed seeds the count is deterministic; the band is 4 sd."""
    pool = [CaseSummary(c, predicted_foreground_voxels=v) for c, v in (("e0", 0), ("e1", 0), ("e2", 0), ("f", 50))]
    n = 2000
    firsts = [_select("fg-random-33", pool, 1, seed).selected[0] for seed in range(n)]
    assert abs(firsts.count("f") / n - 0.5) <= 4 * math.sqrt(0.25 / n)
    draws = [_select("fg-random-33", pool, 1, seed).columns["fg_draw"]["f"] for seed in range(300)]
    assert 0 < sum(draws) < 300  # "f" is reached both ways: by a foreground draw and by a uniform one
    result = _select("fg-random-33", pool, 2, 7)
    assert sorted(result.ranking) == ["e0", "e1", "e2", "f"] and result.selected == result.ranking[:2]
    assert all(("1 in 3" in result.rationale[c]) != ("2 in 3" in result.rationale[c]) for c in result.selected)


def test_fg_random_33_on_an_empty_foreground_pool_is_uniform() -> None:
    pool = [CaseSummary(f"e{i}", predicted_foreground_voxels=0) for i in range(3)]
    firsts = [_select("fg-random-33", pool, 1, seed).selected[0] for seed in range(600)]
    assert all(abs(firsts.count(f"e{i}") / 600 - 1 / 3) <= 4 * math.sqrt(2 / 9 / 600) for i in range(3))


def _three_volumes() -> list[CaseSummary]:
    """a, b, c at 0, 90 and 45 degrees; the pool's mean direction is c's, so Div to it is 1 - cos 45 for a and b."""
    z = {"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [SQRT_HALF, SQRT_HALF]}
    kd = {"a": 1.0, "b": 3.0, "c": 2.0}
    asd = {"a": 0.95, "b": 0.20, "c": 0.90}
    return [CaseSummary(c, kd=kd[c], asd=asd[c], embedding=np.asarray(z[c], np.float32)) for c in "abc"]


def test_full_q_with_asd_on_a_hand_computed_example() -> None:
    """By hand, alpha = 0.6, product DKD, nothing labeled:
    pick 1: KD_norm (a, b, c) = (0, 1, 0.5); Div to the pool mean = (1 - cos 45, 1 - cos 45, 0) = (0.2929, 0.2929, 0);
            DKD = (0, 0.2929, 0), norm (0, 1, 0); ASD_norm = (1, 0, 0.9333);
            Q = 0.6 DKD_norm + 0.4 ASD_norm = (0.4, 0.6, 0.3733) -> b.
    pick 2: Div to b: a 1, c 0.2929; KD_norm over {a, c} = (0, 1); DKD = (0, 0.2929), norm (0, 1);
            ASD_norm over {a, c} = (1, 0); Q = (0.4, 0.6) -> c.
    With alpha = 0.3: pick 1 Q = (0.7, 0.3, 0.6533) -> a; pick 2 over {b, c}: Div to a (1, 0.2929), KD_norm (1, 0),
            DKD_norm (1, 0), ASD_norm (0, 1), Q = (0.3, 0.7) -> c.
    """
    div45 = 1.0 - SQRT_HALF
    result = _select("assft", _three_volumes(), 2, alpha=0.6)
    assert result.selected == ["b", "c"] and result.ranking == ["b", "c", "a"]
    col = result.columns
    assert col["Q"]["b"] == pytest.approx(0.6) and col["DKD"]["b"] == pytest.approx(div45, abs=1e-6)
    assert col["KD_norm"]["b"] == 1.0 and col["ASD_norm"]["b"] == 0.0
    assert col["Div"]["b"] == pytest.approx(div45, abs=1e-6)
    assert col["Q"]["c"] == pytest.approx(0.6) and col["DKD"]["c"] == pytest.approx(div45, abs=1e-6)
    assert col["Div"]["c"] == pytest.approx(div45, abs=1e-6) and col["ASD_norm"]["c"] == 0.0
    assert _select("assft", _three_volumes(), 2, alpha=0.3).selected == ["a", "c"]
    # alpha = 1 is DKD alone
    assert _select("assft", _three_volumes(), 2, alpha=1.0).selected == _select("dkd", _three_volumes(), 2).selected


def test_dkd_second_pick_on_the_hand_computed_example() -> None:
    """DKD alone: pick 1 b (DKD 0.2929). Pick 2 over {a, c}: KD_norm (0, 1), Div to b (1, 0.2929),
    DKD = (0, 0.2929) -> c."""
    result = _select("dkd", _three_volumes(), 2)
    assert result.selected == ["b", "c"]
    assert result.columns["DKD"]["c"] == pytest.approx(1.0 - SQRT_HALF, abs=1e-6)


def test_strategies_that_run_without_a_head_follow_from_their_needs() -> None:
    from assft.errors import ConfigError
    from assft.query.strategies import make_strategy
    from assft.query.strategies.base import headless_strategies

    # derived from each strategy's `requires` (assft: its cold start drops the probabilities), never a hand list
    assert headless_strategies() == ["assft", "assft-strata", "coreset", "dkd", "kd", "random", "typiclust"]
    with pytest.raises(ConfigError, match=r"without a head \(assft, assft-strata, coreset, dkd, kd, random, typiclust\)"):
        make_strategy("entropy").resolve_needs(has_head=False)
