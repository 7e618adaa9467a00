"""Power sampling: the beta schedule, greedy as beta -> inf, uniform as beta -> 0, P ∝ score^beta at beta = 1 (fixed
seeds, so the frequencies are exact numbers), power on the greedy Q, and a clear error for selectors without a score."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from assft.errors import ConfigError
from assft.query import CaseSummary, QueryConfig, SelectionContext, make_strategy
from assft.query.power import compute_beta_schedule, compute_power_scores, resolve_power_beta
from assft.query.selection import greedy_diverse_top_k, power_top_k, top_k

SCORED = ("entropy", "bald", "kd", "asd", "dkd", "assft", "clasp-pe")


def _pool(n: int, seed: int = 0) -> list[CaseSummary]:
    rng = np.random.default_rng(seed)
    return [CaseSummary(f"case_{i:02d}", kd=float(rng.random()), asd=float(rng.random()),
                        entropy=float(rng.random()), bald=float(rng.random()), predicted_foreground_voxels=5,
                        embedding=rng.normal(size=6).astype(np.float32), class_pe=rng.random(3),
                        grad_embedding=rng.normal(size=4).astype(np.float32)) for i in range(n)]


def test_beta_schedule_rises_exponentially_from_1_to_100() -> None:
    assert [compute_beta_schedule(t, 3) for t in (1, 2, 3)] == pytest.approx([1.0, 10.0, 100.0])
    assert [compute_beta_schedule(t, 5) for t in (1, 3, 5)] == pytest.approx([1.0, 10.0, 100.0])
    assert compute_beta_schedule(2, 5) == pytest.approx(100 ** 0.25)
    assert compute_beta_schedule(None, None) == 1.0 and compute_beta_schedule(1, 1) == 1.0  # documented fallback
    assert compute_beta_schedule(9, 3) == pytest.approx(100.0)  # past the last round: stays at the end
    config = QueryConfig(power={"beta_start": 2.0, "beta_end": 8.0})
    assert resolve_power_beta(config, 2, 3) == pytest.approx(4.0)
    assert resolve_power_beta(QueryConfig(power={"beta": 3.5}), 2, 3) == 3.5  # fixed beta ignores the round


def test_power_options_are_validated() -> None:
    for bad in ({"power": {"beta": 0.0}}, {"power": {"beta": "sched"}}, {"power": {"eps": 0.0}},
                {"sampling": "gumbel"}, {"kd": {"clip_quantile": 1.5}}, {"kd": {"guard": -1.0}},
                {"clasp": {"class_fraction": 1.2}}, {"clasp": {"box_size": (0, 4, 4)}},
                {"cold_start_method": "random"}):
        with pytest.raises(ValidationError):
            QueryConfig(**bad)


def test_power_scores_are_log_scores_plus_scaled_gumbel_noise() -> None:
    scores = np.array([0.5, 0.0, 2.0])
    noise = np.random.default_rng(3).gumbel(0.0, 1.0, size=3)
    out = compute_power_scores(scores, 4.0, np.random.default_rng(3), eps=1e-6)
    assert out == pytest.approx(np.log([0.5, 1e-6, 2.0]) + noise / 4.0)  # a 0 score is clipped at eps


def test_power_equals_greedy_top_k_as_beta_goes_to_infinity() -> None:
    rng = np.random.default_rng(0)
    scores = {f"c{i}": float(v) for i, v in enumerate(rng.random(30) + 0.01)}
    for seed in range(10):
        greedy = top_k(scores, 8, np.random.default_rng(seed))
        power = power_top_k(scores, 8, np.random.default_rng(seed), beta=1e9)
        assert power.selected == greedy.selected and power.ranking == greedy.ranking
    ids, kd, z, asd = list(scores), rng.random(30), rng.normal(size=(30, 4)), rng.random(30)
    plain = greedy_diverse_top_k(ids, kd, z, 6, np.random.default_rng(1), asd=asd)
    noised = greedy_diverse_top_k(ids, kd, z, 6, np.random.default_rng(1), asd=asd, power_beta=1e9)
    assert noised.selected == plain.selected


def test_power_is_close_to_uniform_as_beta_goes_to_zero() -> None:
    scores = {"a": 0.01, "b": 0.1, "c": 1.0, "d": 10.0}
    counts = dict.fromkeys(scores, 0)
    for seed in range(4000):
        counts[power_top_k(scores, 1, np.random.default_rng(seed), beta=1e-6).selected[0]] += 1
    assert all(abs(count / 4000 - 0.25) < 0.03 for count in counts.values()), counts


def test_power_at_beta_one_samples_in_proportion_to_the_score() -> None:
    scores = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}
    counts = dict.fromkeys(scores, 0)
    for seed in range(4000):
        counts[power_top_k(scores, 1, np.random.default_rng(seed), beta=1.0).selected[0]] += 1
    assert all(abs(counts[c] / 4000 - scores[c] / 10) < 0.03 for c in scores), counts


@pytest.mark.parametrize("name", SCORED)
def test_every_score_based_strategy_accepts_power_sampling(name: str) -> None:
    pool = _pool(12)
    config = QueryConfig(strategy=name, sampling="power")
    context = SelectionContext(config, round_index=2, total_rounds=3)
    strategy = make_strategy(name, config)
    a = strategy.select(pool, context, 4, np.random.default_rng(1))
    assert a.selected == strategy.select(pool[::-1], context, 4, np.random.default_rng(1)).selected
    assert len(set(a.selected)) == 4 and a.notes["power_beta"] == pytest.approx(10.0)
    assert all("β=10" in a.rationale[c] for c in a.selected)
    infinite = make_strategy(name, QueryConfig(strategy=name, sampling="power", power={"beta": 1e12}))
    greedy = make_strategy(name, QueryConfig(strategy=name, sampling="greedy"))
    assert infinite.select(pool, context, 4, np.random.default_rng(1)).selected == \
        greedy.select(pool, context, 4, np.random.default_rng(1)).selected


@pytest.mark.parametrize("name", ("random", "fg-random", "coreset", "badge", "typiclust"))
def test_power_sampling_on_a_selector_without_a_score_is_a_clear_error(name: str) -> None:
    with pytest.raises(ConfigError, match=f"strategy '{name}' does not rank by a score"):
        make_strategy(name, QueryConfig(strategy=name, sampling="power"))
    make_strategy(name, QueryConfig(strategy=name, sampling="auto"))  # auto and greedy are fine


def test_sampling_auto_is_power_for_clasp_pe_only() -> None:
    assert make_strategy("clasp-pe").sampling == "power"
    assert make_strategy("clasp-pe", QueryConfig(sampling="greedy")).sampling == "greedy"
    assert all(make_strategy(n).sampling == "greedy" for n in ("assft", "entropy", "dkd", "coreset"))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 20), seed=st.integers(0, 1000), data=st.data(), name=st.sampled_from(SCORED))
def test_power_selection_does_not_depend_on_pool_order(n: int, seed: int, data: st.DataObject, name: str) -> None:
    pool = _pool(n, seed)
    budget = data.draw(st.integers(1, n))
    perm = data.draw(st.permutations(range(n)))
    config = QueryConfig(strategy=name, sampling="power", power={"beta": data.draw(st.sampled_from([0.5, 1.0, 30.0]))})
    context = SelectionContext(config)
    strategy = make_strategy(name, config)
    a = strategy.select(pool, context, budget, np.random.default_rng(seed))
    b = strategy.select([pool[i] for i in perm], context, budget, np.random.default_rng(seed))
    assert a.selected == b.selected and len(set(a.selected)) == budget
