"""Segmentation losses: MONAI Dice + cross-entropy, with an optional voxel mask for pseudo-labels."""

from __future__ import annotations

import torch
from monai.losses import DiceCELoss, MaskedDiceLoss

IGNORE = -1  # label value of voxels excluded from the loss (low-confidence pseudo-label voxels)


class SegmentationLoss(torch.nn.Module):
    """Dice + CE on logits (B, C, D, H, W) vs labels (B, 1, D, H, W) int; voxels labelled IGNORE are excluded."""

    def __init__(self) -> None:
        super().__init__()
        self.dice_ce = DiceCELoss(to_onehot_y=True, softmax=True)
        self.masked_dice = MaskedDiceLoss(to_onehot_y=True, softmax=True)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Scalar loss."""
        ignore = labels == IGNORE
        if not bool(ignore.any()):
            return self.dice_ce(logits, labels)
        # DiceCELoss has no ignore_index; MONAI's MaskedDiceLoss + torch CE(ignore_index) give the same loss masked.
        keep = (~ignore).float()
        safe = labels.masked_fill(ignore, 0)
        dice = self.masked_dice(logits, safe, mask=keep)
        ce = torch.nn.functional.cross_entropy(logits, labels[:, 0].long(), ignore_index=IGNORE) if bool(keep.any()) \
            else logits.sum() * 0.0
        return dice + ce
