"""Several volumes in one forward call: the fast path of the pass when each volume fits in one sliding window.

Why: on CPU a small 3D UNet's forward costs 3-4x more per volume with one volume per call than with four (measured
on hippocampus-sized volumes: 257 vs 71 ms per volume on one busy core), because a batch of one leaves the
convolution kernels underused. When a volume is no larger than the window (hippocampus: most volumes in a
40x56x40 window), MONAI's sliding-window pass is exactly one window: the volume padded symmetrically with zeros to
the window, one forward, the padding cropped away (the Gaussian importance weights cancel for a single window). This
module does the same padding and cropping for several volumes at once, so its results equal MONAI's to float
rounding; volumes larger than the window keep going through `run_pass`.

Per-volume reductions of hooked activations (norm-layer moments for KD, the pooled embedding) are routed per batch
row to their volume by the reducers (`assft.inference.reducers`), so batching never mixes two volumes' statistics.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from assft.config import InferenceConfig
from assft.inference.predict import forward_precision
from assft.inference.reducers import Routing, hooked_embedding

T = TypeVar("T")


def fits_one_window(shape: Sequence[int], roi: Sequence[int]) -> bool:
    """True when a volume of spatial `shape` (D, H, W) needs a single window of size `roi`."""
    return all(int(s) <= int(r) for s, r in zip(shape, roi))


def symmetric_padding(shape: Sequence[int], roi: Sequence[int]) -> list[tuple[int, int]]:
    """(before, after) zero padding per spatial axis up to `roi`, split as MONAI's sliding window splits it."""
    return [((r - s) // 2, (r - s) - (r - s) // 2) for s, r in zip(shape, roi)]


def forward_padded(model: nn.Module, images: Sequence[np.ndarray], roi: Sequence[int], *,
                   channels_last: bool, precision: str = "fp32") -> list[torch.Tensor]:
    """Softmax probabilities (C, D, H, W) per image (C_in, D, H, W), all padded to `roi` and run in one batch.

    Every image must fit in `roi` (`fits_one_window`); the output of each is cropped back to its own shape.
    """
    device = next(model.parameters()).device
    pads = [symmetric_padding(image.shape[1:], roi) for image in images]
    batch = np.stack([np.pad(image, [(0, 0), *pad]) for image, pad in zip(images, pads)])
    with torch.inference_mode():
        x = torch.as_tensor(batch, dtype=torch.float32, device=device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with forward_precision(model, precision):
            logits = model(x)
        probs = torch.softmax(logits.float(), dim=1)
    out = []
    for i, (image, pad) in enumerate(zip(images, pads)):
        crop = tuple(slice(before, before + size) for (before, _), size in zip(pad, image.shape[1:]))
        out.append(probs[(i, slice(None), *crop)].contiguous().cpu())
    return out


def chunks_that_fit(items: Iterable[T], shape_of, roi: Sequence[int], size: int) -> Iterator[tuple[list[T], bool]]:
    """Group a stream into (items, batched) chunks in input order: runs of up to `size` items that fit one window
    (batched=True), and single items that do not (batched=False)."""
    pending: list[T] = []
    for item in items:
        if fits_one_window(shape_of(item), roi):
            pending.append(item)
            if len(pending) == size:
                yield pending, True
                pending = []
        else:
            if pending:
                yield pending, True
                pending = []
            yield [item], False
    if pending:
        yield pending, True


def iter_probs(model: nn.Module, volumes: Iterable, config: InferenceConfig, *,
               embedding_module: nn.Module | None = None) -> Iterator[tuple]:
    """(volume, probs (C, D, H, W)) for each `LoadedCase`-like volume (`.image` (C, D, H, W)), in input order,
    `config.batch_volumes` volumes per forward call where they fit one window, else MONAI's sliding window.

    With `embedding_module`, yields (volume, probs, embedding (d,)) with the module's pooled, L2-normalised output.
    """
    from assft.inference.predict import run_pass
    from assft.utils.threads import tick

    for chunk, batched in chunks_that_fit(volumes, lambda v: v.image.shape[1:], config.roi_size,
                                          max(1, config.batch_volumes)):
        tick()
        if batched and config.batch_volumes > 1:
            routing = Routing(slots=range(len(chunk)))
            with hooked_embedding(embedding_module, routing) if embedding_module is not None else nullcontext() \
                    as embedding:
                probs = forward_padded(model, [v.image for v in chunk], config.roi_size,
                                       channels_last=config.channels_last, precision=config.precision)
            for i, (volume, p) in enumerate(zip(chunk, probs)):
                yield (volume, p) if embedding is None else (volume, p, embedding.result(i))
        else:
            for volume in chunk:
                result = run_pass(model, volume.image, config, embedding_module=embedding_module)
                yield (volume, result.probs) if embedding_module is None else \
                    (volume, result.probs, result.embedding)
