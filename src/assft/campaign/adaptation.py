"""Round 0: adapt the start model to the unlabeled pool once, before any label (recorded in the ledger's meta)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assft.adapt import adapt_checkpoint
from assft.campaign.campaign import Campaign, adapts
from assft.campaign.layout import ADAPTED_CHECKPOINT
from assft.campaign.ledger import campaign_lock
from assft.campaign.volumes import with_volume_cache


@with_volume_cache
def adapt_start(campaign_dir: str | Path) -> dict[str, Any] | None:
    """Adapt the configured model to the pool into round0/adapted.pt (once); the ledger's adaptation record."""
    campaign_dir = Path(campaign_dir)
    with campaign_lock(campaign_dir):
        campaign = Campaign.open(campaign_dir)
        if not adapts(campaign.config):
            return None
        done = campaign.meta.adaptation
        if done and (campaign_dir / ADAPTED_CHECKPOINT).exists():
            return done
        result = adapt_checkpoint(campaign.config.model, campaign.pool(), campaign.config.adapt,
                                  campaign_dir / ADAPTED_CHECKPOINT)
        record = {**result.to_dict(), "checkpoint": str(ADAPTED_CHECKPOINT)}
        campaign.update_meta(adaptation=record)
        return record
