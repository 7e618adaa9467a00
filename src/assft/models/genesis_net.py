"""Models Genesis' 3D U-Net (UNet3D), registered as model "genesis_unet" so its public weights load key for key.

The layout and state-dict keys follow the Models Genesis release (`down_tr64 ... down_tr512`, `up_tr256 ... up_tr64`,
`out_tr.final_conv`), which SuPreM's U-Net also uses. Two deliberate differences, neither of which changes a key:
- normalisation is plain BatchNorm3d: in eval mode it uses the running statistics (the release's ContBatchNorm3d
  always normalises with batch statistics; its running buffers were still updated during training, so they are the
  source statistics KD needs);
- the output is logits (no sigmoid), with optional dropout before the 1x1x1 head for MC dropout.
`base` scales every width (32 in the release: 64/128/256/512 channels); tests use a small base.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from assft.config import ModelConfig
from assft.models.spec import NetworkSpec, resolve_params
from assft.models.zoo import MODELS


class LUConv(nn.Module):
    """3x3x3 convolution, BatchNorm, ReLU (keys conv1.*, bn1.*)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm3d(out_channels)
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, D, H, W) -> (B, C_out, D, H, W)."""
        return self.activation(self.bn1(self.conv1(x)))


def _make_nconv(in_channels: int, depth: int, base: int, double: bool = False) -> nn.Sequential:
    width = base * 2 ** (depth + 1) if double else base * 2**depth
    return nn.Sequential(LUConv(in_channels, width), LUConv(width, width if double else width * 2))


class DownTransition(nn.Module):
    """Two LUConvs, then 2x max-pooling except at the deepest level; returns (output, skip)."""

    def __init__(self, in_channels: int, depth: int, base: int) -> None:
        super().__init__()
        self.ops = _make_nconv(in_channels, depth, base)
        self.maxpool = nn.MaxPool3d(2) if depth < 3 else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, D, H, W) -> (pooled or not, pre-pool skip)."""
        skip = self.ops(x)
        return (skip if self.maxpool is None else self.maxpool(skip)), skip


class UpTransition(nn.Module):
    """Transposed 2x convolution, concatenation with the skip, two LUConvs."""

    def __init__(self, in_channels: int, out_channels: int, depth: int, base: int) -> None:
        super().__init__()
        self.up_conv = nn.ConvTranspose3d(in_channels, out_channels, kernel_size=2, stride=2)
        self.ops = _make_nconv(in_channels + out_channels // 2, depth, base, double=True)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Upsample x (B, C, d, h, w) to the skip's grid and fuse."""
        return self.ops(torch.cat((self.up_conv(x), skip), 1))


class OutputTransition(nn.Module):
    """1x1x1 convolution to the output channels (key final_conv.*): the segmentation / reconstruction head."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.final_conv = nn.Conv3d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, out_channels, D, H, W)."""
        return self.final_conv(x)


class GenesisUNet3D(nn.Module):
    """Models Genesis UNet3D: four down levels (widths 2b, 4b, 8b, 16b), three up levels, a 1x1x1 head."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, base: int = 32, dropout: float = 0.0) -> None:
        super().__init__()
        b = base
        self.down_tr64 = DownTransition(in_channels, 0, b)
        self.down_tr128 = DownTransition(2 * b, 1, b)
        self.down_tr256 = DownTransition(4 * b, 2, b)
        self.down_tr512 = DownTransition(8 * b, 3, b)
        self.up_tr256 = UpTransition(16 * b, 16 * b, 2, b)
        self.up_tr128 = UpTransition(8 * b, 8 * b, 1, b)
        self.up_tr64 = UpTransition(4 * b, 4 * b, 0, b)
        self.dropout = nn.Dropout3d(dropout) if dropout > 0 else nn.Identity()
        self.out_tr = OutputTransition(2 * b, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, D, H, W) with D, H, W multiples of 8 -> logits (B, out_channels, D, H, W)."""
        out64, skip64 = self.down_tr64(x)
        out128, skip128 = self.down_tr128(out64)
        out256, skip256 = self.down_tr256(out128)
        out512, _ = self.down_tr512(out256)
        up = self.up_tr256(out512, skip256)
        up = self.up_tr128(up, skip128)
        up = self.up_tr64(up, skip64)
        return self.out_tr(self.dropout(up))


GENESIS_DEFAULTS: dict[str, Any] = {"base": 32}


def _build_genesis(config: ModelConfig) -> nn.Module:
    p = resolve_params(config, GENESIS_DEFAULTS)
    return GenesisUNet3D(config.in_channels, config.out_channels, int(p["base"]), config.dropout)


MODELS.register("genesis_unet")(NetworkSpec(
    _build_genesis, lambda m: m.down_tr512, lambda p: 8, GENESIS_DEFAULTS,
    "Models Genesis / SuPreM 3D U-Net (BatchNorm; 19M parameters at base 32; for imported public weights)."))
