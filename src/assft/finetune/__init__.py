"""Fine-tuning: the training loop, losses, and selective semi-supervised fine-tuning (SSFT).

Training a source model from scratch lives in `assft.pretrain.supervised` (it builds θ0; fine-tuning adapts it)."""

from assft.finetune.config import FinetuneConfig, PseudoLabelConfig
from assft.finetune.losses import IGNORE, SegmentationLoss
from assft.finetune.pseudo_labels import select_reliable
from assft.finetune.ssft import SSFTResult, pseudo_weight_ramp, run_ssft
from assft.finetune.trainer import FitResult, fit

__all__ = [
    "IGNORE",
    "FinetuneConfig",
    "FitResult",
    "PseudoLabelConfig",
    "SSFTResult",
    "SegmentationLoss",
    "fit",
    "pseudo_weight_ramp",
    "run_ssft",
    "select_reliable",
]
