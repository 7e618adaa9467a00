"""TENT (Wang et al., ICLR 2021): minimise the prediction entropy on unlabeled target patches, training only the
normalisation layers' affine parameters (every other weight frozen), with BatchNorm on batch statistics.

Patches are drawn by a seeded generator, one per pool volume per epoch, reading each volume when its turn comes
(memory stays flat in the pool size).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from assft.data.cases import Case
from assft.data.preprocess import LoadedCase
from assft.models.zoo import NORM_TYPES
from assft.utils.seeding import derive_seed
from assft.utils.threads import tick


def affine_norm_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[str], list[str]]:
    """(affine parameters of every norm layer, names of layers adapted, names of norm layers without affine)."""
    params, adapted, skipped = [], [], []
    for name, module in model.named_modules():
        if not isinstance(module, NORM_TYPES):
            continue
        own = [p for p in (getattr(module, "weight", None), getattr(module, "bias", None)) if isinstance(p, nn.Parameter)]
        if own:
            params.extend(own)
            adapted.append(name)
        else:
            skipped.append(name)
    return params, adapted, skipped


def random_patch(image: np.ndarray, patch: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """A (C, *patch) crop at a uniformly random position; a volume smaller than the patch is zero-padded first."""
    pad = [(0, 0)] + [(max(0, p - s) // 2, max(0, p - s) - max(0, p - s) // 2) for s, p in zip(image.shape[1:], patch)]
    image = np.pad(image, pad) if any(a or b for a, b in pad) else image
    starts = [int(rng.integers(0, s - p + 1)) for s, p in zip(image.shape[1:], patch)]
    return image[(slice(None), *(slice(a, a + p) for a, p in zip(starts, patch)))]


def mean_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean voxel entropy (nats) of softmax(logits (B, C, ...)) -> scalar."""
    log_p = torch.log_softmax(logits.float(), dim=1)
    return -(log_p.exp() * log_p).sum(1).mean()


def tent_adapt(model: nn.Module, cases: Sequence[Case], load: Callable[[Case], LoadedCase], *,
               patch_size: tuple[int, int, int], epochs: int, lr: float, batch_size: int, seed: int,
               device: torch.device) -> dict:
    """Run TENT in place on `model`; returns {"steps", "losses" (first, last), "adapted_layers", "no_affine"}."""
    params, adapted, skipped = affine_norm_parameters(model)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    model.to(device).eval()
    batchnorms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in batchnorms]
    for module in batchnorms:
        module.train()  # TENT normalises with the test batch's statistics
        module.momentum = 0.0  # running statistics are re-estimated afterwards, not drifted here
    optimizer = torch.optim.Adam(params, lr=lr)
    rng = np.random.default_rng(derive_seed(seed, "tent"))
    steps_per_epoch = math.ceil(len(cases) / batch_size)
    losses = []
    try:
        for _ in range(epochs):
            order = rng.permutation(len(cases))
            for step in range(steps_per_epoch):
                tick()
                chosen = order[step * batch_size:(step + 1) * batch_size]
                batch = np.stack([random_patch(load(cases[int(i)]).image, patch_size, rng) for i in chosen])
                loss = mean_entropy(model(torch.as_tensor(batch, device=device)))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
        for module, momentum in zip(batchnorms, momenta):
            module.momentum = momentum
        model.eval()
    return {"steps": len(losses), "loss_first": losses[0] if losses else None,
            "loss_last": losses[-1] if losses else None, "adapted_layers": adapted, "no_affine": skipped}
