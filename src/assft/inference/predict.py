"""A pass over one case (the engine in `assft.inference.engine`, MONAI's sliding window) yielding probabilities and,
from hooks, embedding and norm moments; `predict_to_folder` writes label maps."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from assft.config import InferenceConfig, PreprocessConfig
from assft.data.cases import Case
from assft.data.io import write_label_map, write_volume
from assft.data.preprocess import LoadedCase, load_case, to_original_grid
from assft.inference.engine import iter_probs, iter_windows_pass
from assft.inference.reducers import Routing, hooked_embedding, hooked_moments
from assft.models.zoo import resolve_device
from assft.utils.paths import check_not_inputs
from assft.utils.progress import progress

Predictor = Callable[[torch.Tensor], torch.Tensor]  # window batch (B, C_in, d, h, w) -> (B, C, d, h, w)


@dataclass
class PassResult:
    """Everything one pass over a case produced; probs is transient and dropped by the caller after reduction."""

    probs: torch.Tensor | None  # (C, D, H, W) float32 on the original grid
    embedding: torch.Tensor | None = None  # (d,) float32, L2-normalised
    norm_moments: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None  # layer -> mean (C,), var (C,)
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # extra stitched maps, e.g. "bald": (D, H, W)


def prepare_model(model: nn.Module, config: InferenceConfig) -> nn.Module:
    """Eval mode on the configured device; channels_last_3d memory format for CNNs on CPU when enabled."""
    device = resolve_device(config.device)
    model = model.to(device).eval()
    # an nnU-Net network stays contiguous: its predictions then equal nnU-Net's own (assft.inference.engine)
    if config.channels_last and getattr(model, "nnunet_windows", None) is None:
        model = model.to(memory_format=torch.channels_last_3d)
    return model


def run_pass(
    model: nn.Module,
    image: np.ndarray | torch.Tensor,
    config: InferenceConfig,
    *,
    embedding_module: nn.Module | None = None,
    norm_layers: dict[str, nn.Module] | None = None,
    predictor: Predictor | None = None,
    extra_channels: tuple[str, ...] = (),
    back_to: LoadedCase | None = None,
) -> PassResult:
    """Sliding-window pass over one image (C, D, H, W) -> PassResult (the engine with a single volume); hooks reduce
    activations per window.

    `predictor` may return C + len(extra_channels) channels; the extra ones (e.g. a BALD map reduced over MC samples
    inside each window) are stitched like probabilities and returned in `extra`.
    """
    routing = Routing(open=False)
    emb_ctx = hooked_embedding(embedding_module, routing) if embedding_module is not None else nullcontext()
    mom_ctx = hooked_moments(norm_layers, routing) if norm_layers else nullcontext()
    with emb_ctx as emb, mom_ctx as moments:
        [(_, out, _)] = iter_windows_pass(model, [image], lambda x: x, config, predictor=predictor, routing=routing)
        extra = {}
        if extra_channels:
            n = len(extra_channels)
            extra = {name: out[-n + i] for i, name in enumerate(extra_channels)}
            out = out[:-n]
        if back_to is not None:  # the case's own grid (inverse orientation/spacing, or nnU-Net's own return)
            out = to_original_grid(out, back_to)
            extra = {k: to_original_grid(v[None], back_to, probabilities=False)[0] for k, v in extra.items()}
        return PassResult(
            probs=out,
            embedding=emb.result() if emb is not None else None,
            norm_moments={k: c.result() for k, c in moments.items()} if moments is not None else None,
            extra=extra,
        )


def iter_loaded(cases: Iterable[Case], preprocess: PreprocessConfig, *, with_label: bool = False) -> Iterator[LoadedCase]:
    """Stream preprocessed cases one at a time (never the whole pool in memory)."""
    for case in cases:
        yield load_case(case, preprocess, with_label=with_label)


def predict_probs(model: nn.Module, loaded: LoadedCase, config: InferenceConfig) -> torch.Tensor:
    """Class probabilities (C, D, H, W) float32 on the case's original grid."""
    return run_pass(model, loaded.image, config, back_to=loaded).probs  # type: ignore[return-value]


def predict_to_folder(model: nn.Module, cases: list[Case], preprocess: PreprocessConfig, config: InferenceConfig,
                      out_dir: str | Path, *, save_probs: bool = False) -> list[Path]:
    """Predict every case; write `ID.nii.gz` label maps (and `ID_probs.nii.gz`) with the input affine."""
    out_dir = Path(out_dir)
    check_not_inputs(out_dir, [p for c in cases for p in (*c.image_paths, c.label_path)], option="out_dir")
    out_dir.mkdir(parents=True, exist_ok=True)
    model = prepare_model(model, config)
    written = []
    volumes = progress(iter_loaded(cases, preprocess), "Predicting", total=len(cases))
    for loaded, probs in iter_probs(model, volumes, config):  # several volumes per forward call where they fit
        probs = to_original_grid(probs, loaded)
        path = out_dir / f"{loaded.case_id}.nii.gz"
        write_label_map(path, probs.argmax(0).numpy().astype(np.uint8), loaded.affine)
        written.append(path)
        if save_probs:
            write_volume(out_dir / f"{loaded.case_id}_probs.nii.gz",
                         np.moveaxis(probs.numpy().astype(np.float32), 0, -1), loaded.affine)
    return written
