"""Fine-tuning: the supervised loop, losses, and selective semi-supervised fine-tuning (SSFT)."""

from assft.finetune.config import FinetuneConfig, PseudoLabelConfig
from assft.finetune.losses import IGNORE, SegmentationLoss
from assft.finetune.pseudo_labels import select_reliable
from assft.finetune.ssft import SSFTResult, pseudo_weight_ramp, run_ssft
from assft.finetune.supervised import TrainOutput, train_supervised
from assft.finetune.trainer import FitResult, fit

__all__ = [
    "IGNORE",
    "FinetuneConfig",
    "FitResult",
    "PseudoLabelConfig",
    "SSFTResult",
    "SegmentationLoss",
    "TrainOutput",
    "fit",
    "pseudo_weight_ramp",
    "run_ssft",
    "select_reliable",
    "train_supervised",
]
