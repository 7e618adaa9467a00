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
from assft.query.selection import Ranked
from assft.query.summaries import CaseSummary
from assft.registry import Registry

HEADLESS_STRATEGIES = "assft (cold start: Q = DKD), dkd, kd, coreset, typiclust, random"


@dataclass
class SelectionContext:
    """What a strategy may know besides the pool: options, whether θ has a head, the labeled set's embeddings."""

    config: QueryConfig
    has_head: bool = True
    labeled_ids: tuple[str, ...] = ()
    labeled_embeddings: np.ndarray | None = None  # (m, d), rows in sorted labeled-id order


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
    """Base class: subclasses set `name`, `requires` and implement `select`."""

    name: ClassVar[str] = ""
    requires: ClassVar[frozenset[Need]] = frozenset()

    def __init__(self, config: QueryConfig | None = None) -> None:
        self.config = config or QueryConfig()

    def resolve_needs(self, has_head: bool) -> frozenset[Need]:
        """What the scorer must compute for this strategy; a probability need on an SSL-only model is an error."""
        if not has_head and self.requires & PROB_NEEDS:
            raise ConfigError(f"strategy {self.name!r} needs class probabilities, but the model is SSL-only "
                              "(no segmentation head for the target classes).",
                              fix=f"use a strategy that works without a head ({HEADLESS_STRATEGIES}), or fine-tune "
                                  "a head on the first labels")
        return self.requires

    def select(self, pool: Sequence[CaseSummary], context: SelectionContext, budget: int,
               rng: np.random.Generator) -> Selection:
        """Pick `budget` case ids from `pool` (labeled cases are already excluded)."""
        raise NotImplementedError

    def finish(self, ranked: Ranked, explain: Callable[[str], str], **notes: object) -> Selection:
        """Wrap a selector's Ranked output with one rationale line per pick."""
        return Selection(self.name, ranked.selected, ranked.ranking, ranked.columns,
                         {case_id: explain(case_id) for case_id in ranked.selected}, dict(notes))


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


def rank_of(ranked: Ranked) -> dict[str, int]:
    """case_id -> 1-based rank."""
    return {case_id: i + 1 for i, case_id in enumerate(ranked.ranking)}
