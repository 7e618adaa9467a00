"""Pure per-case score functions (method.md): entropy, adaptive foreground, ASD, confidence, KD, BALD, Div, BADGE,
ClaSP PE's peak class uncertainty.

None of them mutates its inputs. Probability maps are `probs` (C, D, H, W) float32 that sum to 1 over C; they
never receive logits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from assft.errors import CheckpointError, ConfigError

Moments = tuple[torch.Tensor, torch.Tensor]  # per-channel mean (C,), biased variance (C,)


def _check_probs(probs: torch.Tensor) -> None:
    if probs.ndim < 2 or probs.shape[0] < 2:
        raise ConfigError(f"expected probs (C, D, H, W) with C >= 2 classes, got shape {tuple(probs.shape)}.",
                          fix="pass softmax probabilities with a background channel 0")


def compute_voxel_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy normalised to [0, 1]: -sum_c p log p / log C. probs (C, ...) -> (...) float32."""
    _check_probs(probs)
    p = probs.float()
    # p * log(max(p, 1e-30)) is 0 at p = 0 like xlogy, and ~5x faster than torch.special.xlogy on CPU
    entropy = -(p * torch.log(p.clamp_min(1e-30))).sum(0) / math.log(p.shape[0])
    return entropy.clamp(0.0, 1.0)


def compute_otsu_threshold(values: torch.Tensor, bins: int = 256, value_range: tuple[float, float] = (0.0, 1.0)
                           ) -> float:
    """Otsu's threshold of `values` (any shape) from a `bins`-bin histogram over `value_range`.

    scikit-image is not a dependency and MONAI's Otsu delegates to it, so this is the textbook histogram version
    (as `skimage.filters.threshold_otsu`). The threshold returned is the bin edge between the two classes, so
    `values >= threshold` is exactly the upper class; when several splits tie (e.g. two spikes), the middle of the
    tied range is taken. Constant input returns that constant.
    """
    v = values.detach().float().flatten()
    lo, hi = value_range
    vmin_t, vmax_t = torch.aminmax(v)
    vmin, vmax = float(vmin_t), float(vmax_t)
    if vmax - vmin < 1e-12:
        return vmin
    if vmin < lo or vmax > hi:
        v = v.clamp(lo, hi)
    # bin i holds [edge_i, edge_i+1), the last bin also hi (as torch.histc, which is ~4x slower than bincount)
    index = ((v - lo) * (bins / (hi - lo))).long().clamp_(0, bins - 1)
    hist = torch.bincount(index, minlength=bins).double()
    edges = torch.linspace(lo, hi, bins + 1, dtype=torch.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = torch.cumsum(hist, 0)
    w1 = torch.cumsum(hist.flip(0), 0).flip(0)
    m0 = torch.cumsum(hist * centres, 0) / w0.clamp_min(1e-12)
    m1 = (torch.cumsum((hist * centres).flip(0), 0) / w1.flip(0).clamp_min(1e-12)).flip(0)
    between = w0[:-1] * w1[1:] * (m0[:-1] - m1[1:]) ** 2
    best = torch.nonzero(between >= between.max() * (1 - 1e-9)).flatten()
    return float((edges[int(best.min()) + 1] + edges[int(best.max()) + 1]) / 2)


def compute_foreground_mask(probs: torch.Tensor, method: str = "otsu", fixed: float = 0.5,
                            clip: tuple[float, float] = (0.1, 0.9), bins: int = 256) -> tuple[torch.Tensor, float]:
    """Adaptive foreground Omega = {v : 1 - p0_v >= tau}: probs (C, D, H, W) -> (mask (D, H, W) bool, tau).

    tau is Otsu's threshold of 1 - p0 over the volume clipped to `clip` (method "otsu"), or `fixed`; method "none"
    keeps every voxel (whole-volume entropy, the ablation of the foreground restriction).
    """
    _check_probs(probs)
    foreground = 1.0 - probs[0].float()
    if method == "otsu":
        tau = min(max(compute_otsu_threshold(foreground, bins), clip[0]), clip[1])
    elif method == "fixed":
        tau = float(fixed)
    elif method == "none":
        tau = 0.0
    else:
        raise ConfigError(f"unknown foreground threshold {method!r}.", fix="use 'otsu', 'fixed' or 'none'")
    return foreground >= tau, tau


def compute_asd(probs: torch.Tensor, *, entropy: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                reduce: str = "class_balanced", top_fraction: float = 0.01) -> float:
    """Anatomical Segmentation Difficulty of probs (C, D, H, W) -> float in [0, 1].

    class_balanced: mean over foreground classes c >= 1 present in Omega of the mean entropy over Omega_c, where a
    voxel of Omega belongs to its most probable foreground class (argmax over c >= 1); mean: mean entropy over Omega.
    Empty Omega: mean of the top `top_fraction` entropy voxels (at least one).
    """
    entropy = compute_voxel_entropy(probs) if entropy is None else entropy
    mask = compute_foreground_mask(probs)[0] if mask is None else mask
    # masked sums and bincounts instead of boolean indexing: this runs once per volume inside the query pass
    n_mask = int(mask.sum())
    if n_mask == 0:
        flat = entropy.flatten()
        k = max(1, math.ceil(top_fraction * flat.numel()))
        return float(torch.topk(flat, k).values.mean())
    if reduce == "mean":
        return float((entropy * mask).sum(dtype=torch.float64) / n_mask)
    if reduce != "class_balanced":
        raise ConfigError(f"unknown ASD reduction {reduce!r}.", fix="use 'class_balanced' or 'mean'")
    per_class = []
    for members in _foreground_class_masks(probs, mask):
        count = int(members.sum())
        if count:
            per_class.append(float((entropy * members).sum(dtype=torch.float64)) / count)
    return float(np.mean(per_class))


def _foreground_class_masks(probs: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    """Omega_c for c >= 1: voxels of `mask` whose most probable foreground class is c (first one on ties).

    A running comparison over the few classes: argmax(0) over the class dimension is ~10x slower on CPU and runs
    once per volume inside the query pass; for many classes max(0).indices is used instead.
    """
    n_fg = probs.shape[0] - 1
    if n_fg > 8:
        fg_class = probs[1:].max(0).indices
        return [mask & (fg_class == c) for c in range(n_fg)]
    best = probs[1]
    masks = [mask]
    for c in range(2, n_fg + 1):
        better = probs[c] > best
        best = torch.maximum(best, probs[c])
        masks = [m & ~better for m in masks] + [mask & better]
    return masks


def compute_confidence(probs: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """conf = mean over Omega of max_c p (method.md SSFT); probs (C, D, H, W); empty or no mask: over all voxels."""
    _check_probs(probs)
    top = probs.amax(0)
    n_mask = int(mask.sum()) if mask is not None else 0
    if n_mask:
        return float((top * mask).sum(dtype=torch.float64) / n_mask)
    return float(top.mean(dtype=torch.float64))


def compute_gaussian_kl(mean_t: torch.Tensor, var_t: torch.Tensor, mean_s: torch.Tensor, var_s: torch.Tensor,
                        eps: float = 1e-5) -> torch.Tensor:
    """KL(N(mean_t, var_t) || N(mean_s, var_s)) per channel (C,) float64; variances clamped at eps."""
    vt = var_t.double().clamp_min(eps)
    vs = var_s.double().clamp_min(eps)
    diff = mean_t.double() - mean_s.double()
    return 0.5 * torch.log(vs / vt) + (vt + diff * diff) / (2.0 * vs) - 0.5


def compute_knowledge_divergence(target: Mapping[str, Moments], source: Mapping[str, Moments],
                                 eps: float = 1e-5) -> float:
    """KD: Gaussian KL of target vs source channel moments, averaged over channels, then over `source`'s layers."""
    missing = [name for name in source if name not in target]
    if missing or not source:
        raise CheckpointError(f"no target moments for norm layers {missing[:3]} (of {len(source)}).",
                              fix="score with the same network the source statistics were made for")
    per_layer = []
    for name, (mean_s, var_s) in source.items():
        mean_t, var_t = target[name]
        if mean_t.shape != mean_s.shape:
            raise CheckpointError(f"layer {name}: target has {tuple(mean_t.shape)} channels, source "
                                  f"{tuple(mean_s.shape)}.", fix="rebuild the fingerprint for this network")
        per_layer.append(float(compute_gaussian_kl(mean_t, var_t, mean_s, var_s, eps).mean()))
    return float(np.mean(per_layer))


def compute_bald(mc_probs: torch.Tensor) -> torch.Tensor:
    """BALD mutual information in nats: H(mean_t p_t) - mean_t H(p_t). mc_probs (T, C, ...) -> (...) >= 0."""
    p = mc_probs.float()
    return compute_bald_from_means(p.mean(0), -torch.special.xlogy(p, p).sum(1).mean(0), class_dim=0)


def compute_bald_from_means(mean_probs: torch.Tensor, mean_entropy: torch.Tensor, class_dim: int = 0) -> torch.Tensor:
    """BALD from running means over T samples: H(mean p) - mean H(p), >= 0; the class axis of mean_probs is reduced.

    The streaming form: the pass keeps only the two means, never the T samples (assft.inference.predictors).
    """
    h_mean = -torch.special.xlogy(mean_probs, mean_probs).sum(class_dim, keepdim=mean_entropy.dim() == mean_probs.dim())
    return (h_mean - mean_entropy).clamp_min(0.0)


def unit_rows(embeddings: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """Rows scaled to unit L2 norm (an all-zero row stays zero), C-contiguous `dtype` (n, d)."""
    z = np.ascontiguousarray(embeddings, dtype=dtype)
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def compute_cosine_distances(embeddings: np.ndarray, reference: np.ndarray, *, dtype: type = np.float64,
                             unit: bool = False, chunk: int = 1024) -> np.ndarray:
    """Min over reference rows of 1 - cos: embeddings (n, d), reference (m, d), m >= 1 -> (n,) float64.

    dtype: the matmul's precision (the query's greedy loop uses float32 on large pools); unit: the embeddings are
    unit rows already; chunk: reference rows per matmul, so memory stays (n, chunk).
    """
    a = np.asarray(embeddings, dtype=dtype) if unit else unit_rows(embeddings, dtype)
    b = unit_rows(reference, dtype)
    best = np.full(a.shape[0], -np.inf, dtype=np.float64)
    for start in range(0, b.shape[0], chunk):
        best = np.maximum(best, (a @ b[start:start + chunk].T).max(axis=1))
    return np.clip(1.0 - best, 0.0, 2.0)


def compute_diversity(embedding: np.ndarray, reference: np.ndarray) -> float:
    """Div = min over reference rows (m, d) of 1 - cos(z, z'); embedding (d,). A duplicate gives 0."""
    return float(compute_cosine_distances(np.asarray(embedding)[None], np.atleast_2d(reference))[0])


def compute_gradient_embedding(probs: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """BADGE gradient embedding at the predicted label, without backward(), summed over the batch.

    probs (B, C, d, h, w), head input features (B, F, d', h', w') -> (C, F) float64: the sum over the batch of the
    voxel mean of (p - onehot(argmax p)) outer features (exact for a 1x1x1 conv head; features at another
    resolution are met by average pooling or trilinear resizing of p - onehot).
    """
    return compute_gradient_embeddings(probs, features).sum(0)


def compute_gradient_embeddings(probs: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """`compute_gradient_embedding` per batch row: probs (B, C, ...), features (B, F, ...) -> (B, C, F) float64
    (the pass engine routes each row to the volume it came from)."""
    p = probs.float()
    residual = p - torch.nn.functional.one_hot(p.max(1).indices, p.shape[1]).movedim(-1, 1).float()
    if residual.shape[2:] != features.shape[2:]:
        if all(r >= f for r, f in zip(residual.shape[2:], features.shape[2:], strict=True)):
            residual = torch.nn.functional.adaptive_avg_pool3d(residual, features.shape[2:])
        else:
            residual = torch.nn.functional.interpolate(residual, size=features.shape[2:], mode="trilinear")
    g = residual.flatten(2).double()
    h = features.float().flatten(2).double()
    return torch.einsum("bcv,bfv->bcf", g, h) / g.shape[2]


def compute_box_sums(values: torch.Tensor, box: tuple[int, int, int]) -> torch.Tensor:
    """Sums over every box (a, b, c) at stride 1 (valid positions only): values (D, H, W) -> (D-a+1, H-b+1, W-c+1)
    float64. Separable running sums: O(voxels) whatever the box, where avg_pool3d costs O(voxels * a * b * c)."""
    out = values.double()
    for dim, size in enumerate(box):
        length = out.shape[dim]
        size = min(max(int(size), 1), length)
        cumsum = torch.nn.functional.pad(torch.cumsum(out, dim), _front_pad(dim, out.ndim))
        out = cumsum.narrow(dim, size, length - size + 1) - cumsum.narrow(dim, 0, length - size + 1)
    return out


def _front_pad(dim: int, ndim: int) -> tuple[int, ...]:
    """F.pad spec adding one zero in front of `dim` (F.pad lists dimensions last to first)."""
    pad = [0] * (2 * ndim)
    pad[2 * (ndim - 1 - dim)] = 1
    return tuple(pad)


def compute_box_max_mean(values: torch.Tensor, box: tuple[int, int, int]) -> float:
    """The largest mean of `values` (D, H, W) over a box (a, b, c) anywhere inside the volume (box clipped to it)."""
    box = tuple(min(max(int(s), 1), n) for s, n in zip(box, values.shape, strict=True))
    return float(compute_box_sums(values, box).max()) / float(np.prod(box))


def compute_top_mean(values: torch.Tensor, fraction: float) -> float:
    """Mean of the top `fraction` of the voxels of `values` (any shape), at least one voxel."""
    flat = values.flatten()
    k = max(1, math.ceil(fraction * flat.numel()))
    return float(torch.topk(flat, k).values.double().mean())


def clasp_box(shape: tuple[int, ...], fraction: float = 0.5, size: tuple[int, int, int] | None = None
              ) -> tuple[int, int, int]:
    """The box of ClaSP PE's box maximum for a volume of `shape` (D, H, W): `size` clipped to the volume, else
    `fraction` of each side (rounded, at least one voxel)."""
    if size is not None:
        sides = [min(max(int(s), 1), int(n)) for s, n in zip(size, shape, strict=True)]
    else:
        sides = [max(1, min(int(n), math.floor(fraction * n + 0.5))) for n in shape]
    return sides[0], sides[1], sides[2]


def compute_class_pe(probs: torch.Tensor, *, entropy: torch.Tensor | None = None, reduce: str = "box_max",
                     box: tuple[int, int, int] | None = None, top_fraction: float = 0.01) -> np.ndarray:
    """ClaSP PE's scores of one volume: probs (C, D, H, W) -> (C,) float64 in [0, 1].

    [0] is the peak of the normalised predictive entropy PE; [c] for c >= 1 the peak of U_c = PE * p_c (class c's
    share of the uncertainty). Peak: `box_max` = the largest mean over a box (default: half of each side) anywhere
    in the volume, `topk_mean` = the mean of the top `top_fraction` voxels. A class with no predicted voxels
    still gets a (small) score.
    """
    entropy = compute_voxel_entropy(probs) if entropy is None else entropy
    if reduce == "box_max":
        box = box or clasp_box(tuple(entropy.shape))

        def peak(values: torch.Tensor) -> float:
            return compute_box_max_mean(values, box)
    elif reduce == "topk_mean":
        def peak(values: torch.Tensor) -> float:
            return compute_top_mean(values, top_fraction)
    else:
        raise ConfigError(f"unknown clasp.reduce {reduce!r}.", fix="use 'box_max' or 'topk_mean'")
    # one class at a time: the running sums are float64 maps of the volume's size, never C of them at once
    out = [peak(entropy)] + [peak(entropy * probs[c].float()) for c in range(1, probs.shape[0])]
    return np.asarray(out, dtype=np.float64)
