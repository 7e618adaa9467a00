"""`assft campaign extend`: more rounds (and volumes) for a campaign whose plan is spent, resumable.

The plan lives in two files, campaign.yaml (what the steps read) and the ledger's meta (what status and reports
read), and no rename makes two files change at once. The ledger is written first, with the extension recorded in
`meta.extensions`; campaign.yaml second. A run killed between the two leaves a ledger that knows one extension more
than campaign.yaml: the next `extend` finishes that one (and adds nothing), and until then `campaign next` keeps to
the old plan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assft.campaign.campaign import Campaign, now
from assft.campaign.config import BudgetExtension, save_campaign_config
from assft.campaign.ledger import LedgerMeta, campaign_lock
from assft.errors import BudgetError

__all__ = ["extend_campaign"]


def extend_campaign(campaign_dir: str | Path, rounds: int, budget: int | str | None = None) -> dict[str, Any]:
    """Add `rounds` rounds spending `budget` volumes (N or "P%" of the pool; default: `rounds` times the last
    planned round's share) to the campaign's plan. Returns {"rounds", "budget_total", "per_round", "resumed"}.

    Raises:
        BudgetError: the extension does not fit the unlabeled pool or cannot be split over its rounds (nothing is
            written). CampaignError: not a campaign, or it is locked by another process.
    """
    campaign_dir = Path(campaign_dir)
    with campaign_lock(campaign_dir):
        campaign = Campaign.open(campaign_dir)
        config, meta = campaign.config, campaign.meta
        recorded = [BudgetExtension.model_validate(e["extension"]) for e in meta.extensions]
        if len(recorded) > len(config.extensions):  # killed between the two writes: finish that extension only
            config = config.model_copy(update={"extensions": recorded})
            save_campaign_config(campaign_dir, config)
            return _summary(meta, resumed=True)
        pool_size = len(campaign.pool().cases)
        extension = BudgetExtension(rounds=rounds, budget=budget if budget is not None else
                                    rounds * (meta.per_round or [1])[-1])
        extended = config.model_copy(update={"extensions": [*config.extensions, extension]})
        try:
            plan = extended.budget_plan(pool_size)
        except BudgetError as exc:
            left = pool_size - config.budget_plan(pool_size).total
            raise BudgetError(f"{exc.message.rstrip('.')} ({left} pool volumes are not in the plan yet).",
                              fix="ask for fewer volumes with --budget, or fewer --rounds") from None
        stamp = {"extension": extension.model_dump(mode="json"), "at": now()}
        meta = campaign.update_meta(rounds=plan.rounds, budget_total=plan.total,
                                    per_round=[plan.for_round(r) for r in range(1, plan.rounds + 1)],
                                    extensions=[*meta.extensions, stamp], finished_at=None)  # it goes on
        save_campaign_config(campaign_dir, extended)
        return _summary(meta, resumed=False)


def _summary(meta: LedgerMeta, resumed: bool) -> dict[str, Any]:
    return {"rounds": meta.rounds, "budget_total": meta.budget_total, "per_round": meta.per_round,
            "resumed": resumed}
