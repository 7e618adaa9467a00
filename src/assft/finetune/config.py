"""Validated configuration of fine-tuning and SSFT (pydantic, extra fields forbidden); defaults live here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from assft.config import InferenceConfig, TrainConfig

Reliability = Literal["both", "confidence", "distance", "all", "none"]
RELIABILITY_CHOICES: tuple[str, ...] = ("both", "confidence", "distance", "all", "none")


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class PseudoLabelConfig(_Config):
    """Which unlabeled volumes get pseudo-labels (the reliable set R) and how the labels are made.

    reliability: "both" (conf >= t_c and sd <= t_d, the method), "confidence" (conf only), "distance" (sd only),
    "all" (every unlabeled volume), "none" (no pseudo-labels: SSFT off, stage 1 only).
    qc / qd: quantile levels of the thresholds t_c = quantile_qc(conf), t_d = quantile_qd(sd) over the pool.
    foreground: how Ω (the volume's predicted foreground, over which conf is averaged) is found: "otsu"
    (τ = Otsu threshold of 1 - p0, clipped to [0.1, 0.9]) or "fixed" (τ = fixed_threshold).
    mask_threshold: voxels whose max class probability is below it are ignored in the loss (None = off).
    """

    reliability: Reliability = "both"
    qc: float = 0.5
    qd: float = 0.5
    foreground: Literal["otsu", "fixed"] = "otsu"
    fixed_threshold: float = 0.5
    mask_threshold: float | None = None

    @field_validator("qc", "qd", "fixed_threshold")
    @classmethod
    def _unit(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError("must be in [0, 1]")
        return v

    @field_validator("mask_threshold")
    @classmethod
    def _mask(cls, v: float | None) -> float | None:
        if v is not None and not 0.0 <= v <= 1.0:
            raise ValueError("must be in [0, 1] (or null for no voxel masking)")
        return v


class FinetuneConfig(_Config):
    """Fine-tuning from a checkpoint: stage 1 (labeled) -> pseudo-labels -> stage 3 (labeled + pseudo-labeled).

    train: the stage-1 loop (its `steps`, `lr`, `patch_size`, ...); stage 3 uses the same settings with `ssft_steps`.
    ramp_fraction: λ(t) rises linearly from 0 to 1 over this fraction of stage 3, then stays at 1.
    restart_from_pretrained: start stage 3 from the input weights θ0 instead of the stage-1 weights.
    inference: the sliding-window pass of stage 2 (roi_size defaults to the training patch).
    record_true_dice: when the unlabeled cases have label files (simulation), score every pseudo-label against
    them for the Figure-5 diagnostic; those labels are read for that only, never for training.
    seed: the one seed; every random choice of both stages (and a new head's initialisation) is derived from it,
    so train.seed must stay 0.
    """

    train: TrainConfig = Field(default_factory=TrainConfig)
    ssft_steps: int = 300
    pseudo: PseudoLabelConfig = Field(default_factory=PseudoLabelConfig)
    ramp_fraction: float = 0.5
    restart_from_pretrained: bool = False
    inference: InferenceConfig | None = None
    record_true_dice: bool = True
    seed: int = 0

    @field_validator("ssft_steps")
    @classmethod
    def _steps(cls, v: int) -> int:
        if v < 0:
            raise ValueError("must be >= 0")
        return v

    @field_validator("ramp_fraction")
    @classmethod
    def _ramp(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError("must be in [0, 1]")
        return v

    @model_validator(mode="after")
    def _train_fields(self) -> FinetuneConfig:
        if self.train.steps < 0:
            raise ValueError("train.steps must be >= 0")
        if self.train.seed != 0:  # one seed per run: both stages derive theirs from `seed`
            raise ValueError("set the run's `seed`, not train.seed (each stage's seed is derived from `seed`)")
        return self

    @property
    def ssft(self) -> bool:
        """True when stage 2 and 3 run (reliability is not "none")."""
        return self.pseudo.reliability != "none"

    def resolved_inference(self) -> InferenceConfig:
        """The stage-2 inference config: the given one, or one window of the training patch size."""
        if self.inference is not None:
            return self.inference
        return InferenceConfig(roi_size=self.train.patch_size, device=self.train.device)
