"""nnU-Net v2 networks as assft models: built by nnU-Net's own `get_network_from_plans`, read from nnU-Net's
checkpoint files without running pickled code, carrying nnU-Net's sliding-window rule for the inference engine.

The optional extra `assft[nnunet]` (nnunetv2, dynamic-network-architectures) is imported only when used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from assft.config import ModelConfig
from assft.errors import CheckpointError

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
    from assft.models.zoo import resolve_params

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


def nnunet_safe_globals() -> list:
    """The non-tensor types nnU-Net's trainer stores in checkpoint_final.pth besides builtins and torch.device:
    numpy scalars and dtypes (the logger's Dice values and `_best_ema` are numpy float64)."""
    import numpy.dtypes as npd

    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar  # type: ignore[attr-defined]
    return [scalar, np.dtype, npd.Float64DType, npd.Float32DType, npd.Int64DType, npd.Int32DType, npd.BoolDType]


def read_nnunet_checkpoint(path: Path, *, trust_pickle: bool = False) -> dict[str, Any]:
    """Load nnU-Net's `checkpoint_final.pth` with torch.load(weights_only=True) and the allow-list above.

    Raises:
        CheckpointError: missing file, pickled code (unless `trust_pickle`), or no `network_weights`.
    """
    from assft.models.checkpoint import blocked_global, is_blocked_pickle

    if not path.is_file():
        raise CheckpointError("nnU-Net checkpoint not found.", path=path,
                              fix="pass a results folder whose fold_K/ holds checkpoint_final.pth (finish training "
                                  "first, or check --fold)")
    try:
        if trust_pickle:
            raw = torch.load(path, map_location="cpu", weights_only=False)
        else:
            with torch.serialization.safe_globals(nnunet_safe_globals()):
                raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if not trust_pickle and is_blocked_pickle(exc):
            raise CheckpointError(f"the nnU-Net checkpoint contains pickled Python code beyond what nnU-Net stores "
                                  f"({blocked_global(exc)}); it was not loaded, since loading it could run that code.",
                                  path=path, fix="only if you trust the file's source, pass --trust-pickle") from exc
        raise CheckpointError(f"not a readable PyTorch file ({type(exc).__name__}: {str(exc)[:160]}).", path=path,
                              fix="pass the results folder of a finished nnU-Net v2 training") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("network_weights"), dict):
        raise CheckpointError("no 'network_weights' in the file: not an nnU-Net v2 checkpoint.", path=path,
                              fix="pass the results folder of an nnU-Net v2 training (fold_K/checkpoint_final.pth)")
    return raw
