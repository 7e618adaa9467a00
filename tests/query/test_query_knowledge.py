"""Outlier-aware knowledge gap: KD spread, typicality weighting, quantile clipping, the spread guard, and the
representative cold starts (known answers on small hand-made pools)."""

from __future__ import annotations

import numpy as np
import pytest

from assft.query import CaseSummary, Need, QueryConfig, SelectionContext, make_strategy
from assft.query.clustering import compute_typicality
from assft.query.knowledge import adjust_kd, compute_kd_spread, compute_pool_typicality


def test_kd_spread_is_the_robust_coefficient_of_variation() -> None:
    assert compute_kd_spread(np.array([1.0, 2.0, 3.0, 4.0, 5.0])) == pytest.approx((4.0 - 2.0) / 3.0)
    assert compute_kd_spread(np.full(6, 0.7)) == 0.0
    assert compute_kd_spread(np.array([0.0, 0.0, 0.0, 1.0, 2.0])) == float("inf")  # median 0, IQR 1
    assert compute_kd_spread(np.array([1.0, 1.0, 1.0, 1.0, 100.0])) == 0.0  # one outlier is not spread


def test_pool_typicality_is_tyiclust_density_scaled_to_its_maximum() -> None:
    points = np.array([[0.0], [1.0], [2.0], [10.0]])
    raw = compute_typicality(points, k=2)  # 1 / mean distance to the 2 nearest
    assert raw == pytest.approx([1 / 1.5, 1.0, 1 / 1.5, 1 / 8.5])
    assert compute_pool_typicality(points, 2) == pytest.approx(raw / 1.0)
    assert compute_pool_typicality(points[:1], 2) == pytest.approx([1.0])
    big = np.random.default_rng(0).normal(size=(300, 3))
    assert np.allclose(compute_typicality(big, 5, chunk=64), compute_typicality(big, 5, chunk=4096), rtol=1e-12)


def _outlier_pool() -> list[CaseSummary]:
    """Five volumes in a tight cluster (c0 at its centre) with moderate KD and one far outlier with by far the
    largest KD. With k = 2, typicality / max: c0 1, c1 and c3 ~0.67, c2 and c4 ~0.4, the outlier ~0.02."""
    z = {"c0": [1.0, 0.00], "c1": [1.0, 0.04], "c2": [1.0, 0.12], "c3": [1.0, -0.04], "c4": [1.0, -0.12],
         "out": [-1.0, 1.0]}
    kd = {"c0": 0.30, "c1": 0.50, "c2": 0.40, "c3": 0.35, "c4": 0.45, "out": 5.0}
    return [CaseSummary(c, kd=kd[c], asd=0.5, embedding=np.asarray(v, np.float32) / np.linalg.norm(v))
            for c, v in z.items()]


def _select(name: str, pool: list[CaseSummary], budget: int, **options):
    config = QueryConfig(strategy=name, typiclust_neighbors=2, **options)
    return make_strategy(name, config).select(pool, SelectionContext(config), budget, np.random.default_rng(0))


def test_plain_kd_picks_the_outlier_and_typicality_weighting_does_not() -> None:
    pool = _outlier_pool()
    assert _select("kd", pool, 1).selected == ["out"]
    weighted = _select("kd", pool, 1, kd={"weighting": "typicality"})
    assert weighted.selected == ["c1"]  # KD x typicality: c0 0.30, c1 0.33, c3 0.23, c2 and c4 < 0.2, out ~0.1
    assert weighted.notes["kd_weighting"] == "typicality" and weighted.columns["typicality"]["out"] < 0.1
    assert "typical" in weighted.rationale["c1"]
    assert _select("dkd", pool, 1).selected == ["out"]
    assert _select("dkd", pool, 1, kd={"weighting": "typicality"}).selected != ["out"]


def test_kd_clip_quantile_caps_the_outlier_before_normalisation() -> None:
    pool = _outlier_pool()
    clipped = _select("kd", pool, 2, kd={"clip_quantile": 0.5})  # the median of 0.30..0.50 and 5.0 is 0.425
    notes = clipped.notes["kd_clip"]
    assert notes["value"] == pytest.approx(0.425) and notes["clipped"] == 3  # 0.45, 0.50 and 5.0
    assert clipped.columns["KD_adjusted"]["out"] == pytest.approx(0.425)
    # out, c1 and c4 tie at the ceiling: the two picks are two of them, drawn by the seed
    assert set(clipped.selected) <= {"out", "c1", "c4"}


def test_kd_guard_falls_back_to_typicality_when_kd_barely_varies() -> None:
    pool = _outlier_pool()
    spread = compute_kd_spread(np.array([s.kd for s in pool]))  # 0.35..0.4875 around 0.425: small
    assert spread == pytest.approx((0.4875 - 0.3625) / 0.425)
    fired = _select("kd", pool, 1, kd={"guard": spread + 0.01})
    assert fired.notes["kd_guard"] == {"threshold": spread + 0.01, "fired": True}
    assert fired.selected == ["c0"]  # the most typical volume (the cluster's centre)
    assert fired.rationale["c0"].startswith(f"KD spread {spread:.3g} < guard")
    quiet = _select("kd", pool, 1, kd={"guard": spread - 0.01})
    assert quiet.notes["kd_guard"]["fired"] is False and quiet.selected == ["out"]
    greedy = _select("assft", pool, 2, kd={"guard": 10.0})
    assert greedy.notes["kd_guard"]["fired"] and "Typ_norm" in greedy.columns and "KD_norm" not in greedy.columns
    assert all("typicality replaces KD" in greedy.rationale[c] for c in greedy.selected)


def test_guard_takes_precedence_over_clipping_and_weighting() -> None:
    kd, z = np.array([1.0, 1.0, 1.0, 1.0, 9.0]), np.array([[0.0], [0.1], [0.2], [0.4], [5.0]])
    options = {"clip_quantile": 0.5, "weighting": "typicality"}
    # spread 0: the guard fires
    fired = adjust_kd(kd, z, QueryConfig(kd={"guard": 0.5, **options}, typiclust_neighbors=1))
    assert fired.label == "Typ" and fired.values == pytest.approx(compute_pool_typicality(z, 1))
    assert "kd_clip" not in fired.notes and "kd_weighting" not in fired.notes
    plain = adjust_kd(kd, z, QueryConfig(kd=options, typiclust_neighbors=1))  # clipped at 1.0, then x typicality
    assert plain.label == "KD" and plain.values == pytest.approx(np.minimum(kd, 1.0) * compute_pool_typicality(z, 1))
    assert adjust_kd(kd, None, QueryConfig()).values is not None  # plain KD needs no embeddings


def test_default_options_report_the_spread_and_leave_kd_alone() -> None:
    result = _select("assft", _outlier_pool(), 2)
    assert set(result.notes) == {"cold_start", "kd_spread", "alpha", "alpha_applied"} and "typicality" not in result.columns
    assert result.notes["alpha"]["used"] == 0.5  # this pool's spread is below the threshold
    assert "KD_adjusted" not in result.columns


def test_kd_options_add_the_embedding_need_to_kd_only_when_used() -> None:
    assert make_strategy("kd").resolve_needs(True) == {Need.NORM_STATS}
    for options in ({"weighting": "typicality"}, {"guard": 0.1}):
        assert make_strategy("kd", QueryConfig(kd=options)).resolve_needs(True) == {Need.NORM_STATS, Need.EMBEDDING}


@pytest.mark.parametrize(("method", "expected_first"), [("typicality", None), ("kcenter", "out")])
def test_representative_cold_start(method: str, expected_first: str | None) -> None:
    pool = _outlier_pool()
    config = QueryConfig(cold_start_method=method, typiclust_neighbors=2)
    strategy = make_strategy("assft", config)
    context = SelectionContext(config, has_head=False)
    assert Need.PROBS not in strategy.resolve_needs(False)
    result = strategy.select(pool, context, 2, np.random.default_rng(0))
    assert result.notes == {"cold_start": True, "cold_start_method": method}
    assert all(result.rationale[c].startswith(f"cold start by {'k-center' if method == 'kcenter' else method}")
               for c in result.selected)
    if expected_first:  # k-center: farthest from the pool mean first
        assert result.selected[0] == expected_first
    else:  # TypiClust: 2 clusters (the cluster and the outlier); the larger cluster's most typical member first
        assert result.selected == ["c0", "out"]
    dkd = make_strategy("assft", QueryConfig()).select(pool, context, 2, np.random.default_rng(0))
    assert dkd.notes["cold_start"] is True and dkd.notes["cold_start_method"] == "dkd"


def test_spread_adaptive_alpha_switches_q_at_the_threshold() -> None:
    """alpha_high_spread replaces alpha exactly when the pool's KD spread reaches the threshold: Q then equals
    plain assft's Q at that alpha, and the note records the alpha used."""
    pool = _outlier_pool()
    for summary, asd in zip(pool, (0.9, 0.1, 0.8, 0.2, 0.7, 0.0), strict=True):
        summary.asd = asd  # ASD disagrees with KD, so alpha changes the ranking
    spread = compute_kd_spread(np.array([s.kd for s in pool]))
    high = _select("assft", pool, 3, alpha_high_spread=0.9, alpha_spread_threshold=spread)
    low = _select("assft", pool, 3, alpha_high_spread=0.9, alpha_spread_threshold=spread + 1e-9)
    plain_high = _select("assft", pool, 3, alpha=0.9, alpha_high_spread=None)
    plain_low = _select("assft", pool, 3, alpha_high_spread=None)
    assert high.notes["alpha"] == {"used": 0.9, "kd_spread": spread, "threshold": spread}
    assert low.notes["alpha"]["used"] == 0.5
    assert (high.selected, high.columns["Q"]) == (plain_high.selected, plain_high.columns["Q"])
    assert (low.selected, low.columns["Q"]) == (plain_low.selected, plain_low.columns["Q"])
    assert high.selected != low.selected  # the example is one where alpha matters
    assert "alpha" not in plain_low.notes  # None: the paper's Q, with the notes it always had
    assert QueryConfig().alpha_high_spread == 1.0 and QueryConfig().alpha_spread_threshold == 1.1  # the default


def test_alpha_one_makes_assft_pick_what_dkd_picks() -> None:
    """With alpha 1 Q = norm(DKD), a monotone map of DKD: assft's greedy batch is dkd's (what alpha_high_spread 1.0
    relies on: dkd's picks on high-spread pools, assft's elsewhere)."""
    pool = _outlier_pool()
    for summary, asd in zip(pool, (0.9, 0.1, 0.8, 0.2, 0.7, 0.0), strict=True):
        summary.asd = asd
    assert _select("assft", pool, 4, alpha=1.0).selected == _select("dkd", pool, 4).selected
    assert _select("assft", pool, 4).selected != _select("dkd", pool, 4).selected  # ASD matters at alpha 0.5
