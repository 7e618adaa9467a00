"""Validated configuration (pydantic): the one place defaults live; every run writes its resolved config."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from assft.errors import ConfigError

Triple = tuple[int, int, int]


class _Config(BaseModel):
    """The base of every assft config: unknown fields are errors (a typo never passes silently)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class NnunetPreprocess(_Config):
    """An nnU-Net v2 model's own description: its plans, dataset.json, configuration and provenance.

    Cases of a checkpoint with this description go through nnU-Net's preprocessing (assft.data.nnunet), never assft's.
    """

    plans: dict[str, Any]
    dataset_json: dict[str, Any]
    configuration: str
    fingerprint: dict[str, Any] | None = None  # dataset_fingerprint.json, written back by `assft export`
    trainer: str = "nnUNetTrainer"
    fold: str = "0"
    plans_sha256: str = ""
    mirror_axes: tuple[int, ...] | None = None  # inference_allowed_mirroring_axes of the nnU-Net checkpoint


class PreprocessConfig(_Config):
    """The grid the network expects (orientation, spacing) and per-volume intensity normalisation.

    Scheme "assft": a volume is reoriented, then resampled, then normalised (MONAI's order); results go back to its
    own grid. Scheme "nnunetv2": nnU-Net's own preprocessing and return to the original grid, from `nnunet`.
    """

    scheme: Literal["assft", "nnunetv2"] = "assft"
    nnunet: NnunetPreprocess | None = None
    normalization: Literal["zscore", "percentile", "range", "none"] = "zscore"
    nonzero: bool = True  # z-score statistics over nonzero voxels (MR background is 0)
    percentiles: tuple[float, float] = (0.5, 99.5)
    # "range": a_min, a_max -> b_min, b_max, clipped (MONAI's ScaleIntensityRange; a CT window)
    intensity_range: tuple[float, float, float, float] = (-1000.0, 1000.0, 0.0, 1.0)
    target_spacing: tuple[float, float, float] | None = None  # mm; None = each volume's own spacing
    orientation: str | None = None  # axis codes such as "RAS"; None = as stored
    divisible_by: int = 8  # the default UNet halves the size three times

    @field_validator("orientation")
    @classmethod
    def _axcodes(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.upper()
        axes = [{"L": 0, "R": 0, "P": 1, "A": 1, "I": 2, "S": 2}.get(c) for c in v]
        if len(v) != 3 or None in axes or len(set(axes)) != 3:
            raise ValueError("must be three axis codes, one of L/R, P/A, I/S each (e.g. RAS, LPS)")
        return v

    @field_validator("target_spacing")
    @classmethod
    def _spacing(cls, v: tuple[float, float, float] | None) -> tuple[float, float, float] | None:
        if v is not None and min(v) <= 0:
            raise ValueError("every spacing must be > 0 mm")
        return v

    @model_validator(mode="after")
    def _scheme_described(self) -> PreprocessConfig:
        if (self.scheme == "nnunetv2") != (self.nnunet is not None):
            raise ValueError("scheme 'nnunetv2' goes with an nnunet description (and only it)")
        return self


class ModelConfig(_Config):
    """A registered MONAI network and its constructor arguments."""

    name: str = "unet"
    in_channels: int = 1
    out_channels: int = 3
    params: dict[str, Any] = Field(default_factory=dict)  # overrides of the registry's defaults
    dropout: float = 0.1  # MC-dropout (BALD) needs dropout layers in the net

    @field_validator("params")
    @classmethod
    def _tuples(cls, v: dict[str, Any]) -> dict[str, Any]:
        # JSON turns tuples into lists; normalise so a config equals itself after a save/load round trip.
        def fix(x: Any) -> Any:
            return tuple(fix(i) for i in x) if isinstance(x, list | tuple) else x

        return {k: fix(val) for k, val in v.items()}


class InferenceConfig(_Config):
    """Sliding-window inference (MONAI)."""

    roi_size: Triple = (40, 56, 40)  # nnU-Net's hippocampus patch; one window covers a hippocampus volume
    sw_batch_size: int = 4
    overlap: float = 0.25
    mode: Literal["gaussian", "constant"] = "gaussian"
    # what overlapping windows average: assft's probabilities, or the logits (then one softmax), as MONAI's inferer
    # followed by a softmax does; imported MONAI networks keep MONAI's way so their predictions equal MONAI's
    blend: Literal["probabilities", "logits"] = "probabilities"
    device: str = "auto"
    channels_last: bool = True  # channels_last_3d: faster 3D CNN inference on CPU (docs/performance.md)
    # windows of up to this many volumes share a forward call of max(sw_batch_size, batch_volumes) windows
    # (inference.engine); 1 = each volume alone, sw_batch_size windows a call (MONAI's behaviour)
    batch_volumes: int = 4
    # Forward precision: "bf16" autocast (CPU or GPU), "fp16" AMP (GPU only). fp32 by default: bf16 scored the
    # hippocampus pool 17 % faster on the 2-core CPU but changed one of 15 ids `assft` selects (docs/performance.md).
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"

    @field_validator("roi_size")
    @classmethod
    def _roi(cls, v: Triple) -> Triple:
        if min(v) < 1:
            raise ValueError("every size must be >= 1")
        return v

    @field_validator("sw_batch_size", "batch_volumes")
    @classmethod
    def _sw_batch(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be >= 1")
        return v

    @field_validator("overlap")
    @classmethod
    def _overlap(cls, v: float) -> float:
        if not 0.0 <= v < 1.0:
            raise ValueError("must be in [0, 1)")
        return v


class TrainConfig(_Config):
    """Supervised training loop."""

    patch_size: Triple = (40, 56, 40)
    batch_size: int = 4
    steps: int = 300
    lr: float = 2e-3
    weight_decay: float = 1e-5
    optimizer: Literal["adamw", "sgd"] = "adamw"  # sgd: Nesterov momentum, updates proportional to the gradient
    momentum: float = 0.9  # SGD only
    warmup_steps: int = 0  # linear learning-rate warm-up, then cosine decay to 0 over the remaining steps
    bn_mode: Literal["train", "frozen"] = "train"  # frozen: BatchNorm keeps its running statistics (eval mode)
    l2sp: float = 0.0  # weight of the L2-SP penalty (l2sp / 2) * ||w - w_start||^2 toward the starting weights
    pos_fraction: float = 0.67  # fraction of patches centred on foreground (nnU-Net uses 1/3 forced fg; we oversample)
    augment: bool = True
    val_every: int = 100
    seed: int = 0
    device: str = "auto"
    num_threads: int | None = None

    @field_validator("pos_fraction")
    @classmethod
    def _fraction(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError("pos_fraction must be in [0, 1]")
        return v

    @field_validator("warmup_steps")
    @classmethod
    def _warmup(cls, v: int) -> int:
        if v < 0:
            raise ValueError("must be >= 0")
        return v

    @field_validator("momentum")
    @classmethod
    def _momentum(cls, v: float) -> float:
        if not 0.0 <= v < 1.0:
            raise ValueError("must be in [0, 1)")
        return v

    @field_validator("l2sp")
    @classmethod
    def _non_negative(cls, v: float) -> float:
        if v < 0:
            raise ValueError("must be >= 0")
        return v

    # Zero steps "trained" nothing and reported success; a zero batch died inside torch.stack.
    @field_validator("steps", "batch_size", "val_every")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be >= 1")
        return v

    @field_validator("lr")
    @classmethod
    def _lr(cls, v: float) -> float:
        if not 0.0 < v < float("inf"):
            raise ValueError("must be a positive number")
        return v

    @field_validator("patch_size")
    @classmethod
    def _patch(cls, v: Triple) -> Triple:
        if min(v) < 1:
            raise ValueError("every size must be >= 1")
        return v


def read_yaml(path: str | Path, *, missing_fix: str = "check the path") -> dict[str, Any]:
    """Read a YAML (or JSON) mapping; a missing file, bad syntax or a non-mapping is a ConfigError naming the file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError("config file not found.", path=path, fix=missing_fix)
    if path.is_dir():
        raise ConfigError("expected a config file, got a folder.", path=path, fix="pass the YAML file itself")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file ({type(exc).__name__}).", path=path,
                          fix="check its permissions and that it is UTF-8 text") from exc
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"invalid YAML{where} ({problem}).", path=path, fix="fix the syntax there") from exc
    if not isinstance(raw, dict):
        raise ConfigError("expected a mapping of option: value.", path=path, fix="see the documented config fields")
    return raw


def load_config(path: str | Path, model: type[BaseModel]) -> BaseModel:
    """Load YAML/JSON into `model`; errors name the file, the field and the fix."""
    return parse_config(read_yaml(path), model, source=path)


def parse_config(raw: dict[str, Any], model: type[BaseModel], source: str | Path | None = None) -> BaseModel:
    """Validate a dict into `model`, turning pydantic's errors into one ConfigError line per problem."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid {model.__name__}: {problems}.", path=source,
                          fix="correct the listed fields (see docs/method.md for defaults)") from exc


def config_hash(config: BaseModel | dict[str, Any]) -> str:
    """Short stable hash of a config (sorted JSON), stored with every result."""
    data = config.model_dump(mode="json") if isinstance(config, BaseModel) else config
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
