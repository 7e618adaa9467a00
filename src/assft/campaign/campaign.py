"""`Campaign`: a campaign folder's config and ledger, read and changed through typed records.

Every step opens one (`Campaign.open`, under the campaign's lock when it writes), checks the round is at the step
before its own (`expect`), and records its result with `update_round` / `update_meta`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from assft.campaign.budget import Budget
from assft.campaign.config import (CONFIG_NAME, CampaignConfig, absolute_paths, input_paths, load_campaign_config,
                                   save_campaign_config)
from assft.campaign.layout import ADAPTED_CHECKPOINT
from assft.campaign.ledger import Ledger, LedgerMeta, RoundRecord, campaign_lock
from assft.data.cases import DatasetSpec
from assft.data.layout import load_dataset
from assft.errors import CampaignError
from assft.utils.paths import check_generated_folder, check_output_guard, mark_generated_folder


def now() -> str:
    """The current UTC time as the ledger records it (ISO 8601, seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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
    """Total budget resolved against the pool, split over the rounds (then each extension's over its own)."""
    return config.budget_plan(pool_size)


def adapts(config: CampaignConfig) -> bool:
    """Whether round 0 adapts the start model to the pool."""
    return config.adapt is not None and config.adapt.method != "none"


def start_model(campaign_dir: Path, config: CampaignConfig) -> str:
    """The model round 1 starts from: the round-0 adapted checkpoint when adaptation is configured, else `model`."""
    return str(Path(campaign_dir) / ADAPTED_CHECKPOINT) if adapts(config) else config.model


@dataclass
class Campaign:
    """A campaign folder: its validated config and its ledger."""

    directory: Path
    config: CampaignConfig
    ledger: Ledger

    @classmethod
    def open(cls, campaign_dir: str | Path) -> Campaign:
        """Read campaign.yaml and ledger.json (ConfigError when the folder is not a campaign)."""
        directory = Path(campaign_dir)
        return cls(directory, load_campaign_config(directory), Ledger.load(directory))

    @property
    def meta(self) -> LedgerMeta:
        """The ledger's meta: the plan (pool, budget, rounds) and the budget-0 points."""
        return self.ledger.meta

    def records(self) -> list[RoundRecord]:
        """Every round record in order."""
        return self.ledger.records()

    def last(self) -> RoundRecord | None:
        """The newest round record, if any."""
        return self.ledger.last()

    def labeled_ids(self) -> list[str]:
        """Every case id labeled so far, in query order."""
        return self.ledger.labeled_ids()

    def update_round(self, index: int, status: str, **fields: Any) -> RoundRecord:
        """Record round `index` at `status` with `fields` (saved atomically)."""
        return self.ledger.update_round(index, status, **fields)

    def update_meta(self, **fields: Any) -> LedgerMeta:
        """Merge `fields` into the ledger's meta (saved atomically)."""
        return self.ledger.update_meta(**fields)

    def expect(self, status: str, fix: str) -> RoundRecord:
        """The newest round, which must be at `status`; CampaignError naming where it is otherwise."""
        last = self.last()
        if last is None or last.status != status:
            where = "no round has started" if last is None else f"round {last.round} is at step '{last.status}'"
            raise CampaignError(f"this step needs a round at step '{status}', but {where}.", path=self.directory,
                                fix=fix)
        return last

    def pool(self) -> DatasetSpec:
        """The unlabeled pool."""
        return load_pool(self.config)

    def start_model(self) -> str:
        """The model round 1 starts from (the round-0 adapted checkpoint, or the configured model)."""
        return start_model(self.directory, self.config)

    def current_model(self, before_round: int) -> str:
        """The newest fine-tuned checkpoint before `before_round` (the start model in round 1)."""
        for record in reversed(self.records()):
            if record.round < before_round and record.checkpoint:
                return str(self.directory / record.checkpoint)
        return self.start_model()


def init_campaign(campaign_dir: str | Path, config: CampaignConfig) -> Path:
    """Create a campaign directory (validated config + empty ledger); re-running with the same config is a no-op."""
    campaign_dir = Path(campaign_dir)
    config = absolute_paths(config)
    check_output_guard(campaign_dir, input_paths(config))
    check_generated_folder(campaign_dir, "campaign", signatures=(CONFIG_NAME, ".lock"))
    pool = load_pool(config)  # the cheap checks first: no torch import until the folders are known to be fine
    load_test(config)  # a missing test set fails now, not after the first fine-tuning
    # Lazy: torch and MONAI load only once the folders are known to be fine, so a wrong folder fails in a moment.
    from assft.models.checkpoint import load_checkpoint
    from assft.query.strategies import make_strategy
    from assft.utils.provenance import versions

    make_strategy(config.strategy, config.query_for_round(1))  # an unknown strategy fails now, not in round 1
    load_checkpoint(config.model)
    for reference in (config.pretrained, config.upper_model):
        if reference:
            load_checkpoint(reference)
    budget = campaign_budget(config, len(pool.cases))
    if (campaign_dir / CONFIG_NAME).exists():
        if load_campaign_config(campaign_dir) != config:
            raise CampaignError("a different campaign already lives here.", path=campaign_dir,
                                fix="choose a new --out folder, or continue it with `assft campaign next`")
        return campaign_dir
    campaign_dir.mkdir(parents=True, exist_ok=True)
    with campaign_lock(campaign_dir, creating=True):
        mark_generated_folder(campaign_dir, "campaign")
        save_campaign_config(campaign_dir, config)
        Ledger.load(campaign_dir).update_meta(
            pool_size=len(pool.cases), budget_total=budget.total, rounds=budget.rounds,
            per_round=[budget.for_round(r) for r in range(1, budget.rounds + 1)], strategy=config.strategy,
            arm=config.arm or config.strategy, seed=config.seed, started_at=now(), versions=versions())
    return campaign_dir
