"""An experiment grid's configuration (`assft simulate --config exp.yaml`): domains x strategies/arms x seeds.

Read and validated before any work, and kept apart from the simulation loop so that a bad experiment file is
refused without loading torch or MONAI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from assft.adapt.config import AdaptConfig
from assft.campaign.config import CampaignConfig
from assft.config import InferenceConfig, _Config, parse_config, read_yaml
from assft.errors import ConfigError
from assft.utils.paths import check_plain_name

__all__ = ["BOUNDS_NAME", "ArmConfig", "SimulationConfig", "deep_merge", "load_simulation_config"]

BOUNDS_NAME = "bounds.json"  # OUT/{domain}/bounds.json: the budget-0 references and the upper bound


class ArmConfig(_Config):
    """A named variant of a strategy: its query and fine-tuning settings override the experiment's (deep merge)."""

    strategy: str
    query: dict = Field(default_factory=dict)
    finetune: dict = Field(default_factory=dict)


def deep_merge(base: dict, override: dict) -> dict:
    """`base` with `override` applied recursively (nested dicts merge; other values replace)."""
    out = dict(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class SimulationConfig(_Config):
    """An experiment grid (`assft simulate --config exp.yaml`)."""

    out: str
    model: str
    pretrained: str | None = None
    data: str  # labeled dataset: the pool and the test set are split subsets of it
    split: str | None = None  # split JSON (assft data split); default: every case is in the pool and the test set
    pool_subset: str = "pool"
    test_subset: str = "test"
    domains: list[str] = Field(default_factory=lambda: ["identity"])
    domain_seed: int = 0
    strategies: list[str] = Field(default_factory=lambda: ["assft", "random", "fg-random"])
    arms: dict[str, ArmConfig] = Field(default_factory=dict)  # named variants, run after `strategies`
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    budget: str = "20%"
    rounds: int = 3
    query: dict = Field(default_factory=dict)
    finetune: dict = Field(default_factory=dict)
    inference: InferenceConfig | None = None
    bounds: bool = True
    adapt: AdaptConfig | None = None  # round 0 of every campaign: adapt the source model to the domain's pool
    reference_adaptations: list[Literal["adabn", "tent"]] = Field(default_factory=list)  # budget-0 reference lines
    upper_seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])  # the upper bound is trained once per seed
    figures: bool = False  # query figures in every campaign round (off: a grid runs hundreds of rounds)

    @model_validator(mode="after")
    def _plain_names(self) -> SimulationConfig:
        # Domain, strategy and arm names become folder names under `out`: "../x" or "/x" would write elsewhere.
        for what, names in (("domain", self.domains), ("strategy", self.strategies), ("arm", list(self.arms))):
            for name in names:
                try:
                    check_plain_name(name, f"{what} name")
                except ConfigError as exc:
                    raise ValueError(exc.message.rstrip(".") + f" (fix: {exc.fix})") from None
        return self

    @model_validator(mode="after")
    def _arm_names(self) -> SimulationConfig:
        clash = sorted(set(self.arms) & set(self.strategies))
        if clash:
            raise ValueError(f"arm names {clash} are also strategies; campaigns would share a folder")
        return self

    @model_validator(mode="after")
    def _cells_are_valid_campaigns(self) -> SimulationConfig:
        # Every arm's merged query/fine-tuning settings are checked when the experiment is read, not hours later
        # when its first campaign starts.
        cells = {"": (self.query, self.finetune)}
        cells.update({f"arms.{name}.": (deep_merge(self.query, arm.query), deep_merge(self.finetune, arm.finetune))
                      for name, arm in self.arms.items()})
        for prefix, (query, finetune) in cells.items():
            try:
                CampaignConfig(model=self.model, pool=self.data, query=query, finetune=finetune)
            except ValidationError as exc:
                err = exc.errors()[0]
                raise ValueError(f"{prefix}{'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from None
        return self


def load_simulation_config(path: str | Path) -> SimulationConfig:
    """Read and validate an experiment YAML; relative paths are taken relative to the YAML file."""
    path = Path(path)
    raw = read_yaml(path)
    for key in ("out", "model", "pretrained", "data", "split"):
        if isinstance(raw.get(key), str) and not Path(raw[key]).is_absolute():
            raw[key] = str((path.parent / raw[key]).resolve())
    return parse_config(raw, SimulationConfig, source=path)  # type: ignore[return-value]
