"""Self-supervised pre-training loop: cubic patches, masked-cube inpainting + rotation (+ contrastive), resumable."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from assft.config import ModelConfig
from assft.models.zoo import bottleneck_module, resolve_device
from assft.pretrain.config import PretrainConfig
from assft.pretrain.pretext import (
    ROTATIONS,
    BottleneckTap,
    PretextHeads,
    compute_inpainting_loss,
    compute_masked_input,
    compute_nt_xent,
    compute_rotation,
    make_cube_mask,
)
from assft.pretrain.state import ResumeState, save_resume_state
from assft.utils.seeding import derive_seed, isolated_rng


@dataclass
class PretextResult:
    """Outcome of `fit_pretext`: per-step losses, the step it started from, the head weights, timing."""

    history: list[dict[str, float]]
    start_step: int
    heads_state: dict[str, torch.Tensor] = field(default_factory=dict)
    seconds: float = 0.0


def prepare_volume(image: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad a volume (C, D, H, W) symmetrically so that every spatial size is at least `size`."""
    pads = [(0, 0)] + [((max(size - s, 0)) // 2, max(size - s, 0) - (max(size - s, 0)) // 2) for s in image.shape[1:]]
    return np.pad(image, pads) if any(p != (0, 0) for p in pads) else image


def sample_patches(volumes: Sequence[np.ndarray], size: int, batch: int, rng: np.random.Generator) -> torch.Tensor:
    """`batch` random cubic crops (B, C, size, size, size) float32 from volumes already padded to >= size."""
    patches = []
    for i in rng.integers(0, len(volumes), size=batch):
        vol = volumes[int(i)]
        z, y, x = (int(rng.integers(0, s - size + 1)) for s in vol.shape[1:])
        patches.append(torch.from_numpy(np.ascontiguousarray(vol[:, z:z + size, y:y + size, x:x + size])))
    return torch.stack(patches).float()


def probe_bottleneck_dim(model: nn.Module, tap: BottleneckTap, in_channels: int, size: int,
                         device: torch.device) -> int:
    """Width d of the pooled bottleneck, from one eval-mode forward pass of a zero patch (no state changes)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, in_channels, size, size, size, device=device))
    model.train(was_training)
    return int(tap.pooled().shape[1])


@isolated_rng
def fit_pretext(
    model: nn.Module,
    model_config: ModelConfig,
    volumes: Sequence[np.ndarray],
    config: PretrainConfig,
    *,
    resume: ResumeState | None = None,
    state_path: str | Path | None = None,
    run_config: dict[str, Any] | None = None,
    case_ids: Sequence[str] = (),
    on_step: Callable[[int, dict], None] | None = None,
) -> PretextResult:
    """Pre-train `model` (its output channels reconstruct the input) on random cubic patches of `volumes`.

    Args:
        model: network built from `model_config` with out_channels == in_channels (the reconstruction head).
        model_config: its config (the bottleneck for the rotation/contrastive heads is looked up by name).
        volumes: preprocessed images (C, D, H, W) float32; labels are never used.
        config: pretext tasks, sampling and optimisation.
        resume: a state from `load_resume_state` to continue from (weights, optimizer, step, RNGs).
        state_path: where to write the resume state every `config.save_every` steps and at the end (None: never).
        run_config: configs stored in the resume state (checked when resuming).
        case_ids: ids of `volumes`, stored in the resume state.
        on_step: called as on_step(step, record) after each step (and after that step's resume state is saved).
    Returns:
        PretextResult with one record per step run in this call plus the resumed history.
    """
    from assft.utils.progress import progress

    start = time.perf_counter()
    tasks = set(config.tasks)
    device = resolve_device(config.device)
    torch.manual_seed(derive_seed(config.seed, "pretrain-heads"))
    model.to(device).train()
    tap = BottleneckTap(bottleneck_module(model, model_config.name))
    dim = probe_bottleneck_dim(model, tap, model_config.in_channels, config.patch_size, device)
    heads = PretextHeads(dim, "rotation" in tasks, "contrastive" in tasks).to(device)
    params = list(model.parameters()) + list(heads.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.steps)
    rng = np.random.default_rng(derive_seed(config.seed, "pretrain-batches"))
    torch.manual_seed(derive_seed(config.seed, "pretrain-steps"))
    history: list[dict[str, float]] = []
    first = 0
    if resume is not None:
        model.load_state_dict(resume.model)
        heads.load_state_dict(resume.heads)
        optimizer.load_state_dict(resume.optimizer)
        scheduler.load_state_dict(resume.scheduler)
        torch.set_rng_state(resume.torch_rng)
        rng.bit_generator.state = resume.numpy_rng
        history, first = list(resume.history), resume.step
    padded = [prepare_volume(v, config.patch_size) for v in volumes]

    def snapshot(step: int) -> ResumeState:
        return ResumeState(step, _cpu(model.state_dict()), _cpu(heads.state_dict()), optimizer.state_dict(),
                           scheduler.state_dict(), torch.get_rng_state(), rng.bit_generator.state,
                           dict(run_config or {}), list(history), list(case_ids))

    try:
        for step in progress(range(first + 1, config.steps + 1), "Pre-training", total=config.steps - first):
            record = _train_step(model, heads, tap, padded, config, tasks, rng, optimizer, device)
            scheduler.step()
            record["step"] = step
            history.append(record)
            if state_path is not None and (step % config.save_every == 0 or step == config.steps):
                save_resume_state(state_path, snapshot(step))
            if on_step is not None:
                on_step(step, record)
    finally:
        tap.remove()
    model.eval()
    return PretextResult(history, first, _cpu(heads.state_dict()), time.perf_counter() - start)


def _train_step(model: nn.Module, heads: PretextHeads, tap: BottleneckTap, volumes: Sequence[np.ndarray],
                config: PretrainConfig, tasks: set[str], rng: np.random.Generator,
                optimizer: torch.optim.Optimizer, device: torch.device) -> dict[str, float]:
    size, batch = config.patch_size, config.batch_size
    patches = sample_patches(volumes, size, batch, rng)
    # balanced rotations (every k equally often, random offset) keep the rotation loss' batch noise low
    ks = (torch.arange(batch) + int(rng.integers(0, ROTATIONS))) % ROTATIONS if "rotation" in tasks \
        else torch.zeros(batch, dtype=torch.long)
    target = compute_rotation(patches, ks, config.rotation_axes) if "rotation" in tasks else patches
    masked = "inpaint" in tasks or "contrastive" in tasks
    view, mask = (_masked_view(target, config, rng) if masked else (target, None))
    recon = model(view.to(device))
    record: dict[str, float] = {}
    total = torch.zeros((), device=device)
    if "inpaint" in tasks and mask is not None:
        loss = compute_inpainting_loss(recon, target.to(device), mask.to(device), config.unmasked_weight)
        total = total + loss
        record["inpaint"] = float(loss.detach())
    pooled = tap.pooled()
    if heads.rotation is not None:
        logits = heads.rotation(tap.features().float())
        loss = nn.functional.cross_entropy(logits, ks.to(device))
        total = total + config.rotation_weight * loss
        record["rotation"] = float(loss.detach())
        record["rotation_acc"] = float((logits.argmax(1).cpu() == ks).float().mean())
    if heads.projection is not None:
        view2, _ = _masked_view(target, config, rng)
        model(view2.to(device))
        loss = compute_nt_xent(heads.projection(pooled), heads.projection(tap.pooled()), config.temperature)
        total = total + config.contrastive_weight * loss
        record["contrastive"] = float(loss.detach())
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    record["loss"] = float(total.detach())
    return record


def _masked_view(patches: torch.Tensor, config: PretrainConfig, rng: np.random.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    mask = make_cube_mask(patches.shape[0], config.patch_size, config.mask_ratio, config.mask_size, rng)
    noise = (torch.from_numpy(rng.standard_normal(patches.shape, dtype=np.float32))
             if config.mask_value == "noise" else None)
    return compute_masked_input(patches, mask, noise), mask


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").clone() for k, v in state.items()}
