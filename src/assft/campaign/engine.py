"""The campaign's human steps: `next_round` (query) -> `import_labels` -> `finetune_round` (SSFT, then evaluation).

Each step opens the `Campaign`, checks the round is at the step before its own, does its work into the round's
folder (`assft.campaign.layout`), and records the result atomically. A step killed halfway leaves the ledger at the
previous step, so running it again redoes only that step; the same config and seed give the same ledger,
interrupted or not. Progress goes to the caller's reporter (`assft.utils.progress.reporting`).
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

from assft.campaign.adaptation import adapt_start
from assft.campaign.campaign import Campaign, campaign_budget, init_campaign
from assft.campaign.evaluation import evaluate_round, record_round0
from assft.campaign.layout import (
    THETA0_CACHE,
    finetune_dir,
    label_file,
    relative_to,
    round_dir,
    write_query,
    write_to_annotate,
)
from assft.campaign.config import CampaignConfig
from assft.campaign.ledger import STEPS, RoundRecord, campaign_lock
from assft.campaign.oracle import GroundTruthOracle, annotation_costs, copy_labels, validate_label_folder
from assft.campaign.pre_annotations import write_pre_annotations
from assft.campaign.volumes import with_volume_cache
from assft.data.cases import Case, DatasetSpec
from assft.errors import CampaignError
from assft.finetune.ssft import run_ssft
from assft.models.checkpoint import load_checkpoint
from assft.query.api import score_pool
from assft.query.scorer import load_query_model
from assft.query.strategies import make_strategy
from assft.utils.distributed import barrier, join_process_group
from assft.utils.seeding import derive_seed, make_rng
from assft.utils.timing import timed, timing_record


@with_volume_cache
def next_round(campaign_dir: str | Path) -> RoundRecord:
    """Score the pool and choose the next round's volumes (idempotent while the round awaits labels)."""
    campaign_dir = Path(campaign_dir)
    # Under torchrun every rank scores its share of the pool; rank 0 alone adapts, holds the lock and writes.
    ranks = join_process_group()
    if ranks.is_main:
        adapt_start(campaign_dir)
        record_round0(campaign_dir)
    barrier(ranks)  # the others read the ledger once rank 0 adapted, and before it writes the round
    with campaign_lock(campaign_dir) if ranks.is_main else nullcontext():
        campaign = Campaign.open(campaign_dir)
        last = campaign.last()
        barrier(ranks)  # every rank has read the state: rank 0 may now change it
        if last is not None and last.status == "queried":
            return last
        if last is not None and last.status != "evaluated":
            raise CampaignError(f"round {last.round} is at step '{last.status}'.", path=campaign_dir,
                                fix="finish it first (`assft campaign finetune`)")
        index = 1 if last is None else last.round + 1
        config = campaign.config
        pool = campaign.pool()
        budget = campaign_budget(config, len(pool.cases))
        if index > budget.rounds:
            raise CampaignError(f"all {budget.rounds} rounds are done.", path=campaign_dir,
                                fix="see `assft campaign status`; `assft campaign extend --rounds N` adds rounds")
        labeled = campaign.labeled_ids()
        n = budget.clip(budget.for_round(index), len(pool.cases) - len(labeled))  # the budget, resolved once
        with timing_record() as spent:  # the round's seconds, for the ledger (the pass keeps its own record)
            with timed("query_s"):
                model = campaign.current_model(index)
                query = config.query_for_round(n)
                seed = derive_seed(config.seed, "query", index)
                strategy = make_strategy(query.strategy, query)
                theta = load_query_model(model)
                scored = score_pool(theta, pool, strategy.resolve_needs(theta.has_head), config=query,
                                    pretrained=config.pretrained or config.model, labeled_ids=labeled, seed=seed,
                                    inference=config.inference, theta0_cache=campaign_dir / THETA0_CACHE,
                                    figures=config.figures)
                selection = strategy.select(scored.summaries, scored.context(query, index, budget.rounds), n,
                                            make_rng(seed, "query", query.strategy))
                if not ranks.is_main:
                    return RoundRecord(round=index, status="queried", selected=selection.selected, budget=n)
                folder = round_dir(campaign_dir, index)
                result = scored.result(selection, query, n, seed, round_index=index, total_rounds=budget.rounds)
                query_files = write_query(folder, result, figures=config.figures and scored.has_head)
                write_to_annotate(folder, pool, result.selected)
            handed_out = None
            if config.oracle == "folder":  # a person annotates: the model's labels to correct, and why each was picked
                with timed("pre_annotations_s"):
                    handed_out = write_pre_annotations(model, pool, result.selected, folder, config.inference)
        return campaign.update_round(index, "queried", selected=result.selected,
                                     model=relative_to(model, campaign_dir), budget=n, labeled_before=len(labeled),
                                     query_files=query_files, pre_annotations=handed_out, timings=spent)


def import_labels(campaign_dir: str | Path, labels_dir: str | Path) -> RoundRecord:
    """Validate the annotator's labels for the queried round and record them; invalid input changes nothing."""
    campaign_dir = Path(campaign_dir)
    with campaign_lock(campaign_dir):
        campaign = Campaign.open(campaign_dir)
        last = campaign.expect("queried", "run `assft campaign next` first")
        pool = campaign.pool()
        found = validate_label_folder(labels_dir, pool, last.selected, model_classes(campaign.config))
        costs = annotation_costs({case_id: path for case_id, (path, _) in found.items()})  # counted before any write
        copy_labels(found, campaign_dir / "labels", pool)
        return campaign.update_round(last.round, "labeled", labels_received=sorted(found), annotation_cost=costs)


def model_classes(config: CampaignConfig) -> dict[int, str]:
    """The label values the campaign's model predicts: what an imported label may hold, whatever the pool's layout."""
    return load_checkpoint(config.model).labels


def labeled_cases(campaign: Campaign, pool: DatasetSpec) -> list[Case]:
    """The labeled set L: queried cases with their labels (ground truth in simulation, imported files otherwise)."""
    cases = []
    for case_id in campaign.labeled_ids():
        case = pool.get(case_id)
        if campaign.config.oracle == "ground_truth":
            label = GroundTruthOracle(pool).annotate([case_id])[case_id]
        else:
            label = label_file(campaign.directory, case_id)
        cases.append(Case(case_id, case.image_paths, label))
    return cases


@with_volume_cache
def finetune_round(campaign_dir: str | Path) -> RoundRecord:
    """SSFT on the labels so far, then evaluation on the test set (when the campaign has one)."""
    campaign_dir = Path(campaign_dir)
    with campaign_lock(campaign_dir):
        campaign = Campaign.open(campaign_dir)
        last = campaign.last()
        if last is not None and last.status == "finetuned":
            return evaluate_round(campaign, last)
        last = campaign.expect("labeled", "import the round's labels first (`assft campaign import-labels`)")
        index = last.round
        config = campaign.config
        pool = campaign.pool()
        with timing_record() as spent, timed("finetune_s"):  # for the ledger (SSFT keeps its own record)
            labeled = labeled_cases(campaign, pool)
            labeled_ids = {c.case_id for c in labeled}
            unlabeled = [c for c in pool.cases if c.case_id not in labeled_ids]
            ft = config.finetune_with_seed(derive_seed(config.seed, "finetune", index))
            # "previous": continue from the last round's weights; "start": every round restarts from the start model
            model = campaign.current_model(index) if ft.round_init == "previous" else campaign.start_model()
            result = run_ssft(model, labeled, unlabeled, finetune_dir(campaign_dir, index), ft,
                              labels=pool.labels or None, pretrained=config.pretrained or config.model)
        pseudo = [{"case_id": r.case_id, "conf": r.conf, "sd": r.sd, "selected": r.selected,
                   "true_dice": r.true_dice} for r in result.table]
        record = campaign.update_round(index, "finetuned", checkpoint=relative_to(result.checkpoint, campaign_dir),
                                       pseudo_labels=pseudo, head=result.head.action, compute=result.compute,
                                       init_model=relative_to(model, campaign_dir),
                                       timings=spent)
        return evaluate_round(campaign, record)


__all__ = ["STEPS", "finetune_round", "import_labels", "init_campaign", "next_round"]
