"""Validated configuration of fine-tuning and SSFT (pydantic, extra fields forbidden); defaults live here."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from assft.config import InferenceConfig, TrainConfig, _Config

Reliability = Literal["both", "confidence", "distance", "all", "none"]
RELIABILITY_CHOICES: tuple[str, ...] = ("both", "confidence", "distance", "all", "none")


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


FINETUNE_LR = 5e-4  # fine-tuning learning rate (TrainConfig's 2e-3 is the from-scratch rate)


class FinetuneConfig(_Config):
    """Fine-tuning from a checkpoint: stage 1 (labeled) -> pseudo-labels -> stage 3 (labeled + pseudo-labeled).

    train: the stage-1 loop (its `steps`, `lr`, `patch_size`, ...); stage 3 uses the same settings with `ssft_steps`.
    steps_per_round: the optimisation budget of one call, stated once (compute matching): with SSFT, stage 1 gets
    round((1 - ssft_fraction) * steps_per_round) optimizer steps and stage 3 the rest; without SSFT stage 1 gets all
    of them. When set, `train.steps` and `ssft_steps` must not be set as well.
    bn_stats: BatchNorm during fine-tuning: "train" (batch statistics, running statistics follow the labeled
    patches), "frozen" (running statistics kept, e.g. the ones AdaBN adapted to the pool), or "pool" (train, then
    re-estimate the running statistics on the labeled and unlabeled volumes, as AdaBN does, after each stage).
    round_init: in a campaign, each round starts from the previous round's weights ("previous") or from the
    campaign's start model ("start").
    ramp_fraction: λ(t) rises linearly from 0 to 1 over this fraction of stage 3, then stays at 1.
    restart_from_pretrained: start stage 3 from the input weights θ0 instead of the stage-1 weights.
    inference: the sliding-window pass of stage 2 (roi_size defaults to the training patch).
    record_true_dice: when the unlabeled cases have label files (simulation), score every pseudo-label against
    them for the Figure-5 diagnostic; those labels are read for that only, never for training.
    seed: the one seed; every random choice of both stages (and a new head's initialisation) is derived from it,
    so train.seed must stay 0.
    """

    # Fine-tuning defaults chosen on the validation split (docs/benchmarks.md, "The fine-tuning recipe"): lr 5e-4, a
    # quarter of the from-scratch rate, and BatchNorm statistics re-estimated on the pool after each stage.
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(lr=FINETUNE_LR))
    ssft_steps: int = 300
    steps_per_round: int | None = None
    ssft_fraction: float = 0.5
    bn_stats: Literal["train", "frozen", "pool"] = "pool"
    round_init: Literal["previous", "start"] = "previous"
    pseudo: PseudoLabelConfig = Field(default_factory=PseudoLabelConfig)
    ramp_fraction: float = 0.5
    restart_from_pretrained: bool = False
    inference: InferenceConfig | None = None
    record_true_dice: bool = True
    gallery: bool = True  # with an output folder: pseudo_label_gallery.png, accepted next to rejected pseudo-labels
    seed: int = 0

    @model_validator(mode="before")
    @classmethod
    def _ssft_switch(cls, data: object) -> object:
        # `ssft: true|false` (the CLI's --ssft/--no-ssft) is a switch stored as pseudo.reliability: false means
        # "none"; true keeps the given reliability (default "both") and must not meet "none".
        if not isinstance(data, dict) or "ssft" not in data:
            return data
        data = dict(data)
        switch = data.pop("ssft")
        if switch is None:
            return data
        pseudo = dict(data.get("pseudo") or {})
        given = pseudo.get("reliability")
        if not switch and given not in (None, "none"):
            raise ValueError(f"ssft: false (--no-ssft) contradicts pseudo.reliability {given!r}; drop one of them")
        if switch and given == "none":
            raise ValueError("ssft: true (--ssft) contradicts pseudo.reliability 'none'; drop one of them")
        if not switch:
            pseudo["reliability"] = "none"
        data["pseudo"] = pseudo
        return data

    @field_validator("train", mode="before")
    @classmethod
    def _finetune_lr(cls, v: object) -> object:
        # A partial `train:` mapping must still get the fine-tuning rate, not TrainConfig's from-scratch one.
        if isinstance(v, dict) and "lr" not in v:
            return {**v, "lr": FINETUNE_LR}
        return v

    @field_validator("ssft_steps")
    @classmethod
    def _steps(cls, v: int) -> int:
        if v < 0:
            raise ValueError("must be >= 0")
        return v

    @field_validator("steps_per_round")
    @classmethod
    def _budget(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError("must be >= 1 (or null: train.steps and ssft_steps apply)")
        return v

    @field_validator("ramp_fraction", "ssft_fraction")
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
        if self.steps_per_round is not None:
            # A dump of a config holds the defaults; only values that differ from them can conflict.
            given = [name for name, value, default in (
                ("train.steps", self.train.steps, TrainConfig.model_fields["steps"].default),
                ("ssft_steps", self.ssft_steps, type(self).model_fields["ssft_steps"].default)) if value != default]
            if given:
                raise ValueError(f"steps_per_round states the round's steps once; remove {' and '.join(given)}")
        if self.bn_stats == "frozen" and self.train.bn_mode != "frozen":
            self.train = self.train.model_copy(update={"bn_mode": "frozen"})
        return self

    def stage_steps(self) -> tuple[int, int]:
        """(stage-1 steps, stage-3 steps): from steps_per_round when set, else train.steps and ssft_steps."""
        if self.steps_per_round is None:
            return self.train.steps, (self.ssft_steps if self.ssft else 0)
        if not self.ssft:
            return self.steps_per_round, 0
        stage3 = int(round(self.ssft_fraction * self.steps_per_round))
        return self.steps_per_round - stage3, stage3

    @property
    def ssft(self) -> bool:
        """True when stage 2 and 3 run (reliability is not "none")."""
        return self.pseudo.reliability != "none"

    def resolved_inference(self) -> InferenceConfig:
        """The stage-2 inference config: the given one, or one window of the training patch size."""
        if self.inference is not None:
            return self.inference
        return InferenceConfig(roi_size=self.train.patch_size, device=self.train.device)
