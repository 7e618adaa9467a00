"""What `assft campaign status` shows: a row per round, the test-Dice curve and the command that moves it on.

It reads campaign.yaml and ledger.json only, so it loads neither torch nor MONAI and answers at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assft.campaign.campaign import Campaign
from assft.campaign.curve import campaign_curve, curve_aubc

__all__ = ["campaign_status", "next_step"]


def campaign_status(campaign_dir: str | Path) -> dict[str, Any]:
    """Config, meta and a row per round (status, selected, labeled so far, metrics) for display."""
    campaign = Campaign.open(campaign_dir)
    rows = []
    for record in campaign.records():
        rows.append({"round": record.round, "status": record.status, "selected": record.selected,
                     "labels_received": record.labels_received,
                     "labeled_total": record.labeled_total, "mean_dice": (record.metrics or {}).get("mean_dice"),
                     "n_pseudo": sum(1 for p in record.pseudo_labels if p.get("selected"))})
    curve = campaign_curve(campaign.meta, campaign.records())
    return {"config": campaign.config.model_dump(mode="json"), "meta": campaign.meta.model_dump(mode="json",
                                                                                              exclude_unset=True),
            "rounds": rows, "curve": curve, "aubc": curve_aubc(curve), "next_step": next_step(campaign)}


def next_step(campaign: Campaign) -> str:
    """The command that moves the campaign on ("done" when every round is evaluated)."""
    last = campaign.last()
    if last is None:
        return "assft campaign next"
    follow = {"queried": "assft campaign import-labels", "labeled": "assft campaign finetune",
              "finetuned": "assft campaign finetune"}
    if last.status in follow:
        return follow[last.status]
    if last.round >= (campaign.meta.rounds or 0):
        return "done (more rounds: assft campaign extend --rounds N)"
    return "assft campaign next"
