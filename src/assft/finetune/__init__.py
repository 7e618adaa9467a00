"""Fine-tuning: the training loop, losses, and selective semi-supervised fine-tuning (SSFT).

Training a source model from scratch lives in `assft.pretrain.supervised` (it builds θ0; fine-tuning adapts it).

Names load lazily (assft.utils.lazy): `import assft.finetune.config` must not import torch and MONAI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from assft.utils.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "FinetuneConfig": "assft.finetune.config", "PseudoLabelConfig": "assft.finetune.config",
    "IGNORE": "assft.finetune.losses", "SegmentationLoss": "assft.finetune.losses",
    "select_reliable": "assft.finetune.pseudo_labels", "SSFTResult": "assft.finetune.ssft",
    "pseudo_weight_ramp": "assft.finetune.ssft", "run_ssft": "assft.finetune.ssft",
    "FitResult": "assft.finetune.trainer", "fit": "assft.finetune.trainer",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # type checkers and IDEs see the real names
    from assft.finetune.config import FinetuneConfig, PseudoLabelConfig
    from assft.finetune.losses import IGNORE, SegmentationLoss
    from assft.finetune.pseudo_labels import select_reliable
    from assft.finetune.ssft import SSFTResult, pseudo_weight_ramp, run_ssft
    from assft.finetune.trainer import FitResult, fit
