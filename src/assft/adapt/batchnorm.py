"""AdaBN: BatchNorm running statistics re-estimated on target volumes, exactly pooled over every voxel, streaming.

Each BatchNorm layer normalises with the statistics of the current batch during the pass (train-mode BatchNorm, the
way running statistics are collected in training), so a layer sees inputs that earlier, already target-normalised
layers produced. A pre-forward hook sums every layer's input per channel (float32 sums per batch, accumulated in
float64: the pooled mean and variance over all voxels of all volumes, not an average of per-batch estimates), through
the same sliding-window pass and `ChannelMoments` reducer that KD uses. The running statistics are written once, at the end.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from assft.config import InferenceConfig
from assft.data.preprocess import LoadedCase
from assft.inference.predict import prepare_model, run_pass
from assft.inference.reducers import hooked_moments

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
    try:
        for m in layers.values():
            m.train()  # normalise with the batch's statistics, as in training
            m.momentum = 0.0  # ... without touching the running statistics during the pass
        with torch.inference_mode(), hooked_moments(layers) as reducers:
            for case in volumes:
                run_pass(model, case.image, inference)
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


def apply_batchnorm_statistics(model: nn.Module, stats: dict[str, tuple[torch.Tensor, torch.Tensor, int]]) -> int:
    """Write estimated statistics into the layers' running buffers; returns how many layers were updated."""
    layers = batchnorm_layers(model)
    for name, (mean, var, _) in stats.items():
        layer = layers[name]
        with torch.no_grad():
            layer.running_mean.copy_(mean.to(layer.running_mean))
            layer.running_var.copy_(var.to(layer.running_var))
    return len(stats)
