"""`assft-strata` and the score-driven cluster cover: one pick per embedding cluster, the best score inside it."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from assft.query import CaseSummary, QueryConfig, SelectionContext, make_strategy
from assft.query.clustering import cluster_cover_select, typiclust_select

# Two sites far apart in embedding space: site A (a0..a3) around e1, site B (b0, b1) around e2.
SITE = {"a0": (1.0, 0.02), "a1": (1.0, -0.02), "a2": (1.0, 0.05), "a3": (1.0, -0.05), "b0": (0.02, 1.0),
        "b1": (-0.02, 1.0)}


def _pool(kd: dict[str, float], asd: dict[str, float] | None = None) -> list[CaseSummary]:
    return [CaseSummary(c, kd=kd[c], asd=(asd or {}).get(c, 0.5), embedding=np.asarray(v, np.float32))
            for c, v in SITE.items()]


def _select(pool: list[CaseSummary], budget: int, seed: int = 0, has_head: bool = True, **options):
    config = QueryConfig(strategy="assft-strata", alpha_high_spread=None, **options)
    return make_strategy("assft-strata", config).select(pool, SelectionContext(config, has_head=has_head), budget,
                                                        np.random.default_rng(seed))


def test_each_site_gets_a_pick_even_when_one_site_holds_every_top_score() -> None:
    kd = {"a0": 5.0, "a1": 4.0, "a2": 3.0, "a3": 2.5, "b0": 1.0, "b1": 1.2}
    for seed in range(5):
        result = _select(_pool(kd), 2, seed, alpha=1.0)
        # the larger site first (TypiClust's order), its highest KD; then site B's highest KD
        assert result.selected == ["a0", "b1"]
    greedy_top = sorted(kd, key=kd.get, reverse=True)[:2]
    assert greedy_top == ["a0", "a1"]  # what a plain top-2 by KD would take: both from site A


def test_asd_decides_inside_a_site_when_alpha_is_zero() -> None:
    kd = {c: 1.0 + i for i, c in enumerate(SITE)}
    asd = {"a0": 0.1, "a1": 0.2, "a2": 0.9, "a3": 0.3, "b0": 0.8, "b1": 0.1}
    result = _select(_pool(kd, asd), 2, alpha=0.0)
    assert result.selected == ["a2", "b0"]
    assert result.columns["score"]["a2"] == 1.0 and result.columns["score"]["b1"] == 0.0


def test_without_a_head_the_score_is_kd_alone() -> None:
    kd = {"a0": 1.0, "a1": 3.0, "a2": 2.0, "a3": 0.5, "b0": 2.0, "b1": 0.1}
    pool = [CaseSummary(c, kd=kd[c], embedding=np.asarray(v, np.float32)) for c, v in SITE.items()]
    result = _select(pool, 2, has_head=False)
    assert result.selected == ["a1", "b0"] and result.notes["alpha_applied"] == 1.0


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(3, 12), budget=st.integers(1, 3))
def test_cover_with_typicality_as_score_is_typiclust(seed: int, n: int, budget: int) -> None:
    """The same clusters and cluster order: given TypiClust's own typicality as the score, the picks are TypiClust's."""
    rng = np.random.default_rng(seed)
    ids = [f"c{i:02d}" for i in range(n)]
    z = rng.normal(size=(n, 4))
    reference = rng.normal(size=(1, 4))
    budget = min(budget, n)
    expected = typiclust_select(ids, z, budget, np.random.default_rng(seed), reference=reference)
    typicality = np.asarray([expected.columns["typicality"][c] for c in ids])
    got = cluster_cover_select(ids, z, typicality, budget, np.random.default_rng(seed), reference=reference)
    assert got.selected == expected.selected and got.ranking == expected.ranking
