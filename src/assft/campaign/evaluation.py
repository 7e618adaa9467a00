"""Evaluation of a campaign's models on its test set: after each round, and the budget-0 points before round 1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assft.campaign.adaptation import adapt_start
from assft.campaign.campaign import Campaign, load_test
from assft.campaign.config import CampaignConfig
from assft.campaign.ledger import RoundRecord, campaign_lock
from assft.inference.evaluate import evaluate_checkpoint
from assft.metrics.segmentation import summarize_metrics
from assft.models.checkpoint import load_checkpoint
from assft.utils.progress import begin_step
from assft.utils.timing import timed, timing_record

EVALUATE_STEP = "evaluate on the test set"  # the progress label of the evaluation step


def evaluate_on_test(checkpoint: str | Path, config: CampaignConfig) -> dict[str, Any] | None:
    """Summary metrics (mean/per-class Dice, HD95, NSD) of a checkpoint on the campaign's test set, or None."""
    test = load_test(config)
    if test is None:
        return None
    rows = evaluate_checkpoint(checkpoint, test, config.inference)
    summary = summarize_metrics(rows)
    return {"n_cases": summary["n_cases"], "mean_dice": summary["mean_dice"]["mean"],
            "mean_hd95": summary["mean_hd95"]["mean"], "mean_nsd": summary["mean_nsd"]["mean"],
            "dice": {k: v["mean"] for k, v in summary["dice"].items()},
            "hd95": {k: v["mean"] for k, v in summary["hd95"].items()}}


def evaluate_round(campaign: Campaign, record: RoundRecord) -> RoundRecord:
    """Evaluate a fine-tuned round's checkpoint on the test set and record the round as evaluated."""
    begin_step(f"round {record.round}/{campaign.meta.rounds}: {EVALUATE_STEP}")
    with timing_record() as spent, timed("evaluate_s"):
        metrics = evaluate_on_test(campaign.directory / (record.checkpoint or ""), campaign.config)
    labeled = len(campaign.labeled_ids())
    return campaign.update_round(record.round, "evaluated", metrics=metrics, labeled_total=labeled,
                                 budget_fraction=labeled / max(campaign.meta.pool_size or 1, 1),
                                 timings=spent)


def record_baseline(campaign_dir: Path) -> None:
    """Budget-0 point of the curve: the start model (adapted, when round 0 adapts) on the test set; with
    adaptation the model as is is recorded too (`unadapted_metrics`), and the campaign's upper reference model
    (`upper_metrics`) when it names one. Only a supervised model can be evaluated."""
    adapt_start(campaign_dir)
    with campaign_lock(campaign_dir):
        campaign = Campaign.open(campaign_dir)
        if has_baseline(campaign):
            return
        config = campaign.config
        supervised = load_checkpoint(config.model).kind == "supervised"
        start = campaign.start_model()
        points: dict[str, Any] = {"baseline_metrics": evaluate_on_test(start, config) if supervised else None}
        if start != config.model:
            points["unadapted_metrics"] = evaluate_on_test(config.model, config) if supervised else None
        if config.upper_model is not None:
            points["upper_metrics"] = evaluate_on_test(config.upper_model, config)
        campaign.update_meta(**points)


def record_round0(campaign_dir: Path) -> bool:
    """A real campaign with a test set: the source model (and the adapted start, and the upper reference) on it
    before any label, once, so status and reports show where the campaign started. False without a test set."""
    campaign = Campaign.open(campaign_dir)
    if campaign.config.test is None:
        return False
    if not has_baseline(campaign):
        begin_step("round 0: the start models on the test set")
        record_baseline(campaign_dir)
    return True


def has_baseline(campaign: Campaign) -> bool:
    """Whether the budget-0 point was recorded (it may be None: an SSL-only model cannot be evaluated)."""
    return "baseline_metrics" in campaign.meta.model_fields_set
