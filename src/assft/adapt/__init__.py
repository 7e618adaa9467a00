"""Source-free test-time adaptation without labels: AdaBN (BatchNorm statistics from the target pool) and TENT.

Names load lazily (assft.utils.lazy): `import assft.adapt.config` must not import torch and MONAI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from assft.utils.lazy import lazy_exports

_EXPORTS = {
    "assft.adapt.api": ("AdaptResult", "adapt_checkpoint"),
    "assft.adapt.batchnorm": ("batchnorm_layers", "estimate_batchnorm_statistics"),
    "assft.adapt.config": ("AdaptConfig",),
    "assft.adapt.tent": ("tent_adapt",),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # type checkers and IDEs see the real names
    from assft.adapt.api import AdaptResult, adapt_checkpoint
    from assft.adapt.batchnorm import batchnorm_layers, estimate_batchnorm_statistics
    from assft.adapt.config import AdaptConfig
    from assft.adapt.tent import tent_adapt
