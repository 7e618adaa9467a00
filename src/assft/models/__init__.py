"""Models: registry of MONAI networks, checkpoints with key reports, MC dropout."""

from assft.models.checkpoint import (
    Checkpoint,
    KeyReport,
    build_from_checkpoint,
    load_checkpoint,
    load_weights,
    make_checkpoint,
    save_checkpoint,
)
from assft.models.hooks import enable_mc_dropout
from assft.models.zoo import MODELS, bottleneck_module, build_model, head_keys, norm_layers, resolve_device, size_divisor

__all__ = [
    "MODELS",
    "Checkpoint",
    "KeyReport",
    "bottleneck_module",
    "build_from_checkpoint",
    "build_model",
    "enable_mc_dropout",
    "head_keys",
    "load_checkpoint",
    "load_weights",
    "make_checkpoint",
    "norm_layers",
    "resolve_device",
    "save_checkpoint",
    "size_divisor",
]

import assft.models.genesis_net  # noqa: E402,F401  registers "genesis_unet" for imported Models Genesis / SuPreM weights
