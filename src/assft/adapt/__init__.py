"""Source-free test-time adaptation without labels: AdaBN (BatchNorm statistics from the target pool) and TENT.

Names load lazily (assft.utils.lazy): `import assft.adapt.config` must not import torch and MONAI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from assft.utils.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "AdaptResult": "assft.adapt.api", "adapt_checkpoint": "assft.adapt.api",
    "batchnorm_layers": "assft.adapt.batchnorm", "estimate_batchnorm_statistics": "assft.adapt.batchnorm",
    "AdaptConfig": "assft.adapt.config", "tent_adapt": "assft.adapt.tent",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # type checkers and IDEs see the real names
    from assft.adapt.api import AdaptResult, adapt_checkpoint
    from assft.adapt.batchnorm import batchnorm_layers, estimate_batchnorm_statistics
    from assft.adapt.config import AdaptConfig
    from assft.adapt.tent import tent_adapt
