"""KD sources: θ0's BatchNorm running statistics, a source fingerprint (norm-layer input moments on source data), or
one of the sources that need no source images (intensity, pool, consistency; `resolve_knowledge_source`).

A fingerprint is `{layer_name: {"mean": [...], "var": [...]}}`: per-channel mean and variance of each normalisation
layer's input over the source images, made once by whoever holds the source data (statistics only, no images). It
lives in a checkpoint's `fingerprint` field or in a JSON file written by `assft fingerprint` (computed by
`assft.pretrain.fingerprint.compute_fingerprint`, the one place that runs passes for it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from assft.config import ModelConfig
from assft.errors import CheckpointError
from assft.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from assft.models.zoo import head_keys, norm_layers
from assft.metrics.scores import Moments
from assft.utils.atomic import atomic_write_json

Fingerprint = dict[str, dict[str, list[float]]]
SOURCE_INTENSITY_KEY = "source_intensity"  # checkpoint.metadata key of the source intensity record (one per channel)
BATCH_NORM_AT_INFERENCE_KEY = "batch_norm_at_inference"  # metadata: "batch" when BatchNorm uses batch statistics
KL_SOURCES = ("running_stats", "fingerprint")  # the paper's Gaussian-KL KD against stored channel moments
SOURCE_FREE = ("intensity", "pool", "consistency")  # need no source images and no running statistics
# kd.source "auto" on a network without usable running statistics and without a fingerprint: the source-free KD
# with the highest validation AUBC on the InstanceNorm tier (docs/method.md, "KD sources"; the differences were
# within 0.005 and none beat random there); an unavailable source (no head) falls through to the next. "intensity"
# only when its record is in the network's input space; a raw-space record (an nnU-Net fingerprint of MR images)
# allows only the shape term ("intensity_shape").
AUTO_SOURCE_FREE_ORDER = ("consistency", "pool", "intensity", "intensity_shape")
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


def batch_statistics_layers(model: nn.Module, checkpoint: Checkpoint) -> list[str]:
    """θ0's BatchNorm layers (head excluded) whose running statistics do not describe what the network computes at
    inference: no running statistics (track_running_stats=False), or every BatchNorm when the checkpoint's metadata
    says `batch_norm_at_inference: batch` (SuPreM / Models Genesis style code that runs BatchNorm in training mode
    at inference; the weights alone cannot tell, so an importer sets it)."""
    every = checkpoint.metadata.get(BATCH_NORM_AT_INFERENCE_KEY) == "batch"
    out = []
    for name, layer in source_layers(model, checkpoint.model_config).items():
        if not isinstance(layer, nn.modules.batchnorm._BatchNorm):
            continue
        if every or not layer.track_running_stats or layer.running_mean is None or layer.running_var is None:
            out.append(name)
    return out


def network_norm_kind(model: nn.Module, checkpoint: Checkpoint) -> str:
    """"running_stats": θ0's BatchNorm layers normalise with stored running statistics (the paper's KD and AdaBN
    apply); "batch_stats": some BatchNorm normalises with batch statistics at inference; "per_input": no BatchNorm
    (InstanceNorm, GroupNorm, LayerNorm: each input is normalised by itself), or no norm layer at all."""
    if batch_statistics_layers(model, checkpoint):
        return "batch_stats"
    return "running_stats" if running_stats(model, checkpoint.model_config) else "per_input"


# The default query for θ0 when nobody chose one: `assft` where KD has the paper's record of the source (BatchNorm
# running statistics, or a fingerprint), `fg-random` otherwise: on the InstanceNorm tier's validation split no
# source-free KD beat random and foreground-aware random led (docs/method.md, "The query for networks without
# BatchNorm statistics").
KD_QUERY, SOURCE_FREE_QUERY = "assft", "fg-random"


def default_query_for(model: nn.Module, checkpoint: Checkpoint, fingerprint: object = None) -> tuple[str, str]:
    """(strategy, why) for θ0 when the user named no strategy: see KD_QUERY / SOURCE_FREE_QUERY."""
    kind = network_norm_kind(model, checkpoint)
    if kind == "running_stats":
        return KD_QUERY, "θ0's BatchNorm running statistics give the paper's KD"
    if fingerprint is not None or checkpoint.fingerprint:
        return KD_QUERY, "θ0 has a source fingerprint for KD"
    return SOURCE_FREE_QUERY, (f"θ0 has no BatchNorm running statistics ({kind} network) and no source fingerprint; "
                               "no source-free knowledge gap beat random on such a network, so the default query is "
                               f"{SOURCE_FREE_QUERY} (docs/method.md; --strategy assft to use one anyway)")


@dataclass(frozen=True)
class KnowledgeSource:
    """What KD compares a volume with, and how that was chosen (written to selection.json as `kd_source`)."""

    kind: str  # "running_stats" | "fingerprint:<origin>" | "intensity" | "pool" | "consistency"
    stats: dict[str, Moments] | None = None  # Gaussian-KL sources: layer -> source (mean, var)
    layers: tuple[str, ...] = ()  # norm layers whose input moments the pass records (KL sources and pool)
    intensity: list[dict[str, Any]] | None = None  # intensity: the source record, one dict per input channel
    location: bool = False  # intensity: the record is in the network's input space, so means and stds compare too
    network: str = "running_stats"  # network_norm_kind of θ0
    reason: str = ""  # why this source (for auto, and when an explicit choice was rerouted)

    @property
    def name(self) -> str:
        """The source without its origin: running_stats, fingerprint, intensity, pool or consistency."""
        return self.kind.split(":", 1)[0]


def read_source_intensity(checkpoint: Checkpoint, path: str | Path | None = None) -> list[dict[str, Any]] | None:
    """The checkpoint's `metadata["source_intensity"]`, validated, or None when absent: one dict per input channel
    with "mean", "std", "percentile_00_5", "median", "percentile_99_5" (nnU-Net's fingerprint keys) of the source
    foreground intensities; optional "space" ("raw": file intensities, as nnU-Net records them, default; "input":
    after the checkpoint's normalisation, as `assft` records them) and "nonzero" (the same keys over the non-zero
    region)."""
    from assft.metrics.knowledge_gap import INTENSITY_KEYS

    record = checkpoint.metadata.get(SOURCE_INTENSITY_KEY)
    if record is None:
        return None
    fix = ("store one dict per input channel with numeric " + ", ".join(INTENSITY_KEYS) +
           f" under metadata[{SOURCE_INTENSITY_KEY!r}] (nnU-Net: foreground_intensity_properties_per_channel)")
    if not isinstance(record, list) or len(record) != checkpoint.model_config.in_channels:
        raise CheckpointError(f"metadata[{SOURCE_INTENSITY_KEY!r}] must be a list of "
                              f"{checkpoint.model_config.in_channels} per-channel records.", path=path, fix=fix)
    def complete(part: object) -> bool:
        """A dict holding every intensity key as a number."""
        return isinstance(part, dict) and all(isinstance(part.get(k), int | float) for k in INTENSITY_KEYS)

    for channel in record:
        if not complete(channel) or ("nonzero" in channel and not complete(channel["nonzero"])):
            raise CheckpointError(f"a {SOURCE_INTENSITY_KEY} record lacks one of {INTENSITY_KEYS}.", path=path, fix=fix)
        if channel.get("space", "raw") not in ("raw", "input"):
            raise CheckpointError(f"{SOURCE_INTENSITY_KEY} space must be 'raw' or 'input'.", path=path, fix=fix)
    return record


def compute_source_intensity(cases: Iterable[Any], *, max_voxels_per_case: int = 10000, seed: int = 0
                             ) -> list[dict[str, Any]]:
    """The source intensity record of labeled, preprocessed cases (`LoadedCase`s: image (C, ...) and label): per
    channel, nnU-Net's foreground statistics and the same over the non-zero region, in the network's input space.

    Why the input space: raw MR intensities have no common scale (the hippocampus set mixes 0-255 and float images
    up to 1.7e6), so raw statistics pooled over volumes describe the encodings more than the anatomy; after
    assft's per-volume normalisation every volume is on one scale, and the target is compared on the same scale.
    Like nnU-Net, at most `max_voxels_per_case` voxels per case and region enter (seeded sample)."""
    from assft.metrics.knowledge_gap import compute_intensity_statistics

    rng = np.random.default_rng(seed)
    fg: list[list[np.ndarray]] = []
    nz: list[list[np.ndarray]] = []
    for case in cases:
        image = np.asarray(case.image)
        if not fg:
            fg, nz = [[] for _ in range(image.shape[0])], [[] for _ in range(image.shape[0])]
        for c in range(image.shape[0]):
            for region, out in ((case.label > 0 if case.label is not None else None, fg[c]), (image[c] != 0, nz[c])):
                if region is None:
                    continue
                values = image[c][region]
                if values.size > max_voxels_per_case:
                    values = rng.choice(values, max_voxels_per_case, replace=False)
                out.append(values)
    return [{**compute_intensity_statistics(np.concatenate(fg[c]) if fg[c] else np.zeros(0)), "space": "input",
             "nonzero": compute_intensity_statistics(np.concatenate(nz[c]) if nz[c] else np.zeros(0))}
            for c in range(len(fg))]


def resolve_knowledge_source(model: nn.Module, checkpoint: Checkpoint, kd_source: str = "auto",
                             fingerprint: str | Path | Mapping[str, Any] | None = None,
                             checkpoint_path: str | Path | None = None, *, has_head: bool = True
                             ) -> KnowledgeSource:
    """θ0's KD source for `kd_source`; BatchNorm that normalises with batch statistics is never read for its
    running statistics.

    auto: an explicit `fingerprint`, then usable BatchNorm running statistics (as the paper), then the checkpoint's
    fingerprint, then the first available of AUTO_SOURCE_FREE_ORDER (intensity needs a source intensity record,
    consistency a segmentation head; pool always applies).
    """
    kind = network_norm_kind(model, checkpoint)
    layers = tuple(source_layers(model, checkpoint.model_config))
    has_kl_source = kind == "running_stats" or fingerprint is not None or bool(checkpoint.fingerprint)
    if kd_source in KL_SOURCES or (kd_source == "auto" and has_kl_source):
        # a given fingerprint that does not fit is an error, never a silent fall-back; running statistics of a
        # batch-statistics network are never read (resolve_source_stats skips them)
        stats, origin = resolve_source_stats(model, checkpoint, kd_source, fingerprint, checkpoint_path)
        return KnowledgeSource(origin, stats, tuple(stats), network=kind,
                               reason="auto: " + _auto_reason(origin, kind) if kd_source == "auto" else "")
    if kd_source in SOURCE_FREE:
        return _source_free(kd_source, model, checkpoint, checkpoint_path, layers, kind, has_head, "")
    for name in AUTO_SOURCE_FREE_ORDER:  # auto without running statistics or fingerprint
        try:
            source = _source_free(name.removesuffix("_shape"), model, checkpoint, checkpoint_path, layers, kind,
                                  has_head, f"auto: {kind} network without a fingerprint; {name} is the first "
                                  f"available of {', '.join(AUTO_SOURCE_FREE_ORDER)} (the validation order, "
                                  "docs/method.md)")
        except CheckpointError:
            continue
        if name != "intensity" or source.location:  # intensity_shape: the same source, its shape term only
            return source
    raise CheckpointError("no KD source applies: the network has no normalisation layer, no head and no source "
                          "intensity record.", path=checkpoint_path,
                          fix="pick a strategy without KD (e.g. entropy, coreset, random)")


def _auto_reason(origin: str, kind: str) -> str:
    if origin == "running_stats":
        return "BatchNorm running statistics (the paper's KD)"
    return f"{kind} network with a source fingerprint ({origin})"


def _source_free(name: str, model: nn.Module, checkpoint: Checkpoint, path: str | Path | None,
                 layers: tuple[str, ...], kind: str, has_head: bool, reason: str) -> KnowledgeSource:
    if name == "pool":
        if not layers:
            raise CheckpointError("kd.source 'pool' needs normalisation layers; this network has none.", path=path,
                                  fix="use kd.source intensity or consistency")
        return KnowledgeSource("pool", None, layers, network=kind, reason=reason)
    if name == "consistency":
        if not has_head:
            raise CheckpointError("kd.source 'consistency' needs θ0's predictions, but θ0 is SSL-only.", path=path,
                                  fix="use kd.source pool or intensity, or give a supervised θ0 (--pretrained)")
        return KnowledgeSource("consistency", network=kind, reason=reason)
    record = read_source_intensity(checkpoint, path)
    if record is None:
        raise CheckpointError(f"kd.source 'intensity' needs metadata[{SOURCE_INTENSITY_KEY!r}]; this checkpoint has "
                              "none.", path=path, fix="train or import the model with assft (it records them), or "
                              "use kd.source pool or consistency")
    if not has_head and not all("nonzero" in channel for channel in record):
        raise CheckpointError("kd.source 'intensity' on an SSL-only θ0 needs the non-zero-region statistics "
                              f"(metadata[{SOURCE_INTENSITY_KEY!r}][c]['nonzero']).", path=path,
                              fix="use kd.source pool, or a supervised θ0")
    location = all(c.get("space", "raw") == "input" for c in record) or checkpoint.preprocess.normalization == "none"
    return KnowledgeSource("intensity", intensity=record, location=location, network=kind, reason=reason)


def resolve_source_stats(model: nn.Module, checkpoint: Checkpoint, kd_source: str = "auto",
                         fingerprint: str | Path | Mapping[str, Any] | None = None,
                         checkpoint_path: str | Path | None = None) -> tuple[dict[str, Moments], str]:
    """θ0's source statistics for KD and where they came from ("running_stats", "fingerprint:<origin>").

    auto: an explicit `fingerprint` wins, then BatchNorm running statistics (never those of BatchNorm that normalises
    with batch statistics at inference: `batch_statistics_layers`), then the checkpoint's fingerprint.
    """
    if fingerprint is not None and kd_source in ("auto", "fingerprint"):
        if isinstance(fingerprint, Mapping):
            return check_fingerprint(fingerprint, model), "fingerprint:given"
        return check_fingerprint(load_fingerprint(fingerprint), model, fingerprint), f"fingerprint:{fingerprint}"
    if kd_source in ("auto", "running_stats"):
        batch = batch_statistics_layers(model, checkpoint)
        if batch and kd_source == "running_stats":
            raise CheckpointError("kd.source is 'running_stats' but this network's BatchNorm normalises with batch "
                                  "statistics at inference: its running statistics do not describe what it computes "
                                  f"({', '.join(batch[:3])}).", path=checkpoint_path,
                                  fix="use kd.source intensity, pool, consistency or fingerprint (" + HOW_TO_FINGERPRINT
                                  + ")")
        stats = {} if batch else running_stats(model, checkpoint.model_config)
        if stats:
            return stats, "running_stats"
        if kd_source == "running_stats":
            raise CheckpointError("kd.source is 'running_stats' but the network has no BatchNorm running statistics.",
                                  path=checkpoint_path, fix="use kd.source 'fingerprint': " + HOW_TO_FINGERPRINT)
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
