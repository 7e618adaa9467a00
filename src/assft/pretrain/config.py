"""Configuration of self-supervised pre-training (pydantic; validated, saved with every checkpoint and resume state)."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator, model_validator

from assft.config import _Config

Task = Literal["inpaint", "rotation", "contrastive"]


class PretrainConfig(_Config):
    """Pretext tasks, patch sampling and optimisation of `assft pretrain` (defaults: a few CPU minutes, default UNet).

    The default recipe is the Swin UNETR SSL recipe without its contrastive term: masked-cube inpainting (the network
    itself with one output channel reconstructs the image) plus rotation prediction (a linear classifier on the pooled
    bottleneck). `contrastive` adds a SimCLR NT-Xent loss between two masked views (a second forward pass per step).
    """

    tasks: tuple[Task, ...] = ("inpaint", "rotation")
    patch_size: int = 32  # cubic patches, so 90-degree rotations keep the shape; a multiple of the net's divisor
    batch_size: int = 4
    steps: int = 300
    lr: float = 1e-3
    weight_decay: float = 1e-5
    mask_ratio: float = 0.3  # fraction of the patch covered by masked cubes (overlaps allowed, so a little less)
    mask_size: int = 8  # edge of each masked cube, voxels
    mask_value: Literal["noise", "zero"] = "noise"  # what replaces masked voxels
    unmasked_weight: float = 0.1  # weight of the L1 on visible voxels (the masked ones have weight 1)
    rotation_weight: float = 0.25
    contrastive_weight: float = 0.25
    temperature: float = 0.5  # NT-Xent
    rotation_axes: tuple[int, int] = (1, 2)  # spatial axes (0=D, 1=H, 2=W) spanning the plane of rotation
    save_every: int = 50  # steps between atomic resume states
    fingerprint_cases: int | None = None  # cases used for the source fingerprint (None: every source case)
    seed: int = 0
    device: str = "auto"
    num_threads: int | None = None

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one pretext task is needed (inpaint, rotation, contrastive)")
        if len(set(v)) != len(v):
            raise ValueError(f"tasks are repeated: {v}")
        return v

    @field_validator("mask_ratio")
    @classmethod
    def _ratio(cls, v: float) -> float:
        if not 0.0 <= v < 1.0:
            raise ValueError("mask_ratio must be in [0, 1)")
        return v

    @model_validator(mode="after")
    def _sizes(self) -> PretrainConfig:
        if self.patch_size < 8 or self.batch_size < 1 or self.steps < 1 or self.save_every < 1:
            raise ValueError("patch_size >= 8, batch_size >= 1, steps >= 1 and save_every >= 1 are required")
        if not 1 <= self.mask_size <= self.patch_size:
            raise ValueError(f"mask_size must be in [1, patch_size={self.patch_size}]")
        if sorted(self.rotation_axes) not in ([0, 1], [0, 2], [1, 2]):
            raise ValueError("rotation_axes must be two different spatial axes among 0, 1, 2")
        if "contrastive" in self.tasks and self.batch_size < 2:
            raise ValueError("the contrastive task needs batch_size >= 2 (negatives come from the batch)")
        return self
