"""nnU-Net v2 networks as assft models: built by nnU-Net's own `get_network_from_plans`, carrying nnU-Net's
sliding-window rule for the inference engine (its checkpoint files are read by `assft.pretrain.nnunet`).

The optional extra `assft[nnunet]` (nnunetv2, dynamic-network-architectures) is imported only when used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from assft.config import ModelConfig
from assft.models.spec import resolve_params

NNUNET_DEFAULTS: dict[str, Any] = {"arch_class_name": "", "arch_kwargs": {}, "arch_kwargs_req_import": (),
                                   "patch_size": (), "tile_step_size": 0.5}


@dataclass(frozen=True)
class NnunetWindows:
    """nnU-Net's sliding window for this network: its configuration's patch and step (Gaussian weights always)."""

    patch_size: tuple[int, ...]
    tile_step_size: float = 0.5


def build_nnunet_network(config: ModelConfig) -> nn.Module:
    """The network of an nnU-Net plans configuration, without deep supervision (as nnU-Net's predictor builds it)."""
    from assft.data.nnunet import require_nnunetv2

    require_nnunetv2()
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    p = resolve_params(config, NNUNET_DEFAULTS)
    network = get_network_from_plans(p["arch_class_name"], _lists(p["arch_kwargs"]), list(p["arch_kwargs_req_import"]),
                                     config.in_channels, config.out_channels, allow_init=True,
                                     deep_supervision=False)
    network.nnunet_windows = NnunetWindows(tuple(int(s) for s in p["patch_size"]), float(p["tile_step_size"]))
    return network


def _lists(value: Any) -> Any:
    """ModelConfig stores JSON lists as tuples; give nnU-Net's builders the plans' own lists back."""
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_lists(v) for v in value]
    return value


def nnunet_divisor(params: dict[str, Any]) -> int:
    """The smallest per-axis product of the encoder's strides (nnU-Net patches are multiples of each axis' product)."""
    strides = params["arch_kwargs"].get("strides") or ()
    if not strides:
        return 1
    per_axis = np.prod([[s] * 3 if isinstance(s, int) else list(s) for s in strides], axis=0)
    return int(min(per_axis))


def nnunet_bottleneck(model: nn.Module) -> nn.Module:
    """The deepest encoder stage of a dynamic-network-architectures U-Net."""
    return model.encoder.stages[-1]
