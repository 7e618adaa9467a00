"""Supervised training loop: MONAI patch sampling and augmentation, Dice+CE, AdamW, validation Dice, checkpoints."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from monai.metrics import compute_dice
from monai.transforms import (
    Compose,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandGaussianNoised,
    RandScaleIntensityd,
    RandShiftIntensityd,
    SpatialPadd,
)
from torch import nn

from assft.config import InferenceConfig, TrainConfig
from assft.data.preprocess import LoadedCase
from assft.errors import ConfigError
from assft.finetune.losses import SegmentationLoss
from assft.inference.engine import iter_probs
from assft.models.zoo import resolve_device
from assft.utils.distributed import Ranks, join_process_group
from assft.utils.progress import progress
from assft.utils.seeding import derive_seed, isolated_rng
from assft.utils.threads import tick


@dataclass
class FitResult:
    """Outcome of `fit`: best and last weights (CPU), per-step log, timings."""

    best_state: dict[str, torch.Tensor]
    last_state: dict[str, torch.Tensor]
    best_val_dice: float | None
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def make_patch_transform(config: TrainConfig, seed: int) -> Compose:
    """MONAI dict transform: pad to the patch, crop around foreground with `pos_fraction`, light augmentation."""
    pos = config.pos_fraction
    steps = [
        # Indices are precomputed once per case (prepare_case): recomputing them per crop cost ~90 ms a patch.
        RandCropByPosNegLabeld(keys=("image", "label"), label_key="label", spatial_size=config.patch_size,
                               pos=pos, neg=1.0 - pos, num_samples=1, allow_smaller=True,
                               fg_indices_key="fg_indices", bg_indices_key="bg_indices"),
    ]
    if config.augment:
        steps += [
            RandFlipd(keys=("image", "label"), prob=0.5, spatial_axis=0),
            RandScaleIntensityd(keys="image", factors=0.2, prob=0.5),
            RandShiftIntensityd(keys="image", offsets=0.2, prob=0.5),
            RandGaussianNoised(keys="image", prob=0.2, std=0.05),
        ]
    transform = Compose(steps)
    transform.set_random_state(seed=seed % (2**32))
    return transform


def prepare_case(case: LoadedCase, config: TrainConfig) -> dict:
    """Pad a case to at least the patch size and precompute its foreground/background voxel indices."""
    from monai.transforms.utils import map_binary_to_indices

    padded = SpatialPadd(keys=("image", "label"), spatial_size=config.patch_size)(
        {"image": case.image, "label": case.label[None]})
    image, label = np.asarray(padded["image"]), np.asarray(padded["label"])
    fg, bg = map_binary_to_indices(label > 0, image=None)
    if len(fg) == 0:  # an empty label: sample anywhere
        fg = bg
    return {"image": image, "label": label, "fg_indices": fg, "bg_indices": bg}


def iter_batches(cases: Sequence[LoadedCase], config: TrainConfig, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (image (B,C,*patch), label (B,1,*patch)) batches from cases chosen by a seeded RNG."""
    rng = np.random.default_rng(seed)
    transform = make_patch_transform(config, derive_seed(seed, "patches"))
    prepared = [prepare_case(case, config) for case in cases]
    while True:
        images, labels = [], []
        for i in rng.integers(0, len(cases), size=config.batch_size):
            sample = transform(dict(prepared[int(i)]))[0]
            images.append(torch.as_tensor(np.asarray(sample["image"]), dtype=torch.float32))
            labels.append(torch.as_tensor(np.asarray(sample["label"])).long())
        yield torch.stack(images), torch.stack(labels)


def evaluate_dice(model: nn.Module, cases: Sequence[LoadedCase], num_classes: int, config: InferenceConfig) -> float:
    """Mean foreground Dice over `cases` (MONAI compute_dice on argmax of sliding-window probs)."""
    model.eval()
    scores = []
    for case, probs in iter_probs(model, cases, config):  # several volumes per forward call where they fit
        pred = torch.nn.functional.one_hot(probs.argmax(0), num_classes).permute(3, 0, 1, 2)[None]
        true = torch.nn.functional.one_hot(torch.as_tensor(case.label).clamp_min(0), num_classes).permute(3, 0, 1, 2)[None]
        dice = compute_dice(pred, true, include_background=False, ignore_empty=False)
        scores.append(float(torch.nan_to_num(dice, nan=1.0).mean()))
    return float(np.mean(scores)) if scores else float("nan")


@isolated_rng
def fit(
    model: nn.Module,
    labeled: Sequence[LoadedCase],
    config: TrainConfig,
    num_classes: int,
    *,
    val: Sequence[LoadedCase] = (),
    inference: InferenceConfig | None = None,
    pseudo: Sequence[LoadedCase] = (),
    pseudo_weight: Callable[[int], float] | None = None,
    on_step: Callable[[int, dict], None] | None = None,
) -> FitResult:
    """Train `model` for `config.steps` steps on labeled patches (+ λ(step)·loss on pseudo-labeled patches).

    labeled / pseudo: LoadedCase with image (C, D, H, W) and label (D, H, W) int (-1 = ignored voxel).
    """
    if not labeled:
        raise ValueError("fit() needs at least one labeled case")
    start = time.perf_counter()
    device = resolve_device(config.device)
    torch.manual_seed(derive_seed(config.seed, "init-train"))
    model.to(device)
    set_train_mode(model, config.bn_mode)
    ranks = join_process_group()  # under torchrun: DDP, each rank a share of the global batch
    trained, sampling = _data_parallel(model, config, ranks)
    if ranks.distributed:  # DDP broadcast rank 0's weights; each rank then draws its own dropout masks
        torch.manual_seed(rank_seed(config.seed, "dropout", ranks))
    optimizer = make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config.steps, config.warmup_steps))
    anchor = [p.detach().clone() for p in model.parameters()] if config.l2sp > 0 else None
    loss_fn = SegmentationLoss()
    batches = iter_batches(labeled, sampling, rank_seed(config.seed, "labeled", ranks))
    pseudo_batches = iter_batches(pseudo, sampling, rank_seed(config.seed, "pseudo", ranks)) if pseudo else None
    inference = inference or InferenceConfig(roi_size=config.patch_size, device=config.device, channels_last=False)
    history: list[dict] = []
    best_dice, best_state = None, None
    for step in progress(range(1, config.steps + 1), "Training steps", total=config.steps,
                         enabled=None if ranks.is_main else False):
        tick()  # follow the machine's load between steps (see assft.utils.threads)
        image, label = next(batches)
        loss = loss_fn(trained(image.to(device)), label.to(device))
        record = {"step": step, "loss_labeled": float(loss.detach())}
        if pseudo_batches is not None:
            weight = pseudo_weight(step) if pseudo_weight else 1.0
            if weight > 0:
                p_image, p_label = next(pseudo_batches)
                p_loss = loss_fn(trained(p_image.to(device)), p_label.to(device))
                loss = loss + weight * p_loss
                record.update(loss_pseudo=float(p_loss.detach()), pseudo_weight=weight)
        if anchor is not None:
            penalty = sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor))
            loss = loss + 0.5 * config.l2sp * penalty
            record["l2sp"] = float(penalty.detach())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        record["loss"] = float(loss.detach())
        if val and (step % config.val_every == 0 or step == config.steps):
            dice = evaluate_dice(model, val, num_classes, inference)
            set_train_mode(model, config.bn_mode)
            record["val_dice"] = dice
            if best_dice is None or dice > best_dice:
                best_dice, best_state = dice, _cpu_state(model)
        history.append(record)
        if on_step is not None:
            on_step(step, record)
    model.eval()
    last = _cpu_state(model)
    return FitResult(best_state or last, last, best_dice, history, time.perf_counter() - start)


def rank_seed(seed: int, stream: str, ranks: Ranks) -> int:
    """The patch-sampling seed of `stream` for this rank: a single process keeps the plain stream (its runs are
    unchanged by DDP support), each rank of a distributed run gets its own."""
    return derive_seed(seed, stream) if not ranks.distributed else derive_seed(seed, stream, f"rank{ranks.rank}")


def _data_parallel(model: nn.Module, config: TrainConfig, ranks: Ranks) -> tuple[nn.Module, TrainConfig]:
    """(the module to call, the per-rank sampling config): under torchrun, DistributedDataParallel over the
    process group and batch_size / world patches per rank, so a step sees the same global batch as one process.

    Losses are means over equal per-rank batches and DDP averages the gradients, so a step's gradient is the
    global batch's (Dice+CE is per sample, CE per voxel); BatchNorm normalises each rank's share alone (SyncBatchNorm
    needs CUDA), the one difference from a single process, and buffers follow rank 0 (DDP broadcasts them)."""
    if not ranks.distributed:
        return model, config
    if config.batch_size % ranks.world:
        raise ConfigError(f"batch_size {config.batch_size} does not split evenly over {ranks.world} processes.",
                          fix=f"use a batch size that is a multiple of {ranks.world} (the global batch)")
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [next(model.parameters()).device.index] if next(model.parameters()).is_cuda else None
    return (DistributedDataParallel(model, device_ids=device_ids),
            config.model_copy(update={"batch_size": config.batch_size // ranks.world}))


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (the default), or SGD with Nesterov momentum: Adam moves every weight by about the learning rate each
    step whatever its gradient, SGD moves each in proportion to its gradient (gentler on weights that already fit)."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0,
                               weight_decay=config.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Learning-rate multiplier after `step` scheduler steps: linear warm-up over `warmup`, then cosine to 0."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(total - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup, span) / span))


def set_train_mode(model: nn.Module, bn_mode: str) -> None:
    """Train mode; with bn_mode "frozen", BatchNorm layers stay in eval mode (their running statistics are used and
    kept, e.g. statistics adapted to the target pool; their affine parameters still train)."""
    model.train()
    if bn_mode == "frozen":
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
