"""Forward hooks that reduce activations on the fly: pooled bottleneck embedding and norm-layer input moments."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class EmbeddingCollector:
    """Accumulates the global average of a module's output over every window it sees -> embedding (d,)."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.count = 0

    def __call__(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        feats = output[0] if isinstance(output, list | tuple) else output
        pooled = feats.detach().float().mean(dim=tuple(range(2, feats.ndim)))  # (B, d)
        self.total = pooled.sum(0) if self.total is None else self.total + pooled.sum(0)
        self.count += pooled.shape[0]

    def result(self) -> torch.Tensor:
        """Mean pooled feature over windows, L2-normalised: (d,) float32."""
        if self.total is None:
            raise RuntimeError("the embedding hook saw no forward pass")
        emb = self.total / max(self.count, 1)
        return (emb / emb.norm().clamp_min(1e-12)).cpu()


class MomentCollector:
    """Per-channel running sum / sum of squares / count of a norm layer's input -> (mean (C,), var (C,))."""

    def __init__(self, channels_last: bool) -> None:
        self.channels_last = channels_last  # LayerNorm in Swin sees (B, D, H, W, C)
        self.s1: torch.Tensor | None = None
        self.s2: torch.Tensor | None = None
        self.n = 0

    def __call__(self, module: nn.Module, inputs: tuple) -> None:
        x = inputs[0].detach()
        x = x.reshape(-1, x.shape[-1]) if self.channels_last else x.transpose(0, 1).reshape(x.shape[1], -1).T
        x = x.double()
        s1, s2 = x.sum(0), (x * x).sum(0)
        self.s1 = s1 if self.s1 is None else self.s1 + s1
        self.s2 = s2 if self.s2 is None else self.s2 + s2
        self.n += x.shape[0]

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Channel mean and (biased) variance over every voxel seen: (C,), (C,) float64."""
        if self.s1 is None:
            raise RuntimeError("the norm hook saw no forward pass")
        mean = self.s1 / self.n
        var = (self.s2 / self.n - mean * mean).clamp_min(0.0)
        return mean.cpu(), var.cpu()


@contextmanager
def capture_embedding(module: nn.Module) -> Iterator[EmbeddingCollector]:
    """Within the block, pool `module`'s output of every forward call; the hook is always removed."""
    collector = EmbeddingCollector()
    handle = module.register_forward_hook(collector)
    try:
        yield collector
    finally:
        handle.remove()


@contextmanager
def capture_norm_moments(layers: dict[str, nn.Module]) -> Iterator[dict[str, MomentCollector]]:
    """Within the block, accumulate input moments of each named norm layer; hooks are always removed."""
    collectors = {name: MomentCollector(isinstance(m, nn.LayerNorm)) for name, m in layers.items()}
    handles = [m.register_forward_pre_hook(collectors[name]) for name, m in layers.items()]
    try:
        yield collectors
    finally:
        for h in handles:
            h.remove()


def enable_mc_dropout(model: nn.Module) -> int:
    """Put only dropout modules in train mode (norms stay in eval); returns how many were enabled."""
    n = 0
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd) or isinstance(m, nn.Dropout):
            if m.p > 0:
                m.train()
                n += 1
    return n
