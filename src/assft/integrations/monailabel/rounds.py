"""A train request as a round of an assft campaign: the app's folder holds a real campaign (campaign/), so a round in
MONAI Label and a round of `assft campaign` are the same code and the same ledger (`assft report` reads it).

The mapping: the images the annotators labeled since the last round become the round's "queried" picks, their final
labels are imported exactly as `assft campaign import-labels` does (validated against their images; nothing is
imported when one is wrong), and `finetune_round` runs SSFT on every label so far with the reliable pseudo-labels
of the other images. No MONAI Label import: the datastore is duck-typed (see `state.Datastore`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assft.integrations.monailabel.state import AppState, Datastore, relative_path

if TYPE_CHECKING:
    from assft.campaign.config import CampaignConfig


def campaign_config(state: AppState) -> CampaignConfig:
    """The app's campaign: θ0, the studies folder as the pool, the app's strategy and recipes."""
    from assft.campaign.config import CampaignConfig
    from assft.data.layout import load_dataset

    config = state.config
    # The plan written into the ledger: the whole pool over `rounds` (at most one round per image). Annotators may
    # go on past it; a train request only needs new labels.
    rounds = min(config.rounds, len(load_dataset(state.studies).cases))
    return CampaignConfig(model=str(state.start_model), pool=str(state.studies), budget="100%",
                          rounds=rounds, strategy=config.strategy,
                          query=config.query.model_dump(exclude={"strategy", "budget"}),
                          finetune=config.finetune.model_dump(exclude={"seed"}), inference=config.inference,
                          test=config.test, oracle="folder", seed=config.seed, cache_volumes=False)


def ensure_campaign(state: AppState) -> Path:
    """Create the app's campaign folder on the first train request (a no-op afterwards)."""
    from assft.campaign.campaign import init_campaign
    from assft.campaign.config import CONFIG_NAME

    if not (state.campaign_dir / CONFIG_NAME).exists():
        init_campaign(state.campaign_dir, campaign_config(state))
    if state.config.test is not None:
        _record_baseline(state)
    return state.campaign_dir


def _record_baseline(state: AppState) -> None:
    """The budget-0 point of the report's curves: θ0 on the monitoring test set, once (as a simulation records it)."""
    from assft.campaign.campaign import Campaign
    from assft.campaign.evaluation import evaluate_on_test, has_baseline
    from assft.campaign.ledger import campaign_lock

    with campaign_lock(state.campaign_dir):
        campaign = Campaign.open(state.campaign_dir)
        if not has_baseline(campaign):
            campaign.update_meta(baseline_metrics=evaluate_on_test(campaign.config.model, campaign.config))


def run_round(state: AppState, datastore: Datastore, label_dir: str | Path) -> dict[str, Any]:
    """Fine-tune on the datastore's final labels (`label_dir` holds them as ID.nii.gz): one campaign round.

    Resumes a round a killed request left halfway; with no new label since the last round it trains nothing and
    says so. Returns the round's ledger record (plus "status_message")."""
    from assft.campaign.engine import finetune_round, import_labels
    from assft.campaign.ledger import Ledger, campaign_lock
    from assft.utils.progress import silenced

    start = time.perf_counter()
    campaign_dir = ensure_campaign(state)
    ledger = Ledger.load(campaign_dir)
    last = ledger.last()
    if last is None or last.status == "evaluated":
        done = set(ledger.labeled_ids())
        new = sorted(i for i in datastore.get_labeled_images() if i not in done)
        if not new:
            return {**(_as_dict(last) if last else {}),
                    "status_message": "no new labels since the last round: nothing to train"}
        index = 1 if last is None else last.round + 1
        with campaign_lock(campaign_dir):
            model = state.current_model()
            last = Ledger.load(campaign_dir).update_round(
                index, "queried", selected=new, model=relative_path(model, campaign_dir), budget=len(new),
                labeled_before=len(done), source="monailabel")
    if last.status == "queried":
        import_labels(campaign_dir, label_dir)
    with silenced():  # the server's log is MONAI Label's
        record = finetune_round(campaign_dir)
    n = len(Ledger.load(campaign_dir).labeled_ids())
    return {**_as_dict(record), "status_message": f"round {record.round}: fine-tuned on {n} labeled images in "
                                                  f"{time.perf_counter() - start:.1f} s"}


def _as_dict(record: Any) -> dict[str, Any]:
    """A ledger record as the JSON the app returns (the fields the round has reached)."""
    return record.model_dump(mode="json", exclude_unset=True)
