"""Resume state of a pre-training run: weights, heads, optimizer, scheduler, step and every RNG, written atomically."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from assft.errors import CheckpointError, ConfigError
from assft.utils.atomic import atomic_torch_save

STATE_FORMAT = "assft-pretrain-state"
_IGNORED_ON_RESUME = {"save_every", "device", "num_threads", "fingerprint_cases"}


def resume_path(checkpoint: str | Path) -> Path:
    """Where the resume state of the run writing `checkpoint` lives: `NAME.resume.pt` beside it."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + ".resume.pt")


@dataclass
class ResumeState:
    """Everything needed to continue pre-training exactly where it stopped."""

    step: int
    model: dict[str, torch.Tensor]
    heads: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    torch_rng: torch.Tensor
    numpy_rng: dict[str, Any]
    config: dict[str, Any]  # {"model": ModelConfig json, "pretrain": PretrainConfig json, "preprocess": ...}
    history: list[dict[str, float]] = field(default_factory=list)
    cases: list[str] = field(default_factory=list)


def save_resume_state(path: str | Path, state: ResumeState) -> Path:
    """Atomically write the state (a crash mid-write leaves the previous state intact)."""
    return atomic_torch_save(path, {"format": STATE_FORMAT, **state.__dict__})


def load_resume_state(path: str | Path) -> ResumeState:
    """Read a resume state; a foreign or corrupt file is a CheckpointError naming the file."""
    path = Path(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read the pre-training resume state ({type(exc).__name__}: {str(exc)[:200]}).",
                              path=path, fix="delete it to start pre-training from scratch") from exc
    if not isinstance(raw, dict) or raw.get("format") != STATE_FORMAT:
        raise CheckpointError("not an assft pre-training resume state.", path=path,
                              fix="delete it to start pre-training from scratch")
    raw.pop("format")
    try:
        return ResumeState(**raw)
    except TypeError as exc:
        raise CheckpointError(f"resume state has missing or unknown fields ({exc}).", path=path,
                              fix="delete it to start pre-training from scratch") from exc


def check_resumable(state: ResumeState, config: dict[str, Any], cases: list[str], path: str | Path) -> None:
    """The saved run and the requested one must agree on model, recipe, preprocessing and cases (else ConfigError)."""
    diffs = []
    for section in ("model", "preprocess", "pretrain"):
        old, new = state.config.get(section, {}), config.get(section, {})
        for key in sorted(set(old) | set(new)):
            if section == "pretrain" and key in _IGNORED_ON_RESUME:
                continue
            if old.get(key) != new.get(key):
                diffs.append(f"{section}.{key}: saved {old.get(key)!r}, now {new.get(key)!r}")
    if state.cases != cases:
        diffs.append(f"source cases: saved {len(state.cases)}, now {len(cases)} (or a different set)")
    if diffs:
        raise ConfigError("cannot resume: the run differs from the saved one (" + "; ".join(diffs[:6]) + ").",
                          path=path, fix="rerun with the saved settings, or delete the resume state to start over")
