"""One checkpoint format (.pt): weights, model config, label map, kind, preprocessing, metadata, fingerprint."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from assft.config import InferenceConfig, ModelConfig, PreprocessConfig
from assft.errors import CheckpointError
from assft.models.zoo import build_model, head_keys
from assft.utils.atomic import atomic_torch_save

FORMAT_VERSION = 1
Kind = Literal["ssl-only", "supervised"]
_PREFIXES = ("module.", "_orig_mod.")


@dataclass
class Checkpoint:
    """What an assft .pt file holds."""

    state_dict: dict[str, torch.Tensor]
    model_config: ModelConfig
    labels: dict[int, str]
    kind: Kind = "supervised"
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    metadata: dict[str, Any] = field(default_factory=dict)
    fingerprint: dict[str, dict[str, list[float]]] | None = None  # norm layer -> {"mean": [...], "var": [...]}

    @property
    def training_patch(self) -> tuple[int, int, int]:
        """The patch the weights were trained on (D, H, W): every sliding window defaults to it.

        Checkpoints without a training record fall back to the window recorded at import (a MONAI bundle's
        inferer, `--roi`), else to InferenceConfig's default window.
        """
        patch = (self.metadata.get("train_config") or {}).get("patch_size")
        patch = patch or (self.metadata.get("inference") or {}).get("roi_size")
        return tuple(int(p) for p in patch) if patch else InferenceConfig().roi_size  # type: ignore[return-value]

    def inference_config(self, roi_size: tuple[int, int, int] | None = None) -> InferenceConfig:
        """The sliding window this network is run with: `roi_size` or the training patch, and the overlap and
        blending recorded at import (an imported bundle's inferer; MONAI's logit averaging), else the defaults."""
        recorded = {k: v for k, v in (self.metadata.get("inference") or {}).items() if k in ("overlap", "mode", "blend")}
        return InferenceConfig(roi_size=roi_size or self.training_patch, **recorded)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of tensors and builtins (loadable with weights_only=True)."""
        return {
            "format": "assft-checkpoint",
            "format_version": FORMAT_VERSION,
            "state_dict": self.state_dict,
            "model_config": self.model_config.model_dump(mode="json"),
            "labels": {str(k): v for k, v in self.labels.items()},
            "kind": self.kind,
            "preprocess": self.preprocess.model_dump(mode="json"),
            "metadata": self.metadata,
            "fingerprint": self.fingerprint,
        }


@dataclass
class KeyReport:
    """How a state dict matched a model: loaded, missing, unexpected and shape-mismatched keys."""

    loaded: list[str]
    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # key, checkpoint shape, model shape

    def summary(self) -> str:
        """One line: counts and the first few offending keys."""
        parts = [f"loaded {len(self.loaded)}", f"missing {len(self.missing)}", f"unexpected {len(self.unexpected)}",
                 f"shape-mismatched {len(self.mismatched)}"]
        details = []
        if self.missing:
            details.append("missing e.g. " + ", ".join(self.missing[:3]))
        if self.unexpected:
            details.append("unexpected e.g. " + ", ".join(self.unexpected[:3]))
        if self.mismatched:
            k, a, b = self.mismatched[0]
            details.append(f"mismatched e.g. {k} {a} vs model {b}")
        return ", ".join(parts) + (f" ({'; '.join(details)})" if details else "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"loaded": len(self.loaded), "missing": self.missing, "unexpected": self.unexpected,
                "mismatched": [[k, list(a), list(b)] for k, a, b in self.mismatched]}


def strip_prefixes(state_dict: dict[str, torch.Tensor], prefixes: tuple[str, ...] = _PREFIXES) -> dict[str, torch.Tensor]:
    """Remove DataParallel/compile prefixes ('module.', '_orig_mod.') from keys."""
    out = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for p in prefixes:
                if key.startswith(p):
                    key, changed = key[len(p):], True
        out[key] = value
    return out


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> Path:
    """Atomically write `checkpoint` to `path`."""
    return atomic_torch_save(path, checkpoint.to_dict())


def make_checkpoint(model: nn.Module, model_config: ModelConfig, labels: dict[int, str], *, kind: Kind = "supervised",
                    preprocess: PreprocessConfig | None = None, metadata: dict[str, Any] | None = None,
                    fingerprint: dict | None = None) -> Checkpoint:
    """Snapshot a live model into a Checkpoint (weights copied to CPU)."""
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    return Checkpoint(state, model_config, dict(labels), kind, preprocess or PreprocessConfig(), dict(metadata or {}),
                      fingerprint)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read an assft checkpoint with torch.load(weights_only=True); clear errors for missing/corrupt/foreign files."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError("checkpoint not found.", path=path, fix="check the path (assft never downloads weights)")
    if path.is_dir():
        if (path / "plans.json").is_file():  # an nnU-Net v2 results folder
            raise CheckpointError("this is an nnU-Net results folder, not an assft checkpoint.", path=path,
                                  fix=f"convert it once: assft import --format nnunetv2 --weights {path} --out CKPT")
        raise CheckpointError("expected a checkpoint file, got a folder.", path=path, fix="pass the .pt file itself")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if is_blocked_pickle(exc):
            raise CheckpointError(f"the file contains pickled Python code ({blocked_global(exc)}); it was not loaded, "
                                  "since loading it could run that code.", path=path,
                                  fix="assft checkpoints hold only tensors: pass one written by assft (convert "
                                      "public weights from a source you trust with `assft import --trust-pickle`)"
                                  ) from exc
        raise CheckpointError(f"cannot read checkpoint ({type(exc).__name__}: {str(exc)[:200]}).", path=path,
                              fix="pass a .pt written by assft, or convert public weights with `assft import`") from exc
    if not isinstance(raw, dict) or raw.get("format") != "assft-checkpoint":
        raise CheckpointError("not an assft checkpoint (no 'format': 'assft-checkpoint').", path=path,
                              fix="convert public weights with `assft import --format ... --weights FILE --out CKPT`")
    for key, kind in (("state_dict", dict), ("model_config", dict), ("labels", dict)):
        if not isinstance(raw.get(key), kind):
            raise CheckpointError(f"checkpoint field {key!r} is {type(raw.get(key)).__name__}, expected a mapping.",
                                  path=path, fix="re-save it with assft (it was not written by this version)")
    if not all(isinstance(v, torch.Tensor) for v in raw["state_dict"].values()):
        raise CheckpointError("checkpoint 'state_dict' holds values that are not tensors.", path=path,
                              fix="re-save it with assft")
    try:
        labels = {int(k): str(v) for k, v in raw["labels"].items()}
        return Checkpoint(
            state_dict=strip_prefixes(raw["state_dict"]),
            model_config=ModelConfig.model_validate(raw["model_config"]),
            labels=labels,
            kind=raw.get("kind", "supervised"),
            preprocess=PreprocessConfig.model_validate(raw.get("preprocess") or {}),
            metadata=raw.get("metadata") or {},
            fingerprint=raw.get("fingerprint"),
        )
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint is missing or has an invalid field ({type(exc).__name__}: "
                              f"{str(exc)[:200]}).", path=path, fix="re-save it with assft") from exc


def is_blocked_pickle(exc: BaseException) -> bool:
    """True when torch.load(weights_only=True) refused a pickle because it references Python code."""
    # torch 2.x: "Unsupported global: GLOBAL x.y" (older) or "unsupported GLOBAL x.y whose module x is blocked";
    # other "Weights only load failed" errors (e.g. "Unsupported operand") are plain unreadable files.
    return "unsupported global" in str(exc).lower()


def blocked_global(exc: BaseException) -> str:
    """The code reference torch blocked, e.g. 'posix.system', as a short phrase for messages."""
    import re

    found = re.search(r"global\s+([\w.]+)", str(exc), flags=re.IGNORECASE)
    return f"torch blocked a reference to {found.group(1)}" if found else "torch blocked a non-tensor object"


def compare_state_dicts(model_state: dict[str, torch.Tensor], ckpt_state: dict[str, torch.Tensor]) -> KeyReport:
    """Classify checkpoint keys against a model's state dict."""
    # monai.networks.utils.copy_model_state silently skips shape mismatches; we need them reported, so we compare here.
    loaded, mismatched = [], []
    for key, value in ckpt_state.items():
        if key in model_state:
            if tuple(value.shape) == tuple(model_state[key].shape):
                loaded.append(key)
            else:
                mismatched.append((key, tuple(value.shape), tuple(model_state[key].shape)))
    missing = [k for k in model_state if k not in ckpt_state]
    unexpected = [k for k in ckpt_state if k not in model_state]
    return KeyReport(loaded, missing, unexpected, mismatched)


def load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], *, head: frozenset[str] = frozenset(),
                 allow_partial: bool = False, source: str | Path | None = None, strict_head: bool = False
                 ) -> KeyReport:
    """Copy matching weights into `model`; a problem outside `head` keys is a CheckpointError unless allow_partial.

    With `strict_head` (the head is meant to be reused, not replaced), a missing or mismatched head key is an error
    too: skipping it would leave a random head that predicts noise.
    """
    model_state = model.state_dict()
    report = compare_state_dicts(model_state, strip_prefixes(state_dict))
    body_problems = ([k for k in report.missing if k not in head] + [k for k in report.unexpected if k not in head]
                     + [k for k, _, _ in report.mismatched if k not in head])
    if body_problems and not allow_partial:
        raise CheckpointError(f"weights do not match the model outside the segmentation head: {report.summary()}.",
                              path=source, fix="check the model name/params, or pass --allow-partial to load what fits")
    head_mismatch = [(k, a, b) for k, a, b in report.mismatched if k in head]
    head_missing = [k for k in report.missing if k in head]
    if strict_head and (head_mismatch or head_missing) and not allow_partial:
        detail = (f"{head_mismatch[0][0]} has shape {head_mismatch[0][1]}, the model needs {head_mismatch[0][2]}"
                  if head_mismatch else f"{head_missing[0]} is missing")
        raise CheckpointError(f"the segmentation head in the weights does not fit the stored model config "
                              f"({detail}).", path=source,
                              fix="re-save the checkpoint with assft, or train a new head on labeled data "
                                  "(`assft train --init CKPT`, `assft finetune`)")
    model.load_state_dict({k: state_dict_value for k, state_dict_value in strip_prefixes(state_dict).items()
                           if k in report.loaded}, strict=False)
    return report


def build_from_checkpoint(path: str | Path, *, out_channels: int | None = None, allow_partial: bool = False
                          ) -> tuple[nn.Module, Checkpoint, KeyReport]:
    """Build the checkpoint's network (optionally with a new head of `out_channels` classes) and load its weights."""
    ckpt = load_checkpoint(path)
    config = ckpt.model_config
    new_head = out_channels is not None and out_channels != config.out_channels
    if new_head:
        config = config.model_copy(update={"out_channels": out_channels})
    model = build_model(config)
    report = load_weights(model, ckpt.state_dict, head=head_keys(config), allow_partial=allow_partial, source=path,
                          strict_head=not new_head)
    ckpt.model_config = config
    return model, ckpt, report


THETA0_KEY = "theta0"  # metadata: the absolute path of the pre-trained θ0 a derived checkpoint (adapted, fine-tuned) came from


def recorded_theta0(checkpoint: Checkpoint) -> str | None:
    """The θ0 path a checkpoint's provenance names (None for a checkpoint that is its own θ0, e.g. a trained one).

    Read in order: the explicit "theta0" entry that `adapt` and fine-tuning write; an adapted checkpoint's
    "adaptation.from"; a fine-tuned checkpoint's "init_checkpoint".
    """
    meta = checkpoint.metadata or {}
    if isinstance(meta.get(THETA0_KEY), str):
        return meta[THETA0_KEY]
    adaptation = meta.get("adaptation")
    if isinstance(adaptation, dict) and isinstance(adaptation.get("from"), str):
        return adaptation["from"]
    if meta.get("which") == "finetuned" and isinstance(meta.get("init_checkpoint"), str):
        return meta["init_checkpoint"]
    return None


def theta0_for_record(source: str | Path, checkpoint: Checkpoint) -> str:
    """The θ0 to record in a checkpoint derived from `source`: the source's own θ0 if it names one, else the source."""
    import os

    return recorded_theta0(checkpoint) or os.path.abspath(source)


def resolve_recorded_theta0(checkpoint: Checkpoint, path: str | Path) -> Path | None:
    """The existing θ0 file that checkpoint `path`'s provenance names (a relative entry is tried from the working
    folder, then from the checkpoint's folder); CheckpointError naming the file when it is gone."""
    recorded = recorded_theta0(checkpoint)
    if recorded is None:
        return None
    candidates = [Path(recorded)]
    if not Path(recorded).is_absolute():
        candidates.append(Path(path).parent / recorded)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise CheckpointError(f"the checkpoint's provenance names θ0 = {recorded}, which does not exist (KD is measured "
                          "against θ0).", path=path,
                          fix="pass --pretrained with the pre-trained checkpoint it was adapted or fine-tuned from")
