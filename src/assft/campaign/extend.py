"""`assft campaign extend`: more rounds (and volumes) for a campaign whose plan is spent, resumable.

The plan lives in two files, campaign.yaml (what the steps read) and the ledger's meta (what status and reports
read), and no rename makes two files change at once. The ledger is written first, with the extension recorded in
`meta.extensions`; campaign.yaml second. A run killed between the two leaves a ledger that knows one extension more
than campaign.yaml: the next `extend` finishes that one (and adds nothing), and until then `campaign next` keeps to
the old plan.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from assft.campaign.config import BudgetExtension, CampaignConfig, load_campaign_config, save_campaign_config
from assft.campaign.ledger import Ledger, campaign_lock
from assft.errors import BudgetError

__all__ = ["extend_campaign"]


def extend_campaign(campaign_dir: str | Path, rounds: int, budget: int | str | None = None) -> dict[str, Any]:
    """Add `rounds` rounds spending `budget` volumes (N or "P%" of the pool; default: `rounds` times the last
    planned round's share) to the campaign's plan. Returns {"rounds", "budget_total", "per_round", "resumed"}.

    Raises:
        BudgetError: the extension does not fit the unlabeled pool or cannot be split over its rounds (nothing is
            written). CampaignError: not a campaign, or it is locked by another process.
    """
    from assft.campaign.engine import load_pool

    campaign_dir = Path(campaign_dir)
    with campaign_lock(campaign_dir):
        config = load_campaign_config(campaign_dir)
        ledger = Ledger.load(campaign_dir)
        meta = ledger.data["meta"]
        recorded = [BudgetExtension.model_validate(e["extension"]) for e in meta.get("extensions", [])]
        if len(recorded) > len(config.extensions):  # killed between the two writes: finish that extension only
            config = config.model_copy(update={"extensions": recorded})
            save_campaign_config(campaign_dir, config)
            return _summary(config, meta, resumed=True)
        pool_size = len(load_pool(config).cases)
        extension = BudgetExtension(rounds=rounds, budget=budget if budget is not None else
                                    rounds * (meta.get("per_round") or [1])[-1])
        extended = config.model_copy(update={"extensions": [*config.extensions, extension]})
        try:
            plan = extended.budget_plan(pool_size)
        except BudgetError as exc:
            left = pool_size - config.budget_plan(pool_size).total
            raise BudgetError(f"{exc.message.rstrip('.')} ({left} pool volumes are not in the plan yet).",
                              fix="ask for fewer volumes with --budget, or fewer --rounds") from None
        meta.update(rounds=plan.rounds, budget_total=plan.total,
                    per_round=[plan.for_round(r) for r in range(1, plan.rounds + 1)])
        meta.setdefault("extensions", []).append({"extension": extension.model_dump(mode="json"),
                                                  "at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        meta.pop("finished_at", None)  # it goes on
        ledger.save()
        save_campaign_config(campaign_dir, extended)
        return _summary(extended, meta, resumed=False)


def _summary(config: CampaignConfig, meta: dict[str, Any], resumed: bool) -> dict[str, Any]:
    return {"rounds": meta["rounds"], "budget_total": meta["budget_total"], "per_round": meta["per_round"],
            "extensions": len(config.extensions), "resumed": resumed}
