"""Campaign configuration (`campaign.yaml`), validated by pydantic; written into the campaign directory."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, field_validator

from assft.adapt.config import AdaptConfig
from assft.config import InferenceConfig, _Config, parse_config, read_yaml
from assft.errors import ConfigError
from assft.utils.atomic import atomic_write_text

CONFIG_NAME = "campaign.yaml"


class CampaignConfig(_Config):
    """One campaign: a model, a pool, a budget over rounds, a strategy, and how to fine-tune and evaluate."""

    model: str  # θ: the checkpoint the campaign starts from
    pretrained: str | None = None  # θ0 for KD (default: `model`)
    pool: str  # dataset folder of the unlabeled target pool
    pool_ids: list[str] | None = None  # restrict the pool to these case ids (a split subset)
    test: str | None = None  # labeled target test set (simulation / monitoring)
    test_ids: list[str] | None = None
    budget: str = "20%"  # total volumes: N or P% of the pool
    rounds: int = 3
    strategy: str = "assft"
    arm: str | None = None  # display name of a variant (e.g. "assft+ssft"); reports group by it (default: strategy)
    query: dict = Field(default_factory=dict)  # QueryConfig fields (validated by assft.query)
    finetune: dict = Field(default_factory=dict)  # FinetuneConfig fields (validated by assft.finetune)
    inference: InferenceConfig | None = None
    adapt: AdaptConfig | None = None  # round 0: test-time adaptation of `model` on the pool before any label
    oracle: Literal["folder", "ground_truth"] = "folder"
    seed: int = 0
    # Read and normalise each pool/test volume once per campaign: a memory-mapped copy in <campaign>/volumes
    # (assft.data.volume_cache). Costs disk about the size of the float32 pool; false reads the files every time.
    cache_volumes: bool = True

    @field_validator("rounds")
    @classmethod
    def _rounds(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be >= 1")
        return v


def save_campaign_config(campaign_dir: str | Path, config: CampaignConfig) -> Path:
    """Write campaign.yaml atomically."""
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    return atomic_write_text(Path(campaign_dir) / CONFIG_NAME, text)


def load_campaign_config(campaign_dir: str | Path) -> CampaignConfig:
    """Read and validate campaign.yaml of a campaign directory."""
    path = Path(campaign_dir) / CONFIG_NAME
    if not path.exists():
        raise ConfigError("not a campaign directory (no campaign.yaml).", path=campaign_dir,
                          fix="create one with `assft campaign init`")
    return parse_config(read_yaml(path), CampaignConfig, source=path)  # type: ignore[return-value]
