"""Pretext tasks as pure tensor functions (rotation, cube masking, inpainting/NT-Xent losses) and the small SSL heads."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

ROTATIONS = 4  # k * 90 degrees, k = 0..3
ROTATION_GRID = 2  # the rotation head sees the bottleneck pooled to a 2x2x2 grid


def compute_rotation(patches: torch.Tensor, ks: torch.Tensor, axes: tuple[int, int] = (1, 2)) -> torch.Tensor:
    """Rotate each patch (B, C, P, P, P) by ks[b] * 90 degrees in the plane of spatial `axes`; returns a new tensor."""
    dims = (axes[0] + 1, axes[1] + 1)  # per patch (C, P, P, P)
    return torch.stack([torch.rot90(p, int(k), dims=dims) for p, k in zip(patches, ks)])


def make_cube_mask(batch: int, size: int, ratio: float, cube: int, rng: np.random.Generator) -> torch.Tensor:
    """Random cube mask (B, 1, P, P, P) bool: round(ratio * P^3 / cube^3) cubes of edge `cube` per patch."""
    mask = torch.zeros(batch, 1, size, size, size, dtype=torch.bool)
    n = int(round(ratio * size**3 / cube**3))
    if n == 0:
        return mask
    corners = rng.integers(0, size - cube + 1, size=(batch, n, 3))
    for b in range(batch):
        for z, y, x in corners[b]:
            mask[b, 0, z:z + cube, y:y + cube, x:x + cube] = True
    return mask


def compute_masked_input(patches: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
    """Replace masked voxels of patches (B, C, P, P, P) by `noise` (same shape) or by 0 when noise is None."""
    fill = torch.zeros_like(patches) if noise is None else noise
    return torch.where(mask.expand_as(patches), fill, patches)


def compute_inpainting_loss(recon: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                            unmasked_weight: float = 0.1) -> torch.Tensor:
    """Mean L1 over masked voxels + unmasked_weight * mean L1 over all voxels; recon/target (B, C, P, P, P)."""
    err = (recon - target).abs()
    m = mask.expand_as(err).to(err.dtype)
    masked = (err * m).sum() / m.sum().clamp_min(1.0)
    return masked + unmasked_weight * err.mean()


def compute_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR NT-Xent between two views z1, z2 (B, d): each row's positive is its other view, negatives the rest."""
    z = nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    n = z1.shape[0]
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return nn.functional.cross_entropy(sim, target)


def pool_features(features: torch.Tensor | tuple | list) -> torch.Tensor:
    """Global average of a bottleneck output (B, d, ...) -> (B, d) (a tuple output contributes its first item)."""
    feats = features[0] if isinstance(features, tuple | list) else features
    return feats.float().mean(dim=tuple(range(2, feats.ndim)))


class PretextHeads(nn.Module):
    """Small heads on the bottleneck features (B, d, ...): a rotation classifier and a contrastive projection.

    The rotation classifier is linear on the features average-pooled to a 2x2x2 grid (a global average is nearly
    blind to orientation); the projection is a 2-layer MLP on the global average.
    """

    def __init__(self, dim: int, rotation: bool, contrastive: bool, projection_dim: int = 64) -> None:
        super().__init__()
        self.rotation = (nn.Sequential(nn.AdaptiveAvgPool3d(ROTATION_GRID), nn.Flatten(),
                                       nn.Linear(dim * ROTATION_GRID**3, ROTATIONS)) if rotation else None)
        self.projection = (nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, projection_dim))
                           if contrastive else None)


class BottleneckTap:
    """Forward hook keeping the last output of the bottleneck module (with gradients) for the heads."""

    def __init__(self, module: nn.Module) -> None:
        self.output: torch.Tensor | None = None
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self.output = output

    def features(self) -> torch.Tensor:
        """Bottleneck output (B, d, ...) of the last forward call (a tuple output gives its first item)."""
        if self.output is None:
            raise RuntimeError("the bottleneck hook saw no forward pass")
        return self.output[0] if isinstance(self.output, tuple | list) else self.output

    def pooled(self) -> torch.Tensor:
        """(B, d) globally averaged features of the last forward call."""
        return pool_features(self.features())

    def remove(self) -> None:
        """Detach the hook."""
        self._handle.remove()
