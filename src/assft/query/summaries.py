"""CaseSummary: the small per-case record one pass is reduced to (maps are dropped as soon as it is built)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np
import torch

from assft.metrics.knowledge_gap import (
    compute_consistency_gap,
    compute_intensity_divergence,
    compute_intensity_statistics,
)
from assft.models.source_stats import KnowledgeSource
from assft.query.config import QueryConfig
from assft.query.figures import FigureSlices
from assft.metrics.scores import (
    Moments,
    clasp_box,
    compute_asd,
    compute_class_pe,
    compute_confidence,
    compute_foreground_mask,
    compute_knowledge_divergence,
    compute_voxel_entropy,
)

SCALAR_FIELDS = ("kd", "asd", "entropy", "entropy_foreground", "confidence", "foreground_fraction",
                 "foreground_threshold", "predicted_foreground_voxels", "bald")


@dataclass
class CaseSummary:
    """Everything strategies may use about one volume; fields a pass did not compute stay None.

    Scalars: kd (KD vs θ0's source statistics), asd, entropy (mean normalised voxel entropy), entropy_foreground
    (its mean over Omega), confidence (mean over Omega of max_c p), foreground_fraction (|Omega| / voxels),
    foreground_threshold (tau), predicted_foreground_voxels (argmax >= 1), bald (mean voxel BALD, nats).
    Vectors: embedding (d,) float32 L2-normalised; grad_embedding (C * F,) float32 (BADGE); class_pe (C,) float64
    (ClaSP PE: [0] peak predictive entropy, [c] peak of PE * p_c; only with Need.CLASS_PE).
    """

    case_id: str
    n_voxels: int = 0
    kd: float | None = None
    asd: float | None = None
    entropy: float | None = None
    entropy_foreground: float | None = None
    confidence: float | None = None
    foreground_fraction: float | None = None
    foreground_threshold: float | None = None
    predicted_foreground_voxels: int | None = None
    bald: float | None = None
    embedding: np.ndarray | None = None
    grad_embedding: np.ndarray | None = None
    class_pe: np.ndarray | None = None
    figure: FigureSlices | None = None  # slices for the query figures (only when figures were asked for)
    # θ0's norm-layer input moments, kept only for kd.source "pool" until the pool's KD is computed (then dropped)
    norm_moments: Mapping[str, Moments] | None = None

    def scalars(self) -> dict[str, float]:
        """The computed scalar fields by name (None ones left out)."""
        return {name: getattr(self, name) for name in SCALAR_FIELDS if getattr(self, name) is not None}

    def nbytes(self) -> int:
        """Approximate size in memory of the arrays it holds (it must stay small)."""
        return sum(getattr(self, f.name).nbytes for f in fields(self)
                   if isinstance(getattr(self, f.name), np.ndarray | FigureSlices))


@dataclass(frozen=True)
class ProbabilityMaps:
    """The voxel maps every probability statistic is reduced from: entropy (D, H, W) float32 in [0, 1], the
    foreground Omega (D, H, W) bool and its threshold tau. Computed once per volume and shared (ASD, confidence,
    ClaSP PE, the query figures)."""

    entropy: torch.Tensor
    mask: torch.Tensor
    tau: float


def probability_maps(probs: torch.Tensor, config: QueryConfig) -> ProbabilityMaps:
    """probs (C, D, H, W) -> its voxel entropy and foreground Omega under `config`'s ASD threshold."""
    mask, tau = compute_foreground_mask(probs, config.asd.threshold, config.asd.fixed_threshold,
                                        config.asd.threshold_clip, config.asd.otsu_bins)
    return ProbabilityMaps(compute_voxel_entropy(probs), mask, tau)


def summarize_probs(probs: torch.Tensor, config: QueryConfig, *, class_pe: bool = False,
                    maps: ProbabilityMaps | None = None) -> dict[str, float | int | np.ndarray]:
    """Reduce probs (C, D, H, W) to the probability statistics of CaseSummary (entropy, ASD, confidence, ...);
    with `class_pe` also ClaSP PE's per-class peaks (C,) from the same entropy map. `maps`: probs' maps when the
    caller already has them (`probability_maps`)."""
    maps = maps or probability_maps(probs, config)
    entropy, mask, tau = maps.entropy, maps.mask, maps.tau
    n_mask = int(mask.sum())
    extra: dict[str, np.ndarray] = {}
    if class_pe:
        extra["class_pe"] = compute_class_pe(
            probs, entropy=entropy, reduce=config.clasp.reduce, top_fraction=config.clasp.top_fraction,
            box=clasp_box(tuple(entropy.shape), config.clasp.box_fraction, config.clasp.box_size))
    return {**extra,
        "entropy": float(entropy.mean(dtype=torch.float64)),
        "entropy_foreground": float((entropy * mask).sum(dtype=torch.float64) / n_mask) if n_mask else 0.0,
        "asd": compute_asd(probs, entropy=entropy, mask=mask, reduce=config.asd.reduce,
                           top_fraction=config.asd.empty_top_fraction),
        "confidence": compute_confidence(probs, mask),
        "foreground_fraction": n_mask / mask.numel(),
        "foreground_threshold": tau,
        "predicted_foreground_voxels": int((probs[1:].amax(0) > probs[0]).sum()),  # argmax >= 1, ties to 0
    }


def summarize_pass(
    case_id: str,
    config: QueryConfig,
    *,
    probs: torch.Tensor | None = None,
    bald_map: torch.Tensor | None = None,
    embedding: torch.Tensor | None = None,
    grad_embedding: torch.Tensor | None = None,
    norm_moments: Mapping[str, Moments] | None = None,
    source_stats: Mapping[str, Moments] | None = None,
    class_pe: bool = False,
    maps: ProbabilityMaps | None = None,
    knowledge: KnowledgeSource | None = None,
    image: np.ndarray | None = None,
    consistency: torch.Tensor | None = None,
) -> CaseSummary:
    """Build a CaseSummary from what one (or two, θ and θ0) passes produced; shapes as in run_pass. `class_pe`:
    also reduce probs to ClaSP PE's per-class peaks; `maps`: probs' voxel maps when the caller has them.

    KD by `knowledge` (default: the Gaussian KL of `norm_moments` against `source_stats`): "intensity" reduces
    `image` (Cin, D, H, W), θ's input, over Omega and the non-zero region; "consistency" reduces θ0's
    (foreground, disagreement) maps `consistency` (2, D, H, W); "pool" keeps `norm_moments` for the pool step
    (`assft.query.knowledge.pool_knowledge_gap`)."""
    summary = CaseSummary(case_id)
    source = knowledge.name if knowledge is not None else None
    if probs is not None and source == "intensity":
        maps = maps or probability_maps(probs, config)
    if probs is not None:
        summary.n_voxels = int(probs[0].numel())
        for key, value in summarize_probs(probs, config, class_pe=class_pe, maps=maps).items():
            setattr(summary, key, value)
    if bald_map is not None:
        summary.n_voxels = int(bald_map.numel())
        summary.bald = float(bald_map.double().mean())
    if norm_moments is not None and source_stats is not None:
        summary.kd = compute_knowledge_divergence(norm_moments, source_stats, config.kd.eps)
    elif norm_moments is not None and source == "pool":
        summary.norm_moments = norm_moments
    if consistency is not None:
        summary.kd = compute_consistency_gap(
            consistency[0], consistency[1], method=config.asd.threshold, fixed=config.asd.fixed_threshold,
            clip=config.asd.threshold_clip, bins=config.asd.otsu_bins, top_fraction=config.asd.empty_top_fraction)
    if source == "intensity" and image is not None:
        summary.kd = intensity_gap(image, maps.mask if maps is not None else None, knowledge, config.kd.eps)
    # Copies owned by numpy, never views of torch storage: a small long-lived torch tensor per case pins glibc heap
    # pages between the large transient activations, and RSS would grow with every volume of the pool.
    if embedding is not None:
        summary.embedding = np.array(embedding.detach().float().cpu().reshape(-1).tolist(), dtype=np.float32)
    if grad_embedding is not None:
        summary.grad_embedding = np.array(grad_embedding.detach().float().cpu().reshape(-1).tolist(),
                                          dtype=np.float32)
    return summary


def intensity_gap(image: np.ndarray, foreground: torch.Tensor | None, knowledge: KnowledgeSource,
                  eps: float = 1e-5) -> float:
    """kd.source "intensity": the mean over input channels and regions of `compute_intensity_divergence` between the
    volume's intensities (image (Cin, D, H, W), θ's input) and the source record, over the predicted foreground
    Omega (mask (D, H, W), when θ has a head) and over the non-zero region (when the record has one)."""
    assert knowledge.intensity is not None
    gaps = []
    for channel, record in zip(np.asarray(image), knowledge.intensity, strict=True):
        if foreground is not None:
            values = channel[np.asarray(foreground, dtype=bool)]
            gaps.append(compute_intensity_divergence(compute_intensity_statistics(values), record,
                                                     location=knowledge.location, eps=eps))
        if "nonzero" in record:
            gaps.append(compute_intensity_divergence(compute_intensity_statistics(channel[channel != 0]),
                                                     record["nonzero"], location=knowledge.location, eps=eps))
    return float(np.mean(gaps)) if gaps else 0.0
