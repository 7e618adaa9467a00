"""Registry of MONAI segmentation networks; each entry knows its bottleneck (for embeddings) and size divisor."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
from torch import nn

from assft.config import ModelConfig
from assft.errors import ConfigError
from assft.models.monai_nets import monai_spec, unet_bottleneck
from assft.models.nnunet import NNUNET_DEFAULTS, build_nnunet_network, nnunet_bottleneck, nnunet_divisor
from assft.models.spec import NetworkSpec, resolve_params
from assft.registry import Registry

NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm, nn.GroupNorm, nn.LayerNorm)


MODELS: Registry[NetworkSpec] = Registry("model")


def _build_unet(config: ModelConfig) -> nn.Module:
    from monai.networks.nets import UNet

    p = resolve_params(config, UNET_DEFAULTS)
    return UNet(spatial_dims=3, in_channels=config.in_channels, out_channels=config.out_channels,
                channels=tuple(p["channels"]), strides=tuple(p["strides"]), num_res_units=p["num_res_units"],
                norm=p["norm"], dropout=config.dropout)


UNET_DEFAULTS: dict[str, Any] = {"channels": (16, 32, 64, 128), "strides": (2, 2, 2), "num_res_units": 2, "norm": "batch"}
MODELS.register("unet")(NetworkSpec(
    _build_unet, unet_bottleneck, lambda p: 2 ** len(p["strides"]), UNET_DEFAULTS,
    "MONAI UNet with BatchNorm (small CPU-friendly default; running statistics give KD directly)."))


def _build_segresnet(config: ModelConfig) -> nn.Module:
    from monai.networks.nets import SegResNet

    p = resolve_params(config, SEGRESNET_DEFAULTS)
    return SegResNet(spatial_dims=3, init_filters=p["init_filters"], in_channels=config.in_channels,
                     out_channels=config.out_channels, dropout_prob=config.dropout or None,
                     norm=p["norm"], blocks_down=tuple(p["blocks_down"]), blocks_up=tuple(p["blocks_up"]))


SEGRESNET_DEFAULTS: dict[str, Any] = {"init_filters": 8, "norm": ("GROUP", {"num_groups": 8}),
                                      "blocks_down": (1, 2, 2, 4), "blocks_up": (1, 1, 1)}
MODELS.register("segresnet")(NetworkSpec(
    _build_segresnet, lambda m: m.down_layers[-1], lambda p: 2 ** (len(p["blocks_down"]) - 1), SEGRESNET_DEFAULTS,
    "MONAI SegResNet with GroupNorm (KD needs a source fingerprint)."))


def _build_swinunetr(config: ModelConfig) -> nn.Module:
    from monai.networks.nets import SwinUNETR

    p = resolve_params(config, SWIN_DEFAULTS)
    return SwinUNETR(in_channels=config.in_channels, out_channels=config.out_channels,
                     feature_size=p["feature_size"], depths=tuple(p["depths"]), num_heads=tuple(p["num_heads"]),
                     drop_rate=config.dropout, use_v2=p["use_v2"], spatial_dims=3)


SWIN_DEFAULTS: dict[str, Any] = {"feature_size": 12, "depths": (2, 2, 2, 2), "num_heads": (3, 6, 12, 24), "use_v2": False}
MODELS.register("swinunetr")(NetworkSpec(
    _build_swinunetr, lambda m: m.encoder10, lambda p: 32, SWIN_DEFAULTS,
    "MONAI Swin UNETR (LayerNorm/InstanceNorm; ~40x slower than the UNet on CPU; feature_size 48 for public SSL weights)."))


def _build_dynunet(config: ModelConfig) -> nn.Module:
    from monai.networks.nets import DynUNet

    p = resolve_params(config, DYNUNET_DEFAULTS)
    strides = [tuple(s) if isinstance(s, list | tuple) else s for s in p["strides"]]
    return DynUNet(spatial_dims=3, in_channels=config.in_channels, out_channels=config.out_channels,
                   kernel_size=p["kernel_size"], strides=strides, upsample_kernel_size=strides[1:],
                   filters=p["filters"], dropout=config.dropout or None, norm_name=p["norm_name"], res_block=p["res_block"])


DYNUNET_DEFAULTS: dict[str, Any] = {"kernel_size": (3, 3, 3, 3), "strides": (1, 2, 2, 2), "filters": (16, 32, 64, 128),
                                    "norm_name": ("INSTANCE", {"affine": True}), "res_block": True}
MODELS.register("dynunet")(NetworkSpec(
    _build_dynunet, lambda m: m.bottleneck, lambda p: 8, DYNUNET_DEFAULTS,
    "MONAI DynUNet (nnU-Net-style, InstanceNorm; KD needs a source fingerprint)."))


MODELS.register("nnunetv2")(NetworkSpec(
    build_nnunet_network, nnunet_bottleneck, nnunet_divisor, NNUNET_DEFAULTS,
    "An nnU-Net v2 plans configuration's network (`assft import --format nnunetv2`; extra assft[nnunet]; "
    "InstanceNorm: KD needs a source fingerprint)."))


MONAI_PREFIX = "monai."  # "monai.DynUNet": any class of monai.networks.nets, built from its recorded kwargs


def network_spec(name: str) -> NetworkSpec:
    """The registered network `name`, or for "monai.CLASS" a spec built from monai.networks.nets.CLASS."""
    if name.startswith(MONAI_PREFIX):
        return monai_spec(name[len(MONAI_PREFIX):])
    return MODELS.get(name)


def build_model(config: ModelConfig) -> nn.Module:
    """Build the registered network described by `config` (weights freshly initialised)."""
    return network_spec(config.name).build(config)


def bottleneck_module(model: nn.Module, name: str) -> nn.Module:
    """The encoder's deepest module, whose output is pooled into the case embedding."""
    return network_spec(name).bottleneck(model)


def size_divisor(config: ModelConfig) -> int:
    """Each spatial input size must be a multiple of this (roi and patch sizes are checked against it)."""
    spec = network_spec(config.name)
    return int(spec.divisor({**spec.defaults, **config.params}))


def check_sizes(model_config: ModelConfig, *sizes: tuple[int, int, int]) -> None:
    """Patch and roi sizes must be multiples of the network's size divisor."""
    div = size_divisor(model_config)
    for size in sizes:
        if any(s % div for s in size):
            raise ConfigError(f"size {tuple(size)} is not a multiple of {div}, which {model_config.name!r} needs.",
                              fix=f"round each of patch_size/roi_size to a multiple of {div}")


def norm_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every normalisation layer by qualified name, in forward-definition order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, NORM_TYPES)}


@lru_cache(maxsize=32)
def _head_keys_cached(name: str, params_json: str, in_channels: int) -> frozenset[str]:
    import json

    params = json.loads(params_json)
    shapes = []
    for out in (2, 3):
        cfg = ModelConfig(name=name, in_channels=in_channels, out_channels=out, params=params, dropout=0.0)
        shapes.append({k: tuple(v.shape) for k, v in build_model(cfg).state_dict().items()})
    return frozenset(k for k in shapes[0] if shapes[0][k] != shapes[1].get(k))


def head_keys(config: ModelConfig) -> frozenset[str]:
    """State-dict keys of the segmentation head: those whose shape depends on the number of output classes."""
    import json

    # Found by building the net with two class counts and diffing shapes: exact for every MONAI net, no name lists.
    return _head_keys_cached(config.name, json.dumps(config.params, sort_keys=True, default=list), config.in_channels)


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; resolved at call time, never at import."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
