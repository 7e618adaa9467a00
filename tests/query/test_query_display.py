"""What a person reads about a query: Q at the time of the pick on the pool's scale, the alpha Q applied, KD raw and
pool-normalised, the figure legend and entropy colour bar (known answers on hand-made pools)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from assft.config import InferenceConfig
from assft.query import CaseSummary, QueryConfig, SelectionContext, make_strategy
from assft.query.figures import capture_slices, write_query_figures
from assft.query.result import QueryResult
from assft.query.selection import greedy_diverse_top_k
from assft.utils.pictures import CLASS_COLOURS, class_legend, colour_bar, colour_map

# One labeled volume r = e1. Candidates: a = e2 and b = e3 (Div 1 from r and from each other), c = (e1 + e2) / sqrt 2
# (Div 1 - cos 45° = 0.2929 from r). KD a 4, b 3, c 1 -> pool-normalised 1, 2/3, 0.
IDS = ["a", "b", "c"]
Z = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]], np.float32)
REFERENCE = np.array([[1.0, 0.0, 0.0]], np.float32)
KD = np.array([4.0, 3.0, 1.0])


def test_greedy_q_at_pick_on_the_pool_scale_falls_where_the_step_q_reads_one() -> None:
    """alpha 1: each step renormalises DKD over the volumes left, so every pick's Q is 1. On the pool's scale:
    a: KD 1 x Div 1 = 1; b: 2/3 x Div 1 (e3 is as far from a as from r) = 0.667; c: 0 x 0.29 = 0."""
    ranked = greedy_diverse_top_k(IDS, KD, Z, 3, np.random.default_rng(0), asd=np.array([0.0, 0.5, 1.0]),
                                  alpha=1.0, reference=REFERENCE)
    assert ranked.selected == ["a", "b", "c"]
    assert [ranked.columns["Q"][c] for c in IDS] == [1.0, 1.0, 1.0]  # what the table used to print
    assert [ranked.columns["Q_pool"][c] for c in IDS] == pytest.approx([1.0, 2 / 3, 0.0])
    assert [ranked.columns["KD_pool"][c] for c in IDS] == pytest.approx([1.0, 2 / 3, 0.0])
    assert [ranked.columns["ASD_pool"][c] for c in IDS] == pytest.approx([0.0, 0.5, 1.0])
    assert ranked.columns["Div"]["c"] == pytest.approx(1 - np.sqrt(0.5), abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 12), st.sampled_from([0.0, 0.5, 1.0]), st.booleans())
def test_q_at_pick_on_the_pool_scale_stays_in_the_unit_interval(seed: int, n: int, alpha: float,
                                                              labeled: bool) -> None:
    """Whatever the pool: Q_pool lies in [0, 1], also where the first pick's Div (to the pool mean) is far smaller
    than the later ones' (to the nearest pick), which a scale fixed at the first pick let grow past 2."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4)) + 5.0  # clustered: the mean embedding is close to everyone
    kd, asd = rng.gamma(2.0, 1.0, n), rng.uniform(size=n)
    reference = rng.normal(size=(1, 4)) if labeled else None
    ranked = greedy_diverse_top_k([f"v{i:02d}" for i in range(n)], kd, z, max(1, n // 2), np.random.default_rng(0),
                                  asd=asd, alpha=alpha, reference=reference)
    q = np.array(list(ranked.columns["Q_pool"].values()))
    assert len(q) == n and np.all(q >= -1e-12) and np.all(q <= 1 + 1e-12)


def _pool(asd: tuple[float, float, float] = (0.0, 0.5, 1.0)) -> list[CaseSummary]:
    return [CaseSummary(c, kd=float(k), asd=a, embedding=z / np.linalg.norm(z))
            for c, k, a, z in zip(IDS, KD, asd, Z, strict=True)]


def _result(config: QueryConfig) -> QueryResult:
    context = SelectionContext(config, labeled_ids=("r",), labeled_embeddings=REFERENCE)
    selection = make_strategy(config.strategy, config).select(_pool(), context, 3, np.random.default_rng(0))
    return QueryResult(selection, _pool(), config, 3, 0, InferenceConfig(roi_size=(8, 8, 8)))


def test_the_rationale_says_when_the_spread_rule_dropped_asd() -> None:
    """KD 4, 3, 1: spread (Q75 - Q25) / median = (3.5 - 2) / 3 = 0.5. A threshold of 0.4 sets alpha 1."""
    dropped = _result(QueryConfig(alpha_high_spread=1.0, alpha_spread_threshold=0.4))
    assert dropped.alpha_applied == 1.0
    rationale = dropped.selection.rationale["a"]
    assert "ASD not used (α = 1: the pool's KD spread 0.5 >= 0.4, the spread rule)" in rationale
    assert "far from pre-training (KD 1.00 (raw 4, pool-normalised))" in rationale
    assert "foreground (ASD" not in rationale
    assert "the spread rule set α = 1 instead of 0.5" in dropped.q_legend()
    assert dropped.pick_scores() == pytest.approx({"a": 1.0, "b": 2 / 3, "c": 0.0})

    kept = _result(QueryConfig(alpha_high_spread=1.0, alpha_spread_threshold=0.6))  # spread 0.5 < 0.6: alpha 0.5
    assert kept.alpha_applied == 0.5 and "spread rule" not in kept.q_legend()
    first = kept.selected[0]
    asd = {"a": 0.0, "b": 0.5, "c": 1.0}[first]
    assert f"foreground (ASD {asd:.2f}, pool-normalised)" in kept.selection.rationale[first]


def test_dkd_and_kd_rationales_show_raw_and_pool_normalised_kd() -> None:
    dkd = _result(QueryConfig(strategy="dkd"))
    assert "(KD 0.67 (raw 3, pool-normalised))" in dkd.selection.rationale["b"]
    assert dkd.q_legend().startswith("Q = DKD at the time of the pick")
    kd = _result(QueryConfig(strategy="kd"))
    assert kd.selection.rationale["a"] == "far from pre-training (KD 1.00 (raw 4, pool-normalised))"
    assert kd.q_legend() == ""  # no greedy Q to explain


def test_the_legend_and_colour_bar_carry_the_colours_the_figure_uses(tmp_path: Path) -> None:
    legend = class_legend({0: "background", 1: "anterior", 2: "posterior"})
    pixels = {tuple(p) for p in legend.reshape(-1, 3)}
    assert tuple(CLASS_COLOURS[0]) in pixels and tuple(CLASS_COLOURS[1]) in pixels  # a swatch per foreground class
    assert tuple(CLASS_COLOURS[2]) not in pixels  # and none for background or absent classes
    bar = colour_bar("0", "1", length=256)
    ramp = colour_map(np.arange(256, dtype=np.uint8)[:, None])[0]  # the entropy panels' colour of each value
    assert np.array_equal(bar[0, 0], ramp[0]) and np.array_equal(bar[0, -1], ramp[-1])

    fg = torch.full((12, 12, 12), 0.05)
    fg[2:7, 2:7, 2:7] = 0.9
    probs = torch.stack([1 - fg, fg * 0.6, fg * 0.4])
    slices = capture_slices("v", np.zeros((1, 12, 12, 12), np.float32), probs)
    written = write_query_figures(tmp_path, ["v"], {"v": slices}, {"v": "Q 0.50"}, {"v": "ASD"},
                                  {0: "background", 1: "anterior", 2: "posterior"})
    picture = np.asarray(Image.open(written[0]).convert("RGB"))
    found = {tuple(p) for p in picture.reshape(-1, 3)}
    assert tuple(CLASS_COLOURS[0]) in found and tuple(CLASS_COLOURS[1]) in found  # the legend is drawn
    assert tuple(ramp[255]) in found  # the colour bar reaches entropy 1 (the panels here never do)


def test_the_low_foreground_share_counts_volumes_under_a_quarter_of_the_pool_median() -> None:
    """Predicted foreground 400, 300, 200, 60, 40: median 200, a quarter is 50, so only 40 is almost empty: 1/5.
    Without predictions (an SSL-only pass) there is no share."""
    sizes = (400.0, 300.0, 200.0, 60.0, 40.0)
    pool = [CaseSummary(f"v{i}", kd=1.0, predicted_foreground_voxels=v) for i, v in enumerate(sizes)]
    config = QueryConfig(strategy="random")
    selection = make_strategy("random", config).select(pool, SelectionContext(config), 1, np.random.default_rng(0))
    result = QueryResult(selection, pool, config, 1, 0, InferenceConfig(roi_size=(8, 8, 8)))
    assert result.low_foreground_share() == pytest.approx(0.2)
    assert result.to_json()["low_foreground_share"] == pytest.approx(0.2)
    bare = [CaseSummary(f"v{i}", kd=1.0) for i in range(3)]
    assert QueryResult(selection, bare, config, 1, 0, InferenceConfig()).low_foreground_share() is None
