"""The app's settings (`assft_app.yaml` in the app folder): which model, which query and which fine-tuning recipe.

No MONAI Label import here: the CLI writes and checks this file without the extra installed.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field, field_validator

from assft.config import InferenceConfig, _Config, parse_config, read_yaml
from assft.finetune.config import FinetuneConfig
from assft.query.config import QueryConfig
from assft.utils.atomic import atomic_write_text

CONFIG_NAME = "assft_app.yaml"
MODEL_DIR = "model"
START_MODEL = f"{MODEL_DIR}/start.pt"  # θ0: the pre-trained model the app was generated with (never overwritten)
CAMPAIGN_DIR = "campaign"  # the app's campaign (ledger, rounds, checkpoints), read by `assft report`
# The strategies the app serves. `assft` is the default; `fg-random` is the field's strong baseline and `clasp-pe`
# the first method reported to beat it (docs/method.md): annotators and researchers can compare them side by side.
APP_STRATEGIES = ("assft", "fg-random", "clasp-pe")


class AppConfig(_Config):
    """One MONAI Label app: θ0, the default strategy and the recipes a train request runs (SSFT by default)."""

    model: str = START_MODEL  # relative to the app folder
    strategy: str = "assft"  # the default "next sample" strategy (all of APP_STRATEGIES are served)
    query: QueryConfig = Field(default_factory=QueryConfig)  # alpha, KD/ASD options; strategy and budget are unused
    finetune: FinetuneConfig = Field(default_factory=lambda: FinetuneConfig(ssft=True))
    inference: InferenceConfig | None = None  # default: the checkpoint's training patch
    # A labeled target set to monitor: after each train request the new model is evaluated on it (Dice, HD95, NSD
    # in the ledger), which is what `assft report` plots. None: no evaluation (the annotators' labels are all there is).
    test: str | None = None
    rounds: int = 10  # the plan written into the ledger; a train request past it still runs (annotation goes on)
    seed: int = 0
    serve_reset_s: int = 24 * 60 * 60  # an image served this long ago without a label may be served again

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, v: str) -> str:
        if v not in APP_STRATEGIES:
            raise ValueError(f"must be one of {', '.join(APP_STRATEGIES)}")
        return v

    @field_validator("rounds", "serve_reset_s")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be >= 1")
        return v


def save_app_config(app_dir: str | Path, config: AppConfig) -> Path:
    """Write assft_app.yaml atomically (every field, defaults included, so a later default changes nothing)."""
    data = config.model_dump(mode="json", exclude={"query": {"strategy", "budget"}})  # the app sets them per call
    return atomic_write_text(Path(app_dir) / CONFIG_NAME, yaml.safe_dump(data, sort_keys=False))


def load_app_config(app_dir: str | Path) -> AppConfig:
    """Read and validate the app folder's assft_app.yaml (ConfigError naming the file and field)."""
    path = Path(app_dir) / CONFIG_NAME
    raw = read_yaml(path, missing_fix="generate the app with `assft monailabel app --out DIR --model CKPT`")
    return parse_config(raw, AppConfig, source=path)  # type: ignore[return-value]
