"""Outlier-aware knowledge gap: pool-level adjustments of KD before it enters DKD/Q (strategies assft, dkd, kd), and
the pool-level KD source ("pool": atypicality of θ0's norm-layer moments within the pool).

The largest KD can be an outlier that teaches the model little about the typical target volume. Three options, all
off by default (plain KD): weight KD by the volume's typicality in the pool's embedding space (TypiClust's density),
clip KD at a pool quantile, and a guard that replaces KD by typicality when the pool's KD spread is too small for KD
to rank anything. All functions are pure and work on arrays in the caller's (canonical case_id) order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from assft.errors import ConfigError
from assft.metrics.knowledge_gap import compute_pool_outlierness
from assft.models.source_stats import KnowledgeSource
from assft.query.clustering import compute_typicality
from assft.query.config import QueryConfig
from assft.query.summaries import CaseSummary


def compute_kd_spread(kd: np.ndarray) -> float:
    """Robust coefficient of variation of KD over the pool: (Q75 - Q25) / median; kd (n,) >= 0 -> float >= 0.

    Scale-free, so one guard threshold works for any network, and insensitive to the few outliers the guard is
    about. A zero median with a non-zero IQR gives inf; a constant pool gives 0.
    """
    values = np.asarray(kd, dtype=np.float64)
    if values.size == 0:
        return 0.0
    q25, median, q75 = np.quantile(values, [0.25, 0.5, 0.75])
    iqr = float(q75 - q25)
    if iqr <= 0.0:
        return 0.0
    return iqr / float(median) if median > 0 else float("inf")


def pool_knowledge_gap(summaries: Sequence[CaseSummary], source: KnowledgeSource | None, eps: float = 1e-5) -> None:
    """kd.source "pool": set each summary's KD to its norm-moment outlierness within these summaries (the whole
    candidate pool, in any order) and drop the moments; any other source: nothing to do."""
    if source is None or source.name != "pool":
        return
    missing = [s.case_id for s in summaries if s.norm_moments is None]
    if missing:
        raise RuntimeError(f"kd.source 'pool' but no norm moments for {missing[:3]} (was Need.NORM_STATS scored?)")
    for summary, kd in zip(summaries, compute_pool_outlierness([s.norm_moments for s in summaries], eps), strict=True):
        summary.kd, summary.norm_moments = float(kd), None


def compute_pool_typicality(embeddings: np.ndarray, k: int) -> np.ndarray:
    """Typicality (1 / mean distance to the k nearest pool neighbours, as TypiClust) divided by its pool maximum:
    embeddings (n, d) -> (n,) in (0, 1]; the densest volume gets 1 (all ones for a pool of one)."""
    typicality = compute_typicality(np.asarray(embeddings, dtype=np.float64), k)
    top = float(typicality.max()) if typicality.size else 0.0
    return typicality / top if top > 0 else np.ones(len(typicality))


@dataclass
class AdjustedKD:
    """What the selector uses in KD's place, and how it was obtained (for columns, rationale and notes)."""

    values: np.ndarray  # (n,) KD after clipping/weighting, or the typicality when the guard fired
    label: str  # "KD", or "Typ" when typicality replaced KD
    typicality: np.ndarray | None = None  # (n,) pool typicality in (0, 1] when computed
    notes: dict[str, object] = field(default_factory=dict)


def adjust_kd(kd: np.ndarray, embeddings: np.ndarray | None, config: QueryConfig) -> AdjustedKD:
    """Apply `kd.guard`, `kd.clip_quantile` and `kd.weighting` to a pool's KD (n,); embeddings (n, d) are needed
    for typicality (weighting or guard). Notes always include the pool's KD spread, so a guard can be calibrated."""
    kd = np.asarray(kd, dtype=np.float64)
    spread = compute_kd_spread(kd)
    notes: dict[str, object] = {"kd_spread": spread}
    needs_typicality = config.kd.weighting == "typicality" or config.kd.guard is not None
    typicality = None
    if needs_typicality:
        if embeddings is None:
            raise ConfigError("kd.weighting 'typicality' and kd.guard need the pool's embeddings.",
                              fix="score the pool with Need.EMBEDDING (the strategy's resolve_needs adds it)")
        typicality = compute_pool_typicality(embeddings, config.typiclust_neighbors)
    if config.kd.guard is not None:
        fired = spread < config.kd.guard
        notes["kd_guard"] = {"threshold": config.kd.guard, "fired": bool(fired)}
        if fired:  # KD barely varies over this pool: rank by typicality instead (no clipping or weighting)
            return AdjustedKD(typicality, "Typ", typicality, notes)  # type: ignore[arg-type]
    values = kd
    if config.kd.clip_quantile is not None:
        ceiling = float(np.quantile(kd, config.kd.clip_quantile))
        values = np.minimum(values, ceiling)
        notes["kd_clip"] = {"quantile": config.kd.clip_quantile, "value": ceiling,
                            "clipped": int((kd > ceiling).sum())}
    if config.kd.weighting == "typicality":
        values = values * typicality  # type: ignore[operator]
        notes["kd_weighting"] = "typicality"
    return AdjustedKD(values, "KD", typicality, notes)
