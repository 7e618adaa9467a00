"""The Strategy contract: a small class per strategy, registered by name, declaring what it needs from the pass.

A strategy gets `(summaries, context, budget, rng)` and returns a `Selection`; it never reads files or runs models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from assft.errors import ConfigError
from assft.query.config import PROB_NEEDS, Need, QueryConfig
from assft.query.power import resolve_power_beta
from assft.query.selection import Ranked, power_top_k, top_k
from assft.query.summaries import CaseSummary
from assft.registry import Registry



@dataclass
class SelectionContext:
    """What a strategy may know besides the pool: options, whether θ has a head, the labeled set's embeddings, the
    campaign round (1-based; None for a one-off query) and the class names of θ's labels."""

    config: QueryConfig
    has_head: bool = True
    labeled_ids: tuple[str, ...] = ()
    labeled_embeddings: np.ndarray | None = None  # (m, d), rows in sorted labeled-id order
    round_index: int | None = None  # 1..total_rounds in a campaign
    total_rounds: int | None = None
    class_names: dict[int, str] = field(default_factory=dict)  # label value -> name, e.g. {1: "anterior"}


@dataclass
class Selection:
    """A strategy's answer: picks in order, every candidate ranked, per-case columns and one rationale per pick."""

    strategy: str
    selected: list[str]
    ranking: list[str]
    columns: dict[str, dict[str, float]] = field(default_factory=dict)
    rationale: dict[str, str] = field(default_factory=dict)
    notes: dict[str, object] = field(default_factory=dict)  # e.g. {"cold_start": True}


class Strategy:
    """Base class: subclasses set `name`, `requires` and implement `select`.

    `score_based` strategies rank by a positive per-case score and accept `sampling: power`; `default_sampling`
    is what `sampling: auto` means for the strategy.
    """

    name: ClassVar[str] = ""
    requires: ClassVar[frozenset[Need]] = frozenset()
    score_based: ClassVar[bool] = False
    default_sampling: ClassVar[str] = "greedy"

    def __init__(self, config: QueryConfig | None = None) -> None:
        self.config = config or QueryConfig()
        if self.config.sampling == "power" and not self.score_based:
            scored = ", ".join(n for n in STRATEGIES.names() if STRATEGIES.get(n).score_based)
            raise ConfigError(f"strategy {self.name!r} does not rank by a score, so 'sampling: power' does not "
                              "apply to it.", fix=f"use sampling 'greedy' (or 'auto'), or a score-based strategy "
                                                  f"({scored})")

    @property
    def sampling(self) -> str:
        """'greedy' or 'power': the configured sampling, with 'auto' resolved to the strategy's own."""
        return self.default_sampling if self.config.sampling == "auto" else self.config.sampling

    def power_beta(self, context: SelectionContext) -> float | None:
        """This round's beta under power sampling (fixed or scheduled by the context's round); None when greedy."""
        if self.sampling != "power":
            return None
        return resolve_power_beta(self.config, context.round_index, context.total_rounds)

    def rank_scores(self, scores: dict[str, float], budget: int, rng: np.random.Generator,
                    beta: float | None) -> Ranked:
        """Top-k of `scores`, or power sampling P ∝ score^beta when `beta` is given."""
        if beta is None:
            return top_k(scores, budget, rng)
        return power_top_k(scores, budget, rng, beta, self.config.power.eps)

    def resolve_needs_without_check(self, has_head: bool) -> frozenset[Need]:
        """What the scorer must compute for this strategy given the model (subclasses adapt it, e.g. a cold start)."""
        return self.requires

    def resolve_needs(self, has_head: bool) -> frozenset[Need]:
        """What the scorer must compute for this strategy; a probability need on an SSL-only model is an error."""
        needs = self.resolve_needs_without_check(has_head)
        if not has_head and needs & PROB_NEEDS:
            raise ConfigError(f"strategy {self.name!r} needs class probabilities, but the model is SSL-only "
                              "(no segmentation head for the target classes).",
                              fix=f"use a strategy that works without a head ({', '.join(headless_strategies())}), "
                                  "or fine-tune a head on the first labels")
        return needs

    def select(self, pool: Sequence[CaseSummary], context: SelectionContext, budget: int,
               rng: np.random.Generator) -> Selection:
        """Pick `budget` case ids from `pool` (labeled cases are already excluded)."""
        raise NotImplementedError

    def finish(self, ranked: Ranked, explain: Callable[[str], str], **notes: object) -> Selection:
        """Wrap a selector's Ranked output with one rationale line per pick."""
        return Selection(self.name, ranked.selected, ranked.ranking, ranked.columns,
                         {case_id: explain(case_id) for case_id in ranked.selected}, dict(notes))


class ScoreStrategy(Strategy):
    """A strategy that ranks by one per-volume score of the pass: subclasses set `score_field` and `explain`."""

    score_based = True
    score_field: ClassVar[str] = ""  # the CaseSummary field ranked, highest first

    def explain(self, score: float) -> str:
        """The rationale of a pick with this score (the power-sampling note is added after it)."""
        raise NotImplementedError

    def select(self, pool: Sequence[CaseSummary], context: SelectionContext, budget: int,
               rng: np.random.Generator) -> Selection:
        """The `budget` highest scores (or a power draw P ∝ score^β)."""
        scores = field_scores(pool, self.score_field)
        beta = self.power_beta(context)
        ranked = self.rank_scores(scores, budget, rng, beta)
        return self.finish(ranked, lambda c: f"{self.explain(scores[c])}{power_note(beta)}",
                           **sampling_notes(beta, context))


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


def register_strategy(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Class decorator: set `cls.name` and register it (a duplicate name raises at import)."""

    def decorator(cls: type[Strategy]) -> type[Strategy]:
        cls.name = name
        return STRATEGIES.register(name)(cls)

    return decorator


def make_strategy(name: str, config: QueryConfig | None = None) -> Strategy:
    """Instantiate the registered strategy `name` (UnknownNameError with did-you-mean otherwise)."""
    return STRATEGIES.get(name)(config)


def power_note(beta: float | None) -> str:
    """The rationale's suffix for a power-sampled pick, e.g. ', power-sampled (β=3.16)'."""
    return "" if beta is None else f", power-sampled (β={beta:.3g})"


def sampling_notes(beta: float | None, context: SelectionContext) -> dict[str, object]:
    """Notes recording how a selection sampled (written to selection.json)."""
    if beta is None:
        return {}
    return {"sampling": "power", "power_beta": beta, "round_index": context.round_index,
            "total_rounds": context.total_rounds}


def field_scores(pool: Sequence[CaseSummary], name: str) -> dict[str, float]:
    """case_id -> summary field `name`; a missing value is an error naming the case."""
    out = {}
    for summary in pool:
        value = getattr(summary, name)
        if value is None:
            raise ConfigError(f"case {summary.case_id} has no {name!r} score (the pass did not compute it).",
                              fix="score the pool with the needs of this strategy (see Strategy.requires)")
        out[summary.case_id] = float(value)
    return out


def stack_field(pool: Sequence[CaseSummary], name: str) -> np.ndarray:
    """Stack a vector field (embedding, grad_embedding) of every summary -> (n, d)."""
    rows = []
    for summary in pool:
        value = getattr(summary, name)
        if value is None:
            raise ConfigError(f"case {summary.case_id} has no {name!r} (the pass did not compute it).",
                              fix="score the pool with the needs of this strategy (see Strategy.requires)")
        rows.append(np.asarray(value, dtype=np.float32).reshape(-1))
    return np.stack(rows) if rows else np.zeros((0, 0), np.float32)


def headless_strategies() -> list[str]:
    """Registered strategies that run on an SSL-only model: no probability need once a head is missing."""
    return [name for name in STRATEGIES.names()
            if not STRATEGIES.get(name)().resolve_needs_without_check(has_head=False) & PROB_NEEDS]
