"""`dkd` (Diversified Knowledge Divergence, greedy) and `kd` (knowledge divergence from pre-training only).

Both, and `assft`, take the outlier-aware KD options (`kd.weighting`, `kd.clip_quantile`, `kd.guard`, see
`query.knowledge`) and `sampling: power`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assft.query.config import Need, QueryConfig
from assft.query.knowledge import AdjustedKD, adjust_kd
from assft.query.selection import Ranked, greedy_diverse_top_k, min_max_normalise
from assft.query.strategies.base import (
    Selection,
    SelectionContext,
    Strategy,
    field_scores,
    power_note,
    register_strategy,
    sampling_notes,
    stack_field,
)
from assft.query.summaries import CaseSummary


def needs_typicality(config: QueryConfig) -> bool:
    """Whether the KD options need the pool's embeddings (typicality weighting or the spread guard)."""
    return config.kd.weighting == "typicality" or config.kd.guard is not None


def pool_kd(pool: Sequence[CaseSummary], config: QueryConfig, with_embeddings: bool
            ) -> tuple[list[str], np.ndarray, np.ndarray | None, AdjustedKD]:
    """(case ids sorted, raw KD (n,), embeddings (n, d) or None, adjusted KD) in case_id order.

    Sorting first makes typicality (a sum over neighbours) bit-identical whatever the pool order.
    """
    pool = sorted(pool, key=lambda s: s.case_id)
    kd = field_scores(pool, "kd")
    ids = list(kd)
    raw = np.asarray([kd[c] for c in ids], dtype=np.float64)
    z = stack_field(pool, "embedding") if with_embeddings or needs_typicality(config) else None
    return ids, raw, z, adjust_kd(raw, z, config)


def kd_columns(ids: Sequence[str], raw: np.ndarray, adjusted: AdjustedKD) -> dict[str, dict[str, float]]:
    """Extra selection.csv columns: the typicality, and KD after clipping/weighting when it differs from KD."""
    out = {}
    if adjusted.typicality is not None:
        out["typicality"] = dict(zip(ids, adjusted.typicality.tolist(), strict=True))
    if adjusted.label == "KD" and not np.array_equal(adjusted.values, raw):
        out["KD_adjusted"] = dict(zip(ids, adjusted.values.tolist(), strict=True))
    return out


def greedy_select(pool: Sequence[CaseSummary], context: SelectionContext, budget: int, rng: np.random.Generator,
                  *, use_asd: bool, beta: float | None = None) -> tuple[Ranked, AdjustedKD, float]:
    """The greedy DKD (use_asd False: Q = DKD) or full-Q batch over the pool's (adjusted) KD, embeddings and ASD;
    `beta`: power sampling at every greedy step. Returns the ranking (with the raw KD as column "KD"), the adjusted
    KD and the alpha Q applied (the spread rule may have replaced the configured one)."""
    config = context.config
    ids, raw, z, adjusted = pool_kd(pool, config, with_embeddings=True)
    asd_scores = field_scores(pool, "asd") if use_asd else {}
    asd = np.asarray([asd_scores[c] for c in ids]) if use_asd else None
    alpha = config.alpha_for_spread(float(adjusted.notes["kd_spread"]))  # type: ignore[arg-type]
    if config.alpha_high_spread is not None:
        adjusted.notes["alpha"] = {"used": alpha, "kd_spread": adjusted.notes["kd_spread"],
                                   "threshold": config.alpha_spread_threshold}
    ranked = greedy_diverse_top_k(ids, adjusted.values, z, budget, rng, asd=asd, alpha=alpha,
                                  combine=config.kd.combine, reference=context.labeled_embeddings,
                                  power_beta=beta, power_eps=config.power.eps, kd_label=adjusted.label)
    ranked.columns.update(kd_columns(ids, raw, adjusted))
    ranked.columns["KD"] = dict(zip(ids, raw.tolist(), strict=True))
    return ranked, adjusted, alpha


def guard_note(adjusted: AdjustedKD) -> str:
    """'KD spread 0.04 < guard 0.10, typicality replaces KD: ' when the guard fired, else ''."""
    if adjusted.label != "Typ":
        return ""
    guard = adjusted.notes["kd_guard"]
    return (f"KD spread {adjusted.notes['kd_spread']:.3g} < guard {guard['threshold']:.3g} "  # type: ignore[index]
            "(typicality replaces KD): ")


def kd_phrase(adjusted: AdjustedKD, value: float, raw: float | None = None) -> str:
    """The KD part of a rationale from its pool-normalised value and the raw KD: plain, typicality-weighted, or
    typicality (guard), e.g. 'far from pre-training (KD 0.83 (raw 12.4, pool-normalised))'."""
    raw_text = "" if raw is None else f"raw {raw:.4g}, "
    if adjusted.label == "Typ":
        raw_kd = "" if raw is None else f"; raw KD {raw:.4g}"
        return f"{'typical of' if value >= 0.5 else 'atypical for'} the pool (typicality {value:.2f}, " \
               f"pool-normalised{raw_kd})"
    close = "far from" if value >= 0.5 else "close to"
    if adjusted.notes.get("kd_weighting") == "typicality":
        return f"{close} pre-training and typical (KD x typicality {value:.2f} ({raw_text}pool-normalised))"
    return f"{close} pre-training (KD {value:.2f} ({raw_text}pool-normalised))"


def asd_phrase(alpha: float, asd_pool: float, context: SelectionContext, adjusted: AdjustedKD) -> str:
    """The ASD part of a rationale: the pool-normalised ASD, or that Q did not use it (alpha 1) and why."""
    if alpha < 1.0:
        return f"{'hard' if asd_pool >= 0.5 else 'easy'} foreground (ASD {asd_pool:.2f}, pool-normalised)"
    config = context.config
    if alpha != config.alpha and config.alpha_high_spread is not None:
        return (f"ASD not used (α = {alpha:g}: the pool's KD spread {adjusted.notes['kd_spread']:.3g} "
                f">= {config.alpha_spread_threshold:g}, the spread rule)")
    return f"ASD not used (α = {alpha:g})"


def explain_greedy(ranked: Ranked, case_id: str, context: SelectionContext, adjusted: AdjustedKD | None = None,
                   beta: float | None = None, alpha: float | None = None) -> str:
    """One line from the values at pick time, e.g. 'far from pre-training (KD 0.83 (raw 12.4, pool-normalised)),
    unlike chosen ones (Div 0.44), hard foreground (ASD 0.63, pool-normalised)'; KD and ASD are min-max normalised
    over the whole candidate pool, Div (1 - cos) is raw; `alpha`: the alpha Q applied (None: no ASD term)."""
    adjusted = adjusted or AdjustedKD(np.zeros(0), "KD")
    col = ranked.columns
    pooled = col.get(f"{adjusted.label}_pool", col.get(f"{adjusted.label}_norm", {}))
    parts = [kd_phrase(adjusted, pooled[case_id], col.get("KD", {}).get(case_id))]
    first = ranked.selected and ranked.selected[0] == case_id
    if first and not len(context.labeled_ids):
        others = "the pool average"
    else:
        others = "labeled and chosen ones" if len(context.labeled_ids) else "chosen ones"
    div, div_n = col["Div"][case_id], col["Div_norm"][case_id]
    parts.append(f"{'unlike' if div_n >= 0.5 else 'similar to'} {others} (Div {div:.3g})")
    if alpha is not None and case_id in col.get("ASD_pool", {}):
        parts.append(asd_phrase(alpha, col["ASD_pool"][case_id], context, adjusted))
    return guard_note(adjusted) + ", ".join(parts) + power_note(beta)


@register_strategy("dkd")
class DKDStrategy(Strategy):
    """Greedy DKD = norm(KD) x Div, Div recomputed after every pick (no ASD)."""

    requires = frozenset({Need.NORM_STATS, Need.EMBEDDING})
    score_based = True

    def select(self, pool: Sequence[CaseSummary], context: SelectionContext, budget: int,
               rng: np.random.Generator) -> Selection:
        beta = self.power_beta(context)
        ranked, adjusted, _ = greedy_select(pool, context, budget, rng, use_asd=False, beta=beta)
        return self.finish(ranked, lambda c: explain_greedy(ranked, c, context, adjusted, beta),
                           **adjusted.notes, **sampling_notes(beta, context))


@register_strategy("kd")
class KDStrategy(Strategy):
    """Highest knowledge divergence from pre-training (Gaussian KL of norm-layer statistics), no diversity."""

    requires = frozenset({Need.NORM_STATS})
    score_based = True

    def resolve_needs_without_check(self, has_head: bool) -> frozenset[Need]:
        """Add the embedding when a KD option needs the pool's typicality."""
        needs = super().resolve_needs_without_check(has_head)
        return needs | {Need.EMBEDDING} if needs_typicality(self.config) else needs

    def select(self, pool: Sequence[CaseSummary], context: SelectionContext, budget: int,
               rng: np.random.Generator) -> Selection:
        ids, raw, _, adjusted = pool_kd(pool, self.config, with_embeddings=False)
        scores = dict(zip(ids, adjusted.values.tolist(), strict=True))
        beta = self.power_beta(context)
        ranked = self.rank_scores(scores, budget, rng, beta)
        normed = dict(zip(ids, min_max_normalise(adjusted.values).tolist(), strict=True))
        ranked.columns[f"{adjusted.label}_norm"] = normed
        ranked.columns.update(kd_columns(ids, raw, adjusted))
        kd = dict(zip(ids, raw.tolist(), strict=True))

        def explain(c: str) -> str:
            return guard_note(adjusted) + kd_phrase(adjusted, normed[c], kd[c]) + power_note(beta)

        return self.finish(ranked, explain, **adjusted.notes, **sampling_notes(beta, context))
