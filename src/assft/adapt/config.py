"""Validated configuration of test-time adaptation (budget 0): which method, and TENT's few optimisation knobs."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from assft.config import InferenceConfig, Triple, _Config

AdaptMethod = Literal["none", "auto", "adabn", "tent"]


class AdaptConfig(_Config):
    """Test-time adaptation of a checkpoint on unlabeled target volumes (no labels, no source data).

    method: "adabn" re-estimates every BatchNorm layer's running statistics on the pool (one streaming pass);
    "tent" minimises the mean voxel entropy of the predictions by training only the normalisation layers' affine
    parameters, BatchNorm normalising with each batch's statistics (Wang et al., ICLR 2021), then re-estimates the
    running statistics as AdaBN does;
    "none" leaves the model as is;
    "auto" picks by the network's normalisation (`assft.adapt.api.resolve_adapt_method`): AdaBN where BatchNorm
    normalises with running statistics, else `AUTO_WITHOUT_RUNNING_STATS` (AdaBN has nothing to change there).
    tent_epochs: passes over the pool (each volume contributes one patch per pass); tent_lr: Adam learning rate;
    tent_batch_size: patches per step; patch_size: TENT's patch (default: the checkpoint's training patch).
    inference: the sliding window of the statistics pass (default: one window of the training patch).
    seed: TENT's patch sampling (AdaBN is deterministic).
    """

    method: AdaptMethod = "adabn"
    tent_epochs: int = 1
    tent_lr: float = 1e-3
    tent_batch_size: int = 2
    patch_size: Triple | None = None
    inference: InferenceConfig | None = None
    seed: int = 0

    @field_validator("tent_epochs", "tent_batch_size")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be >= 1")
        return v

    @field_validator("tent_lr")
    @classmethod
    def _lr(cls, v: float) -> float:
        if not v > 0:
            raise ValueError("must be > 0")
        return v
