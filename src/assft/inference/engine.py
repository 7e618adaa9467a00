"""The pass engine: MONAI's sliding window, with the windows of consecutive volumes packed into one forward call.

Every pass of assft runs here: query scoring (θ and θ0), `predict`, `evaluate`, SSFT's pseudo-label scoring, the
source fingerprint and AdaBN. Each volume is covered exactly as `monai.inferers.sliding_window_inference` covers it
(symmetric zero padding up to the window, `dense_patch_slices` at `int(roi * (1 - overlap))` steps, Gaussian or
constant importance weights, weighted average, padding cropped), so one volume's output equals MONAI's to float
rounding (tested). What MONAI's inferer cannot do, and why this loop exists: it batches windows of one tensor of
equal-shaped images, while a pool holds volumes of different shapes. Here a forward call takes the next windows of
the stream in order, across volume boundaries: max(`sw_batch_size`, `batch_volumes`) windows of up to
`batch_volumes` volumes (`batch_volumes` 1: each volume alone, `sw_batch_size` windows a call, as MONAI does). On this project's CPUs a batch
of one window costs ~3.5x more per window than a batch of four (small UNet, hippocampus-sized windows: 32 vs 9 ms),
and most hippocampus volumes are a single window, so per-volume calls leave most of the machine idle.

An nnU-Net network (`assft.models.nnunet`; its `nnunet_windows` attribute) is covered by nnU-Net's own rule instead:
its configuration's patch, nnU-Net's evenly spread steps (step 0.5) and Gaussian; with the default predictor its
logits are summed in fp16, one contiguous window a forward call, and divided as nnU-Net's predictor does, so the
probabilities equal nnU-Net's to float rounding (tests/models/test_nnunet.py).

Hooked activations (norm-layer moments, the pooled embedding) are routed per batch row to the volume the row came
from (`Routing.slots`, read by the reducers in `assft.inference.reducers`): each volume in flight holds a slot; a
slot is released (its sums zeroed) and reused once its volume has been handed to the caller, so memory stays flat in
pool size.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from monai.data.utils import compute_importance_map, dense_patch_slices
from torch import nn

from assft.config import InferenceConfig
from assft.errors import ConfigError
from assft.inference.reducers import Routing, hooked_embedding
from assft.utils.threads import tick

T = TypeVar("T")
Predictor = Callable[[torch.Tensor], torch.Tensor]


class Releasable(Protocol):
    """A reducer whose per-volume state can be dropped once the volume is done."""

    def release(self, slot: int) -> None: ...


def scan_interval(image_size: Sequence[int], roi: Sequence[int], overlap: float) -> tuple[int, ...]:
    """Window step per axis, MONAI's rule (`monai.inferers.utils._get_scan_interval`, private there): the roi when
    the (padded) image equals it, else `int(roi * (1 - overlap))`, at least 1."""
    return tuple(int(r) if int(r) == int(s) else max(1, int(r * (1 - overlap))) for s, r in zip(image_size, roi))


def symmetric_padding(shape: Sequence[int], roi: Sequence[int]) -> list[tuple[int, int]]:
    """(before, after) zero padding per spatial axis up to `roi`, split as MONAI's sliding window splits it."""
    return [(max(r - s, 0) // 2, max(r - s, 0) - max(r - s, 0) // 2) for s, r in zip(shape, roi)]


def fits_one_window(shape: Sequence[int], roi: Sequence[int]) -> bool:
    """True when a volume of spatial `shape` (D, H, W) needs a single window of size `roi`."""
    return all(int(s) <= int(r) for s, r in zip(shape, roi))


@dataclass(frozen=True)
class WindowPlan:
    """How the sliding window covers one volume: its padding up to the roi and the window slices of the padded grid."""

    shape: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    slices: tuple[tuple[slice, ...], ...]

    @property
    def padded_shape(self) -> tuple[int, ...]:
        return tuple(s + a + b for s, (a, b) in zip(self.shape, self.padding))

    def crop(self) -> tuple[slice, ...]:
        """The original volume's region inside the padded grid."""
        return tuple(slice(a, a + s) for s, (a, _) in zip(self.shape, self.padding))


def plan_windows(shape: Sequence[int], roi: Sequence[int], overlap: float) -> WindowPlan:
    """The windows MONAI's `sliding_window_inference` visits for a volume of spatial `shape`, in its order."""
    padding = symmetric_padding(shape, roi)
    padded = tuple(int(s) + a + b for s, (a, b) in zip(shape, padding))
    slices = dense_patch_slices(padded, tuple(roi), scan_interval(padded, roi, overlap), return_slice=True)
    return WindowPlan(tuple(int(s) for s in shape), tuple(padding), tuple(tuple(s) for s in slices))


def plan_nnunet_windows(shape: Sequence[int], patch: Sequence[int], step: float) -> WindowPlan:
    """The windows nnU-Net's predictor visits, in its order: the same symmetric zero padding up to the patch
    (acvl_utils' `pad_nd_image` splits it as MONAI does), then nnU-Net's own evenly spread steps."""
    import itertools

    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    padding = symmetric_padding(shape, patch)
    padded = tuple(int(s) + a + b for s, (a, b) in zip(shape, padding))
    steps = compute_steps_for_sliding_window(padded, tuple(patch), step)
    slices = tuple(tuple(slice(s, s + int(p)) for s, p in zip(start, patch)) for start in itertools.product(*steps))
    return WindowPlan(tuple(int(s) for s in shape), tuple(padding), slices)


def nnunet_gaussian(patch: Sequence[int], device: torch.device) -> torch.Tensor:
    """nnU-Net's importance map (fp16, scaled to 10, no zeros), as its predictor computes it."""
    from nnunetv2.inference.sliding_window_prediction import compute_gaussian

    return compute_gaussian(tuple(int(p) for p in patch), sigma_scale=1. / 8, value_scaling_factor=10, device=device)


def softmax_predictor(model: nn.Module, channels_last: bool, *, logits: bool = False) -> Predictor:
    """Windows (B, C_in, d, h, w) -> class probabilities (B, C, d, h, w) float32 (with `logits`: the raw outputs)."""

    def predict(window: torch.Tensor) -> torch.Tensor:
        if channels_last:
            window = window.contiguous(memory_format=torch.channels_last_3d)
        out = model(window).float()
        return out if logits else torch.softmax(out, dim=1)

    return predict


class _HooksDone(Exception):
    """Raised inside a forward once every hooked layer has run: the rest of the network feeds no reducer."""


def hooks_only_predictor(model: nn.Module, channels_last: bool,
                         stop_after: Mapping[str, nn.Module] | None = None) -> Predictor:
    """Windows -> one zero channel: the model runs for its hooks only (norm moments), no softmax.

    With `stop_after` (the hooked layers), the forward ends as soon as each of them has run as often as it runs in a
    full forward (counted on the first call, which runs in full): for KD's layers this skips the segmentation head,
    about 30 % of the default UNet's forward (its two full-resolution convolutions).
    """
    full: dict[str, int] | None = None

    def predict(window: torch.Tensor) -> torch.Tensor:
        nonlocal full
        if channels_last:
            window = window.contiguous(memory_format=torch.channels_last_3d)
        counts: dict[str, int] = dict.fromkeys(stop_after or (), 0)

        def counter(name: str):
            def hook(module: nn.Module, inputs: tuple, output: object) -> None:
                counts[name] += 1
                if full is not None and counts == full:
                    raise _HooksDone
            return hook

        handles = [layer.register_forward_hook(counter(name)) for name, layer in (stop_after or {}).items()]
        try:
            model(window)
        except _HooksDone:
            pass
        finally:
            for handle in handles:
                handle.remove()
        if full is None and stop_after:
            full = counts
        return window.new_zeros((window.shape[0], 1, *window.shape[2:]))

    return predict


@dataclass
class _Volume(Generic[T]):
    item: T
    image: torch.Tensor  # (C_in, *padded) float32
    plan: WindowPlan
    slot: int
    sent: int = 0  # windows put into a batch so far
    out: torch.Tensor | None = None  # (C, *padded) weighted sum of window outputs
    count: torch.Tensor | None = None  # (1, *padded) summed importance weights
    done: int = 0

    @property
    def complete(self) -> bool:
        return self.done == len(self.plan.slices)


@dataclass
class _Slots:
    """Slot numbers for volumes in flight, reused once released."""

    free: list[int] = field(default_factory=list)
    size: int = 0

    def take(self) -> int:
        if self.free:
            return self.free.pop()
        self.size += 1
        return self.size - 1

    def give(self, slot: int) -> None:
        self.free.append(slot)


def forward_precision(model: nn.Module, precision: str) -> AbstractContextManager:
    """Autocast context for `precision` on the model's device ("fp32": no autocast); fp16 needs a GPU."""
    if precision == "fp32":
        return nullcontext()
    device_type = next(model.parameters()).device.type
    if precision == "fp16" and device_type != "cuda":
        raise ConfigError("precision 'fp16' needs a CUDA device.", fix="use precision 'bf16' or 'fp32' on CPU")
    return torch.autocast(device_type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def iter_windows_pass(model: nn.Module, items: Iterable[T], image_of: Callable[[T], np.ndarray | torch.Tensor],
                      config: InferenceConfig, *, predictor: Predictor | None = None,
                      routing: Routing | None = None, reducers: Sequence[Releasable] = (),
                      whole_chunks: bool = False) -> Iterator[tuple[T, torch.Tensor, int]]:
    """(item, output (C, D, H, W) float32 on the item's grid, slot) per item, in input order.

    `image_of(item)` is the volume (C_in, D, H, W); `predictor` maps a window batch to C output channels (default:
    the model's softmax). While the model runs, `routing.slots` names each batch row's slot and `routing.open` is
    True (hooks record nothing outside this engine's forwards). A slot's reducers are released after the caller has
    taken the item (read `reducer.result(slot)` before asking for the next item). `whole_chunks`: a volume's windows
    go into calls in MONAI's groups of `sw_batch_size` (from its first window), never split across two calls -- for
    passes whose result depends on which windows share a call (AdaBN's per-volume batch statistics).
    """
    device = next(model.parameters()).device
    # An nnU-Net network (assft.models.nnunet) carries nnU-Net's window rule: its patch, steps and Gaussian; with the
    # default predictor its fp16 logits are averaged and softmax follows, as in nnU-Net's predictor (its
    # probabilities go back to the original grid from those logits: assft.data.nnunet.restore_nnunet).
    nnunet = getattr(model, "nnunet_windows", None)
    nnunet_logits = nnunet is not None and predictor is None
    # blend "logits" (imported MONAI networks): the default predictor's windows are averaged as logits, then softmaxed
    softmax_after = predictor is None and not nnunet_logits and config.blend == "logits"
    if predictor is None:  # nnU-Net runs one contiguous window a forward: its fp16 sums then round as nnU-Net's do
        predictor = softmax_predictor(model, False if nnunet_logits else config.channels_last,
                                      logits=nnunet_logits or softmax_after)
    routing = routing if routing is not None else Routing()
    roi = tuple(int(r) for r in (nnunet.patch_size if nnunet is not None else config.roi_size))
    if nnunet is not None:
        importance = nnunet_gaussian(roi, device)
    else:
        importance = compute_importance_map(roi, mode=config.mode, sigma_scale=0.125, device=device,
                                            dtype=torch.float32)[None]
    max_volumes = 1 if nnunet_logits else max(1, config.batch_volumes)
    per_call = 1 if nnunet_logits else (config.sw_batch_size if max_volumes == 1
                                        else max(config.sw_batch_size, max_volumes))
    slots = _Slots()
    stream = iter(items)
    in_flight: deque[_Volume[T]] = deque()
    exhausted = False

    def admit() -> _Volume[T] | None:
        nonlocal exhausted
        try:
            item = next(stream)
        except StopIteration:
            exhausted = True
            return None
        tick()  # follow the machine's load between volumes (see assft.utils.threads)
        image = torch.as_tensor(image_of(item), dtype=torch.float32, device=device)
        plan = (plan_nnunet_windows(image.shape[1:], roi, nnunet.tile_step_size) if nnunet is not None
                else plan_windows(image.shape[1:], roi, config.overlap))
        if any(a or b for a, b in plan.padding):
            image = F.pad(image, [p for pair in reversed(plan.padding) for p in pair])
        volume = _Volume(item, image, plan, slots.take())
        in_flight.append(volume)
        return volume

    def place(volume: _Volume[T], rows: list) -> bool:
        """Put the volume's next windows into the call; False when they do not fit (the call is then closed)."""
        left, room = len(volume.plan.slices) - volume.sent, per_call - len(rows)
        if whole_chunks:  # the next group of sw_batch_size windows, whole
            left = min(left, config.sw_batch_size)
            if left > room:
                return False
        take = min(left, room)
        if take == 0:
            return False
        rows.extend((volume, k) for k in range(volume.sent, volume.sent + take))
        volume.sent += take
        return True

    routing.open = False
    while True:
        rows: list[tuple[_Volume[T], int]] = []
        volumes_in_call, closed = 0, False
        for volume in in_flight:  # unfinished windows of volumes already admitted come first
            if volume.sent < len(volume.plan.slices):
                if not place(volume, rows):
                    closed = True
                    break
                volumes_in_call += 1
        while not closed and len(rows) < per_call and not exhausted and volumes_in_call < max_volumes:
            volume = admit()
            if volume is None or not place(volume, rows):
                break
            volumes_in_call += 1
        if not rows:
            break
        finished = []
        # inference mode only around the work: a generator must not leave it switched on while suspended (the caller
        # may train between two items)
        with torch.inference_mode():
            batch = torch.stack([v.image[(slice(None), *v.plan.slices[k])] for v, k in rows])
            routing.slots = [v.slot for v, _ in rows]
            routing.open = True
            try:
                with forward_precision(model, config.precision):
                    outputs = predictor(batch)
            finally:
                routing.open = False
            outputs = outputs.float()
            for (volume, k), window_out in zip(rows, outputs):
                (_stitch_nnunet if nnunet_logits else _stitch)(volume, k, window_out, importance)
            while in_flight and in_flight[0].complete:
                volume = in_flight.popleft()
                result = torch.div(volume.out, volume.count)  # type: ignore[arg-type]
                result = result[(slice(None), *volume.plan.crop())].cpu()
                if softmax_after:
                    result = torch.softmax(result, dim=0)
                if nnunet_logits:
                    logits, result = result, torch.softmax(result.float(), 0)
                    result.nnunet_logits = logits  # type: ignore[attr-defined]  # read by restore_nnunet
                finished.append((volume, result))
        for volume, result in finished:
            yield volume.item, result, volume.slot
            for reducer in reducers:
                reducer.release(volume.slot)
            slots.give(volume.slot)


def _stitch(volume: _Volume, k: int, window_out: torch.Tensor, importance: torch.Tensor) -> None:
    """Add one window's output (C, *roi), weighted as MONAI weights it, into its volume's sums."""
    if len(volume.plan.slices) == 1:  # 0 + p * w and 0 + w are p * w and w bit for bit: skip the zero buffers
        volume.out, volume.count, volume.done = window_out * importance, importance, 1
        return
    if volume.out is None:
        volume.out = window_out.new_zeros((window_out.shape[0], *volume.plan.padded_shape))
        volume.count = window_out.new_zeros((1, *volume.plan.padded_shape))
        for region in volume.plan.slices:  # MONAI sums the weights of every window first, in the same order
            volume.count[(slice(None), *region)] += importance
    region = (slice(None), *volume.plan.slices[k])
    volume.out[region] += window_out * importance
    volume.done += 1


def _stitch_nnunet(volume: _Volume, k: int, window_out: torch.Tensor, gaussian: torch.Tensor) -> None:
    """nnU-Net's accumulation: window outputs times its Gaussian summed into fp16 buffers, in its window order."""
    if volume.out is None:
        volume.out = torch.zeros((window_out.shape[0], *volume.plan.padded_shape), dtype=torch.half,
                                 device=window_out.device)
        volume.count = torch.zeros(volume.plan.padded_shape, dtype=torch.half, device=window_out.device)
    region = volume.plan.slices[k]
    volume.out[(slice(None), *region)] += window_out * gaussian
    volume.count[region] += gaussian
    volume.done += 1


def iter_probs(model: nn.Module, volumes: Iterable, config: InferenceConfig, *,
               embedding_module: nn.Module | None = None) -> Iterator[tuple]:
    """(volume, probs (C, D, H, W)) per `LoadedCase`-like volume (`.image` (C_in, D, H, W)), in input order.

    With `embedding_module`, yields (volume, probs, embedding (d,)): the module's output pooled over the volume's
    windows and L2-normalised.
    """
    routing = Routing(open=False)
    with hooked_embedding(embedding_module, routing) if embedding_module is not None else nullcontext() as embedding:
        for volume, probs, slot in iter_windows_pass(model, volumes, lambda v: v.image, config, routing=routing,
                                                     reducers=[embedding] if embedding is not None else ()):
            yield (volume, probs) if embedding is None else (volume, probs, embedding.result(slot))
