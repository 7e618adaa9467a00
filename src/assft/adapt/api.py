"""`adapt_checkpoint`: budget-0 adaptation of a checkpoint on an unlabeled pool, written as a new checkpoint."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from assft.adapt.batchnorm import apply_batchnorm_statistics, batchnorm_layers, estimate_batchnorm_statistics
from assft.adapt.config import AdaptConfig
from assft.adapt.tent import tent_adapt
from assft.config import config_hash
from assft.data.cases import Case, DatasetSpec
from assft.data.preprocess import load_case
from assft.errors import ConfigError, DataError
from assft.inference.predict import iter_loaded
from assft.models.checkpoint import (THETA0_KEY, Checkpoint, build_from_checkpoint, make_checkpoint, save_checkpoint,
                                     theta0_for_record)
from assft.models.source_stats import network_norm_kind
from assft.models.zoo import norm_layers, resolve_device


# adapt "auto" on a network whose norm layers keep no usable running statistics (InstanceNorm, GroupNorm, LayerNorm,
# batch-statistics BatchNorm): AdaBN does not apply. TENT lowered budget-0 Dice on the InstanceNorm tier's validation
# split in 6 of 6 (domain, draw) pairs, by 0.032 in mean (docs/method.md, "Round 0 by network kind"): no adaptation.
AUTO_WITHOUT_RUNNING_STATS = "none"


def resolve_adapt_method(model: nn.Module, checkpoint: Checkpoint) -> tuple[str, str]:
    """(method, reason) for adapt "auto": AdaBN when θ's BatchNorm layers normalise with running statistics at
    inference, else AUTO_WITHOUT_RUNNING_STATS (none for an SSL-only model, which TENT cannot adapt)."""
    kind = network_norm_kind(model, checkpoint)
    if kind == "running_stats":
        return "adabn", "auto: BatchNorm with running statistics"
    method = AUTO_WITHOUT_RUNNING_STATS if checkpoint.kind != "ssl-only" else "none"
    return method, (f"auto: {kind} network (no running statistics to re-estimate, AdaBN does not apply); "
                    f"{method} (docs/method.md, Round 0 by network kind)")


@dataclass
class AdaptResult:
    """What adaptation did: the new checkpoint, which layers changed and which could not, and its cost."""

    method: str
    checkpoint: Path | None
    n_volumes: int
    seconds: float
    statistics_layers: list[str] = field(default_factory=list)  # BatchNorm layers whose running statistics changed
    affine_layers: list[str] = field(default_factory=list)  # norm layers whose affine parameters TENT trained
    unadapted_layers: list[str] = field(default_factory=list)  # norm layers nothing could change (see notes)
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly provenance (stored in the checkpoint's metadata under "adaptation")."""
        return {"method": self.method, "n_volumes": self.n_volumes, "seconds": round(self.seconds, 3),
                "statistics_layers": len(self.statistics_layers), "affine_layers": len(self.affine_layers),
                "unadapted_layers": self.unadapted_layers, "notes": self.notes, **self.details}


def adapt_checkpoint(model: str | Path, pool: DatasetSpec | Sequence[Case], config: AdaptConfig | None = None,
                     out: str | Path | None = None) -> AdaptResult:
    """Adapt checkpoint `model` to the unlabeled `pool` with `config.method`; write it to `out` (None: don't write).

    Labels of the pool are never read. AdaBN changes BatchNorm running statistics only; TENT also trains the affine
    parameters of every normalisation layer. Norm layers without running statistics (GroupNorm, LayerNorm,
    InstanceNorm: Swin UNETR, SegResNet) normalise each input by its own statistics already: AdaBN has nothing to
    change there (reported in `unadapted_layers` and `notes`; a network with no BatchNorm at all is refused);
    TENT adapts their affine parameters.

    "auto" resolves by the network (`resolve_adapt_method`); when it resolves to "none" the checkpoint is written
    unchanged with the reason in its metadata, so a campaign's round 0 always has its start model.

    Raises:
        ConfigError: method "none", TENT on an SSL-only checkpoint (it needs the segmentation head's predictions),
            or AdaBN on a network without BatchNorm (nothing to re-estimate).
        DataError: an empty pool.
    """
    config = config or AdaptConfig()
    if config.method == "none":
        raise ConfigError("adaptation method is 'none'.", fix="choose adabn or tent")
    cases = list(pool.cases if isinstance(pool, DatasetSpec) else pool)
    if not cases:
        raise DataError("the pool to adapt on is empty.", fix="point to a folder of unlabeled target volumes")
    start = time.perf_counter()
    net, ckpt, _ = build_from_checkpoint(model)
    requested, reason = config.method, ""
    if config.method == "auto":
        method, reason = resolve_adapt_method(net, ckpt)
        config = config.model_copy(update={"method": method})
        if method == "none":
            return _unchanged(model, net, ckpt, cases, reason, out, start)
    if config.method == "tent" and ckpt.kind == "ssl-only":
        raise ConfigError("TENT needs predictions, but this checkpoint is SSL-only (no segmentation head).",
                          path=model, fix="use --method adabn, or adapt after the first fine-tuning round")
    patch = config.patch_size or ckpt.training_patch
    inference = config.inference or ckpt.inference_config(patch)
    unlabeled = [Case(c.case_id, c.image_paths, None) for c in cases]  # labels are never read
    bn = batchnorm_layers(net)
    if config.method == "adabn" and not bn:  # nothing to re-estimate: writing an unchanged copy would mislead
        raise ConfigError(f"AdaBN re-estimates BatchNorm running statistics, and this network "
                          f"({ckpt.model_config.name}) has none: its GroupNorm/InstanceNorm/LayerNorm layers "
                          "normalise each input by itself.", path=model,
                          fix="use --method tent (trains the norm layers' affine parameters on the pool), or "
                              "skip adaptation and go straight to `assft query`")
    result = AdaptResult(config.method, None, len(unlabeled), 0.0)
    if requested == "auto":
        result.details.update(requested="auto", reason=reason)
    result.unadapted_layers = [n for n in norm_layers(net) if n not in bn] if config.method == "adabn" else []
    if config.method == "tent":
        details = tent_adapt(net, unlabeled, lambda c: load_case(c, ckpt.preprocess, with_label=False),
                             patch_size=patch, epochs=config.tent_epochs, lr=config.tent_lr,
                             batch_size=config.tent_batch_size, seed=config.seed,
                             device=resolve_device(inference.device))
        result.affine_layers = details.pop("adapted_layers")
        result.unadapted_layers = details.pop("no_affine")
        result.details["tent"] = details
    stats = estimate_batchnorm_statistics(net, iter_loaded(unlabeled, ckpt.preprocess), inference)
    apply_batchnorm_statistics(net, stats)
    result.statistics_layers = sorted(stats)
    if result.unadapted_layers:
        result.notes.append(f"{len(result.unadapted_layers)} norm layers keep no running statistics "
                            "(GroupNorm/LayerNorm/InstanceNorm) and normalise each input by itself; "
                            + ("AdaBN leaves them as they are." if config.method == "adabn" else
                               "they have no affine parameters to train."))
    if not stats:
        result.notes.append("the network has no BatchNorm layer: no statistics were re-estimated.")  # TENT only
    result.seconds = time.perf_counter() - start
    if out is not None:
        # θ0 (what KD is measured against) stays the pre-trained model, however many adaptations lie between.
        metadata = {**ckpt.metadata, THETA0_KEY: theta0_for_record(model, ckpt),
                    "adaptation": {**result.to_dict(), "from": os.path.abspath(model),
                                                    "config": config.model_dump(mode="json"),
                                                    "config_hash": config_hash(config),
                                                    "pool_cases": [c.case_id for c in unlabeled]}}
        new = make_checkpoint(net, ckpt.model_config, ckpt.labels, kind=ckpt.kind, preprocess=ckpt.preprocess,
                              metadata=metadata, fingerprint=ckpt.fingerprint)
        result.checkpoint = save_checkpoint(out, new)
    return result


def _unchanged(model: str | Path, net: nn.Module, ckpt: Checkpoint, cases: list[Case], reason: str,
               out: str | Path | None, start: float) -> AdaptResult:
    """adapt "auto" resolved to none: the checkpoint as is (written to `out` with the reason), nothing adapted."""
    result = AdaptResult("none", None, len(cases), 0.0, unadapted_layers=list(norm_layers(net)),
                         notes=[reason], details={"requested": "auto", "reason": reason})
    result.seconds = time.perf_counter() - start
    if out is not None:
        metadata = {**ckpt.metadata, "adaptation": {**result.to_dict(), "from": str(model)}}
        new = make_checkpoint(net, ckpt.model_config, ckpt.labels, kind=ckpt.kind, preprocess=ckpt.preprocess,
                              metadata=metadata, fingerprint=ckpt.fingerprint)
        result.checkpoint = save_checkpoint(out, new)
    return result
