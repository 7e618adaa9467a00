"""Selection: greedy DKD/Q batch, top-k, coreset/BADGE/TypiClust, budgets; invariants checked with hypothesis."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assft.errors import BudgetError, UnknownNameError
from assft.query import CaseSummary, QueryConfig, SelectionContext, make_strategy, resolve_budget
from assft.query.clustering import k_center_greedy, kmeans_pp_select, typiclust_select
from assft.query.selection import greedy_diverse_top_k, min_max_normalise, top_k


def _pool(n: int, seed: int = 0, d: int = 8) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return [f"case_{i:03d}" for i in range(n)], rng.random(n), rng.normal(size=(n, d)), rng.random(n)


def _summaries(n: int, seed: int = 0) -> list[CaseSummary]:
    ids, kd, z, asd = _pool(n, seed)
    rng = np.random.default_rng(seed + 1)
    return [CaseSummary(c, kd=float(kd[i]), asd=float(asd[i]), entropy=float(rng.random()), bald=float(rng.random()),
                        predicted_foreground_voxels=int(rng.integers(0, 50)), embedding=z[i].astype(np.float32),
                        grad_embedding=rng.normal(size=6).astype(np.float32)) for i, c in enumerate(ids)]


ALL_STRATEGIES = ("assft", "dkd", "kd", "asd", "random", "fg-random", "entropy", "bald", "coreset", "badge",
                  "typiclust")


def test_greedy_returns_exactly_the_budget_without_duplicates_and_is_seeded() -> None:
    ids, kd, z, asd = _pool(40)
    for budget in (1, 7, 40):
        a = greedy_diverse_top_k(ids, kd, z, budget, np.random.default_rng(3), asd=asd)
        b = greedy_diverse_top_k(ids, kd, z, budget, np.random.default_rng(3), asd=asd)
        assert len(a.selected) == budget == len(set(a.selected)) and a.selected == b.selected
        assert sorted(a.ranking) == sorted(ids) and a.ranking[:budget] == a.selected


def test_greedy_diversity_avoids_a_duplicate_of_a_chosen_case() -> None:
    ids = ["a", "a_copy", "b", "c"]
    z = np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    kd = np.array([1.0, 1.0, 0.5, 0.4])
    result = greedy_diverse_top_k(ids, kd, z, 2, np.random.default_rng(0), reference=np.array([[0, 0.6, 0.8]]))
    assert set(result.selected) & {"a", "a_copy"} and not {"a", "a_copy"} <= set(result.selected)
    assert result.selected[1] == "b" and result.columns["Div"]["b"] == pytest.approx(0.4, abs=1e-6)
    dup = ({"a", "a_copy"} - set(result.selected)).pop()  # its Div dropped to 0 after the first pick
    assert result.columns["Div"][dup] == pytest.approx(0.0, abs=1e-6)


def test_greedy_ties_are_broken_by_the_seed_only() -> None:
    ids = [f"t{i}" for i in range(12)]
    z = np.eye(12)
    firsts = {greedy_diverse_top_k(ids, np.ones(12), z, 1, np.random.default_rng(s)).selected[0] for s in range(30)}
    assert len(firsts) > 1  # all equal: different seeds choose differently
    assert greedy_diverse_top_k(ids, np.ones(12), z, 3, np.random.default_rng(5)).selected == \
        greedy_diverse_top_k(ids[::-1], np.ones(12), z[::-1], 3, np.random.default_rng(5)).selected


def test_cold_start_q_equals_dkd_and_sum_combination() -> None:
    ids, kd, z, asd = _pool(10)
    cold = greedy_diverse_top_k(ids, kd, z, 3, np.random.default_rng(0))
    assert all(cold.columns["Q"][c] == cold.columns["DKD"][c] for c in ids)
    summed = greedy_diverse_top_k(ids, kd, z, 3, np.random.default_rng(0), asd=asd, combine="sum")
    c = summed.selected[0]
    assert summed.columns["DKD"][c] == pytest.approx((summed.columns["KD_norm"][c] + summed.columns["Div_norm"][c]) / 2)


def test_min_max_normalise() -> None:
    assert np.allclose(min_max_normalise(np.array([1.0, 3.0, 2.0])), [0.0, 1.0, 0.5])
    assert np.allclose(min_max_normalise(np.array([2.0, 2.0])), [1.0, 1.0])  # constant: no information


def _brute_force_k_center(points: np.ndarray, budget: int, first: int) -> list[int]:
    chosen = [first]
    while len(chosen) < budget:
        best, best_d = None, -1.0
        for i in range(len(points)):
            if i in chosen:
                continue
            d = min(float(np.linalg.norm(points[i] - points[j])) for j in chosen)
            if d > best_d:
                best, best_d = i, d
        chosen.append(best)
    return chosen


def _radius(points: np.ndarray, centres: list[int]) -> float:
    return max(min(float(np.linalg.norm(p - points[c])) for c in centres) for p in points)


def test_coreset_matches_brute_force_k_center_on_2d_points() -> None:
    rng = np.random.default_rng(1)
    clusters = np.array([[0, 0], [10, 0], [0, 10], [10, 10]])
    points = np.concatenate([c + rng.normal(scale=0.5, size=(5, 2)) for c in clusters])
    ids = [f"p{i:02d}" for i in range(len(points))]
    result = k_center_greedy(ids, points, 4, np.random.default_rng(0))
    picks = [ids.index(c) for c in result.selected]
    assert picks == _brute_force_k_center(points, 4, first=picks[0])
    # first pick: farthest from the mean
    assert picks[0] == int(np.argmax(np.linalg.norm(points - points.mean(0), axis=1)))
    dist = np.linalg.norm(points[:, None] - points[None], axis=-1)
    optimum = min(float(dist[:, list(c)].min(1).max()) for c in itertools.combinations(range(len(points)), 4))
    assert {p // 5 for p in picks} == {0, 1, 2, 3} and _radius(points, picks) <= 2 * optimum
    # with a labeled reference, the first pick is the farthest from it
    ref = result_ref = k_center_greedy(ids, points, 1, np.random.default_rng(0), reference=np.array([[0.0, 0.0]]))
    assert ids.index(ref.selected[0]) == int(np.argmax(np.linalg.norm(points, axis=1))) and result_ref


def test_kmeans_pp_picks_distinct_cases_even_with_duplicates() -> None:
    x = np.array([[3.0, 0], [3.0, 0], [3.0, 0], [0, 1.0]])
    result = kmeans_pp_select(["a", "b", "c", "d"], x, 4, np.random.default_rng(0))
    assert sorted(result.selected) == ["a", "b", "c", "d"]
    assert result.selected[0] in {"a", "b", "c"} and result.selected[1] == "d"  # largest first, then the far one


def test_typiclust_picks_from_distinct_clusters() -> None:
    rng = np.random.default_rng(0)
    points = np.concatenate([c + rng.normal(scale=0.1, size=(8, 2)) for c in ([0, 0], [5, 5], [0, 5])])
    ids = [f"p{i:02d}" for i in range(len(points))]
    result = typiclust_select(ids, points, 3, np.random.default_rng(0), k_neighbors=3)
    assert sorted(ids.index(c) // 8 for c in result.selected) == [0, 1, 2]
    labeled = typiclust_select(ids, points, 2, np.random.default_rng(0), reference=np.array([[0.0, 0.0]]))
    assert all(ids.index(c) // 8 != 0 for c in labeled.selected)  # the labeled cluster is covered


def test_budget_parsing_and_errors() -> None:
    assert resolve_budget(3, 10) == 3 and resolve_budget("3", 10) == 3
    assert resolve_budget("25%", 10) == 3 and resolve_budget("1%", 10) == 1 and resolve_budget("100%", 7) == 7
    with pytest.raises(BudgetError, match="budget 11 is larger than the candidate pool of 10"):
        resolve_budget(11, 10)
    for bad in (0, "0%", "150%", "ten"):
        with pytest.raises(BudgetError):
            resolve_budget(bad, 10)
    with pytest.raises(BudgetError, match="empty"):
        resolve_budget(1, 0)


def test_unknown_strategy_suggests_the_closest_name() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'coreset'"):
        make_strategy("corset")


@pytest.mark.parametrize("name", ALL_STRATEGIES)
def test_every_strategy_selects_the_budget_deterministically(name: str) -> None:
    pool = _summaries(15)
    context = SelectionContext(QueryConfig(strategy=name), labeled_ids=("x",),
                               labeled_embeddings=np.ones((1, 8), np.float32))
    strategy = make_strategy(name, context.config)
    a = strategy.select(pool, context, 4, np.random.default_rng(7))
    b = strategy.select(pool[::-1], context, 4, np.random.default_rng(7))
    assert len(a.selected) == 4 == len(set(a.selected)) and a.selected == b.selected
    assert set(a.rationale) == set(a.selected) and all(a.rationale.values())
    assert sorted(a.ranking) == sorted(s.case_id for s in pool)
    with pytest.raises(BudgetError, match="16 is larger than the candidate pool of 15"):
        strategy.select(pool, context, 16, np.random.default_rng(7))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 25), seed=st.integers(0, 1000), data=st.data(),
       name=st.sampled_from(["assft", "dkd", "coreset", "entropy", "random", "fg-random", "badge"]))
def test_selection_does_not_depend_on_pool_order(n: int, seed: int, data: st.DataObject, name: str) -> None:
    pool = _summaries(n, seed)
    for s in pool[: n // 3]:  # ties in the scores are broken by the seed, not by the position
        s.kd, s.asd, s.entropy = 0.5, 0.5, 0.5
    budget = data.draw(st.integers(1, n))
    perm = data.draw(st.permutations(range(n)))
    context = SelectionContext(QueryConfig())
    strategy = make_strategy(name)
    a = strategy.select(pool, context, budget, np.random.default_rng(seed))
    b = strategy.select([pool[i] for i in perm], context, budget, np.random.default_rng(seed))
    assert a.selected == b.selected and a.ranking == b.ranking


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 20), extra=st.integers(1, 5))
def test_budget_larger_than_the_pool_is_a_clear_error(n: int, extra: int) -> None:
    ids, kd, z, asd = _pool(n)
    with pytest.raises(BudgetError, match=f"{n + extra} is larger than the candidate pool of {n}"):
        greedy_diverse_top_k(ids, kd, z, n + extra, np.random.default_rng(0), asd=asd)
    with pytest.raises(BudgetError, match=f"of {n} volumes"):
        resolve_budget(n + extra, n)
    with pytest.raises(BudgetError):
        top_k(dict(zip(ids, kd, strict=True)), n + extra, np.random.default_rng(0))
