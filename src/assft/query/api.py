"""The query's two public steps and their composition.

`score_pool` is the one streaming pass: the model side (θ, θ0, KD's source, the θ0 moment cache) turns the pool into
per-volume summaries, plus what a strategy may know about the labeled set. `Strategy.select(summaries, context,
budget, rng)` is the ranking side: pure, no files, no models. The CLI, the campaign and the MONAI Label app call
these two; each caller resolves its budget once and writes its own files (`save_query_result`). `run_query` composes
them for a one-off query.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assft.config import InferenceConfig
from assft.data.cases import Case, DatasetSpec
from assft.data.layout import load_dataset
from assft.errors import ConfigError, DataError
from assft.models.checkpoint import resolve_recorded_theta0
from assft.models.source_stats import KnowledgeSource, resolve_knowledge_source
from assft.query.config import PROB_NEEDS, Need, QueryConfig, resolve_budget
from assft.query.knowledge import pool_knowledge_gap
from assft.query.moment_cache import moment_cache_key, open_moment_cache
from assft.query.result import QueryResult, save_query_result
from assft.query.scorer import QueryModel, load_query_model, score_cases
from assft.query.strategies import Selection, SelectionContext, make_strategy
from assft.query.summaries import CaseSummary
from assft.utils.distributed import gather_in_order, join_process_group, merge_across_ranks, shard
from assft.utils.progress import progress
from assft.utils.seeding import make_rng
from assft.utils.timing import add_time, timed, timing_record

__all__ = ["QueryResult", "ScoredPool", "check_rounds", "load_models", "run_query", "save_query_result",
           "score_pool"]

PoolSource = str | Path | DatasetSpec | Sequence[Case]


@dataclass(frozen=True)
class QuerySets:
    """Who is scored and who is a reference: candidates (pool minus labeled) and the labeled cases by id."""

    pool: list[Case]
    candidates: list[Case]
    reference: dict[str, Case]  # labeled cases (from the pool's labeled ids and the labeled set), by id

    @property
    def reference_ids(self) -> list[str]:
        """Sorted ids of the labeled reference cases."""
        return sorted(self.reference)


@dataclass(frozen=True)
class KDSource:
    """Where KD comes from: θ0's BatchNorm running statistics, a fingerprint, or a source-free KD source."""

    stats: dict | None  # layer -> (mean, var) for the Gaussian-KL sources; None otherwise
    kind: str | None  # "running_stats" | "fingerprint:<origin>" | "intensity" | "pool" | "consistency" | None
    model: QueryModel | None  # the model whose norm layers are compared (θ0, or θ when θ is θ0)
    source: KnowledgeSource | None = None  # the resolved source (None when no strategy need calls for KD)


@dataclass
class ScoredPool:
    """What one pass over the pool gives the ranking side: the candidates' summaries (pool order) and the labeled set.

    `timings` holds the pass's seconds (pool_scoring_s, load_s, pass_current_s, pass_pretrained_s, ...).
    """

    summaries: list[CaseSummary]
    reference_ids: list[str]
    reference_embeddings: np.ndarray | None  # (n_labeled, E) in `reference_ids` order, when a need asked for them
    has_head: bool
    class_names: dict[int, str]
    inference: InferenceConfig
    provenance: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    def context(self, config: QueryConfig, round_index: int | None = None,
                total_rounds: int | None = None) -> SelectionContext:
        """The SelectionContext a strategy selects in: these options, θ's head, the labeled set and the round."""
        check_rounds(round_index, total_rounds)
        return SelectionContext(config, self.has_head, tuple(self.reference_ids), self.reference_embeddings,
                                round_index=round_index, total_rounds=total_rounds, class_names=dict(self.class_names))

    def result(self, selection: Selection, config: QueryConfig, budget: int, seed: int, *,
               round_index: int | None = None, total_rounds: int | None = None) -> QueryResult:
        """The QueryResult of `selection` over this pool (what `save_query_result` writes)."""
        provenance = {**self.provenance, "budget_requested": config.budget}
        return QueryResult(selection, self.summaries, config, budget, seed, self.inference, list(self.reference_ids),
                           self.timings, provenance, round_index, total_rounds, dict(self.class_names))


def score_pool(
    model: str | Path | QueryModel,
    pool: PoolSource,
    needs: Iterable[Need],
    *,
    config: QueryConfig | None = None,
    pretrained: str | Path | QueryModel | None = None,
    labeled: PoolSource | None = None,
    labeled_ids: Iterable[str] = (),
    seed: int = 0,
    inference: InferenceConfig | None = None,
    fingerprint: str | Path | dict | None = None,
    theta0_cache: str | Path | None = None,
    figures: bool = False,
) -> ScoredPool:
    """Score the pool's candidates (pool minus the labeled cases) in one streaming pass.

    Args:
        model: the current model θ (checkpoint path or loaded QueryModel).
        pool: the unlabeled pool (dataset folder, DatasetSpec or cases).
        needs: what to compute (`Strategy.resolve_needs(θ.has_head)`, or the union over several strategies);
            probability needs are dropped for an SSL-only model.
        config: the pass's options (ASD threshold and reduction, MC samples, embedding and KD source).
        pretrained: θ0 for KD when it differs from θ (default: θ itself).
        labeled: an already labeled set (its embeddings feed Div, coreset and TypiClust).
        labeled_ids: ids of pool cases that are already labeled (not scored; their embeddings are used).
        seed: seeds BALD's MC-dropout masks.
        inference: sliding-window settings (default: roi = the checkpoint's training patch).
        fingerprint: source fingerprint file or mapping for KD (networks without BatchNorm running statistics).
        theta0_cache: a JSON file of θ0's norm moments per volume (`assft.query.moment_cache`), read to skip θ0's
            pass for volumes seen before and updated; campaigns keep one, so KD costs one θ0 pass per volume.
        figures: also cut each volume's figure slices (three planes through the region that drove it) in the pass.

    Progress goes to the active reporter (`assft.utils.progress.reporting`). Under `torchrun` (WORLD_SIZE > 1)
    each process scores every world-th candidate and the summaries are gathered back into pool order on every rank;
    rank 0 alone writes the θ0 moment cache. The labeled set's embeddings are computed on every rank (a few volumes).

    Raises:
        ConfigError: BALD without dropout. CheckpointError: no source statistics for KD. DataError: bad ids.
    """
    start = time.perf_counter()
    config = config or QueryConfig()
    current, theta0 = load_models(model, pretrained)
    needs = frozenset(Need(n) for n in needs)
    if not current.has_head:
        needs = needs - PROB_NEEDS
    if figures and current.has_head:  # the figure slices come from θ's probabilities: one more reduction
        needs = needs | {Need.PROBS}
    inference = inference or current.checkpoint.inference_config()
    sets = resolve_sets(pool, labeled, labeled_ids)
    kd = resolve_kd_source(needs, current, theta0, config, fingerprint)
    needs = kd_needs(needs, kd, current.has_head)
    with timing_record() as timings:  # the pass records its seconds here (`assft.utils.timing`)
        summaries = _score_candidates(sets.candidates, current, theta0, kd, needs, config, inference, theta0_cache,
                                      figures and current.has_head, seed)
        pool_knowledge_gap(summaries, kd.source, config.kd.eps)  # kd.source "pool": KD relative to these candidates
        add_time("pool_scoring_s", time.perf_counter() - start)
        reference = _reference_embeddings(sets, current, theta0, needs, config, inference)
    return ScoredPool(summaries, sets.reference_ids, reference, current.has_head, dict(current.checkpoint.labels),
                      inference, _provenance(current, theta0, kd, needs, sets, pretrained is not None), timings)


def run_query(
    model: str | Path | QueryModel,
    pool: PoolSource,
    config: QueryConfig | None = None,
    *,
    pretrained: str | Path | QueryModel | None = None,
    labeled: PoolSource | None = None,
    labeled_ids: Iterable[str] = (),
    seed: int = 0,
    inference: InferenceConfig | None = None,
    fingerprint: str | Path | dict | None = None,
    theta0_cache: str | Path | None = None,
    round_index: int | None = None,
    total_rounds: int | None = None,
    figures: bool = False,
) -> QueryResult:
    """A one-off query: `score_pool`, then `config.strategy` selects `config.budget` volumes (writes nothing).

    The arguments are `score_pool`'s, plus the round (1-based, for scheduled power sampling). Write the result with
    `save_query_result` and, with `figures`, `write_result_figures`. Every rank under `torchrun` selects the same
    picks (the same summaries and seed).

    Raises:
        BudgetError: the budget exceeds the candidate pool. ConfigError: a probability-based strategy on an
        SSL-only model, BALD without dropout, a round outside 1..total_rounds. CheckpointError: no source statistics
        for KD. DataError: bad ids.
    """
    start = time.perf_counter()
    config = config or QueryConfig()
    check_rounds(round_index, total_rounds)
    strategy = make_strategy(config.strategy, config)
    current = model if isinstance(model, QueryModel) else load_query_model(model)
    scored = score_pool(current, pool, strategy.resolve_needs(current.has_head), config=config,
                        pretrained=pretrained, labeled=labeled, labeled_ids=labeled_ids, seed=seed,
                        inference=inference, fingerprint=fingerprint, theta0_cache=theta0_cache, figures=figures)
    budget = resolve_budget(config.budget, len(scored.summaries))
    t0 = time.perf_counter()
    selection = strategy.select(scored.summaries, scored.context(config, round_index, total_rounds), budget,
                                make_rng(seed, "query", config.strategy))
    scored.timings["selection_s"] = time.perf_counter() - t0
    scored.timings["total_s"] = time.perf_counter() - start
    return scored.result(selection, config, budget, seed, round_index=round_index, total_rounds=total_rounds)


def load_models(model: str | Path | QueryModel,
                 pretrained: str | Path | QueryModel | None) -> tuple[QueryModel, QueryModel | None]:
    """(θ, θ0); θ0 is None when it is the same file as θ.

    Without `pretrained`, θ0 is the one θ's provenance names (an adapted or fine-tuned checkpoint records the
    pre-trained model it came from); a checkpoint that names none is its own θ0.
    """
    current = model if isinstance(model, QueryModel) else load_query_model(model)
    if pretrained is None and current.path is not None:
        pretrained = resolve_recorded_theta0(current.checkpoint, current.path)
    if pretrained is None:
        return current, None
    if pretrained is current:
        return current, None
    theta0 = pretrained if isinstance(pretrained, QueryModel) else load_query_model(pretrained)
    if theta0.path is not None and current.path is not None and theta0.path.resolve() == current.path.resolve():
        return current, None
    return current, theta0


def resolve_sets(pool: str | Path | DatasetSpec | Sequence[Case],
                 labeled: str | Path | DatasetSpec | Sequence[Case] | None,
                 labeled_ids: Iterable[str]) -> QuerySets:
    """The candidates (pool minus every labeled case) and the labeled reference cases; DataError for unknown ids."""
    pool_cases = _cases(pool)
    pool_by_id = {c.case_id: c for c in pool_cases}
    labeled_ids = list(dict.fromkeys(labeled_ids))
    unknown = [c for c in labeled_ids if c not in pool_by_id]
    if unknown:
        raise DataError(f"{len(unknown)} labeled ids are not in the pool (e.g. {', '.join(unknown[:3])}).",
                        fix="list ids of pool cases (file stems), or pass the labeled volumes with --data")
    reference = {cid: pool_by_id[cid] for cid in labeled_ids}
    reference.update({c.case_id: c for c in _cases(labeled)})
    candidates = [c for c in pool_cases if c.case_id not in reference]
    return QuerySets(pool_cases, candidates, reference)


def resolve_kd_source(needs: frozenset[Need], current: QueryModel, theta0: QueryModel | None, config: QueryConfig,
                      fingerprint: str | Path | dict | None) -> KDSource:
    """KD's source statistics from θ0 (or θ when θ is θ0), when a need calls for them."""
    if Need.NORM_STATS not in needs:
        return KDSource(None, None, None)
    base = theta0 or current
    source = resolve_knowledge_source(base.model, base.checkpoint, config.kd.source, fingerprint, base.path,
                                      has_head=base.has_head)
    return KDSource(source.stats, source.kind, base, source)


def kd_needs(needs: frozenset[Need], kd: KDSource, has_head: bool) -> frozenset[Need]:
    """The pass's needs for KD's source: θ0's norm moments (running statistics, fingerprint, pool), the image's
    intensities over θ's foreground (intensity), or θ0's perturbed pass (consistency)."""
    if kd.source is None or kd.source.name in ("running_stats", "fingerprint", "pool"):
        return needs
    if kd.source.name == "intensity":
        return (needs - {Need.NORM_STATS}) | {Need.INTENSITY} | ({Need.PROBS} if has_head else frozenset())
    return (needs - {Need.NORM_STATS}) | {Need.CONSISTENCY}


def _score_candidates(candidates: list[Case], current: QueryModel, theta0: QueryModel | None, kd: KDSource,
                      needs: frozenset[Need], config: QueryConfig, inference: InferenceConfig,
                      theta0_cache: str | Path | None, figures: bool, seed: int) -> list[CaseSummary]:
    """One streaming pass over the candidates; θ0's moments come from (and extend) the on-disk cache; `seed`
    seeds BALD's MC-dropout masks."""
    if not needs:
        return [CaseSummary(c.case_id) for c in candidates]
    key = None
    if theta0_cache is not None and kd.source is not None and kd.source.layers and kd.model is not None \
            and kd.model.path is not None:
        key = moment_cache_key(kd.model.path, kd.model.checkpoint.preprocess.model_dump(mode="json"), inference)
    ranks = join_process_group()  # under torchrun each rank scores every world-th volume; else rank 0 of 1
    mine = shard(candidates, ranks)
    with open_moment_cache(theta0_cache, key, write=ranks.is_main) as moments:
        extra: dict[str, Any] = {"theta0_moments": moments} if moments is not None else {}
        summaries = score_cases(progress(mine, "Scoring pool", total=len(mine),
                                         enabled=None if ranks.is_main else False),
                                current, needs, config, inference, pretrained=theta0,
                                source_stats=kd.stats, knowledge=kd.source, figures=figures, seed=seed, **extra)
        if moments is not None and ranks.distributed:
            moments.update(merge_across_ranks(moments, ranks))  # rank 0 writes every rank's new θ0 moments
    return gather_in_order(summaries, ranks)


def _reference_embeddings(sets: QuerySets, current: QueryModel, theta0: QueryModel | None, needs: frozenset[Need],
                          config: QueryConfig, inference: InferenceConfig) -> np.ndarray | None:
    """(n_labeled, E) embeddings of the labeled cases for Div, coreset and TypiClust (None when not needed); the
    seconds are recorded as labeled_embedding_s, the pass's own keys (load_s, ...) stay the pool's."""
    if Need.EMBEDDING not in needs or not sets.reference:
        return None
    with timed("labeled_embedding_s"), timing_record():
        summaries = score_cases([sets.reference[c] for c in sets.reference_ids], current, {Need.EMBEDDING}, config,
                                inference, pretrained=theta0)
    return np.stack([s.embedding for s in summaries])  # type: ignore[misc]


def _provenance(current: QueryModel, theta0: QueryModel | None, kd: KDSource, needs: frozenset[Need],
                sets: QuerySets, given: bool) -> dict[str, Any]:
    # where θ0 came from: θ itself, the caller (--pretrained), or θ's recorded provenance
    theta0_origin = "model" if theta0 is None else "pretrained" if given else "provenance"
    return {
        "model": str(current.path) if current.path else None,
        "model_kind": current.checkpoint.kind,
        "model_config": current.checkpoint.model_config.model_dump(mode="json"),
        "pretrained": str(theta0.path) if theta0 is not None and theta0.path else None,
        "theta_equals_theta0": theta0 is None,
        "theta0_from": theta0_origin,
        "kd_source": kd.kind,
        "kd_source_reason": kd.source.reason if kd.source is not None else None,
        "network_norm": kd.source.network if kd.source is not None else None,
        "needs": sorted(n.value for n in needs),
        "n_candidates": len(sets.candidates),
        "n_reference": len(sets.reference),
    }


def _cases(source: str | Path | DatasetSpec | Sequence[Case] | None) -> list[Case]:
    if source is None:
        return []
    if isinstance(source, str | Path):
        return list(load_dataset(source).cases)
    if isinstance(source, DatasetSpec):
        return list(source.cases)
    return list(source)


def check_rounds(round_index: int | None, total_rounds: int | None) -> None:
    """round_index in 1..total_rounds (either may be None); a ConfigError otherwise."""
    if total_rounds is not None and total_rounds < 1:
        raise ConfigError(f"total_rounds must be at least 1, got {total_rounds}.", fix="pass the campaign's rounds")
    if round_index is not None and (round_index < 1 or (total_rounds is not None and round_index > total_rounds)):
        raise ConfigError(f"round_index {round_index} is outside 1..{total_rounds or 'total_rounds'}.",
                          fix="pass the 1-based index of the current round")
