"""Selective semi-supervised fine-tuning (SSFT) from any assft checkpoint.

Stage 1 fits the labeled set L. Stage 2 predicts every unlabeled volume once (streamed), reduces it to
(conf, sd) and picks the reliable set R. Stage 3 fits L and R, with the pseudo-label loss weighted by λ(t).
Pseudo-labels live only in the stage-3 list (`pseudo=`); the labeled list is built once from L and never grows.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from assft.adapt.batchnorm import apply_batchnorm_statistics, estimate_batchnorm_statistics
from assft.config import ModelConfig, config_hash
from assft.data.cases import Case, DatasetSpec
from assft.data.checks import check_label_values
from assft.data.dataset_init import missing_classes_error
from assft.data.preprocess import LoadedCase, load_case
from assft.errors import CheckpointError, ConfigError, DataError
from assft.finetune.config import FinetuneConfig
from assft.finetune.gallery import GALLERY_NAME, write_pseudo_label_gallery
from assft.finetune.pseudo_labels import (
    PseudoLabelStats,
    ReliableSet,
    iter_pseudo_labels,
    mark_selected,
    score_pool,
    select_reliable,
    write_pseudo_label_table,
)
from assft.finetune.trainer import FitResult, fit
from assft.inference.predict import iter_loaded
from assft.models.checkpoint import (THETA0_KEY, Checkpoint, KeyReport, load_checkpoint, load_weights, make_checkpoint,
                                     save_checkpoint, theta0_for_record)
from assft.models.zoo import build_model, check_sizes, head_keys
from assft.utils.atomic import atomic_write_json
from assft.utils.distributed import join_process_group
from assft.utils.progress import deprecated_show_progress
from assft.utils.seeding import derive_seed
from assft.utils.threads import threads_for_call
from assft.utils.timing import add_time, timed, timing_record

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "finetuned.pt"
TABLE_NAME = "pseudo_labels.csv"
LOG_NAME = "ssft_log.json"
PSEUDO_DIR = "pseudo_labels"


def pseudo_weight_ramp(step: int, total_steps: int, ramp_fraction: float = 0.5) -> float:
    """λ after `step` completed steps of `total_steps`: linear 0 -> 1 over the first `ramp_fraction`, then 1."""
    if step < 0 or total_steps < 0:
        raise ValueError(f"step ({step}) and total_steps ({total_steps}) must be >= 0")
    ramp = ramp_fraction * total_steps
    if ramp <= 0:
        return 1.0
    return float(min(1.0, step / ramp))


@dataclass(frozen=True)
class HeadDecision:
    """What happened to the segmentation head: "new" (SSL-only input), "reused", or "replaced" (label maps differ)."""

    action: Literal["new", "reused", "replaced"]
    reason: str
    checkpoint_labels: dict[int, str]
    labels: dict[int, str]


@dataclass
class SSFTResult:
    """Outcome of `run_ssft`: the fine-tuned weights, the pseudo-label table, timings and where files went."""

    state_dict: dict[str, torch.Tensor]  # final weights (CPU)
    stage1_state: dict[str, torch.Tensor]  # weights after stage 1 (labeled only)
    model_config: ModelConfig
    labels: dict[int, str]
    head: HeadDecision
    key_report: KeyReport
    labeled_ids: tuple[str, ...]
    table: list[PseudoLabelStats]  # one row per unlabeled volume, in pool order
    reliable: ReliableSet
    history: dict[str, list[dict]]
    timings: dict[str, float]
    compute: dict[str, int] = field(default_factory=dict)  # optimizer steps per stage and patches seen
    checkpoint: Path | None = None
    table_path: Path | None = None
    log_path: Path | None = None
    pseudo_label_paths: list[Path] = field(default_factory=list)

    @property
    def selected_ids(self) -> tuple[str, ...]:
        """Case ids of the reliable set R (sorted)."""
        return self.reliable.case_ids


def same_classes(a: dict[int, str], b: dict[int, str]) -> bool:
    """True when two label maps name the same values alike, up to letter case and spacing: a dataset.json written
    with `anterior` must not throw away the head of a model that calls the class `Anterior`."""

    def norm(labels: dict[int, str]) -> dict[int, str]:
        return {int(k): " ".join(str(v).split()).casefold() for k, v in labels.items()}

    return norm(a) == norm(b)


def build_finetune_model(checkpoint: Checkpoint, labels: dict[int, str], *, seed: int, allow_partial: bool = False,
                         source: str | Path | None = None) -> tuple[nn.Module, ModelConfig, HeadDecision, KeyReport]:
    """The checkpoint's network with a head for `labels`: reused when the label maps agree, otherwise new.

    A new head's initialisation is seeded by `seed` without touching the global torch RNG.
    """
    num_classes = max(labels) + 1
    config = checkpoint.model_config.model_copy(update={"out_channels": num_classes})
    if checkpoint.kind == "ssl-only":
        head = HeadDecision("new", f"SSL-only checkpoint: attached a new {num_classes}-class head",
                            dict(checkpoint.labels), dict(labels))
    elif same_classes(checkpoint.labels, labels):
        head = HeadDecision("reused", "the checkpoint's label map equals the dataset's: reused its head",
                            dict(checkpoint.labels), dict(labels))
    else:
        head = HeadDecision("replaced", f"the checkpoint's classes {checkpoint.labels} differ from the dataset's "
                            f"{labels}: replaced the head with a new {num_classes}-class one",
                            dict(checkpoint.labels), dict(labels))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "head"))
        model = build_model(config)
    keys = head_keys(config)
    state = checkpoint.state_dict if head.action == "reused" else \
        {k: v for k, v in checkpoint.state_dict.items() if k not in keys}
    report = load_weights(model, state, head=keys, allow_partial=allow_partial, source=source,
                          strict_head=head.action == "reused")  # a reused head must fit, or it would be random
    return model, config, head, report


def run_ssft(
    model: str | Path | Checkpoint,
    labeled: DatasetSpec | Sequence[Case],
    unlabeled: DatasetSpec | Sequence[Case],
    out_dir: str | Path | None,
    config: FinetuneConfig | None = None,
    *,
    labels: dict[int, str] | None = None,
    pretrained: str | Path | Checkpoint | None = None,
    save_pseudo_labels: bool = False,
    allow_partial: bool = False,
    show_progress: bool | None = None,
) -> SSFTResult:
    """Fine-tune `model` on `labeled`, then (SSFT) on `labeled` + reliable pseudo-labels of `unlabeled`.

    Args:
        model: an assft checkpoint (path or loaded `Checkpoint`), SSL-only or supervised.
        labeled: the labeled set L (every case needs a label file).
        unlabeled: the pool; cases also in L are left out. Label files of pool cases are read only to score the
            pseudo-labels (true Dice, when `config.record_true_dice`), never for training.
        out_dir: where finetuned.pt, pseudo_labels.csv and ssft_log.json go (None: write nothing).
        config: stages, reliability variant, seed (same config -> same result).
        labels: the class map (default: `labeled.labels` for a DatasetSpec, else the checkpoint's).
        pretrained: the weights θ0 that stage 3 restarts from when `config.restart_from_pretrained` (default: model).
        save_pseudo_labels: also write out_dir/pseudo_labels/ID.nii.gz for the selected cases.
        show_progress: deprecated: progress follows the active reporter (`with silenced(): ...` prints nothing).

    Returns:
        SSFTResult with the final weights, the per-case table and timings (seconds of stage1, stage2_score,
        stage2_pseudo_labels, stage3 and total).

    Raises:
        DataError: a labeled case has no label or labels outside the class map.
        ConfigError: no class map, or sizes the network cannot take.
        CheckpointError: the weights do not fit the network.
    """
    config = config or FinetuneConfig()
    if out_dir is not None and not join_process_group().is_main:
        out_dir = None  # under torchrun rank 0 alone writes (checkpoint, tables, gallery, pseudo-labels)
    t_start = time.perf_counter()
    ckpt, source = (model, None) if isinstance(model, Checkpoint) else (load_checkpoint(model), model)
    labeled_cases, labels = _check_labeled(labeled, labels, ckpt)
    labeled_ids = tuple(c.case_id for c in labeled_cases)
    pool, truth = _split_pool(unlabeled, set(labeled_ids), config.record_true_dice)

    net, model_config, head, report = build_finetune_model(ckpt, labels, seed=config.seed,
                                                           allow_partial=allow_partial, source=source)
    (logger.warning if head.action == "replaced" else logger.info)(head.reason)
    if head.action == "reused":
        labels = dict(ckpt.labels)  # the head is the model's, so are its class names (an export must match them)
    inference = config.resolved_inference()
    check_sizes(model_config, config.train.patch_size, inference.roi_size)
    # a config's thread count holds for this call only; the caller's policy comes back
    with threads_for_call(config.train.num_threads), deprecated_show_progress(show_progress, "run_ssft"), \
            timing_record() as timings:
        num_classes = model_config.out_channels
        theta0 = _theta0(net, pretrained, labels, config, allow_partial)

        stage1_steps, stage3_steps = config.stage_steps()
        with timed("stage1"):
            # L: built once, never extended
            labeled_loaded = tuple(_load_labeled(c, ckpt, labels) for c in labeled_cases)
            stage1 = _train_stage(net, labeled_loaded, (), pool, ckpt, config, "stage1", stage1_steps, num_classes)
            # the stage-1 model as it predicts (BatchNorm statistics included when re-estimated on the pool)
            stage1_state = _cpu_state(net)

        table: list[PseudoLabelStats] = []
        reliable = select_reliable([], config.pseudo.reliability)
        pseudo_loaded: list[LoadedCase] = []
        pseudo_paths: list[Path] = []
        stage3_history: list[dict] = []
        if config.ssft and pool:
            pseudo_dir = Path(out_dir) / PSEUDO_DIR if out_dir is not None and save_pseudo_labels else None
            pictures: dict | None = {} if out_dir is not None and config.gallery else None
            table, reliable, pseudo_loaded, pseudo_paths = _stage2(
                net, model_config, ckpt, labeled_loaded, pool, truth, labels, config, pseudo_dir, pictures)
            if pictures:
                write_pseudo_label_gallery(Path(out_dir) / GALLERY_NAME,  # type: ignore[arg-type]
                                           table, pictures, labels, conf_threshold=reliable.conf_threshold,
                                           sd_threshold=reliable.sd_threshold)
            if set(labeled_ids) & {p.case_id for p in pseudo_loaded}:  # structurally impossible; guard the invariant
                raise DataError("a pseudo-labeled case is also labeled.", fix="report this as a bug")

        if stage3_steps > 0:
            # Stage 3 spends its steps even when R is empty (on L alone): an SSFT arm's compute never depends on how
            # many pseudo-labels a round happened to keep, so arms of a benchmark stay compute-matched.
            with timed("stage3"):
                if config.restart_from_pretrained:
                    net.load_state_dict(theta0)
                stage3_history = _train_stage(net, labeled_loaded, pseudo_loaded, pool, ckpt, config, "stage3",
                                              stage3_steps, num_classes).history
            if not pseudo_loaded:
                logger.info("the reliable set is empty: stage 3 trained on the labeled set alone")

        add_time("total", time.perf_counter() - t_start)
        result = SSFTResult(_cpu_state(net), stage1_state, model_config, labels, head, report, labeled_ids, table,
                            reliable, {"stage1": stage1.history, "stage3": stage3_history}, timings,
                            compute=_compute_spent(config, stage1_steps, stage3_steps, stage3_history,
                                                   len(pseudo_loaded)),
                            pseudo_label_paths=pseudo_paths)
        if out_dir is not None:
            _write_outputs(result, net, ckpt, config, Path(out_dir), source, len(pool),
                           theta0=pretrained if isinstance(pretrained, str | Path) else None)
        return result


def _train_stage(net: nn.Module, labeled: Sequence[LoadedCase], pseudo: Sequence[LoadedCase], pool: list[Case],
                 ckpt: Checkpoint, config: FinetuneConfig, stage: str, steps: int, num_classes: int) -> FitResult:
    """One training stage (stage 1: labeled only; stage 3: + pseudo-labels with the λ ramp), then its weights in
    `net` and, with bn_stats "pool", BatchNorm statistics re-estimated on the labeled and pool volumes."""
    stage_config = config.train.model_copy(update={"seed": derive_seed(config.seed, stage), "steps": steps})
    ramp = config.ramp_fraction
    weight = (lambda step: pseudo_weight_ramp(step - 1, steps, ramp)) if stage == "stage3" else None
    result = fit(net, labeled, stage_config, num_classes, **({"pseudo": pseudo, "pseudo_weight": weight}
                                                              if stage == "stage3" else {}))
    net.load_state_dict(result.last_state)
    if config.bn_stats == "pool":
        _pool_statistics(net, labeled, pool, ckpt, config)
    return result


def _cpu_state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").clone() for k, v in net.state_dict().items()}


def _compute_spent(config: FinetuneConfig, stage1_steps: int, stage3_steps: int, stage3_history: list[dict],
                   n_pseudo: int) -> dict[str, int]:
    """Optimizer steps and training patches the call spent (the ledger's compute record)."""
    ran3 = stage3_steps if stage3_history else 0
    pseudo_steps = sum(1 for r in stage3_history if "loss_pseudo" in r)
    return {"stage1_steps": stage1_steps, "stage3_steps": ran3, "optimizer_steps": stage1_steps + ran3,
            "patches": config.train.batch_size * (stage1_steps + len(stage3_history) + pseudo_steps),
            "pseudo_labeled_cases": n_pseudo}


def _check_labeled(labeled: DatasetSpec | Sequence[Case], labels: dict[int, str] | None,
                   ckpt: Checkpoint) -> tuple[tuple[Case, ...], dict[int, str]]:
    """The labeled cases (each must have a label file) and the class map to fine-tune for."""
    cases = tuple(labeled.cases if isinstance(labeled, DatasetSpec) else labeled)
    labels = dict(labels or (labeled.labels if isinstance(labeled, DatasetSpec) else {}) or
                  (ckpt.labels if ckpt.kind == "supervised" else {}))
    if not labels and isinstance(labeled, DatasetSpec):  # a plain folder and an SSL-only checkpoint: no class names
        raise missing_classes_error(labeled, "fine-tuning an SSL-only checkpoint")
    if not labels or 0 not in labels:
        raise ConfigError("no class map for the labeled set.",
                          fix="name the classes of the data (`assft data init DIR --classes 0:background,1:...`), "
                              "pass labels={0: 'background', ...}, or start from a supervised checkpoint")
    if not cases:
        raise DataError("the labeled set is empty.", fix="fine-tuning needs at least one labeled case")
    missing = [c.case_id for c in cases if c.label_path is None]
    if missing:
        raise DataError(f"{len(missing)} labeled cases have no label file: {', '.join(missing[:5])}.",
                        path=labeled.root if isinstance(labeled, DatasetSpec) else None,
                        fix="give every labeled case a label (labelsTr)")
    return cases, labels


def _stage2(net: nn.Module, model_config: ModelConfig, ckpt: Checkpoint, labeled: Sequence[LoadedCase],
            pool: list[Case], truth: dict[str, Path], labels: dict[int, str], config: FinetuneConfig,
            pseudo_dir: Path | None,
            pictures: dict | None = None) -> tuple[list[PseudoLabelStats], ReliableSet, list[LoadedCase], list[Path]]:
    """Score the pool, pick R, and predict R's pseudo-labels (two streaming passes; timed as stage2_score and
    stage2_pseudo_labels)."""
    with timed("stage2_score"):
        table = score_pool(net, model_config, labeled, pool, truth, ckpt.preprocess, config.resolved_inference(),
                           config.pseudo, labels, pictures=pictures)
        reliable = select_reliable(table, config.pseudo.reliability, config.pseudo.qc, config.pseudo.qd)
        table = mark_selected(table, reliable)
    with timed("stage2_pseudo_labels"):
        chosen = [c for c in pool if c.case_id in set(reliable.case_ids)]
        pseudo_loaded, paths = [], []
        for loaded, path in iter_pseudo_labels(net, chosen, ckpt.preprocess, config.resolved_inference(),
                                               config.pseudo, pseudo_dir):
            pseudo_loaded.append(loaded)
            if path is not None:
                paths.append(path)
    return table, reliable, pseudo_loaded, paths


def _pool_statistics(net: nn.Module, labeled: Sequence[LoadedCase], pool: Sequence[Case], ckpt: Checkpoint,
                     config: FinetuneConfig) -> None:
    """bn_stats "pool": BatchNorm running statistics re-estimated on the labeled and unlabeled volumes (AdaBN)."""
    volumes = chain(labeled, iter_loaded(pool, ckpt.preprocess))  # streamed; pool cases carry no label path here
    apply_batchnorm_statistics(net, estimate_batchnorm_statistics(net, volumes, config.resolved_inference()))


def _split_pool(unlabeled: DatasetSpec | Sequence[Case], labeled_ids: set[str],
                record_true_dice: bool) -> tuple[list[Case], dict[str, Path]]:
    """Pool cases stripped of their label paths (so training cannot read them) + {case_id: label} for diagnostics."""
    cases = unlabeled.cases if isinstance(unlabeled, DatasetSpec) else unlabeled
    pool, truth = [], {}
    for case in cases:
        if case.case_id in labeled_ids:
            continue
        if record_true_dice and case.label_path is not None:
            truth[case.case_id] = case.label_path
        pool.append(Case(case.case_id, case.image_paths, None))
    dropped = len(cases) - len(pool)
    if dropped:
        logger.info("left %d labeled cases out of the unlabeled pool", dropped)
    return pool, truth


def _load_labeled(case: Case, ckpt: Checkpoint, labels: dict[int, str]) -> LoadedCase:
    loaded = load_case(case, ckpt.preprocess, with_label=True)  # shape, affine, integer values vs the image
    check_label_values(loaded.label, labels, case.label_path)  # type: ignore[arg-type]
    return loaded


def _theta0(net: nn.Module, pretrained: str | Path | Checkpoint | None, labels: dict[int, str],
            config: FinetuneConfig, allow_partial: bool) -> dict[str, torch.Tensor]:
    """The weights stage 3 restarts from (θ0 with the same head init), or {} when not needed."""
    if not config.restart_from_pretrained:
        return {}
    if pretrained is None:
        return {k: v.detach().clone() for k, v in net.state_dict().items()}
    ckpt = pretrained if isinstance(pretrained, Checkpoint) else load_checkpoint(pretrained)
    other, _, _, _ = build_finetune_model(ckpt, labels, seed=config.seed, allow_partial=allow_partial,
                                          source=None if isinstance(pretrained, Checkpoint) else pretrained)
    state = other.state_dict()
    mine = net.state_dict()
    bad = [k for k in mine if k not in state or state[k].shape != mine[k].shape]
    if bad:
        raise CheckpointError(f"the pretrained weights do not fit the fine-tuned network (e.g. {bad[0]}).",
                              fix="pass the θ0 checkpoint the model was fine-tuned from")
    return {k: v.detach().clone() for k, v in state.items()}


def _write_outputs(result: SSFTResult, net: nn.Module, ckpt: Checkpoint, config: FinetuneConfig, out_dir: Path,
                   source: str | Path | None, pool_size: int, *, theta0: str | Path | None = None) -> None:
    meta: dict[str, Any] = {
        "init_checkpoint": str(source) if source is not None else None,
        # θ0 (what a later query measures KD against): the source's own θ0 when it names one, else the source.
        THETA0_KEY: (os.path.abspath(theta0) if theta0 is not None else
                     theta0_for_record(source, ckpt) if source is not None else None),
        "init_kind": ckpt.kind,
        "head": {"action": result.head.action, "reason": result.head.reason},
        "labeled_cases": list(result.labeled_ids),
        "pseudo_labeled_cases": list(result.selected_ids),
        "finetune_config": config.model_dump(mode="json"),
        "config_hash": config_hash(config),
        "train_config": config.train.model_dump(mode="json"),  # read by predict/evaluate for the roi size
        "which": "finetuned",
    }
    # an imported network keeps the window blending it came with (the roi is now the training patch)
    kept = {k: v for k, v in (ckpt.metadata.get("inference") or {}).items() if k != "roi_size"}
    if kept:
        meta["inference"] = kept
    out_dir.mkdir(parents=True, exist_ok=True)
    new = make_checkpoint(net, result.model_config, result.labels, kind="supervised", preprocess=ckpt.preprocess,
                          metadata=meta, fingerprint=ckpt.fingerprint)
    new.state_dict = result.state_dict
    result.checkpoint = save_checkpoint(out_dir / CHECKPOINT_NAME, new)
    if result.table:
        result.table_path = write_pseudo_label_table(out_dir / TABLE_NAME, result.table)
    log = {**meta, "key_report": result.key_report.to_dict(), "pool_size": pool_size, "compute": result.compute,
           "reliable": result.reliable.to_dict(), "timings": result.timings, "history": result.history}
    result.log_path = atomic_write_json(out_dir / LOG_NAME, log)
