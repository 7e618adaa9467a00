"""Reducers: what a pass keeps of a network's activations, one small class per need, one protocol.

A reducer follows MONAI's `Cumulative` pattern: `add(...)` once per forward batch (a batch may hold several windows
of one volume, or windows of several volumes), then `result(slot)` per volume. The batch row -> volume routing is
the `slots` argument (row i belongs to volume `slots[i]`; default: every row to volume 0), so one class serves a
sliding-window pass over one volume and a batch of several volumes alike, and the statistics of two volumes are
never mixed.

Reducers here: `ChannelMoments` (norm-layer input moments), `PooledEmbedding` (the bottleneck embedding) and
`GradientEmbedding` (BADGE). The probability statistics (entropy, ASD, confidence, foreground size, ClaSP PE) and
BALD's map need the whole stitched volume (ASD's Otsu threshold, ClaSP's box maxima), so they are reduced from the
engine's per-volume output (`assft.query.summaries`; BALD's MC samples are reduced per window to one extra output
channel by `assft.inference.predictors.ScoringPredictor`).

There is exactly one accumulator of channel moments (`ChannelMoments`): the source fingerprint, the target KD
moments, AdaBN's pool statistics and the batched pass all use it, so a volume's fingerprint equals its KD moments.
Arithmetic: each batch row is reduced with one float32 sum and one float32 sum of squares (cascade summation, ~10x
cheaper than a float64 copy or Welford's update, which add 20-30 % to a CPU pass of the default UNet), accumulated
in float64. The cancellation error of E[x²] - E[x]² is ~1e-7 (mean / std)² relative: negligible for KD and BN.
"""

from __future__ import annotations

import math

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from assft.metrics.scores import Moments, compute_gradient_embeddings



def _routing(slots: Sequence[int] | None, rows: int) -> torch.Tensor:
    if slots is None:
        return torch.zeros(rows, dtype=torch.long)
    if len(slots) != rows:
        raise ValueError(f"{len(slots)} slots for a batch of {rows} rows")
    return torch.as_tensor(list(slots), dtype=torch.long)


class _SlotSums:
    """Float64 per-slot sums of per-row vectors, growing as new slots appear."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = torch.zeros(0, dtype=torch.float64)

    def add(self, slots: torch.Tensor, count_per_row: float, **rows: torch.Tensor) -> None:
        size = int(slots.max()) + 1
        if size > self.count.numel():
            self.count = torch.cat([self.count, torch.zeros(size - self.count.numel(), dtype=torch.float64)])
            for key, total in self.sums.items():
                self.sums[key] = torch.cat([total, total.new_zeros(size - total.shape[0], total.shape[1])])
        self.count.index_add_(0, slots, torch.full((len(slots),), float(count_per_row), dtype=torch.float64))
        for key, values in rows.items():
            values = values.double().cpu()
            if key not in self.sums:
                self.sums[key] = torch.zeros(self.count.numel(), values.shape[1], dtype=torch.float64)
            self.sums[key].index_add_(0, slots, values)

    def release(self, slot: int) -> None:
        """Forget slot `slot`'s sums (its volume is done; the slot may be reused)."""
        if slot < self.count.numel():
            with torch.inference_mode():  # the sums were made by hooks under inference mode
                self.count[slot] = 0.0
                for total in self.sums.values():
                    total[slot] = 0.0

    def get(self, slot: int) -> tuple[float, dict[str, torch.Tensor]]:
        if slot >= self.count.numel() or self.count[slot] == 0:
            raise RuntimeError(f"no batch row was routed to slot {slot} (did the hook see a forward pass?)")
        return float(self.count[slot]), {key: total[slot] for key, total in self.sums.items()}


class ChannelMoments:
    """Per-channel mean and biased variance of a tensor (B, C, ...) -- or, `channels_last`, (B, ..., C) as a
    LayerNorm sees it -- over every voxel of the rows routed to each slot: `result(slot)` -> (mean (C,), var (C,))
    float64 on CPU."""

    def __init__(self, channels_last: bool = False) -> None:
        self.channels_last = channels_last
        self._sums = _SlotSums()

    def add(self, x: torch.Tensor, slots: Sequence[int] | None = None) -> None:
        """Accumulate one batch x (B, C, ...); row i goes to volume `slots[i]` (default: all rows to slot 0)."""
        x = x.detach().float()
        dims = tuple(range(1, x.ndim - 1)) if self.channels_last else tuple(range(2, x.ndim))
        voxels = math.prod(x.shape[d] for d in dims)
        self._sums.add(_routing(slots, x.shape[0]), voxels, s1=x.sum(dims), s2=(x * x).sum(dims))

    def add_moments(self, count: float, mean: torch.Tensor, var: torch.Tensor, slot: int = 0) -> None:
        """Merge a group of `count` values with channel mean (C,) and biased variance (C,) (pooling volumes)."""
        if count <= 0:
            return
        mean, var = mean.detach().double().cpu(), var.detach().double().cpu()
        self._sums.add(torch.tensor([slot]), count, s1=(mean * count)[None], s2=((var + mean * mean) * count)[None])

    def release(self, slot: int) -> None:
        """Drop slot `slot`'s sums (the pass engine reuses slots of finished volumes)."""
        self._sums.release(slot)

    def count(self, slot: int = 0) -> float:
        """How many values (voxels) slot `slot` has seen."""
        return self._sums.get(slot)[0]

    def result(self, slot: int = 0) -> Moments:
        """(mean (C,), biased variance (C,)) float64 of slot `slot`."""
        n, sums = self._sums.get(slot)
        mean = sums["s1"] / n
        return mean, (sums["s2"] / n - mean * mean).clamp_min(0.0)


class PooledEmbedding:
    """Global average of a module's output (B, d, ...) per row, averaged over the rows of each slot and
    L2-normalised: `result(slot)` -> (d,) float32 (the bottleneck embedding of a volume)."""

    def __init__(self) -> None:
        self._sums = _SlotSums()

    def add(self, feats: torch.Tensor, slots: Sequence[int] | None = None) -> None:
        """Accumulate one batch of features (B, d, ...)."""
        pooled = feats.detach().float().mean(dim=tuple(range(2, feats.ndim)))
        self._sums.add(_routing(slots, pooled.shape[0]), 1.0, pooled=pooled)

    def release(self, slot: int) -> None:
        """Drop slot `slot`'s sums (the pass engine reuses slots of finished volumes)."""
        self._sums.release(slot)

    def result(self, slot: int = 0) -> torch.Tensor:
        """The slot's mean pooled feature, L2-normalised: (d,) float32."""
        n, sums = self._sums.get(slot)
        emb = (sums["pooled"] / n).float()
        return emb / emb.norm().clamp_min(1e-12)


class GradientEmbedding:
    """BADGE's last-layer gradient embedding at the predicted label, one (C, F) matrix per batch row
    (`assft.metrics.scores.compute_gradient_embeddings`), averaged over the rows of each slot: `result(slot)` ->
    (C * F,) float32."""

    def __init__(self) -> None:
        self._sums = _SlotSums()

    def add(self, probs: torch.Tensor, features: torch.Tensor, slots: Sequence[int] | None = None) -> None:
        """Accumulate one batch: probs (B, C, ...) and the head's input features (B, F, ...)."""
        rows = compute_gradient_embeddings(probs, features).flatten(1)
        self._sums.add(_routing(slots, rows.shape[0]), 1.0, grad=rows)

    def release(self, slot: int) -> None:
        """Drop slot `slot`'s sums (the pass engine reuses slots of finished volumes)."""
        self._sums.release(slot)

    def result(self, slot: int = 0) -> torch.Tensor:
        """The slot's mean gradient embedding over its windows: (C * F,) float32."""
        n, sums = self._sums.get(slot)
        return (sums["grad"] / n).float()


@dataclass
class Routing:
    """Which volume each row of the next forward batch belongs to, and whether hooks record it at all (the MC-dropout
    forwards of BALD are not recorded). Shared by every hook of a pass; `slots=None` routes every row to volume 0."""

    slots: Sequence[int] | None = None
    open: bool = True


def _output_tensor(output: object) -> torch.Tensor:
    return output[0] if isinstance(output, list | tuple) else output  # type: ignore[return-value]


@contextmanager
def hooked_moments(layers: Mapping[str, nn.Module], routing: Routing | None = None, *, pooled: bool = False
                   ) -> Iterator[dict[str, ChannelMoments]]:
    """Within the block, accumulate the input moments of each named norm layer, per volume (`routing.slots`) or, with
    `pooled`, over every recorded row in slot 0; hooks always removed."""
    routing = routing or Routing()
    reducers = {name: ChannelMoments(isinstance(layer, nn.LayerNorm)) for name, layer in layers.items()}

    def hook_for(reducer: ChannelMoments) -> Callable:
        def hook(module: nn.Module, inputs: tuple) -> None:
            if routing.open:
                reducer.add(inputs[0], None if pooled else routing.slots)
        return hook

    handles = [layer.register_forward_pre_hook(hook_for(reducers[name])) for name, layer in layers.items()]
    try:
        yield reducers
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def hooked_embedding(module: nn.Module, routing: Routing | None = None) -> Iterator[PooledEmbedding]:
    """Within the block, pool `module`'s output of every recorded forward; the hook is always removed."""
    routing = routing or Routing()
    reducer = PooledEmbedding()

    def hook(m: nn.Module, inputs: tuple, output: object) -> None:
        if routing.open:
            reducer.add(_output_tensor(output), routing.slots)

    handle = module.register_forward_hook(hook)
    try:
        yield reducer
    finally:
        handle.remove()
