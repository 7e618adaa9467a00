"""Deterministic appliers: (rescaled image x in [0, 1] (D, H, W), sampled params, the case's rng) -> (D, H, W).

The rng only supplies per-volume noise (Rician noise, the slab phase); every other choice is in the params. Noise
and bias fields are numpy/scipy equivalents of MONAI's RandRicianNoise and RandBiasField (same formulas), so one
Generator drives everything and no torch import is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.ndimage import gaussian_filter

from assft.domains.plans import (
    BIAS_DEGREE,
    RESCALE_PERCENTILES,
    T2LIKE_KNOTS,
    THICKSLICE_AXIS,
    ShiftPlan,
)
from assft.errors import ConfigError

Applier = Callable[[np.ndarray, dict[str, Any], np.random.Generator], np.ndarray]


def rescale_intensity(image: np.ndarray) -> np.ndarray:
    """Robustly rescale raw intensities (D, H, W) to [0, 1] using percentiles of the nonzero voxels; float32."""
    x = np.asarray(image, dtype=np.float64)
    nonzero = x[x != 0]
    if nonzero.size == 0:
        return np.zeros(x.shape, dtype=np.float32)
    lo, hi = np.percentile(nonzero, RESCALE_PERCENTILES)
    scale = hi - lo if hi > lo else 1.0
    return np.clip((x - lo) / scale, 0.0, 1.0).astype(np.float32)


def apply_plan(x: np.ndarray, plan: ShiftPlan, rng: np.random.Generator) -> np.ndarray:
    """Apply a sampled plan to a rescaled image x (D, H, W) in [0, 1]; noise comes from `rng`."""
    return APPLIERS[plan.kind](x, plan.params, rng)


def _apply_identity(x: np.ndarray, params: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    return x




def _apply_t2like(x: np.ndarray, params: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    knots = np.linspace(0.0, 1.0, T2LIKE_KNOTS)
    mapped = PchipInterpolator(knots, np.asarray(params["values"]))(x)
    return (1.0 - params["severity"]) * x + params["severity"] * mapped




def _apply_lowfield(x: np.ndarray, params: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    sigma, std = params["sigma"], params["noise_std"]
    y = gaussian_filter(x.astype(np.float64), sigma=sigma, mode="nearest") if sigma > 0 else x
    if std <= 0:
        return y
    # Rician magnitude noise, as monai.transforms.RandRicianNoise: |y + n1 + i n2| with n1, n2 ~ N(0, std).
    return np.hypot(y + rng.normal(0.0, std, x.shape), rng.normal(0.0, std, x.shape))




def _apply_bias(x: np.ndarray, params: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    y = np.power(x, np.exp(params["log_gamma"]))
    if not params["coeffs"]:
        return y
    log_field = legendre_field(x.shape, np.asarray(params["coeffs"]), BIAS_DEGREE)
    return y * np.exp(log_field - log_field.mean())  # geometric mean 1: shading, not global scaling




def _apply_thickslice(x: np.ndarray, params: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    factor = params["factor"]
    offset = int(rng.integers(factor))  # per-volume slab phase: a property of the acquisition, not of the site
    return thick_slices(x, factor, axis=THICKSLICE_AXIS, offset=offset)


APPLIERS: dict[str, Applier] = {"identity": _apply_identity, "t2like": _apply_t2like, "lowfield": _apply_lowfield,
                                "bias": _apply_bias, "thickslice": _apply_thickslice}


def legendre_field(shape: tuple[int, ...], coeffs: np.ndarray, degree: int) -> np.ndarray:
    """Smooth log bias field (D, H, W): sum of coeffs x 3D Legendre products of total degree <= degree on [-1, 1]^3.

    The same basis as monai.transforms.RandBiasField; the caller exponentiates it.
    """
    mat = np.zeros((degree + 1,) * 3)
    terms = [(i, j, k) for i in range(degree + 1) for j in range(degree + 1 - i) for k in range(degree + 1 - i - j)]
    if len(coeffs) != len(terms):
        raise ConfigError(f"expected {len(terms)} coefficients for degree {degree}, got {len(coeffs)}.",
                          fix="pass _n_legendre_terms(degree) coefficients")
    for (i, j, k), value in zip(terms, coeffs):
        mat[i, j, k] = value
    coords = [np.linspace(-1.0, 1.0, n) for n in shape]
    return np.polynomial.legendre.leggrid3d(*coords, mat)


def thick_slices(x: np.ndarray, factor: int, *, axis: int, offset: int = 0) -> np.ndarray:
    """Average slabs of `factor` slices along `axis` (starting at -offset) and resample linearly to x.shape."""
    if factor <= 1:
        return x
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, 0)
    n = x.shape[0]
    n_low = -(-(n + offset) // factor)
    padded = np.pad(x, [(offset, n_low * factor - n - offset)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    low = padded.reshape(n_low, factor, *x.shape[1:]).mean(axis=1)
    # slab k is centred on padded index k*factor + (factor-1)/2; map each original slice to slab coordinates.
    pos = np.clip((np.arange(n) + offset + 0.5) / factor - 0.5, 0.0, n_low - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, n_low - 1)
    w = (pos - i0).reshape(-1, *([1] * (x.ndim - 1)))
    out = low[i0] * (1.0 - w) + low[i1] * w
    return np.moveaxis(out, 0, axis)
