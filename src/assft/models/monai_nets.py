"""Any class of `monai.networks.nets` as an assft network, rebuilt from its recorded name and constructor kwargs.

A checkpoint of an imported MONAI network stores `ModelConfig(name="monai.DynUNet", params={kwargs})`; this module
turns that back into the network without a hand-written registry entry per class. What assft needs beyond the
constructor (the bottleneck whose output is the case embedding, the size divisor of the input) is known for the
common classes and found by a probe forward pass for the others.
"""

from __future__ import annotations

import inspect
import math
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from assft.config import ModelConfig
from assft.errors import ConfigError
from assft.models.spec import NetworkSpec
from assft.registry import unknown_name


def unet_bottleneck(model: nn.Module) -> nn.Module:
    """The bottom layer of MONAI's UNet (the registry's "unet" and an imported monai.UNet)."""
    from monai.networks.layers.simplelayers import SkipConnection

    # MONAI's UNet nests Sequential(down, SkipConnection(...), up); the innermost submodule is the bottom layer.
    node: nn.Module = model.model
    while True:
        skips = [m for m in node.children() if isinstance(m, SkipConnection)]
        if not skips:
            return node
        inner = skips[0].submodule
        if not any(isinstance(m, SkipConnection) for m in inner.children()) and not isinstance(inner, nn.Sequential):
            return inner
        node = inner


# Where the encoder ends, for classes whose attribute names say it (others: the probe in `probe_bottleneck`).
KNOWN_BOTTLENECKS = {
    "UNet": unet_bottleneck,
    "DynUNet": lambda m: m.bottleneck,
    "SegResNet": lambda m: m.down_layers[-1],
    "SwinUNETR": lambda m: m.encoder10,
    "BasicUNet": lambda m: m.down_4,
    "BasicUNetPlusPlus": lambda m: m.conv_4_0,
}


def monai_class(name: str) -> type[nn.Module]:
    """monai.networks.nets.NAME, or an UnknownNameError listing the network classes MONAI has."""
    import monai.networks.nets as nets

    cls = getattr(nets, name, None)
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        known = [n for n in dir(nets) if inspect.isclass(getattr(nets, n)) and issubclass(getattr(nets, n), nn.Module)]
        raise unknown_name("MONAI network (monai.networks.nets)", name, known)
    return cls


def build_monai_net(name: str, config: ModelConfig) -> nn.Module:
    """monai.networks.nets.NAME(in_channels, out_channels, **config.params); bad kwargs are a ConfigError."""
    cls = monai_class(name)
    try:
        return cls(in_channels=config.in_channels, out_channels=config.out_channels, **config.params)
    except (TypeError, ValueError, AssertionError, KeyError) as exc:
        raise ConfigError(f"monai.networks.nets.{name} cannot be built from {dict(config.params)} "
                          f"({type(exc).__name__}: {str(exc)[:200]}).",
                          fix=f"check the arguments against MONAI's {name} (--arch-args JSON)") from exc


def monai_divisor(name: str, params: dict[str, Any]) -> int:
    """Each input size must be a multiple of this: the product of the strides, or the class's known down-sampling."""
    if "strides" in params:  # UNet, DynUNet, AttentionUnet, ...: per level an int or one stride per axis
        per_axis = [1, 1, 1]
        for stride in params["strides"]:
            for axis in range(3):
                per_axis[axis] *= int(stride[axis] if isinstance(stride, list | tuple) else stride)
        return max(per_axis)
    if name == "SegResNet":
        return 2 ** (len(params.get("blocks_down", (1, 2, 2, 4))) - 1)
    if name in ("SwinUNETR", "SwinUNETRV2"):
        patch = params.get("patch_size", 2)
        return int(patch if isinstance(patch, int) else max(patch)) * 16
    return 16  # BasicUNet and most others halve four times


def probe_bottleneck(model: nn.Module, params: dict[str, Any], in_channels: int, divisor: int) -> nn.Module:
    """The last module (in forward order) whose 5D output has the smallest spatial size: the encoder's end."""
    size = params.get("img_size")
    size = tuple(size) if isinstance(size, list | tuple) else (size,) * 3 if size else (2 * divisor,) * 3
    seen: list[tuple[int, int, nn.Module]] = []

    def hook(module: nn.Module, inputs: tuple, output: object) -> None:
        if isinstance(output, torch.Tensor) and output.ndim == 5:
            seen.append((math.prod(output.shape[2:]), len(seen), module))

    handles = [m.register_forward_hook(hook) for m in model.modules() if m is not model]
    training = model.training
    try:
        param = next(model.parameters())
        with torch.no_grad():
            model.eval()(torch.zeros(1, in_channels, *size, device=param.device, dtype=param.dtype))
    finally:
        model.train(training)
        for h in handles:
            h.remove()
    if not seen:
        raise ConfigError(f"{type(model).__name__} has no module with a 3D feature map to embed cases from.",
                          fix="use a strategy that needs no embedding (random, entropy)")
    smallest = min(n for n, _, _ in seen)
    return max((order, m) for n, order, m in seen if n == smallest)[1]


@lru_cache(maxsize=None)
def monai_spec(name: str) -> NetworkSpec:
    """NetworkSpec of monai.networks.nets.NAME: its kwargs live in ModelConfig.params (no registry defaults)."""
    cls = monai_class(name)

    def bottleneck(model: nn.Module) -> nn.Module:
        if name in KNOWN_BOTTLENECKS:
            return KNOWN_BOTTLENECKS[name](model)
        params = getattr(model, "_assft_params", {})
        in_channels = getattr(model, "_assft_in_channels", 1)
        return probe_bottleneck(model, params, in_channels, monai_divisor(name, params))

    def build(config: ModelConfig) -> nn.Module:
        model = build_monai_net(name, config)
        model._assft_params = dict(config.params)  # the probe needs the input size the class accepts
        model._assft_in_channels = config.in_channels
        return model

    return NetworkSpec(build, bottleneck, lambda p: monai_divisor(name, p), {},
                       f"monai.networks.nets.{cls.__name__}, built from the kwargs recorded in the checkpoint.")
