"""What a network family tells assft: how to build it, where its encoder bottleneck is, its size divisor and
defaults (`NetworkSpec`), and how a checkpoint's params override those defaults (`resolve_params`).

The registry (`assft.models.zoo`) and the families it dispatches to (`monai_nets`, `nnunet`, `genesis_net`) all use
these two, so they sit below all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from assft.config import ModelConfig
from assft.errors import ConfigError


@dataclass(frozen=True)
class NetworkSpec:
    """How to build one network family and where its encoder bottleneck is."""

    build: Callable[[ModelConfig], nn.Module]
    bottleneck: Callable[[nn.Module], nn.Module]
    divisor: Callable[[dict[str, Any]], int]
    defaults: dict[str, Any]
    __doc__: str = ""


def resolve_params(config: ModelConfig, defaults: dict[str, Any]) -> dict[str, Any]:
    """The registry defaults overridden by `config.params` (unknown names are a ConfigError)."""
    unknown = sorted(set(config.params) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown parameters {unknown} for model {config.name!r}; known: {sorted(defaults)}.",
                          fix="remove them or check the spelling")
    return {**defaults, **config.params}
