"""Source-free test-time adaptation without labels: AdaBN (BatchNorm statistics from the target pool) and TENT."""

from assft.adapt.api import AdaptResult, adapt_checkpoint
from assft.adapt.batchnorm import batchnorm_layers, estimate_batchnorm_statistics
from assft.adapt.config import AdaptConfig
from assft.adapt.tent import tent_adapt

__all__ = ["AdaptConfig", "AdaptResult", "adapt_checkpoint", "batchnorm_layers", "estimate_batchnorm_statistics",
           "tent_adapt"]
