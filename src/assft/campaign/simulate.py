"""Simulated campaigns: strategies x seeds x domains with the ground truth as the annotator, plus the bounds.

Layout: OUT/{domain}/{strategy}/seed{S}/ (one campaign each) and OUT/{domain}/bounds.json. Everything resumes:
a finished campaign is skipped, an unfinished one continues from its ledger, bounds are computed once.

Arms are named variants for ablations: `arms: {assft-sum: {strategy: assft, query: {kd: {combine: sum}}}}` runs
into OUT/{domain}/assft-sum/seed{S} with the arm's query/fine-tuning settings merged over the experiment's.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from assft.adapt import adapt_checkpoint
from assft.adapt.config import AdaptConfig
from assft.campaign.campaign import Campaign, init_campaign, load_pool, now
from assft.campaign.config import CONFIG_NAME, CampaignConfig, load_campaign_config
from assft.campaign.engine import finetune_round, next_round
from assft.campaign.experiment import BOUNDS_NAME, SimulationConfig, deep_merge
from assft.campaign.evaluation import EVALUATE_STEP, evaluate_on_test, has_baseline, record_baseline
from assft.campaign.executors import run_on_processes, run_on_ray
from assft.campaign.ledger import Ledger, campaign_lock
from assft.campaign.oracle import GroundTruthOracle, annotation_costs
from assft.campaign.volumes import with_volume_cache
from assft.config import parse_config
from assft.data.splits import load_split
from assft.data.volume_cache import use_volume_cache
from assft.domains import apply_domain_to_dataset
from assft.errors import ConfigError
from assft.finetune.config import FinetuneConfig
from assft.finetune.ssft import run_ssft
from assft.models.checkpoint import load_checkpoint
from assft.utils.atomic import atomic_write_json
from assft.utils.progress import StepReporter, deprecated_show_progress, reporting, silenced
from assft.utils.paths import (check_generated_folder, check_output_dir, check_output_guard,
                               mark_generated_folder)
from assft.utils.seeding import derive_seed
from assft.utils.threads import governor

GRID_VOLUME_CACHE = "_volumes"  # the grid's preprocessed volumes (assft.data.volume_cache), shared by its campaigns


def _domain_data(config: SimulationConfig, domain: str) -> str:
    """The dataset in `domain` (shifted once into OUT/_data/DOMAIN and reused)."""
    if domain == "identity":
        return config.data

    target = Path(config.out) / "_data" / domain
    if not (target / "dataset.json").exists():  # dataset.json is written last, so its presence means complete
        apply_domain_to_dataset(config.data, target, domain, config.domain_seed)
    return str(target)


def _ids(config: SimulationConfig) -> tuple[list[str] | None, list[str] | None]:
    if config.split is None:
        return None, None

    splits = load_split(config.split)
    for name in (config.pool_subset, config.test_subset):
        if name not in splits:
            raise ConfigError(f"split has no subset {name!r} (has {', '.join(splits)}).", path=config.split,
                              fix="set pool_subset/test_subset to names in the split file")
    return splits[config.pool_subset], splits[config.test_subset]


def campaign_config(config: SimulationConfig, domain: str, strategy: str, seed: int,
                    arm: str | None = None) -> CampaignConfig:
    """The campaign of one grid cell (`arm`: the name of one of `config.arms`, else a plain strategy)."""
    pool_ids, test_ids = _ids(config)
    data = _domain_data(config, domain)
    query, finetune = config.query, config.finetune
    if arm is not None:
        if arm not in config.arms:
            raise ConfigError(f"unknown arm {arm!r} (arms: {', '.join(config.arms) or 'none'}).",
                              fix="add it under `arms:` in the experiment YAML")
        spec = config.arms[arm]
        strategy, query, finetune = spec.strategy, deep_merge(query, spec.query), deep_merge(finetune, spec.finetune)
    # With adaptation, every campaign of the domain starts from the same adapted checkpoint (made once, in
    # `prepare_start`), and KD keeps measuring against the frozen pre-trained θ0.
    adapted = config.adapt is not None and config.adapt.method != "none"
    model = str(adapted_start_path(config, domain)) if adapted else config.model
    pretrained = (config.pretrained or config.model) if adapted else config.pretrained
    return CampaignConfig(model=model, pretrained=pretrained, pool=data, pool_ids=pool_ids, test=data,
                          test_ids=test_ids, budget=config.budget, rounds=config.rounds, strategy=strategy, arm=arm,
                          query=query, finetune=finetune, inference=config.inference,
                          oracle="ground_truth", seed=seed, figures=config.figures)


def adapted_start_path(config: SimulationConfig, domain: str, method: str | None = None) -> Path:
    """Where the domain's adapted start model lives: OUT/{domain}/start/{method}.pt."""
    method = method or (config.adapt.method if config.adapt is not None else "none")
    return Path(config.out) / domain / "start" / f"{method}.pt"


def prepare_start(config: SimulationConfig, domain: str) -> dict[str, Any]:
    """Adapt the source model to the domain's pool once per method (the start and the reference lines); cached."""
    methods = list(dict.fromkeys(([config.adapt.method] if config.adapt and config.adapt.method != "none" else [])
                                 + list(config.reference_adaptations)))
    done = {}
    for method in methods:
        path = adapted_start_path(config, domain, method)
        info = path.with_suffix(".json")
        if not (path.exists() and info.exists()):
            base = config.adapt if config.adapt is not None and config.adapt.method == method else AdaptConfig()
            pool = load_pool(_unadapted_cell(config, domain))
            result = adapt_checkpoint(config.model, pool, base.model_copy(update={"method": method}), path)
            atomic_write_json(info, result.to_dict())
        done[method] = json.loads(info.read_text())
    return done


def _unadapted_cell(config: SimulationConfig, domain: str) -> CampaignConfig:
    return campaign_config(config.model_copy(update={"adapt": None}), domain, "random", 0)


def round_steps(config: SimulationConfig) -> int:
    """Optimizer steps one round of a plain (experiment-level) campaign spends."""
    first, third = parse_config(dict(config.finetune), FinetuneConfig).stage_steps()
    return first + third


def compute_bounds(config: SimulationConfig, domain: str) -> dict[str, Any]:
    """Budget-0 references and the upper bound of a domain, cached in OUT/{domain}/bounds.json.

    lower: the start model as is (supervised only); references: the start model adapted without labels (each of
    `reference_adaptations`, and the campaigns' start when `adapt` is set); upper: the campaigns' start model
    fine-tuned on the whole labeled pool with the optimizer steps a campaign spends in total (rounds x steps per
    round), once per seed in `upper_seeds` (mean, sd and per-seed metrics).
    """
    path = Path(config.out) / domain / BOUNDS_NAME
    if path.exists():
        return json.loads(path.read_text())
    start = time.perf_counter()
    cell = campaign_config(config, domain, "random", 0)
    plain = _unadapted_cell(config, domain)
    pool = load_pool(cell)
    supervised = load_checkpoint(config.model).kind == "supervised"
    lower = evaluate_on_test(config.model, plain) if supervised else None
    adapted = prepare_start(config, domain)
    references = {method: evaluate_on_test(adapted_start_path(config, domain, method), plain) for method in adapted}
    steps = config.rounds * round_steps(config)
    uppers = []
    for seed in config.upper_seeds:
        raw = {**dict(config.finetune), "seed": derive_seed(seed, "upper-bound")}
        raw.pop("steps_per_round", None)
        raw.pop("ssft_steps", None)
        ft = parse_config(raw, FinetuneConfig)
        ft = ft.model_copy(update={"ssft_steps": 0, "train": ft.train.model_copy(update={"steps": steps}),
                                   "pseudo": ft.pseudo.model_copy(update={"reliability": "none"})})
        result = run_ssft(cell.model, pool.cases, [], Path(config.out) / domain / f"upper_bound_seed{seed}", ft,
                          labels=pool.labels or None, pretrained=config.pretrained or config.model)
        uppers.append(evaluate_on_test(result.checkpoint, cell))
    bounds = {"lower": lower, "references": references, "start": cell.model, "adaptation": adapted,
              "upper": _mean_metrics(uppers) if uppers and uppers[0] is not None else None,
              "upper_per_seed": uppers, "upper_seeds": list(config.upper_seeds), "upper_steps": steps,
              "steps_per_round": round_steps(config), "pool_size": len(pool.cases),
              "seconds": time.perf_counter() - start}
    atomic_write_json(path, bounds)
    return bounds


def _mean_metrics(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Seed-mean of `evaluate_on_test` summaries (every number averaged; `mean_dice_sd` added)."""
    import numpy as np

    def mean(values: list[Any]) -> Any:
        if isinstance(values[0], dict):
            return {k: mean([v[k] for v in values]) for k in values[0]}
        numbers = [v for v in values if v is not None]
        return float(np.mean(numbers)) if numbers else None

    out = mean(runs)
    out["mean_dice_sd"] = float(np.std([r["mean_dice"] for r in runs], ddof=1)) if len(runs) > 1 else 0.0
    return out


def run_simulation(config: SimulationConfig, *, show_progress: bool | None = None,
                   on_campaign: Any = None, jobs: int = 1, executor: str = "process",
                   ray_options: dict[str, Any] | None = None) -> list[Path]:
    """Run (or resume) every campaign of the grid; returns the campaign directories.

    executor "process": `jobs > 1` runs that many campaigns at once in worker processes, each with an equal share
    of this process's torch threads (campaigns are independent and each holds its own ledger lock; small 3D CNNs
    on CPU scale better across processes than across intra-op threads). executor "ray": each campaign a Ray task
    (`assft.campaign.executors.run_on_ray`, `ray_options` its keyword arguments). Shifted datasets and bounds are
    prepared first, here, by this process. Progress goes to the active reporter; `with silenced(): ...`
    (`assft.utils.progress`) runs it quietly (`show_progress` is deprecated).
    """
    with deprecated_show_progress(show_progress, "run_simulation"):
        return _run_simulation(config, on_campaign, jobs, executor, ray_options)


def _run_simulation(config: SimulationConfig, on_campaign: Any, jobs: int, executor: str,
                    ray_options: dict[str, Any] | None) -> list[Path]:
    """`run_simulation`'s work: check the options and the folder, prepare the grid, run it."""
    if jobs < 1:
        raise ConfigError(f"jobs must be at least 1, got {jobs}.", fix="pass --jobs 1 or more")
    if executor not in ("process", "ray"):
        raise ConfigError(f"unknown executor {executor!r}.", fix="use 'process' (this machine) or 'ray'")
    out = Path(config.out)
    check_output_dir(out, "out")  # a file, or a folder that cannot be written: an answer now, not after the work
    check_output_guard(out, {"data": config.data, "model": config.model, "pretrained": config.pretrained,
                             "split": config.split}, "out")
    check_generated_folder(out, "simulation", "out", signatures=("experiment.json",))
    with _removed_on_failure(out):
        mark_generated_folder(out, "simulation")
        atomic_write_json(out / "experiment.json", config.model_dump(mode="json"))
        dirs = _prepare_grid(config, out)
    return _run_grid(config, out, dirs, on_campaign, jobs, executor, ray_options)


@contextmanager
def _removed_on_failure(out: Path) -> Iterator[None]:
    """A run that fails before its first campaign starts leaves no folder it created behind (nothing was done)."""
    created = not out.exists()
    try:
        yield
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


def _prepare_grid(config: SimulationConfig, out: Path) -> list[Path]:
    """Shifted datasets, start models, bounds and every campaign folder of the grid (the cheap, checkable part)."""
    # One cache of preprocessed volumes for the whole grid: every campaign of a domain reads the same pool and test
    # volumes (entries are keyed by file and preprocessing, so domains never collide).
    volume_cache = str(out / GRID_VOLUME_CACHE)
    dirs: list[Path] = []
    for domain in config.domains:
        with use_volume_cache(volume_cache):
            prepare_start(config, domain)
            if config.bounds:
                compute_bounds(config, domain)
        cells = [(strategy, None) for strategy in config.strategies] + [(None, arm) for arm in config.arms]
        for strategy, arm in cells:
            for seed in config.seeds:
                campaign_dir = out / domain / (arm or strategy) / f"seed{seed}"
                init_campaign(campaign_dir, campaign_config(config, domain, strategy or "", seed, arm))
                dirs.append(campaign_dir)
    return dirs


def _run_grid(config: SimulationConfig, out: Path, dirs: list[Path], on_campaign: Any, jobs: int, executor: str,
              ray_options: dict[str, Any] | None) -> list[Path]:
    """Run (or resume) the prepared campaigns on the chosen executor."""
    volume_cache = str(out / GRID_VOLUME_CACHE)
    if executor == "ray":
        run_on_ray(dirs, volume_cache, run_quietly, on_campaign=on_campaign, **(ray_options or {}))
        return dirs
    if jobs == 1:
        with use_volume_cache(volume_cache):
            for campaign_dir in dirs:
                run_campaign(campaign_dir)
                if on_campaign is not None:
                    on_campaign(campaign_dir)
        return dirs
    threads = max(1, governor().max_threads // jobs)  # cores (or the explicit --threads) shared by the workers
    run_on_processes(dirs, jobs, threads, volume_cache, run_quietly, on_campaign)
    return dirs


@with_volume_cache
def run_campaign(campaign_dir: str | Path, *, show_progress: bool | None = None) -> Ledger:
    """Simulation: run every remaining step of every round with the ground truth as the annotator (resumable).

    Each step is announced on the active reporter; `with silenced(): ...` runs it quietly (`show_progress` is
    deprecated).
    """
    campaign_dir = Path(campaign_dir)
    config = load_campaign_config(campaign_dir)
    if config.oracle != "ground_truth":
        raise ConfigError("run_campaign needs oracle: ground_truth (a simulation).", path=campaign_dir / CONFIG_NAME,
                          fix="use `assft campaign next/import-labels/finetune` for real annotation")
    label = f"{config.arm or config.strategy} seed{config.seed}"
    with deprecated_show_progress(show_progress, "run_campaign"), reporting() as report, report.scope(label):
        return _run_rounds(campaign_dir, report)


def run_quietly(campaign_dir: str) -> Ledger:
    """`run_campaign` without progress lines: the body of a simulation grid's worker processes and Ray tasks."""
    with silenced():
        return run_campaign(campaign_dir)


def _run_rounds(campaign_dir: Path, report: StepReporter) -> Ledger:
    """`run_campaign`'s loop, each step announced on `report`."""
    if not has_baseline(Campaign.open(campaign_dir)):
        with report.step("start model on the test set"):
            record_baseline(campaign_dir)
    while True:
        campaign = Campaign.open(campaign_dir)
        last = campaign.last()
        rounds = campaign.meta.rounds or 0
        if last is not None and last.status == "evaluated" and last.round >= rounds:
            break
        status = "evaluated" if last is None else last.status
        index = 1 if last is None else last.round + (status == "evaluated")
        if status == "evaluated":
            n = campaign.meta.per_round[index - 1]
            with report.step(f"round {index}/{rounds}: query {n} volume{'s' * (n != 1)}") as step:
                step["note"] = f"{len(next_round(campaign_dir).selected)} selected"
        elif status == "queried":
            _import_ground_truth(campaign_dir)
        else:
            n = len(campaign.labeled_ids())  # at 'finetuned' (resumed) only the evaluation is left
            label = f"fine-tune on {n} labeled volume{'s' * (n != 1)}" if status == "labeled" else EVALUATE_STEP
            with report.step(f"round {index}/{rounds}: {label}") as step:  # the evaluation begins its own step
                metrics = finetune_round(campaign_dir).metrics or {}
                step["note"] = f"mean Dice {metrics['mean_dice']:.3f}" if "mean_dice" in metrics else ""
    with campaign_lock(campaign_dir):
        ledger = Ledger.load(campaign_dir)
        ledger.update_meta(finished_at=now())
    return ledger


def _import_ground_truth(campaign_dir: Path) -> None:
    """The simulated annotator: the queried round's ground-truth labels count as imported."""
    with campaign_lock(campaign_dir):
        campaign = Campaign.open(campaign_dir)
        last = campaign.expect("queried", "run `assft campaign next` first")
        found = GroundTruthOracle(campaign.pool()).annotate(last.selected)  # fails clearly if a label is missing
        campaign.update_round(last.round, "labeled", labels_received=sorted(last.selected),
                              annotation_cost=annotation_costs(found))
