"""What a domain does to one case, sampled before anything is applied (TorchIO's sample -> apply -> record).

`plan_case(domain, case_id, seed)` draws the shift type (mixed, multisite), its severity and its parameters from
`make_rng(seed, domain, case_id)` and returns a `ShiftPlan` that `assft.domains.appliers` applies and the dataset
writer records in dataset.json, so every shifted volume says exactly which coefficients made it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from assft.errors import ConfigError
from assft.registry import unknown_name
from assft.utils.seeding import make_rng

Sampler = Callable[[float, np.random.Generator], dict[str, Any]]

# Default severities in [0, 1] (None -> these), chosen with benchmarks/experiments/foundation_hippocampus.py so that a
# UNet trained on 40 unshifted hippocampus cases loses 0.10-0.32 Dice on shifted test cases (docs/benchmarks.md).
DEFAULT_SEVERITY: dict[str, float] = {
    "identity": 0.0,
    "t2like": 0.4,
    "lowfield": 0.8,
    "bias": 0.7,
    "thickslice": 1.0,
    "mixed": 1.0,
    "multisite": 1.0,
}

# Effect sizes at severity 1.0 (the severity scales them linearly).
RESCALE_PERCENTILES: tuple[float, float] = (0.5, 99.5)
T2LIKE_KNOTS = 6  # control points of the random intensity mapping
T2LIKE_JITTER = 0.1  # std of the per-case jitter of the inverted control points
LOWFIELD_MAX_SIGMA = 2.0  # Gaussian blur sigma (voxels)
LOWFIELD_MAX_NOISE = 0.3  # Rician noise std (in the [0, 1] scale)
BIAS_MAX_LOG_STD = 0.6  # spread of the log bias field (Legendre coefficient range)
BIAS_DEGREE = 3
BIAS_MAX_LOG_GAMMA = float(np.log(2.5))  # |log gamma| of the gamma curve
THICKSLICE_MAX_FACTOR = 5  # slab thickness in voxels at severity 1 (1 + severity * 4, rounded)
THICKSLICE_AXIS = 2  # the slice axis (last array axis, usually z in NIfTI)
MIXED_IDENTITY_PROB = 0.2
MIXED_SUBDOMAINS: tuple[str, ...] = ("t2like", "lowfield", "bias", "thickslice")
MIXED_SEVERITY_RANGE: tuple[float, float] = (0.5, 1.0)  # x the sub-domain's default severity
# multisite: four "sites" (scanners/protocols), each one shift type with parameters drawn once per site, in unequal
# shares, plus unshifted volumes; a volume's site is drawn from its own seeded generator.
MULTISITE_SHARES: tuple[float, ...] = (0.35, 0.25, 0.20, 0.10)  # sites 1-4; the remaining 10 % are unshifted
MULTISITE_SEVERITY_RANGE: tuple[float, float] = (0.75, 1.25)  # x the shift type's default severity, per site


@dataclass(frozen=True)
class ShiftPlan:
    """What is applied to one case: the shift type, its severity and its sampled parameters (JSON-able)."""

    domain: str
    kind: str  # the shift actually applied (identity, t2like, lowfield, bias, thickslice)
    severity: float
    params: dict[str, Any]
    site: int | None = None  # multisite: 1-based site, 0 = unshifted

    def to_dict(self) -> dict[str, Any]:
        """Provenance record of the case (dataset.json `assft_provenance.cases`)."""
        out = {"domain": self.domain, "sub_domain": self.kind, "severity": round(float(self.severity), 6),
               "shifted": self.kind != "identity" and self.severity > 0, "params": self.params}
        if self.site is not None:
            out["site"] = self.site
        return out


def resolve_severity(domain: str, severity: float | None) -> float:
    """The severity to use: `severity` checked to lie in [0, 1], or the domain's default when None."""
    if domain not in DEFAULT_SEVERITY:  # every registered domain has a default severity
        raise unknown_name("domain", domain, DEFAULT_SEVERITY)
    if severity is None:
        return DEFAULT_SEVERITY[domain]
    if not 0.0 <= float(severity) <= 1.0:
        raise ConfigError(f"severity must be in [0, 1], got {severity}.", fix="pass a value in [0, 1] or None")
    return float(severity)


def plan_case(domain: str, case_id: str, seed: int, severity: float | None = None
              ) -> tuple[ShiftPlan, np.random.Generator]:
    """Sample what `domain` does to `case_id` (TorchIO style: sample, then apply, then record what was applied).

    Returns the plan and the case's generator, advanced past the sampling draws: `apply_plan` draws per-volume
    noise from it, so plan + apply is bit-identical to every earlier release of the same domain.
    """
    sev = resolve_severity(domain, severity)
    rng = make_rng(seed, domain, case_id)
    site = None
    if domain == "mixed":
        kind, sub_sev = _mixed_plan(rng, sev)
        params = SAMPLERS[kind](sub_sev, rng)
    elif domain == "multisite":
        site = _multisite_site(rng)
        kind, sub_sev, params = multisite_sites(seed, sev)[site]
    else:
        kind, sub_sev = domain, sev
        params = SAMPLERS[kind](sub_sev, rng)
    return ShiftPlan(domain, kind, float(sub_sev), params, site), rng


# --- samplers: (severity, rng) -> JSON-able params ------------------------------------------------------------------


def _sample_nothing(severity: float, rng: np.random.Generator) -> dict[str, Any]:
    return {}




def _sample_t2like(severity: float, rng: np.random.Generator) -> dict[str, Any]:
    # background stays dark; the tissue range is inverted with jitter (bright <-> dark).
    knots = np.linspace(0.0, 1.0, T2LIKE_KNOTS)
    values = np.clip(1.0 - knots + rng.normal(0.0, T2LIKE_JITTER, knots.size), 0.05, 1.0)
    values[0] = 0.0
    return {"severity": severity, "values": values.tolist()}




def _sample_lowfield(severity: float, rng: np.random.Generator) -> dict[str, Any]:
    sigma = severity * LOWFIELD_MAX_SIGMA * rng.uniform(0.8, 1.2)
    std = severity * LOWFIELD_MAX_NOISE * rng.uniform(0.8, 1.2)
    return {"sigma": float(sigma), "noise_std": float(std)}




def _sample_bias(severity: float, rng: np.random.Generator) -> dict[str, Any]:
    log_gamma = severity * BIAS_MAX_LOG_GAMMA * rng.uniform(0.5, 1.0) * rng.choice([-1.0, 1.0])
    c = severity * BIAS_MAX_LOG_STD
    coeffs = rng.uniform(-c, c, _n_legendre_terms(BIAS_DEGREE)).tolist() if c > 0 else []
    return {"log_gamma": float(log_gamma), "coeffs": coeffs}




def _sample_thickslice(severity: float, rng: np.random.Generator) -> dict[str, Any]:
    return {"factor": int(round(1 + severity * (THICKSLICE_MAX_FACTOR - 1)))}




SAMPLERS: dict[str, Sampler] = {"identity": _sample_nothing, "t2like": _sample_t2like, "lowfield": _sample_lowfield,
                                "bias": _sample_bias, "thickslice": _sample_thickslice}


def _mixed_plan(rng: np.random.Generator, severity: float) -> tuple[str, float]:
    """Draw (sub-domain, severity) for one `mixed` case; the first draws of the case's rng."""
    if rng.random() < MIXED_IDENTITY_PROB:
        return "identity", 0.0
    sub = MIXED_SUBDOMAINS[int(rng.integers(len(MIXED_SUBDOMAINS)))]
    scale = rng.uniform(*MIXED_SEVERITY_RANGE)
    return sub, float(min(1.0, severity * scale * DEFAULT_SEVERITY[sub]))


def _multisite_site(rng: np.random.Generator) -> int:
    """The case's site (1..4, 0 = unshifted) by the shares; the first draw of the case's rng."""
    u = float(rng.random())
    edges = np.cumsum(MULTISITE_SHARES)
    return int(np.searchsorted(edges, u, side="right")) + 1 if u < edges[-1] else 0


def multisite_sites(seed: int, severity: float = 1.0) -> dict[int, tuple[str, float, dict[str, Any]]]:
    """Site -> (shift type, severity, parameters), fixed by the domain seed: a seeded permutation gives each of the
    four sites its own shift type; severity and parameters are drawn once per site. Site 0 is unshifted."""
    order = make_rng(seed, "multisite", "site-types").permutation(len(MIXED_SUBDOMAINS))
    sites: dict[int, tuple[str, float, dict[str, Any]]] = {0: ("identity", 0.0, {})}
    for site, index in enumerate(order, start=1):
        kind = MIXED_SUBDOMAINS[int(index)]
        rng = make_rng(seed, "multisite", "site", site)
        sev = float(min(1.0, severity * DEFAULT_SEVERITY[kind] * rng.uniform(*MULTISITE_SEVERITY_RANGE)))
        sites[site] = (kind, sev, SAMPLERS[kind](sev, rng))
    return sites


def _n_legendre_terms(degree: int) -> int:
    """Number of 3D Legendre terms P_i P_j P_k with i + j + k <= degree."""
    return (degree + 1) * (degree + 2) * (degree + 3) // 6
