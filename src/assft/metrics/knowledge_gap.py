"""Knowledge-gap scores that need no source images: intensity, pool and consistency (pure functions on tensors).

The paper's KD compares a volume's norm-layer input moments with θ0's BatchNorm running statistics. Networks
without running statistics (InstanceNorm, GroupNorm, LayerNorm, or BatchNorm that normalises with batch statistics
at inference) carry no such record, so these three scores stand in for it (docs/method.md, "KD sources"):

- intensity: the volume's intensity distribution over a region vs source intensity statistics stored with the model
  (nnU-Net's `foreground_intensity_properties_per_channel`, or what `assft` recorded when it trained the model);
- pool: how atypical the volume's norm-layer input moments are within the pool (median / MAD), not a distance to
  the source;
- consistency: θ0's disagreement with itself under a mirror and a small intensity change, inside its foreground.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from assft.metrics.scores import Moments, compute_foreground_mask, compute_gaussian_kl

# nnU-Net's dataset_fingerprint.json names (foreground_intensity_properties_per_channel), kept so its record reads
# as is; the quantiles are numpy's linear percentiles, as nnU-Net computes them.
INTENSITY_KEYS = ("mean", "std", "percentile_00_5", "median", "percentile_99_5")
_QUANTILE_KEYS = ("percentile_00_5", "median", "percentile_99_5")
MAD_TO_SD = 1.4826  # MAD of a normal distribution times this = its standard deviation


def compute_intensity_statistics(values: np.ndarray | torch.Tensor) -> dict[str, float]:
    """Mean, std, 0.5th / 50th / 99.5th percentiles of a 1-D sample of intensities (nnU-Net's keys); an empty
    sample gives NaNs."""
    x = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=np.float64).ravel()
    if x.size == 0:
        return {key: float("nan") for key in INTENSITY_KEYS}
    p005, median, p995 = np.percentile(x, [0.5, 50.0, 99.5])
    return {"mean": float(x.mean()), "std": float(x.std()), "percentile_00_5": float(p005), "median": float(median),
            "percentile_99_5": float(p995)}


def standardized_quantiles(stats: Mapping[str, float], eps: float = 1e-8) -> np.ndarray:
    """((p0.5 - mean) / std, (median - mean) / std, (p99.5 - mean) / std): the shape of the distribution, unchanged
    by any intensity map a * x + b with a > 0 (so by per-volume z-scoring and by an arbitrary MR scanner scale)."""
    std = max(float(stats["std"]), eps)
    return np.array([(float(stats[k]) - float(stats["mean"])) / std for k in _QUANTILE_KEYS])


def compute_intensity_divergence(target: Mapping[str, float], source: Mapping[str, float], *,
                                 location: bool, eps: float = 1e-5) -> float:
    """Distance of a volume's intensity statistics from the source's (both as `compute_intensity_statistics`).

    Shape term: mean absolute difference of the three standardised quantiles (scale-free). With `location` (the two
    records live in the same intensity space, the network's input), plus the Gaussian KL of N(mean_t, std_t²) from
    N(mean_s, std_s²), the paper's KD form applied to intensities. NaN statistics (an empty region) give 0.
    """
    if any(np.isnan(float(target[k])) for k in INTENSITY_KEYS):
        return 0.0
    shape = float(np.abs(standardized_quantiles(target) - standardized_quantiles(source)).mean())
    if not location:
        return shape
    mean_t, var_t, mean_s, var_s = (torch.tensor([v], dtype=torch.float64) for v in (
        target["mean"], target["std"] ** 2, source["mean"], source["std"] ** 2))
    kl = compute_gaussian_kl(mean_t, var_t, mean_s, var_s, eps)
    return shape + float(kl[0])


def compute_pool_outlierness(moments: Sequence[Mapping[str, Moments]], eps: float = 1e-5) -> np.ndarray:
    """Each volume's atypicality within the pool: n volumes' norm-layer input moments -> (n,) >= 0.

    Per layer and channel, a volume's channel mean and log standard deviation become robust z-scores against the
    pool (|x - median| / (1.4826 MAD), the pool's standard deviation where the MAD is 0, and 0 where every volume
    agrees); the two are averaged, then over channels, then over layers (as KD averages). A pool of one gives 0.
    """
    if not moments:
        return np.zeros(0)
    per_layer = []
    for name in moments[0]:
        means = np.stack([np.asarray(m[name][0], dtype=np.float64) for m in moments])  # (n, C)
        log_sd = 0.5 * np.log(np.maximum(np.stack([np.asarray(m[name][1], dtype=np.float64) for m in moments]), eps))
        per_layer.append(0.5 * (_robust_z(means) + _robust_z(log_sd)).mean(axis=1))
    return np.mean(per_layer, axis=0)


def _robust_z(values: np.ndarray) -> np.ndarray:
    """|x - median| / scale per column of (n, C); scale = 1.4826 MAD, else the std, else 1 (then |x - median| = 0)."""
    deviation = np.abs(values - np.median(values, axis=0))
    scale = MAD_TO_SD * np.median(deviation, axis=0)
    scale = np.where(scale > 0, scale, values.std(axis=0))
    return deviation / np.where(scale > 0, scale, 1.0)


# θ0's perturbations for `consistency`: a mirror along the first spatial axis (undone on the output), the axis assft's
# training flips (nnU-Net mirrors all three), so a well-trained θ0 agrees with itself on source-like volumes; and a
# small contrast and brightness change of the normalised input (x -> 1.1 x + 0.1 standard deviations).
MIRROR_AXIS = -3
INTENSITY_PERTURBATION = (1.1, 0.1)


def perturb_batch(window: torch.Tensor) -> torch.Tensor:
    """(B, Cin, d, h, w) -> (2B, Cin, d, h, w): the mirrored windows, then the intensity-changed ones (one forward)."""
    scale, shift = INTENSITY_PERTURBATION
    return torch.cat([torch.flip(window, dims=(MIRROR_AXIS,)), window * scale + shift])


def compute_disagreement(probs: torch.Tensor, perturbed_probs: torch.Tensor) -> torch.Tensor:
    """Per-voxel disagreement of probs (B, C, ...) with the network's output on `perturb_batch` (2B, C, ...),
    averaged over the two perturbations -> (B, 1, ...) in [0, 1]: for the mirror, |f - f'| of the foreground
    probability f = 1 - p0; for the intensity change, the total-variation distance 0.5 * sum_c |p - p'|.

    Why the mirror compares the foreground only: class identities can depend on orientation (left / right,
    anterior / posterior hippocampus), and a network that knows this flips its classes under a mirror most
    confidently on the volumes it knows best."""
    b = probs.shape[0]
    mirrored = torch.flip(perturbed_probs[:b], dims=(MIRROR_AXIS,))  # back to the original orientation
    mirror = (mirrored[:, :1] - probs[:, :1]).abs()  # |(1 - p0') - (1 - p0)|
    intensity = 0.5 * (probs - perturbed_probs[b:]).abs().sum(1, keepdim=True)
    return 0.5 * (mirror + intensity)


def compute_consistency_gap(foreground: torch.Tensor, disagreement: torch.Tensor, *, method: str = "otsu",
                            fixed: float = 0.5, clip: tuple[float, float] = (0.1, 0.9), bins: int = 256,
                            top_fraction: float = 0.01) -> float:
    """Mean disagreement (D, H, W) over θ0's adaptive foreground Omega (from its foreground probability (D, H, W),
    thresholded as ASD's); an empty Omega: the mean of the top `top_fraction` disagreement voxels."""
    fg = foreground.float().clamp(0.0, 1.0)
    mask, _ = compute_foreground_mask(torch.stack([1.0 - fg, fg]), method, fixed, clip, bins)
    values = disagreement.double()
    n = int(mask.sum())
    if n:
        return float((values * mask).sum() / n)
    k = max(1, int(round(top_fraction * values.numel())))
    return float(values.flatten().topk(k).values.mean())
