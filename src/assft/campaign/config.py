"""Campaign configuration (`campaign.yaml`), validated by pydantic; written into the campaign directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, field_validator, model_validator

from assft.adapt.config import AdaptConfig
from assft.campaign.budget import Budget
from assft.config import InferenceConfig, _Config, parse_config, read_yaml
from assft.errors import BudgetError, ConfigError
from assft.finetune.config import FINETUNE_LR, FinetuneConfig
from assft.query.config import QueryConfig
from assft.utils.atomic import atomic_write_text

CONFIG_NAME = "campaign.yaml"

# The fine-tuning recipe of every published campaign (docs/benchmarks.md, "The fine-tuning recipe" and "Steps per
# round", chosen on the validation split): 40 optimizer steps a round at batch 2, AdamW lr 5e-4, BatchNorm statistics
# re-estimated on the pool after each stage. FinetuneConfig's own defaults (300 + 300 steps at batch 4) stay those of
# a one-off `assft finetune`.
CAMPAIGN_STEPS_PER_ROUND = 40
CAMPAIGN_BATCH_SIZE = 2


def recipe_finetune(given: dict | None = None) -> dict:
    """The campaign's `finetune` section: the fields in `given` over the validated recipe. The recipe's
    steps_per_round applies only when `given` states no steps of its own (train.steps or ssft_steps)."""
    given = dict(given or {})
    train = dict(given.get("train") or {})
    states_steps = any(k in given for k in ("steps_per_round", "ssft_steps")) or "steps" in train
    if not states_steps:
        given["steps_per_round"] = CAMPAIGN_STEPS_PER_ROUND
    train.setdefault("batch_size", CAMPAIGN_BATCH_SIZE)
    train.setdefault("lr", FINETUNE_LR)
    given.setdefault("bn_stats", "pool")
    return {**given, "train": train}


def with_finetune_steps(config: CampaignConfig, steps_per_round: int | None = None,
                        lr: float | None = None) -> CampaignConfig:
    """`config` with a new round budget and/or learning rate; steps_per_round replaces train.steps and ssft_steps
    (it states a round's steps once). ConfigError for a value FinetuneConfig refuses."""
    raw = config.finetune.model_dump(mode="json", exclude={"seed"})
    if steps_per_round is not None:
        raw["steps_per_round"] = steps_per_round
        raw["train"].pop("steps", None)
        raw.pop("ssft_steps", None)
    if lr is not None:
        raw["train"]["lr"] = lr
    finetune = parse_config(raw, FinetuneConfig)
    return config.model_copy(update={"finetune": finetune})


class BudgetExtension(_Config):
    """Rounds added to a campaign after its plan (`assft campaign extend`) and the volumes they spend."""

    rounds: int = Field(ge=1)
    budget: int | str  # N volumes or "P%" of the pool, spread over these rounds

    @field_validator("budget")
    @classmethod
    def _budget(cls, v: int | str) -> int | str:
        from assft.query.config import parse_budget

        parse_budget(v)
        return v


class CampaignConfig(_Config):
    """One campaign: a model, a pool, a budget over rounds, a strategy, and how to fine-tune and evaluate."""

    model: str  # θ: the checkpoint the campaign starts from
    pretrained: str | None = None  # θ0 for KD (default: `model`)
    pool: str  # dataset folder of the unlabeled target pool
    pool_ids: list[str] | None = None  # restrict the pool to these case ids (a split subset)
    test: str | None = None  # labeled target test set (simulation / monitoring)
    test_ids: list[str] | None = None
    # a checkpoint whose test Dice is the ceiling (e.g. trained on the fully labeled target): gives the gap closed
    upper_model: str | None = None
    budget: str = "20%"  # total volumes: N or P% of the pool
    rounds: int = 3
    extensions: list[BudgetExtension] = Field(default_factory=list)  # rounds added later, in order
    strategy: str = "assft"
    arm: str | None = None  # display name of a variant (e.g. "assft+ssft"); reports group by it (default: strategy)
    # Typed, so a bad field fails when the campaign is created, not in round 3. The query's strategy and budget are
    # the campaign's own fields above, and each round's fine-tuning seed is derived from `seed`.
    query: QueryConfig = Field(default_factory=QueryConfig)
    finetune: FinetuneConfig = Field(default_factory=lambda: FinetuneConfig.model_validate(recipe_finetune()))
    inference: InferenceConfig | None = None
    adapt: AdaptConfig | None = None  # round 0: test-time adaptation of `model` on the pool before any label
    oracle: Literal["folder", "ground_truth"] = "folder"
    seed: int = 0
    # Read and normalise each pool/test volume once per campaign: a memory-mapped copy in <campaign>/volumes
    # (assft.data.volume_cache). Costs disk about the size of the float32 pool; false reads the files every time.
    cache_volumes: bool = True
    # Pictures of every round's picks in rounds/rNNN/query/figures/ (assft.query.figures), cut from the query pass.
    # `assft campaign init` turns them on; off here so simulation grids (hundreds of rounds) and campaign folders
    # written before the option existed stay as they are.
    figures: bool = False

    @field_validator("rounds")
    @classmethod
    def _rounds(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be >= 1")
        return v

    @model_validator(mode="after")
    def _owned_by_the_campaign(self) -> CampaignConfig:
        for section, names in OWNED_BY_CAMPAIGN.items():
            given = sorted(set(names) & getattr(self, section).model_fields_set)
            if given:
                raise ValueError(f"{section}.{given[0]} is set by the campaign: use the top-level "
                                 f"`{names[given[0]]}` instead")
        return self

    def budget_plan(self, pool_size: int) -> Budget:
        """The whole annotation plan against a pool of `pool_size`: `budget` over `rounds`, then each extension's
        volumes over its rounds. BudgetError when a share does not fit the pool or its rounds."""
        from assft.query.config import resolve_budget

        segments = [(resolve_budget(self.budget, pool_size), self.rounds)]
        segments += [(resolve_budget(e.budget, pool_size), e.rounds) for e in self.extensions]
        plan = Budget.of_segments(segments)
        if plan.total > pool_size:
            raise BudgetError(f"the plan labels {plan.total} volumes but the pool has {pool_size}.",
                              fix="ask for fewer volumes (`--budget`)")
        return plan

    def query_for_round(self, budget: int) -> QueryConfig:
        """The round's QueryConfig: the campaign's strategy and the round's `budget` volumes."""
        return QueryConfig.model_validate({**self.query.model_dump(exclude=set(OWNED_BY_CAMPAIGN["query"])),
                                           "strategy": self.strategy, "budget": budget})

    def finetune_with_seed(self, seed: int) -> FinetuneConfig:
        """The fine-tuning config with its seed (each round derives its own from the campaign's `seed`)."""
        return self.finetune.model_copy(update={"seed": seed})


# Fields of the nested configs that the campaign sets itself: {section: {field: the top-level field to use}}.
OWNED_BY_CAMPAIGN = {"query": {"strategy": "strategy", "budget": "budget"}, "finetune": {"seed": "seed"}}


def save_campaign_config(campaign_dir: str | Path, config: CampaignConfig) -> Path:
    """Write campaign.yaml atomically."""
    # Every field, defaults included, so a campaign keeps its recipe when a later version changes a default.
    exclude = {section: set(names) for section, names in OWNED_BY_CAMPAIGN.items()}
    text = yaml.safe_dump(config.model_dump(mode="json", exclude=exclude), sort_keys=False)
    return atomic_write_text(Path(campaign_dir) / CONFIG_NAME, text)


INPUT_PATHS = ("model", "pretrained", "pool", "test", "upper_model")  # what a campaign reads and never writes


def absolute_paths(config: CampaignConfig) -> CampaignConfig:
    """`config` with its file paths made absolute: later steps may run from another directory."""
    return config.model_copy(update={k: os.path.abspath(v) for k in INPUT_PATHS
                                     if (v := getattr(config, k)) is not None})


def input_paths(config: CampaignConfig) -> dict[str, str | None]:
    """{field: path} of everything the campaign reads: its folder may not be, hold or lie inside any of them."""
    return {k: getattr(config, k) for k in INPUT_PATHS}


def load_campaign_config(campaign_dir: str | Path) -> CampaignConfig:
    """Read and validate campaign.yaml of a campaign directory."""
    path = Path(campaign_dir) / CONFIG_NAME
    if not path.exists():
        raise ConfigError("not a campaign directory (no campaign.yaml).", path=campaign_dir,
                          fix="check the path, or create a campaign with `assft campaign init`")
    raw = read_yaml(path)
    # campaign.yaml holds every field, so a query field it lacks did not exist when the campaign was created: keep
    # the behaviour it was created with rather than a later default (fields added since, with their old meaning).
    query = raw.get("query") if isinstance(raw.get("query"), dict) else None
    if query is not None:
        for name, before in LEGACY_QUERY_DEFAULTS.items():
            query.setdefault(name, before)
    return parse_config(raw, CampaignConfig, source=path)  # type: ignore[return-value]


# Query fields added after campaigns were first written, with the value that reproduces the behaviour before them.
LEGACY_QUERY_DEFAULTS: dict[str, object] = {"alpha_high_spread": None}
