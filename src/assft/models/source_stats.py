"""KD sources: θ0's BatchNorm running statistics, or a source fingerprint (norm-layer input moments on source data).

A fingerprint is `{layer_name: {"mean": [...], "var": [...]}}`: per-channel mean and variance of each normalisation
layer's input over the source images, made once by whoever holds the source data (statistics only, no images). It
lives in a checkpoint's `fingerprint` field or in a JSON file written by `assft fingerprint` (computed by
`assft.pretrain.fingerprint.compute_fingerprint`, the one place that runs passes for it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from assft.config import ModelConfig
from assft.errors import CheckpointError
from assft.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from assft.models.zoo import head_keys, norm_layers
from assft.metrics.scores import Moments
from assft.utils.atomic import atomic_write_json

Fingerprint = dict[str, dict[str, list[float]]]
FINGERPRINT_FORMAT = "assft-fingerprint"
HOW_TO_FINGERPRINT = ("where the source images are available, run `assft fingerprint --model CKPT --images SOURCE_DIR "
                      "--out fingerprint.json` and pass `--fingerprint fingerprint.json` (or attach it to the "
                      "checkpoint with `assft fingerprint ... --attach-to CKPT_OUT`)")


def source_layers(model: nn.Module, model_config: ModelConfig | None = None) -> dict[str, nn.Module]:
    """Norm layers whose statistics describe the source: all of them except the segmentation head's (when
    `model_config` is given), which is replaced when fine-tuning and random in an SSL-only checkpoint (the same rule
    as `assft.pretrain.fingerprint`)."""
    layers = norm_layers(model)
    if model_config is None:
        return layers
    head = head_keys(model_config)
    return {name: m for name, m in layers.items() if not any(k.startswith(name + ".") for k in head)}


def running_stats(model: nn.Module, model_config: ModelConfig | None = None) -> dict[str, Moments]:
    """BatchNorm layers that track running statistics -> (running_mean (C,), running_var (C,)) float64; the head's
    layers are left out when `model_config` is given."""
    out = {}
    for name, layer in source_layers(model, model_config).items():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.track_running_stats \
                and layer.running_mean is not None and layer.running_var is not None:
            out[name] = (layer.running_mean.detach().double().cpu(), layer.running_var.detach().double().cpu())
    return out


def _channels(layer: nn.Module) -> int | None:
    for attr in ("num_features", "num_channels"):
        if hasattr(layer, attr):
            return int(getattr(layer, attr))
    if isinstance(layer, nn.LayerNorm):
        return int(layer.normalized_shape[-1])
    return None


def check_fingerprint(fingerprint: Mapping[str, Any], model: nn.Module, source: str | Path | None = None
                      ) -> dict[str, Moments]:
    """Validate a fingerprint against the model's norm layers -> layer -> (mean, var) float64 tensors."""
    layers = norm_layers(model)
    unknown = [name for name in fingerprint if name not in layers]
    if unknown or not fingerprint:
        raise CheckpointError(f"fingerprint has {len(fingerprint)} layers, {len(unknown)} unknown to the model "
                              f"(e.g. {unknown[:3]}).", path=source,
                              fix="make the fingerprint with the same network: " + HOW_TO_FINGERPRINT)
    out = {}
    for name, stats in fingerprint.items():
        try:
            mean = torch.as_tensor(stats["mean"], dtype=torch.float64)
            var = torch.as_tensor(stats["var"], dtype=torch.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"fingerprint layer {name!r} needs 'mean' and 'var' lists ({exc}).", path=source,
                                  fix=HOW_TO_FINGERPRINT) from exc
        expected = _channels(layers[name])
        if mean.ndim != 1 or mean.shape != var.shape or (expected is not None and mean.numel() != expected):
            raise CheckpointError(f"fingerprint layer {name!r} has {tuple(mean.shape)} means and {tuple(var.shape)} "
                                  f"variances; the model has {expected} channels.", path=source,
                                  fix="rebuild the fingerprint for this network: " + HOW_TO_FINGERPRINT)
        out[name] = (mean, var)
    return out


def resolve_source_stats(model: nn.Module, checkpoint: Checkpoint, kd_source: str = "auto",
                         fingerprint: str | Path | Mapping[str, Any] | None = None,
                         checkpoint_path: str | Path | None = None) -> tuple[dict[str, Moments], str]:
    """θ0's source statistics for KD and where they came from ("running_stats", "fingerprint:<origin>").

    auto: an explicit `fingerprint` wins, then BatchNorm running statistics, then the checkpoint's fingerprint.
    """
    if fingerprint is not None and kd_source in ("auto", "fingerprint"):
        if isinstance(fingerprint, Mapping):
            return check_fingerprint(fingerprint, model), "fingerprint:given"
        return check_fingerprint(load_fingerprint(fingerprint), model, fingerprint), f"fingerprint:{fingerprint}"
    if kd_source in ("auto", "running_stats"):
        stats = running_stats(model, checkpoint.model_config)
        if stats:
            return stats, "running_stats"
        if kd_source == "running_stats":
            raise CheckpointError("kd_source is 'running_stats' but the network has no BatchNorm running statistics.",
                                  path=checkpoint_path, fix="use kd_source 'fingerprint': " + HOW_TO_FINGERPRINT)
    if checkpoint.fingerprint:
        return check_fingerprint(checkpoint.fingerprint, model, checkpoint_path), "fingerprint:checkpoint"
    raise CheckpointError("KD needs source statistics of the pre-trained model: it has no BatchNorm running "
                          "statistics and no source fingerprint.", path=checkpoint_path, fix=HOW_TO_FINGERPRINT)


def save_fingerprint(path: str | Path, fingerprint: Fingerprint, metadata: Mapping[str, Any] | None = None) -> Path:
    """Atomically write a fingerprint JSON: {"format", "format_version", "metadata", "layers"}."""
    return atomic_write_json(path, {"format": FINGERPRINT_FORMAT, "format_version": 1,
                                    "metadata": dict(metadata or {}), "layers": fingerprint})


def load_fingerprint(path: str | Path) -> Fingerprint:
    """Read a fingerprint from a JSON file (ours, or a bare {layer: {mean, var}} map) or an assft checkpoint."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError("fingerprint file not found.", path=path, fix=HOW_TO_FINGERPRINT)
    if path.suffix in (".pt", ".pth"):
        fingerprint = load_checkpoint(path).fingerprint
        if not fingerprint:
            raise CheckpointError("this checkpoint holds no fingerprint.", path=path, fix=HOW_TO_FINGERPRINT)
        return fingerprint
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read the fingerprint ({exc}).", path=path, fix=HOW_TO_FINGERPRINT) from exc
    layers = raw.get("layers") if isinstance(raw, dict) and raw.get("format") == FINGERPRINT_FORMAT else raw
    if not isinstance(layers, dict):
        raise CheckpointError("not a fingerprint (expected {layer: {'mean': [...], 'var': [...]}}).", path=path,
                              fix=HOW_TO_FINGERPRINT)
    return layers


def attach_fingerprint(checkpoint_path: str | Path, fingerprint: Fingerprint | str | Path,
                       out_path: str | Path | None = None) -> Path:
    """Write the checkpoint with `fingerprint` in its `fingerprint` field to `out_path` (default: in place)."""
    if not isinstance(fingerprint, dict):
        fingerprint = load_fingerprint(fingerprint)
    from assft.models.checkpoint import build_from_checkpoint

    model, _, _ = build_from_checkpoint(checkpoint_path, allow_partial=True)
    check_fingerprint(fingerprint, model, checkpoint_path)
    ckpt = load_checkpoint(checkpoint_path)
    ckpt.fingerprint = fingerprint
    return save_checkpoint(out_path or checkpoint_path, ckpt)
