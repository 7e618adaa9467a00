"""Fine-tuning: the training loop, losses, and selective semi-supervised fine-tuning (SSFT).

Training a source model from scratch lives in `assft.pretrain.supervised` (it builds θ0; fine-tuning adapts it).

Names load lazily (assft.utils.lazy): `import assft.finetune.config` must not import torch and MONAI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from assft.utils.lazy import lazy_exports

__all__ = [
    "FinetuneConfig",
    "FitResult",
    "IGNORE",
    "PseudoLabelConfig",
    "SSFTResult",
    "SegmentationLoss",
    "fit",
    "pseudo_weight_ramp",
    "run_ssft",
    "select_reliable",
]

_HOMES = {
    "FinetuneConfig": "assft.finetune.config",
    "FitResult": "assft.finetune.trainer",
    "IGNORE": "assft.finetune.losses",
    "PseudoLabelConfig": "assft.finetune.config",
    "SSFTResult": "assft.finetune.ssft",
    "SegmentationLoss": "assft.finetune.losses",
    "fit": "assft.finetune.trainer",
    "pseudo_weight_ramp": "assft.finetune.ssft",
    "run_ssft": "assft.finetune.ssft",
    "select_reliable": "assft.finetune.pseudo_labels",
}

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)

if TYPE_CHECKING:  # type checkers and IDEs see the real names
    from assft.finetune.config import FinetuneConfig, PseudoLabelConfig
    from assft.finetune.losses import IGNORE, SegmentationLoss
    from assft.finetune.pseudo_labels import select_reliable
    from assft.finetune.ssft import SSFTResult, pseudo_weight_ramp, run_ssft
    from assft.finetune.trainer import FitResult, fit
