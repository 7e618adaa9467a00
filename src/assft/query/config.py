"""Query configuration (every method.md option, recorded with each selection), the Need enum, budget resolution."""

from __future__ import annotations

import math
import warnings
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from assft.config import _Config
from assft.errors import BudgetError, ConfigNotice


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

Share = Annotated[float, Field(ge=0.0, le=1.0)]  # [0, 1]
UnitFraction = Annotated[float, Field(gt=0.0, le=1.0)]  # (0, 1]: a fraction that must keep something
PositiveFinite = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
Side = Annotated[int, Field(ge=1)]


class ASDConfig(_Config):
    """ASD: the foreground Ω (a threshold tau on 1 - p0) and the entropy reduced over it."""

    threshold: Literal["otsu", "fixed", "none"] = "otsu"  # tau on 1 - p0; "none": the whole volume (ablation)
    fixed_threshold: UnitFraction = 0.5
    threshold_clip: tuple[Share, Share] = (0.1, 0.9)  # Otsu's tau is clipped to this range
    reduce: Literal["class_balanced", "mean"] = "class_balanced"
    empty_top_fraction: UnitFraction = 0.01  # empty foreground: mean of the top 1 % entropy voxels
    otsu_bins: int = Field(256, ge=1)

    @model_validator(mode="after")
    def _ordered_clip(self) -> ASDConfig:
        lo, hi = self.threshold_clip
        if lo > hi:
            raise ValueError("asd.threshold_clip must satisfy low <= high")
        return self


class KDConfig(_Config):
    """KD, the knowledge gap to θ0: its reference, the outlier-aware variants and how DKD combines it with Div."""

    # KD's reference (docs/method.md, "KD sources"): BatchNorm running statistics or a fingerprint (the paper's KD),
    # or one that needs no source images: source intensity statistics stored with θ0, atypicality of the norm-layer
    # moments within the pool, θ0's self-consistency. auto: running statistics when θ0's BatchNorm uses them at
    # inference, else a fingerprint if there is one, else the source-free order in assft.models.source_stats.
    source: Literal["auto", "running_stats", "fingerprint", "intensity", "pool", "consistency"] = "auto"
    eps: float = Field(1e-5, gt=0.0)  # variances are clamped at this value in the Gaussian KL
    combine: Literal["product", "sum"] = "product"  # DKD = norm(KD) * Div, or (norm(KD) + norm(Div)) / 2
    # outlier-aware knowledge gap (strategies assft, dkd, kd); the defaults keep plain KD
    weighting: Literal["none", "typicality"] = "none"  # KD x typicality / max typicality over the pool
    clip_quantile: UnitFraction | None = None  # KD clipped at this pool quantile before normalisation
    guard: PositiveFinite | None = None  # KD spread (IQR / median over the pool) below this: typicality replaces KD


class PowerConfig(_Config):
    """Power sampling (Kirsch et al., TMLR 2023): pick by log(score) + Gumbel(0, 1/beta), i.e. P ∝ score^beta."""

    beta: float | Literal["schedule"] = "schedule"  # fixed beta, or the exponential schedule below
    beta_start: PositiveFinite = 1.0  # schedule: beta_t = start * (end / start) ** ((t - 1) / (T - 1)), t = 1..T
    beta_end: PositiveFinite = 100.0
    eps: PositiveFinite = 1e-6  # scores are clipped here before the log (a min-max normalised 0 stays possible)

    # A union of a constrained float and a literal reports a failure once per member; one message says it plainly.
    @field_validator("beta")
    @classmethod
    def _beta(cls, v: float | str) -> float | str:
        if v != "schedule" and not (isinstance(v, int | float) and 0.0 < v < math.inf):
            raise ValueError("power.beta must be a finite number > 0 or 'schedule'")
        return v


class ClaspConfig(_Config):
    """ClaSP PE (Lüth et al. 2026, adapted to whole volumes): a volume's peak entropy, the class-stratified share."""

    reduce: Literal["box_max", "topk_mean"] = "box_max"  # a volume's score from its uncertainty map
    box_fraction: UnitFraction = 0.5  # box side as a fraction of each volume side (1.0: the whole-volume mean)
    box_size: tuple[Side, Side, Side] | None = None  # box in voxels (clipped to the volume); overrides fraction
    top_fraction: UnitFraction = 0.01  # topk_mean: mean of the top 1 % voxels
    class_fraction: Share = 0.66  # share of the round's budget split evenly across the foreground classes


# The flat names the query options had before they were grouped by strategy: {old key: (section, field)}. Configs
# and campaign.yaml files written with them keep loading (QueryConfig folds them in, with one notice per key set).
LEGACY_KEYS: dict[str, tuple[str, str]] = {
    "asd_threshold": ("asd", "threshold"),
    "asd_fixed_threshold": ("asd", "fixed_threshold"),
    "asd_threshold_clip": ("asd", "threshold_clip"),
    "asd_reduce": ("asd", "reduce"),
    "asd_empty_top_fraction": ("asd", "empty_top_fraction"),
    "otsu_bins": ("asd", "otsu_bins"),
    "kd_source": ("kd", "source"),
    "kd_eps": ("kd", "eps"),
    "dkd_combine": ("kd", "combine"),
    "kd_weighting": ("kd", "weighting"),
    "kd_clip_quantile": ("kd", "clip_quantile"),
    "kd_guard": ("kd", "guard"),
    "power_beta": ("power", "beta"),
    "power_beta_start": ("power", "beta_start"),
    "power_beta_end": ("power", "beta_end"),
    "power_eps": ("power", "eps"),
    "clasp_reduce": ("clasp", "reduce"),
    "clasp_box_fraction": ("clasp", "box_fraction"),
    "clasp_box_size": ("clasp", "box_size"),
    "clasp_top_fraction": ("clasp", "top_fraction"),
    "clasp_class_fraction": ("clasp", "class_fraction"),
}
_NOTICED: set[frozenset[str]] = set()  # key sets already announced in this process


def nested_name(key: str) -> str:
    """The dotted name ("kd.source") a legacy flat key ("kd_source") now has."""
    section, name = LEGACY_KEYS[key]
    return f"{section}.{name}"


def fold_legacy_keys(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`raw` with every legacy flat key moved into its section, and the legacy keys found (in LEGACY_KEYS order).

    A setting given both flat and nested is fine when the two agree (a preset and an arm merged as raw dicts) and a
    PydanticCustomError naming both keys when they differ.
    """
    found = [key for key in LEGACY_KEYS if key in raw]
    if not found:
        return raw, []
    out = dict(raw)
    for key in found:
        section, name = LEGACY_KEYS[key]
        nested = out.get(section)
        if isinstance(nested, BaseModel):
            nested = nested.model_dump(exclude_unset=True)
        if not isinstance(nested, dict | None):
            continue  # left flat: pydantic reports the section's type and the unknown key
        nested = dict(nested or {})
        value = out.pop(key)
        if name in nested and _plain(nested[name]) != _plain(value):
            raise PydanticCustomError(
                "query_key_conflict", "{flat} and {nested} are one option, given two values ({a} and {b}): give it "
                "once, as {nested}", {"flat": key, "nested": nested_name(key), "a": repr(value),
                                      "b": repr(nested[name])})
        nested[name] = value
        out[section] = nested
    return out, found


def _plain(value: Any) -> Any:
    """YAML lists and Python tuples compare equal (a flat value from one file and a nested one from another)."""
    return [_plain(v) for v in value] if isinstance(value, list | tuple) else value


def notify_legacy_keys(keys: list[str]) -> None:
    """One ConfigNotice per process for a set of legacy keys (the CLI prints it as one "note:" line)."""
    if not keys or frozenset(keys) in _NOTICED:
        return
    _NOTICED.add(frozenset(keys))
    plural = len(keys) > 1
    warnings.warn(ConfigNotice(
        f"query key{'s' if plural else ''} {', '.join(keys)} {'are the' if plural else 'is the'} old flat "
        f"name{'s' if plural else ''}; write {', '.join(nested_name(k) for k in keys)} (read as such)"), stacklevel=2)


class QueryConfig(_Config):
    """Options of one query (method.md); defaults live here only. Every field is written to selection.json.

    Each strategy family's options form a section (`asd`, `kd`, `power`, `clasp`); the flat names they had before
    (`asd_threshold`, `kd_source`, ... LEGACY_KEYS) are still read, with a one-line notice.
    """

    strategy: str = "assft"
    budget: int | str = "10%"  # N volumes or "P%" of the candidate pool (pool minus labeled cases)
    alpha: Share = 0.5  # Q = alpha * norm(DKD) + (1 - alpha) * norm(ASD)
    cold_start: Literal["auto", "always", "never"] = "auto"  # auto: Q = DKD when the model has no head (SSL-only)
    embedding_source: Literal["current", "pretrained"] = "current"  # z from θ (round >= 2) or θ0
    mc_samples: int = Field(10, ge=2)  # BALD: T stochastic passes per window (a mutual information needs two)
    typiclust_neighbors: int = Field(20, ge=1)  # TypiClust: k nearest neighbours (in a cluster; pool-wide for KD)
    # power sampling (section `power`). auto: the strategy's own way (power for clasp-pe, greedy for every other one).
    sampling: Literal["auto", "greedy", "power"] = "auto"
    # spread-adaptive alpha: when the pool's KD spread is at least `alpha_spread_threshold`, Q uses
    # `alpha_high_spread` instead of `alpha`. Default (chosen on the validation split, docs/method.md): alpha 1, i.e.
    # no ASD term, on a pool that mixes shifted and unshifted volumes (spread >= 1.1), where the foreground-entropy
    # term cost AUBC; None: `alpha` always (the paper's Q).
    alpha_high_spread: Share | None = 1.0
    alpha_spread_threshold: PositiveFinite = 1.1
    cold_start_method: Literal["dkd", "typicality", "kcenter"] = "dkd"  # assft's pick without a head (SSL-only)
    asd: ASDConfig = Field(default_factory=ASDConfig)
    kd: KDConfig = Field(default_factory=KDConfig)
    power: PowerConfig = Field(default_factory=PowerConfig)
    clasp: ClaspConfig = Field(default_factory=ClaspConfig)

    @model_validator(mode="before")
    @classmethod
    def _read_legacy_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data, found = fold_legacy_keys(data)
        notify_legacy_keys(found)
        return data

    @field_validator("budget")
    @classmethod
    def _budget(cls, v: int | str) -> int | str:
        parse_budget(v)
        return v

    def alpha_for_spread(self, spread: float) -> float:
        """Q's alpha for a pool whose KD spread (IQR / median) is `spread`: `alpha_high_spread` at or above
        `alpha_spread_threshold` when set, else `alpha`."""
        if self.alpha_high_spread is not None and spread >= self.alpha_spread_threshold:
            return self.alpha_high_spread
        return self.alpha


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
