"""Query configuration (every method.md option, recorded with each selection), the Need enum, budget resolution."""

from __future__ import annotations

import math
from enum import Enum
from typing import Literal

from pydantic import field_validator, model_validator

from assft.config import _Config
from assft.errors import BudgetError


class Need(str, Enum):
    """What a strategy needs from the one pass per volume; the scorer computes only the union of these."""

    PROBS = "probs"  # class probabilities of θ, reduced to entropy / ASD / confidence / foreground size
    MC_PROBS = "mc_probs"  # T MC-dropout samples of θ, reduced per window to a BALD map
    EMBEDDING = "embedding"  # pooled, L2-normalised bottleneck embedding z (d,)
    NORM_STATS = "norm_stats"  # input moments of θ0's normalisation layers -> KD
    GRAD_EMBEDDING = "grad_embedding"  # BADGE last-layer gradient embedding (C * F,)
    CLASS_PE = "class_pe"  # probs reduced to ClaSP PE's peak predictive entropy, overall and per class (C,)
    INTENSITY = "intensity"  # the input image's intensity statistics over Omega and the non-zero region (KD)
    CONSISTENCY = "consistency"  # θ0's disagreement under a mirror and an intensity change, over its Omega (KD)


PROB_NEEDS = frozenset({Need.PROBS, Need.MC_PROBS, Need.GRAD_EMBEDDING, Need.CLASS_PE})  # need a segmentation head


class QueryConfig(_Config):
    """Options of one query (method.md); defaults live here only. Every field is written to selection.json."""

    strategy: str = "assft"
    budget: int | str = "10%"  # N volumes or "P%" of the candidate pool (pool minus labeled cases)
    alpha: float = 0.5  # Q = alpha * norm(DKD) + (1 - alpha) * norm(ASD)
    dkd_combine: Literal["product", "sum"] = "product"  # DKD = norm(KD) * Div, or (norm(KD) + norm(Div)) / 2
    asd_threshold: Literal["otsu", "fixed", "none"] = "otsu"  # tau on 1 - p0; "none": the whole volume (ablation)
    asd_fixed_threshold: float = 0.5
    asd_threshold_clip: tuple[float, float] = (0.1, 0.9)  # Otsu's tau is clipped to this range
    asd_reduce: Literal["class_balanced", "mean"] = "class_balanced"
    asd_empty_top_fraction: float = 0.01  # empty foreground: mean of the top 1 % entropy voxels
    otsu_bins: int = 256
    cold_start: Literal["auto", "always", "never"] = "auto"  # auto: Q = DKD when the model has no head (SSL-only)
    # KD's reference (docs/method.md, "KD sources"): BatchNorm running statistics or a fingerprint (the paper's KD),
    # or one that needs no source images: source intensity statistics stored with θ0, atypicality of the norm-layer
    # moments within the pool, θ0's self-consistency. auto: running statistics when θ0's BatchNorm uses them at
    # inference, else a fingerprint if there is one, else the source-free order in assft.models.source_stats.
    kd_source: Literal["auto", "running_stats", "fingerprint", "intensity", "pool", "consistency"] = "auto"
    kd_eps: float = 1e-5  # variances are clamped at this value in the Gaussian KL
    embedding_source: Literal["current", "pretrained"] = "current"  # z from θ (round >= 2) or θ0
    mc_samples: int = 10  # BALD: T stochastic passes per window
    typiclust_neighbors: int = 20  # TypiClust typicality: k nearest neighbours (inside a cluster; pool-wide for KD)
    # power sampling (Kirsch et al., TMLR 2023): pick by log(score) + Gumbel(0, 1/beta), i.e. P ∝ score^beta.
    # auto: the strategy's own way (power for clasp-pe, greedy for every other strategy).
    sampling: Literal["auto", "greedy", "power"] = "auto"
    power_beta: float | Literal["schedule"] = "schedule"  # fixed beta, or the exponential schedule below
    power_beta_start: float = 1.0  # schedule: beta_t = start * (end / start) ** ((t - 1) / (T - 1)), t = 1..T
    power_beta_end: float = 100.0
    power_eps: float = 1e-6  # scores are clipped at this value before the log (a min-max normalised 0 stays possible)
    # outlier-aware knowledge gap (strategies assft, dkd, kd); the defaults keep plain KD
    kd_weighting: Literal["none", "typicality"] = "none"  # KD x typicality / max typicality over the pool
    kd_clip_quantile: float | None = None  # KD clipped at this pool quantile before normalisation
    kd_guard: float | None = None  # KD spread (IQR / median over the pool) below this: typicality replaces KD
    # spread-adaptive alpha: when the pool's KD spread is at least `alpha_spread_threshold`, Q uses
    # `alpha_high_spread` instead of `alpha`. Default (chosen on the validation split, docs/method.md): alpha 1, i.e.
    # no ASD term, on a pool that mixes shifted and unshifted volumes (spread >= 1.1), where the foreground-entropy
    # term cost AUBC; None: `alpha` always (the paper's Q).
    alpha_high_spread: float | None = 1.0
    alpha_spread_threshold: float = 1.1
    cold_start_method: Literal["dkd", "typicality", "kcenter"] = "dkd"  # assft's pick without a head (SSL-only)
    # clasp-pe (ClaSP PE, Lüth et al. 2026, adapted to whole volumes)
    clasp_reduce: Literal["box_max", "topk_mean"] = "box_max"  # a volume's score from its uncertainty map
    clasp_box_fraction: float = 0.5  # box side as a fraction of each volume side (1.0: the whole-volume mean)
    clasp_box_size: tuple[int, int, int] | None = None  # box in voxels (clipped to the volume); overrides fraction
    clasp_top_fraction: float = 0.01  # topk_mean: mean of the top 1 % voxels
    clasp_class_fraction: float = 0.66  # share of the round's budget split evenly across the foreground classes

    @field_validator("alpha", "alpha_high_spread")
    @classmethod
    def _alpha(cls, v: float | None) -> float | None:
        if v is not None and not 0.0 <= v <= 1.0:
            raise ValueError("alpha must be in [0, 1]")
        return v

    def alpha_for_spread(self, spread: float) -> float:
        """Q's alpha for a pool whose KD spread (IQR / median) is `spread`: `alpha_high_spread` at or above
        `alpha_spread_threshold` when set, else `alpha`."""
        if self.alpha_high_spread is not None and spread >= self.alpha_spread_threshold:
            return self.alpha_high_spread
        return self.alpha

    @field_validator("asd_fixed_threshold", "asd_empty_top_fraction", "clasp_box_fraction", "clasp_top_fraction",
                     "kd_clip_quantile")
    @classmethod
    def _unit(cls, v: float | None) -> float | None:
        if v is not None and not 0.0 < v <= 1.0:
            raise ValueError("must be in (0, 1]")
        return v

    @field_validator("clasp_class_fraction")
    @classmethod
    def _fraction(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError("clasp_class_fraction must be in [0, 1]")
        return v

    @field_validator("power_beta")
    @classmethod
    def _beta(cls, v: float | str) -> float | str:
        if v != "schedule" and not (isinstance(v, int | float) and 0.0 < v < math.inf):
            raise ValueError("power_beta must be a finite number > 0 or 'schedule'")
        return v

    @field_validator("power_beta_start", "power_beta_end", "power_eps", "kd_guard", "alpha_spread_threshold")
    @classmethod
    def _positive_float(cls, v: float | None) -> float | None:
        if v is not None and not 0.0 < v < math.inf:
            raise ValueError("must be a finite number > 0")
        return v

    @field_validator("clasp_box_size")
    @classmethod
    def _box(cls, v: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
        if v is not None and min(v) < 1:
            raise ValueError("clasp_box_size must be three sides >= 1 voxel")
        return v

    @field_validator("mc_samples", "typiclust_neighbors", "otsu_bins")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be >= 1")
        return v

    @field_validator("mc_samples")
    @classmethod
    def _mc(cls, v: int) -> int:
        if v < 2:
            raise ValueError("BALD needs at least 2 MC samples")
        return v

    @field_validator("kd_eps")
    @classmethod
    def _eps(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("kd_eps must be > 0")
        return v

    @field_validator("budget")
    @classmethod
    def _budget(cls, v: int | str) -> int | str:
        parse_budget(v)
        return v

    @model_validator(mode="after")
    def _clip(self) -> QueryConfig:
        lo, hi = self.asd_threshold_clip
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError("asd_threshold_clip must satisfy 0 <= low <= high <= 1")
        return self


def parse_budget(budget: int | str) -> tuple[str, float]:
    """`12` or "12" -> ("count", 12); "5%" -> ("percent", 5.0); anything else is a BudgetError with the fix."""
    fix = 'give a number of volumes (e.g. 10) or a percentage of the pool (e.g. "5%")'
    if isinstance(budget, bool):
        raise BudgetError(f"invalid budget {budget!r}.", fix=fix)
    if isinstance(budget, int):
        if budget < 1:
            raise BudgetError(f"budget must be at least 1 volume, got {budget}.", fix=fix)
        return "count", float(budget)
    text = str(budget).strip()
    try:
        if text.endswith("%"):
            value = float(text[:-1])
            if not 0.0 < value <= 100.0:
                raise BudgetError(f"budget percentage must be in (0, 100], got {text}.", fix=fix)
            return "percent", value
        count = int(text)
    except ValueError as exc:
        raise BudgetError(f"cannot parse budget {budget!r}.", fix=fix) from exc
    if count < 1:
        raise BudgetError(f"budget must be at least 1 volume, got {count}.", fix=fix)
    return "count", float(count)


def resolve_budget(budget: int | str, pool_size: int) -> int:
    """Number of volumes to pick from a candidate pool of `pool_size`; a budget above the pool is a BudgetError.

    A percentage is rounded to the nearest volume (at least 1): "5%" of 30 -> 2.
    """
    kind, value = parse_budget(budget)
    if pool_size < 1:
        raise BudgetError("the candidate pool is empty (every pool case is already labeled).",
                          fix="add unlabeled volumes to the pool or remove ids from the labeled list")
    n = int(value) if kind == "count" else max(1, math.floor(value * pool_size / 100.0 + 0.5))
    if n > pool_size:
        raise BudgetError(f"budget {n} is larger than the candidate pool of {pool_size} volumes "
                          "(pool minus labeled cases).", fix=f"ask for at most {pool_size} volumes, or a percentage")
    return n
