"""The round loop: query -> labels -> selective semi-supervised fine-tuning -> evaluation, resumable from the ledger.

Each step reads the ledger, checks the round is at the step before it, does its work into the round's folder, and
records the result atomically. A step killed halfway leaves the ledger at the previous step, so running it again
redoes only that step; the same config and seed give the same ledger, interrupted or not.
"""

from __future__ import annotations

import csv
import functools
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from assft.campaign.budget import Budget
from assft.campaign.config import CampaignConfig, load_campaign_config, save_campaign_config
from assft.campaign.ledger import STEPS, Ledger, campaign_lock
from assft.campaign.oracle import GroundTruthOracle, copy_labels, validate_label_folder
from assft.data.cases import Case, DatasetSpec
from assft.data.layout import load_dataset
from assft.errors import AssftError, CampaignError, ConfigError
from assft.utils.atomic import atomic_write
from assft.utils.distributed import barrier, join_process_group
from assft.utils.paths import check_generated_folder, check_output_guard, mark_generated_folder
from assft.utils.seeding import derive_seed


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _versions() -> dict[str, str]:
    from assft.utils.provenance import versions

    return versions()


_EVALUATE_STEP = "evaluate on the test set"  # the progress label of the evaluation step
THETA0_CACHE = "theta0_moments.json"  # θ0's norm moments per pool volume: KD costs one θ0 pass per volume
VOLUME_CACHE = "volumes"  # preprocessed pool/test volumes, memory-mapped (assft.data.volume_cache)
T = TypeVar("T")


def round_dir(campaign_dir: Path, index: int) -> Path:
    """Folder of round `index`: rounds/r001, rounds/r002, ..."""
    return Path(campaign_dir) / "rounds" / f"r{index:03d}"


def load_pool(config: CampaignConfig) -> DatasetSpec:
    """The campaign's unlabeled pool (restricted to `pool_ids` when given)."""
    spec = load_dataset(config.pool)
    return spec.subset(config.pool_ids) if config.pool_ids else spec


def load_test(config: CampaignConfig) -> DatasetSpec | None:
    """The labeled target test set, if the campaign has one."""
    if config.test is None:
        return None
    spec = load_dataset(config.test)
    return spec.subset(config.test_ids) if config.test_ids else spec


def campaign_budget(config: CampaignConfig, pool_size: int) -> Budget:
    """Total budget resolved against the pool, split over the rounds."""
    from assft.query.config import resolve_budget

    return Budget(resolve_budget(config.budget, pool_size), config.rounds)


def init_campaign(campaign_dir: str | Path, config: CampaignConfig) -> Path:
    """Create a campaign directory (validated config + empty ledger); re-running with the same config is a no-op."""
    campaign_dir = Path(campaign_dir)
    # Later steps may run from another directory: relative paths would then name other (or no) files.
    config = config.model_copy(update={k: os.path.abspath(v) for k in ("model", "pretrained", "pool", "test")
                                       if (v := getattr(config, k)) is not None})
    check_output_guard(campaign_dir, {k: getattr(config, k) for k in ("model", "pretrained", "pool", "test")})
    check_generated_folder(campaign_dir, "campaign", signatures=("campaign.yaml", ".lock"))
    pool = load_pool(config)  # the cheap checks first: no torch import until the folders are known to be fine
    load_test(config)  # a missing test set fails now, not after the first fine-tuning
    from assft.models.checkpoint import load_checkpoint
    from assft.query.strategies import make_strategy

    make_strategy(config.strategy, config.query_for_round(1))  # unknown strategy: did-you-mean error now, not in round 1
    load_checkpoint(config.model)
    if config.pretrained:
        load_checkpoint(config.pretrained)
    budget = campaign_budget(config, len(pool.cases))
    if (campaign_dir / "campaign.yaml").exists():
        existing = load_campaign_config(campaign_dir)
        if existing != config:
            raise CampaignError("a different campaign already lives here.", path=campaign_dir,
                                fix="choose a new --out folder, or continue it with `assft campaign next`")
        return campaign_dir
    campaign_dir.mkdir(parents=True, exist_ok=True)
    with campaign_lock(campaign_dir, creating=True):
        mark_generated_folder(campaign_dir, "campaign")
        save_campaign_config(campaign_dir, config)
        ledger = Ledger.load(campaign_dir)
        ledger.data["meta"] = {"pool_size": len(pool.cases), "budget_total": budget.total, "rounds": budget.rounds,
                               "per_round": [budget.for_round(r) for r in range(1, budget.rounds + 1)],
                               "strategy": config.strategy, "arm": config.arm or config.strategy,
                               "seed": config.seed, "started_at": _now(), "versions": _versions()}
        ledger.save()
    return campaign_dir


ADAPTED_CHECKPOINT = Path("round0") / "adapted.pt"


def start_model(campaign_dir: Path, config: CampaignConfig) -> str:
    """The model round 1 starts from: the round-0 adapted checkpoint when adaptation is configured, else `model`."""
    if config.adapt is not None and config.adapt.method != "none":
        return str(Path(campaign_dir) / ADAPTED_CHECKPOINT)
    return config.model


def current_model(campaign_dir: Path, config: CampaignConfig, ledger: Ledger, before_round: int) -> str:
    """The newest fine-tuned checkpoint before `before_round` (the campaign's start model in round 1)."""
    for record in reversed(ledger.records()):
        if record.round < before_round and record.checkpoint:
            return str(Path(campaign_dir) / record.checkpoint)
    return start_model(campaign_dir, config)


@contextmanager
def campaign_volume_cache(campaign_dir: Path) -> Iterator[None]:
    """Within the block, volumes load through the campaign's cache (`VOLUME_CACHE`), unless one is active already
    (a simulation shares one across its grid) or the campaign turned it off."""
    from assft.data.volume_cache import active_volume_cache, use_volume_cache

    try:
        wanted = active_volume_cache() is None and load_campaign_config(campaign_dir).cache_volumes
    except AssftError:  # not a campaign (yet): the step itself reports it
        wanted = False
    with use_volume_cache(campaign_dir / VOLUME_CACHE if wanted else None):
        yield


def _with_volume_cache(step: Callable[..., T]) -> Callable[..., T]:
    """Run a campaign step (first argument: the campaign folder) inside `campaign_volume_cache`."""

    @functools.wraps(step)
    def run(campaign_dir: str | Path, *args: Any, **kwargs: Any) -> T:
        with campaign_volume_cache(Path(campaign_dir)):
            return step(campaign_dir, *args, **kwargs)

    return run


@_with_volume_cache
def adapt_start(campaign_dir: str | Path) -> dict[str, Any] | None:
    """Round 0: adapt the start model to the unlabeled pool (no labels) once; recorded in the ledger meta."""
    from assft.adapt import adapt_checkpoint

    campaign_dir = Path(campaign_dir)
    with campaign_lock(campaign_dir):
        config = load_campaign_config(campaign_dir)
        if config.adapt is None or config.adapt.method == "none":
            return None
        ledger = Ledger.load(campaign_dir)
        done = ledger.data["meta"].get("adaptation")
        if done and (campaign_dir / ADAPTED_CHECKPOINT).exists():
            return done
        pool = load_pool(config)
        result = adapt_checkpoint(config.model, pool, config.adapt, campaign_dir / ADAPTED_CHECKPOINT)
        record = {**result.to_dict(), "checkpoint": str(ADAPTED_CHECKPOINT)}
        ledger.data["meta"]["adaptation"] = record
        ledger.save()
        return record


@_with_volume_cache
def next_round(campaign_dir: str | Path, *, show_progress: bool | None = None) -> dict[str, Any]:
    """Score the pool and choose the next round's volumes (idempotent while the round awaits labels)."""
    campaign_dir = Path(campaign_dir)
    # Under torchrun every rank scores its share of the pool; rank 0 alone adapts, holds the lock and writes.
    ranks = join_process_group()
    if ranks.is_main:
        adapt_start(campaign_dir)
    barrier(ranks)  # the others read the ledger once rank 0 adapted, and before it writes the round
    with campaign_lock(campaign_dir) if ranks.is_main else nullcontext():
        config = load_campaign_config(campaign_dir)
        ledger = Ledger.load(campaign_dir)
        last = ledger.current()
        barrier(ranks)  # every rank has read the state: rank 0 may now change it
        if last is not None and last["status"] == "queried":
            return last
        if last is not None and last["status"] != "evaluated":
            raise CampaignError(f"round {last['round']} is at step '{last['status']}'.", path=campaign_dir,
                                fix="finish it first (`assft campaign finetune`)")
        index = 1 if last is None else last["round"] + 1
        pool = load_pool(config)
        budget = campaign_budget(config, len(pool.cases))
        if index > budget.rounds:
            raise CampaignError(f"all {budget.rounds} rounds are done.", path=campaign_dir,
                                fix="see `assft campaign status`; start a new campaign to spend more budget")
        labeled = ledger.labeled_ids()
        n = budget.clip(budget.for_round(index), len(pool.cases) - len(labeled))
        start = time.perf_counter()
        out = round_dir(campaign_dir, index)
        model = current_model(campaign_dir, config, ledger, index)
        from assft.query.api import run_query  # torch and MONAI: only once the campaign's state is known to be fine

        result = run_query(model, pool, config.query_for_round(n), pretrained=config.pretrained or config.model,
                           labeled_ids=labeled, seed=derive_seed(config.seed, "query", index),
                           inference=config.inference, out_dir=out / "query", show_progress=show_progress,
                           theta0_cache=campaign_dir / THETA0_CACHE, round_index=index, total_rounds=budget.rounds,
                           figures=config.figures)
        if not ranks.is_main:
            return {"round": index, "status": "queried", "selected": result.selected, "budget": n}
        _write_to_annotate(out, pool, result.selected)
        return ledger.update_round(index, "queried", selected=result.selected, model=_relative(model, campaign_dir),
                                   budget=n, labeled_before=len(labeled),
                                   query_files=["query/selection.csv", "query/selection.json"],
                                   timings={"query_s": time.perf_counter() - start})


def _relative(path: str | Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _write_to_annotate(out: Path, pool: DatasetSpec, case_ids: list[str]) -> None:
    """to_annotate.csv plus links (or copies) of the images in to_annotate/ for the annotator."""
    folder = out / "to_annotate"
    folder.mkdir(parents=True, exist_ok=True)
    for case_id in case_ids:
        source = pool.get(case_id).image_path
        target = folder / source.name
        if not target.exists():
            try:
                os.symlink(source.resolve(), target)
            except OSError:  # filesystems without symlinks
                import shutil

                shutil.copyfile(source, target)

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["case_id", "image", "expected_label_file"])
            for case_id in case_ids:
                writer.writerow([case_id, str(pool.get(case_id).image_path), f"{case_id}.nii.gz"])

    atomic_write(out / "to_annotate.csv", write)


def import_labels(campaign_dir: str | Path, labels_dir: str | Path) -> dict[str, Any]:
    """Validate the annotator's labels for the queried round and record them; invalid input changes nothing."""
    campaign_dir = Path(campaign_dir)
    with campaign_lock(campaign_dir):
        config = load_campaign_config(campaign_dir)
        ledger = Ledger.load(campaign_dir)
        last = _expect(ledger, campaign_dir, "queried", "run `assft campaign next` first")
        pool = load_pool(config)
        found = validate_label_folder(labels_dir, pool, last["selected"], model_classes(config))
        copy_labels(found, campaign_dir / "labels", pool)
        return ledger.update_round(last["round"], "labeled", labels_received=sorted(found))


def model_classes(config: CampaignConfig) -> dict[int, str]:
    """The label values the campaign's model predicts: what an imported label may hold, whatever the pool's layout."""
    from assft.models.checkpoint import load_checkpoint

    return load_checkpoint(config.model).labels


def _expect(ledger: Ledger, campaign_dir: Path, status: str, fix: str) -> dict[str, Any]:
    last = ledger.current()
    if last is None or last["status"] != status:
        where = "no round has started" if last is None else f"round {last['round']} is at step '{last['status']}'"
        raise CampaignError(f"this step needs a round at step '{status}', but {where}.", path=campaign_dir, fix=fix)
    return last


def labeled_cases(campaign_dir: Path, config: CampaignConfig, ledger: Ledger, pool: DatasetSpec) -> list[Case]:
    """The labeled set L: queried cases with their labels (ground truth in simulation, imported files otherwise)."""
    cases = []
    for case_id in ledger.labeled_ids():
        case = pool.get(case_id)
        if config.oracle == "ground_truth":
            label = GroundTruthOracle(pool).annotate([case_id])[case_id]
        else:
            label = campaign_dir / "labels" / f"{case_id}.nii.gz"
            if not label.exists():
                label = label.with_suffix("")  # .nii
        cases.append(Case(case_id, case.image_paths, label))
    return cases


@_with_volume_cache
def finetune_round(campaign_dir: str | Path, *, show_progress: bool | None = None) -> dict[str, Any]:
    """SSFT on the labels so far, then evaluation on the test set (when the campaign has one)."""
    from assft.finetune.ssft import run_ssft

    campaign_dir = Path(campaign_dir)
    with campaign_lock(campaign_dir):
        config = load_campaign_config(campaign_dir)
        ledger = Ledger.load(campaign_dir)
        last = ledger.current()
        if last is not None and last["status"] == "finetuned":
            return _evaluate(campaign_dir, config, ledger, last)
        last = _expect(ledger, campaign_dir, "labeled", "import the round's labels first (`assft campaign import-labels`)")
        index = last["round"]
        pool = load_pool(config)
        start = time.perf_counter()
        labeled = labeled_cases(campaign_dir, config, ledger, pool)
        labeled_ids = {c.case_id for c in labeled}
        unlabeled = [c for c in pool.cases if c.case_id not in labeled_ids]
        out = round_dir(campaign_dir, index) / "finetune"
        ft = config.finetune_with_seed(derive_seed(config.seed, "finetune", index))
        # "previous": continue from the last round's weights; "start": every round restarts from the start model.
        model = current_model(campaign_dir, config, ledger, index) if ft.round_init == "previous" else \
            start_model(campaign_dir, config)
        result = run_ssft(model, labeled, unlabeled, out, ft, labels=pool.labels or None,
                          pretrained=config.pretrained or config.model, show_progress=show_progress)
        pseudo = [{"case_id": r.case_id, "conf": r.conf, "sd": r.sd, "selected": r.selected,
                   "true_dice": r.true_dice} for r in result.table]
        record = ledger.update_round(index, "finetuned", checkpoint=_relative(result.checkpoint, campaign_dir),
                                     pseudo_labels=pseudo, head=result.head.action, compute=result.compute,
                                     init_model=_relative(model, campaign_dir),
                                     timings={"finetune_s": time.perf_counter() - start})
        return _evaluate(campaign_dir, config, ledger, record)


def _evaluate(campaign_dir: Path, config: CampaignConfig, ledger: Ledger, record: dict[str, Any]) -> dict[str, Any]:
    from assft.utils.progress import begin_step

    begin_step(f"round {record['round']}/{ledger.data['meta']['rounds']}: {_EVALUATE_STEP}")
    start = time.perf_counter()
    metrics = evaluate_on_test(campaign_dir / record["checkpoint"], config)
    meta = ledger.data["meta"]
    return ledger.update_round(record["round"], "evaluated", metrics=metrics,
                               labeled_total=len(ledger.labeled_ids()),
                               budget_fraction=len(ledger.labeled_ids()) / max(meta.get("pool_size", 1), 1),
                               timings={"evaluate_s": time.perf_counter() - start})


def evaluate_on_test(checkpoint: str | Path, config: CampaignConfig) -> dict[str, Any] | None:
    """Summary metrics (mean/per-class Dice, HD95, NSD) of a checkpoint on the campaign's test set, or None."""
    from assft.inference.evaluate import evaluate_checkpoint
    from assft.metrics.segmentation import summarize_metrics

    test = load_test(config)
    if test is None:
        return None
    rows = evaluate_checkpoint(checkpoint, test, config.inference)
    summary = summarize_metrics(rows)
    return {"n_cases": summary["n_cases"], "mean_dice": summary["mean_dice"]["mean"],
            "mean_hd95": summary["mean_hd95"]["mean"], "mean_nsd": summary["mean_nsd"]["mean"],
            "dice": {k: v["mean"] for k, v in summary["dice"].items()},
            "hd95": {k: v["mean"] for k, v in summary["hd95"].items()}}


@_with_volume_cache
def run_campaign(campaign_dir: str | Path, *, show_progress: bool | None = None) -> Ledger:
    """Simulation: run every remaining step of every round with the ground truth as the annotator (resumable)."""
    campaign_dir = Path(campaign_dir)
    config = load_campaign_config(campaign_dir)
    if config.oracle != "ground_truth":
        raise ConfigError("run_campaign needs oracle: ground_truth (a simulation).", path=campaign_dir / "campaign.yaml",
                          fix="use `assft campaign next/import-labels/finetune` for real annotation")
    from assft.utils.progress import reporting

    with reporting(show_progress) as report, report.scope(f"{config.arm or config.strategy} seed{config.seed}"):
        return _run_rounds(campaign_dir, config, report, show_progress)


def _run_rounds(campaign_dir: Path, config: CampaignConfig, report: Any, show_progress: bool | None) -> Ledger:
    """`run_campaign`'s loop, each step announced on `report` (a StepReporter)."""
    if "baseline_metrics" not in Ledger.load(campaign_dir).data["meta"]:
        with report.step("start model on the test set"):
            _baseline(campaign_dir, config)
    while True:
        ledger = Ledger.load(campaign_dir)
        last = ledger.current()
        meta = ledger.data["meta"]
        if last is not None and last["status"] == "evaluated" and last["round"] >= meta["rounds"]:
            break
        status = "evaluated" if last is None else last["status"]
        index = 1 if last is None else last["round"] + (status == "evaluated")
        if status == "evaluated":
            n = meta["per_round"][index - 1]
            with report.step(f"round {index}/{meta['rounds']}: query {n} volume{'s' * (n != 1)}") as step:
                step["note"] = f"{len(next_round(campaign_dir, show_progress=show_progress)['selected'])} selected"
        elif status == "queried":
            _import_ground_truth(campaign_dir)
        else:
            n = len(ledger.labeled_ids())  # at 'finetuned' (resumed) only the evaluation is left: _evaluate's label
            label = f"fine-tune on {n} labeled volume{'s' * (n != 1)}" if status == "labeled" else _EVALUATE_STEP
            with report.step(f"round {index}/{meta['rounds']}: {label}") as step:  # _evaluate begins its step
                metrics = finetune_round(campaign_dir, show_progress=show_progress).get("metrics") or {}
                step["note"] = f"mean Dice {metrics['mean_dice']:.3f}" if "mean_dice" in metrics else ""
    with campaign_lock(campaign_dir):
        ledger = Ledger.load(campaign_dir)
        ledger.data["meta"]["finished_at"] = _now()
        ledger.save()
    return ledger


def _baseline(campaign_dir: Path, config: CampaignConfig) -> None:
    """Budget-0 point of the curve: the start model (adapted, when round 0 adapts) on the test set; with
    adaptation the model as is is recorded too (`unadapted_metrics`). Only a supervised model can be evaluated."""
    from assft.models.checkpoint import load_checkpoint

    adapt_start(campaign_dir)
    with campaign_lock(campaign_dir):
        ledger = Ledger.load(campaign_dir)
        meta = ledger.data["meta"]
        if "baseline_metrics" in meta:
            return
        supervised = load_checkpoint(config.model).kind == "supervised"
        start = start_model(campaign_dir, config)
        meta["baseline_metrics"] = evaluate_on_test(start, config) if supervised else None
        if start != config.model:
            meta["unadapted_metrics"] = evaluate_on_test(config.model, config) if supervised else None
        ledger.save()


def _import_ground_truth(campaign_dir: Path) -> None:
    with campaign_lock(campaign_dir):
        config = load_campaign_config(campaign_dir)
        ledger = Ledger.load(campaign_dir)
        last = _expect(ledger, campaign_dir, "queried", "run `assft campaign next` first")
        GroundTruthOracle(load_pool(config)).annotate(last["selected"])  # fails clearly if a label is missing
        ledger.update_round(last["round"], "labeled", labels_received=sorted(last["selected"]))


def campaign_status(campaign_dir: str | Path) -> dict[str, Any]:
    """Config, meta and a row per round (status, selected, labeled so far, metrics) for display."""
    campaign_dir = Path(campaign_dir)
    config = load_campaign_config(campaign_dir)
    ledger = Ledger.load(campaign_dir)
    rows = []
    for record in ledger.records():
        rows.append({"round": record.round, "status": record.status, "selected": record.selected,
                     "labels_received": record.labels_received,
                     "labeled_total": record.labeled_total, "mean_dice": (record.metrics or {}).get("mean_dice"),
                     "n_pseudo": sum(1 for p in record.pseudo_labels if p.get("selected"))})
    return {"config": config.model_dump(mode="json"), "meta": ledger.data["meta"], "rounds": rows,
            "next_step": _next_step(ledger)}


def _next_step(ledger: Ledger) -> str:
    last = ledger.current()
    rounds = ledger.data["meta"].get("rounds", 0)
    if last is None:
        return "assft campaign next"
    follow = {"queried": "assft campaign import-labels", "labeled": "assft campaign finetune",
              "finetuned": "assft campaign finetune"}
    if last["status"] in follow:
        return follow[last["status"]]
    return "done" if last["round"] >= rounds else "assft campaign next"


__all__ = ["STEPS", "campaign_status", "finetune_round", "import_labels", "init_campaign", "next_round",
           "run_campaign"]
