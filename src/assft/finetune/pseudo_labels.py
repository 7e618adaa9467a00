"""Pseudo-label reliability: confidence over the predicted foreground, semantic distance to the labeled set,
the reliable set R by quantile thresholds, argmax pseudo-labels (optionally masked), and the per-case table.

All `compute_*` functions and `select_reliable` are pure: they never mutate their inputs and use no randomness.
`score_pool` and `iter_pseudo_labels` are the two streaming passes of SSFT's stage 2 (one volume at a time).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from assft.config import InferenceConfig, ModelConfig, PreprocessConfig
from assft.data.cases import Case
from assft.data.io import read_volume, write_label_map
from assft.data.preprocess import LoadedCase, spacing_of, to_original_grid
from assft.errors import ConfigError, DataError
from assft.finetune.config import PseudoLabelConfig, RELIABILITY_CHOICES
from assft.inference.engine import iter_probs
from assft.inference.predict import iter_loaded, prepare_model
from assft.metrics.scores import compute_confidence, compute_diversity, compute_foreground_mask
from assft.metrics.segmentation import compute_case_metrics
from assft.models.zoo import bottleneck_module
from assft.utils.atomic import atomic_write
from assft.utils.distributed import gather_in_order, join_process_group, merge_across_ranks, shard
from assft.utils.pictures import shrink, to_uint8
from assft.utils.progress import progress

IGNORE_UINT8 = 255  # a masked (ignored) voxel in a stored uint8 pseudo-label; -1 (losses.IGNORE) once trained on
TABLE_FIELDS: tuple[str, ...] = ("case_id", "conf", "sd", "selected", "fg_voxels", "true_dice")


def compute_pseudo_label_confidence(probs: torch.Tensor, foreground_mask: torch.Tensor) -> float:
    """conf = mean over Ω of max_c p_cv, for probs (C, D, H, W) and Ω a bool mask (D, H, W); 0.0 when Ω is empty.

    An empty Ω means the model sees no foreground at all: there is nothing in the volume to trust, so the volume
    ranks as least confident [ours] (the query's `compute_confidence` averages over the whole volume instead).
    """
    if probs.ndim != 4 or tuple(foreground_mask.shape) != tuple(probs.shape[1:]):
        raise ValueError(f"expected probs (C, D, H, W) and a mask (D, H, W); got {tuple(probs.shape)} and "
                         f"{tuple(foreground_mask.shape)}")
    if not bool(foreground_mask.any()):
        return 0.0
    return compute_confidence(probs, foreground_mask.bool())


def make_pseudo_label(probs: torch.Tensor, mask_threshold: float | None = None) -> np.ndarray:
    """Argmax pseudo-label (D, H, W) uint8 from probs (C, D, H, W); voxels with max p < mask_threshold -> 255.

    255 (IGNORE_UINT8) marks a voxel excluded from the loss; `to_training_label` turns it into -1.
    """
    if probs.shape[0] > IGNORE_UINT8:
        raise ConfigError(f"{probs.shape[0]} classes do not fit a uint8 pseudo-label.", fix="use at most 255 classes")
    top = probs.max(dim=0)
    label = top.indices.to(torch.uint8)
    if mask_threshold is not None:
        label = label.masked_fill(top.values < mask_threshold, IGNORE_UINT8)
    return label.numpy()


def to_training_label(pseudo_label: np.ndarray) -> np.ndarray:
    """Stored uint8 pseudo-label (D, H, W) -> int16 training label with -1 (losses.IGNORE) for masked voxels."""
    out = pseudo_label.astype(np.int16)
    out[pseudo_label == IGNORE_UINT8] = -1
    return out


@dataclass
class PseudoLabelStats:
    """One unlabeled volume's reliability statistics (and, in simulation, its pseudo-label's true Dice)."""

    case_id: str
    conf: float
    sd: float
    fg_voxels: int
    selected: bool = False
    true_dice: float | None = None


@dataclass(frozen=True)
class ReliableSet:
    """The outcome of `select_reliable`: selected case ids (sorted) and the thresholds that were applied."""

    case_ids: tuple[str, ...]
    reliability: str
    conf_threshold: float | None  # t_c = quantile_qc(conf), when the variant uses confidence
    sd_threshold: float | None  # t_d = quantile_qd(sd), when the variant uses distance

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"n_selected": len(self.case_ids), "reliability": self.reliability,
                "conf_threshold": self.conf_threshold, "sd_threshold": self.sd_threshold}


def select_reliable(stats: Sequence[PseudoLabelStats], reliability: str = "both", qc: float = 0.5,
                    qd: float = 0.5) -> ReliableSet:
    """The reliable set R of `stats` (pure; order-free; ids returned sorted).

    Thresholds are quantiles over the pool (numpy's linear interpolation) and comparisons are inclusive:
    "both": conf >= quantile_qc(conf) and sd <= quantile_qd(sd); "confidence": the first test only;
    "distance": the second only; "all": every volume; "none": no volume.

    Raises:
        ConfigError: unknown variant, or qc/qd outside [0, 1].
    """
    if reliability not in RELIABILITY_CHOICES:
        raise ConfigError(f"unknown reliability {reliability!r}.", fix=f"use one of {', '.join(RELIABILITY_CHOICES)}")
    if not (0.0 <= qc <= 1.0 and 0.0 <= qd <= 1.0):
        raise ConfigError(f"qc={qc} and qd={qd} must lie in [0, 1].", fix="pass quantile levels such as 0.5")
    ids = [s.case_id for s in stats]
    if len(set(ids)) != len(ids):
        raise DataError("duplicate case ids in the pseudo-label statistics.", fix="list each unlabeled case once")
    if reliability == "none" or not stats:
        return ReliableSet((), reliability, None, None)
    conf = np.array([s.conf for s in stats], dtype=np.float64)
    sd = np.array([s.sd for s in stats], dtype=np.float64)
    keep = np.ones(len(stats), dtype=bool)
    t_c = t_d = None
    if reliability in ("both", "confidence"):
        t_c = float(np.quantile(conf, qc))
        keep &= conf >= t_c
    if reliability in ("both", "distance"):
        t_d = float(np.quantile(sd, qd))
        keep &= sd <= t_d
    return ReliableSet(tuple(sorted(i for i, k in zip(ids, keep) if k)), reliability, t_c, t_d)


def mark_selected(stats: Sequence[PseudoLabelStats], reliable: ReliableSet) -> list[PseudoLabelStats]:
    """Copies of `stats` with `selected` set from `reliable` (inputs untouched)."""
    chosen = set(reliable.case_ids)
    return [PseudoLabelStats(**{**asdict(s), "selected": s.case_id in chosen}) for s in stats]


def write_pseudo_label_table(path: str | Path, stats: Iterable[PseudoLabelStats]) -> Path:
    """Write pseudo_labels.csv: case_id, conf, sd, selected (0/1), fg_voxels, and true_dice when any is known."""
    rows = list(stats)
    fields = [f for f in TABLE_FIELDS if f != "true_dice" or any(r.true_dice is not None for r in rows)]

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            for r in rows:
                row = {"case_id": r.case_id, "conf": f"{r.conf:.6f}", "sd": f"{r.sd:.6f}",
                       "selected": int(r.selected), "fg_voxels": r.fg_voxels}
                if "true_dice" in fields:
                    row["true_dice"] = "" if r.true_dice is None else f"{r.true_dice:.6f}"
                writer.writerow(row)

    return atomic_write(path, write)


def read_pseudo_label_table(path: str | Path) -> list[PseudoLabelStats]:
    """Read a pseudo_labels.csv written by `write_pseudo_label_table`."""
    path = Path(path)
    if not path.is_file():
        raise DataError("pseudo-label table not found.", path=path, fix="pass the pseudo_labels.csv of an SSFT run")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"case_id", "conf", "sd", "selected"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"columns {sorted(missing)} are missing.", path=path,
                            fix="pass the pseudo_labels.csv written by `assft finetune`")
        return [stats_from_row(row, source=path) for row in reader]


def stats_from_row(row: Mapping[str, Any], source: str | Path | None = None) -> PseudoLabelStats:
    """One table row (strings or numbers) -> PseudoLabelStats; an empty true_dice is None."""
    try:
        dice = row.get("true_dice")
        dice_value = None if dice in (None, "") or (isinstance(dice, float) and math.isnan(dice)) else float(dice)
        selected = row["selected"]
        if isinstance(selected, str):
            selected = selected.strip().lower() in ("1", "true", "yes")
        return PseudoLabelStats(str(row["case_id"]), float(row["conf"]), float(row["sd"]),
                                int(float(row.get("fg_voxels") or 0)), bool(selected), dice_value)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"invalid pseudo-label row {dict(row)!r} ({exc}).", path=source,
                        fix="rows need case_id, conf, sd, selected (and optionally fg_voxels, true_dice)") from exc


def compute_pseudo_label_dice(pseudo_label: np.ndarray, truth: np.ndarray, labels: Mapping[int, str],
                              spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> float:
    """Mean foreground Dice of an argmax pseudo-label (D, H, W) against the true label map (D, H, W)."""
    return float(compute_case_metrics(pseudo_label.astype(np.int64), truth, max(labels) + 1, spacing=spacing,
                                      class_names=dict(labels), dice_only=True)["mean_dice"])


def score_pool(model: nn.Module, model_config: ModelConfig, labeled: Sequence[LoadedCase], pool: Sequence[Case],
               truth: Mapping[str, Path], preprocess: PreprocessConfig, inference: InferenceConfig,
               config: PseudoLabelConfig, labels: Mapping[int, str], *,
               pictures: dict[str, Any] | None = None) -> list[PseudoLabelStats]:
    """Stage 2, first pass: (conf, sd) of every pool case, streamed; probability maps are dropped at once.

    Labeled embeddings come from the same model over `labeled`. `truth` maps case ids to label files that are read
    only to record each pseudo-label's true Dice (simulation); pool cases themselves carry no labels. `pictures`,
    when given, receives each case's gallery slice (`PseudoLabelPicture`). Progress goes to the active reporter
    (`assft.utils.progress.reporting`).
    """
    ranks = join_process_group()  # under torchrun each rank scores every world-th pool case (rows are independent)
    mine = shard(pool, ranks)
    net = prepare_model(model, inference)
    embedder = bottleneck_module(net, model_config.name)
    try:
        with torch.inference_mode():
            refs = np.stack([emb.numpy() for _, _, emb in iter_probs(net, labeled, inference,
                                                                      embedding_module=embedder)])
            volumes = progress(iter_loaded(mine, preprocess), "Scoring unlabeled volumes", total=len(mine),
                               enabled=None if ranks.is_main else False)
            rows = list(_score_stream(iter_probs(net, volumes, inference, embedding_module=embedder), refs,
                                      truth, labels, config, pictures))
    finally:
        model.to(memory_format=torch.contiguous_format)  # undo prepare_model's channels_last before training
    if ranks.distributed and pictures is not None:
        pictures.update(merge_across_ranks(pictures, ranks))
    return gather_in_order(rows, ranks)


def _score_stream(stream, refs: np.ndarray, truth: Mapping[str, Path], labels: Mapping[int, str],
                  config: PseudoLabelConfig, pictures: dict[str, Any] | None = None) -> Iterator[PseudoLabelStats]:
    """(loaded, probs, embedding) -> PseudoLabelStats (conf, sd, |Ω|, and the true Dice when a label is known)."""
    for loaded, probs, embedding in stream:
        omega, _ = compute_foreground_mask(probs, config.foreground, config.fixed_threshold)  # type: ignore[arg-type]
        dice, true_map = None, None
        if loaded.case_id in truth:
            true_map, _ = read_volume(truth[loaded.case_id], dtype=np.int64)
            argmax = to_original_grid(probs, loaded).argmax(0).numpy()  # type: ignore[arg-type]
            dice = compute_pseudo_label_dice(argmax, true_map, labels, spacing_of(loaded.affine))
        if pictures is not None:
            pictures[loaded.case_id] = capture_picture(loaded, probs, true_map)
        sd = compute_diversity(embedding.numpy(), refs)  # min 1 - cos
        yield PseudoLabelStats(loaded.case_id, compute_pseudo_label_confidence(probs, omega),  # type: ignore[arg-type]
                               sd, int(omega.sum()), true_dice=dice)


@dataclass(frozen=True)
class PseudoLabelPicture:
    """One axial slice (original grid) through the largest predicted foreground: image, pseudo-label, truth."""

    image: np.ndarray  # uint8
    pseudo_label: np.ndarray  # uint8 class ids
    truth: np.ndarray | None  # uint8 class ids (simulation only)


def capture_picture(loaded: LoadedCase, probs: torch.Tensor, truth: np.ndarray | None) -> PseudoLabelPicture:
    """The slice of `loaded` (probs (C, D, H, W) on its preprocessed grid) with the most predicted foreground."""
    shape = tuple(loaded.original_shape)
    pseudo = to_original_grid(probs, loaded).argmax(0).numpy()  # type: ignore[arg-type]
    first_channel = torch.from_numpy(np.ascontiguousarray(loaded.image[:1]))
    image = to_original_grid(first_channel, loaded, probabilities=False)[0].numpy()  # type: ignore[arg-type]
    area = (pseudo > 0).sum(axis=(0, 1))
    index = int(area.argmax()) if area.any() else shape[2] // 2  # first largest: deterministic
    truth_slice = None
    if truth is not None and tuple(truth.shape) == shape:
        truth_slice = shrink(truth[:, :, index].astype(np.uint8))
    return PseudoLabelPicture(shrink(to_uint8(image[:, :, index])), shrink(pseudo[:, :, index].astype(np.uint8)),
                              truth_slice)


def iter_pseudo_labels(model: nn.Module, cases: Sequence[Case], preprocess: PreprocessConfig,
                       inference: InferenceConfig, config: PseudoLabelConfig,
                       out_dir: Path | None = None) -> Iterator[tuple[LoadedCase, Path | None]]:
    """Stage 2, second pass: predict the selected `cases` again and yield them with their pseudo-labels.

    The thresholds are quantiles of the whole pool, so no pseudo-label can be kept before the first pass ends;
    predicting the selected cases again (deterministic in eval mode) keeps only R's maps in memory. Each yielded
    LoadedCase holds the image and the int16 training label (-1 = ignored voxel). With `out_dir`, the pseudo-label
    is also written there as ID.nii.gz on the original grid.
    """
    net = prepare_model(model, inference)
    try:
        for loaded, probs in iter_probs(net, iter_loaded(cases, preprocess), inference):
            pseudo = make_pseudo_label(probs, config.mask_threshold)  # type: ignore[arg-type]
            path = None
            if out_dir is not None:
                on_grid = to_original_grid(probs, loaded)  # type: ignore[arg-type]
                path = write_label_map(out_dir / f"{loaded.case_id}.nii.gz",
                                       to_training_label(make_pseudo_label(on_grid, config.mask_threshold)),
                                       loaded.affine)
            del probs
            yield LoadedCase(loaded.case_id, loaded.image, to_training_label(pseudo), loaded.affine,
                             loaded.original_shape, loaded.spacing, loaded.grid_affine, loaded.nnunet_grid), path
    finally:
        model.to(memory_format=torch.contiguous_format)


def summarize_pseudo_label_dice(stats: Sequence[PseudoLabelStats]) -> dict[str, Any]:
    """Median / mean true Dice and counts of selected vs unselected pseudo-labels (rows without true Dice skipped)."""
    out: dict[str, Any] = {}
    for name, flag in (("selected", True), ("unselected", False)):
        values = [s.true_dice for s in stats if s.selected is flag and s.true_dice is not None]
        out[name] = {"n": len(values), "median": float(np.median(values)) if values else None,
                     "mean": float(np.mean(values)) if values else None}
    return out
