"""AdaBN: BatchNorm running statistics re-estimated on target volumes, exactly pooled over every voxel, streaming.

Each BatchNorm layer normalises with the statistics of the current batch during the pass (train-mode BatchNorm, the
way running statistics are collected in training), so a layer sees inputs that earlier, already target-normalised
layers produced. A pre-forward hook sums every layer's input per channel (float32 sums per batch, accumulated in
float64: the pooled mean and variance over all voxels of all volumes, not an average of per-batch estimates), through
the same pass engine and `ChannelMoments` reducer that KD uses. The engine packs the windows of several volumes into
one forward call (a batch of one window is ~3.5x slower per window on CPU); `per_volume_batch_norm` keeps each
volume's normalisation its own, so the statistics equal those of one volume at a time to float rounding (tested).
The running statistics are written once, at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from assft.config import InferenceConfig
from assft.data.preprocess import LoadedCase
from assft.inference.engine import hooks_only_predictor, iter_windows_pass
from assft.inference.predict import prepare_model
from assft.inference.reducers import Routing, hooked_moments

BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def batchnorm_layers(model: nn.Module) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    """BatchNorm layers that keep running statistics, by qualified name."""
    return {name: m for name, m in model.named_modules()
            if isinstance(m, BN_TYPES) and m.track_running_stats and m.running_mean is not None}


def estimate_batchnorm_statistics(model: nn.Module, volumes: Iterable[LoadedCase], inference: InferenceConfig,
                                  ) -> dict[str, tuple[torch.Tensor, torch.Tensor, int]]:
    """Per BatchNorm layer (mean (C,), unbiased var (C,), voxel count) of its input over `volumes`; model unchanged.

    The running statistics, momentum and num_batches_tracked of every layer are restored afterwards, so the only
    effect is the returned numbers (apply them with `apply_batchnorm_statistics`).
    """
    layers = batchnorm_layers(model)
    if not layers:
        return {}
    prepare_model(model, inference)
    saved = {name: (m.momentum, m.num_batches_tracked.clone()) for name, m in layers.items()}
    routing = Routing(open=False)
    try:
        for m in layers.values():
            m.train()  # normalise with the batch's statistics, as in training
            m.momentum = 0.0  # ... without touching the running statistics during the pass
        # windows of several volumes share a forward call, but each volume is normalised with the statistics of its
        # own windows, in MONAI's groups of sw_batch_size, exactly as a pass over that volume alone normalises it
        with hooked_moments(layers, routing, pooled=True) as reducers, per_volume_batch_norm(layers, routing):
            for _ in iter_windows_pass(model, volumes, lambda case: case.image, inference,
                                       predictor=hooks_only_predictor(model, inference.channels_last, layers),
                                       routing=routing, whole_chunks=True):
                pass
    finally:
        for name, m in layers.items():
            m.momentum, count = saved[name]
            m.num_batches_tracked.copy_(count)
        model.eval()
    out = {}
    for name, reducer in reducers.items():
        try:
            mean, var = reducer.result()
        except RuntimeError:  # a layer no pass reached (no volumes)
            continue
        n = int(reducer.count())
        out[name] = (mean, var * n / max(n - 1, 1), n)  # BatchNorm stores the unbiased variance
    return out


@contextmanager
def per_volume_batch_norm(layers: dict[str, nn.modules.batchnorm._BatchNorm], routing: Routing) -> Iterator[None]:
    """Within the block, train-mode BatchNorm layers normalise the batch rows of each volume (consecutive rows with
    one `routing.slots` value) with that volume's own batch statistics; a batch of one volume goes through the
    layer's own forward. Running statistics are not touched (the caller sets momentum 0)."""

    def forward_for(layer: nn.modules.batchnorm._BatchNorm):
        own = layer.forward

        def forward(x: torch.Tensor) -> torch.Tensor:
            slots = routing.slots
            if slots is None or len(set(slots)) == 1:
                return own(x)
            bounds = [0] + [i for i in range(1, len(slots)) if slots[i] != slots[i - 1]] + [len(slots)]
            return torch.cat([F.batch_norm(x[a:b], None, None, layer.weight, layer.bias, True, 0.0, layer.eps)
                              for a, b in zip(bounds, bounds[1:])])

        return forward

    try:
        for layer in layers.values():
            layer.forward = forward_for(layer)  # type: ignore[method-assign]
        yield
    finally:
        for layer in layers.values():
            layer.__dict__.pop("forward", None)


def apply_batchnorm_statistics(model: nn.Module, stats: dict[str, tuple[torch.Tensor, torch.Tensor, int]]) -> int:
    """Write estimated statistics into the layers' running buffers; returns how many layers were updated."""
    layers = batchnorm_layers(model)
    for name, (mean, var, _) in stats.items():
        layer = layers[name]
        with torch.no_grad():
            layer.running_mean.copy_(mean.to(layer.running_mean))
            layer.running_var.copy_(var.to(layer.running_var))
    return len(stats)
