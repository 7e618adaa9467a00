"""`assft pretrain` as a library call: pre-train on unlabeled volumes, write an ssl-only checkpoint and its fingerprint."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from assft.config import InferenceConfig, ModelConfig, PreprocessConfig
from assft.data.cases import DatasetSpec
from assft.errors import CheckpointError
from assft.models.checkpoint import make_checkpoint, save_checkpoint
from assft.models.zoo import build_model, size_divisor
from assft.pretrain.config import PretrainConfig
from assft.pretrain.fingerprint import FINGERPRINT_FILE, compute_fingerprint, save_fingerprint
from assft.pretrain.state import check_resumable, load_resume_state, resume_path
from assft.pretrain.trainer import fit_pretext
from assft.utils.seeding import derive_seed, isolated_rng
from assft.utils.threads import threads_for_call

SSL_LABELS: dict[int, str] = {0: "background"}  # an ssl-only checkpoint segments nothing yet


@dataclass
class PretrainOutput:
    """Paths and numbers from `pretrain_ssl`."""

    checkpoint: Path
    fingerprint: Path
    history: list[dict[str, float]]
    resumed_from_step: int
    seconds: float

    def final_losses(self, last: int = 10) -> dict[str, float]:
        """Mean of each logged loss over the last `last` steps."""
        return summarize_history(self.history, last)


def summarize_history(history: list[dict[str, float]], last: int = 10) -> dict[str, float]:
    """Mean of every numeric field except 'step' over the last `last` records."""
    tail = history[-last:]
    keys = [k for k in (tail[0] if tail else {}) if k != "step"]
    return {k: float(np.mean([r[k] for r in tail if k in r])) for k in keys}


def default_roi(model_config: ModelConfig, roi: tuple[int, int, int] | None = None) -> tuple[int, int, int]:
    """`roi`, or the default sliding window rounded up to the network's size divisor."""
    if roi is not None:
        return roi
    div = size_divisor(model_config)
    return tuple(-(-s // div) * div for s in InferenceConfig().roi_size)  # type: ignore[return-value]


def ssl_model_config(model_config: ModelConfig | None) -> ModelConfig:
    """The network to pre-train: the same net with out_channels = in_channels (the reconstruction head)."""
    config = model_config or ModelConfig()
    return config.model_copy(update={"out_channels": config.in_channels})


@isolated_rng
def pretrain_ssl(
    data: DatasetSpec,
    out: str | Path,
    *,
    model_config: ModelConfig | None = None,
    config: PretrainConfig | None = None,
    preprocess: PreprocessConfig | None = None,
    inference: InferenceConfig | None = None,
    resume: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
) -> PretrainOutput:
    """Self-supervised pre-training on the images of `data` (labels unused) -> ssl-only checkpoint + fingerprint.json.

    Args:
        data: the source volumes.
        out: checkpoint path to write; the resume state is `NAME.resume.pt` and the fingerprint `fingerprint.json`,
            both beside it.
        model_config: the registered network (its out_channels is replaced by in_channels: the reconstruction head).
        config: pretext recipe (PretrainConfig defaults when None).
        preprocess: intensity normalisation (stored in the checkpoint; fine-tuning reuses it).
        inference: sliding window used for the fingerprint (default roi rounded up to the network's divisor).
        resume: continue from the resume state when it exists (otherwise start fresh).
        on_step: optional callback on_step(step, record), called after each step.
    Returns:
        PretrainOutput with the checkpoint and fingerprint paths and the loss history.
    Raises:
        CheckpointError: a resume state exists and `resume` is False (or it is unreadable).
        ConfigError: sizes not divisible by the network's divisor, or resuming a different run.
    """
    from assft.data.preprocess import load_case
    from assft.models.zoo import check_sizes
    from assft.utils.progress import progress

    start = time.perf_counter()
    out = Path(out)
    config = config or PretrainConfig()
    preprocess = preprocess or PreprocessConfig()
    model_config = ssl_model_config(model_config)
    inference = inference or InferenceConfig(roi_size=default_roi(model_config), device=config.device,
                                             channels_last=False)
    check_sizes(model_config, (config.patch_size,) * 3, inference.roi_size)  # type: ignore[arg-type]
    run_config = {"model": model_config.model_dump(mode="json"), "pretrain": config.model_dump(mode="json"),
                  "preprocess": preprocess.model_dump(mode="json")}
    state_path = resume_path(out)
    state = None
    if state_path.exists():
        if not resume:
            raise CheckpointError("a pre-training resume state already exists.", path=state_path,
                                  fix="pass --resume to continue that run, or delete the file to start over")
        state = load_resume_state(state_path)
        check_resumable(state, run_config, data.case_ids, state_path)
    # a config's thread count holds for this call only; the caller's policy comes back
    with threads_for_call(config.num_threads):
        torch.manual_seed(derive_seed(config.seed, "pretrain-model"))
        model = build_model(model_config)
        volumes = [load_case(c, preprocess, with_label=False).image
                   for c in progress(data.cases, "Loading", total=len(data.cases))]
        result = fit_pretext(model, model_config, volumes, config, resume=state, state_path=state_path,
                             run_config=run_config, case_ids=data.case_ids, on_step=on_step)
        del volumes
        fp_cases = data.cases[: config.fingerprint_cases] if config.fingerprint_cases else data.cases
        fingerprint = compute_fingerprint(model, fp_cases, preprocess, inference, model_config=model_config)
        seconds = time.perf_counter() - start
        metadata = {
            "pretrain_config": config.model_dump(mode="json"),
            "source_dataset": str(data.root),
            "source_cases": data.case_ids,
            "fingerprint_cases": [c.case_id for c in fp_cases],
            "final_losses": summarize_history(result.history),
            "resumed_from_step": result.start_step,
            "seconds": seconds,
            "head": "reconstruction (out_channels = in_channels); replaced when fine-tuning",
        }
        ckpt = make_checkpoint(model.cpu(), model_config, SSL_LABELS, kind="ssl-only", preprocess=preprocess,
                               metadata=metadata, fingerprint=fingerprint)
        save_checkpoint(out, ckpt)
        fp_path = save_fingerprint(out.parent / FINGERPRINT_FILE, fingerprint,
                                   {"checkpoint": out.name, "model_config": run_config["model"],
                                    "source_cases": metadata["fingerprint_cases"], "pooling": "voxel-count weighted"})
        state_path.unlink(missing_ok=True)
        return PretrainOutput(out, fp_path, result.history, result.start_step, seconds)
