"""`assft import`: read a local public weight file, map it onto a registered network, write an ssl-only checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from assft.config import InferenceConfig, ModelConfig, PreprocessConfig
from assft.data.cases import DatasetSpec
from assft.errors import CheckpointError
from assft.models.checkpoint import (
    KeyReport,
    blocked_global,
    compare_state_dicts,
    is_blocked_pickle,
    make_checkpoint,
    save_checkpoint,
)
from assft.models.zoo import build_model
from assft.pretrain.formats import IMPORT_FORMATS, StateDict, detect_format
from assft.utils.seeding import derive_seed, isolated_rng

CONTAINER_KEYS = ("state_dict", "net", "model", "network_weights", "student")
# Every key of this sub-network must come from the file, or the file is not what --format says.
REQUIRED_PREFIX = {"swinunetr": "swinViT.", "genesis_unet": "down_tr"}


@dataclass
class ImportOutput:
    """What `import_weights` wrote and how the file's keys matched the network."""

    checkpoint: Path
    format: str
    model_config: ModelConfig
    report: KeyReport
    fingerprint: Path | None = None


def read_weight_file(path: str | Path, *, trust_pickle: bool = False) -> StateDict:
    """Load a torch file and find its state dict (top level, or under state_dict/net/model/...) -> {key: tensor}.

    Raises:
        CheckpointError: missing file, not a torch file, pickled objects without `trust_pickle`, no tensors inside.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("weight file not found.", path=path,
                              fix="download it yourself first (assft never downloads); see docs/pretrain.md")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as exc:
        text = str(exc)
        if not trust_pickle and is_blocked_pickle(exc):  # a readable pickle that references Python code
            raise CheckpointError(f"the file contains pickled Python code besides tensors ({blocked_global(exc)}); it "
                                  "was not loaded, since loading it could run that code.", path=path,
                                  fix="only if you trust the file's source, pass --trust-pickle") from exc
        raise CheckpointError(f"not a readable PyTorch file ({type(exc).__name__}: {text[:160]}).", path=path,
                              fix="pass the .pt/.pth weight file itself (not an archive or a NIfTI)") from exc
    state = _find_state_dict(raw)
    if state is None:
        top = ", ".join(map(str, list(raw)[:8])) if isinstance(raw, dict) else type(raw).__name__
        raise CheckpointError(f"no state dict of tensors found (top level: {top}).", path=path,
                              fix="pass a checkpoint holding model weights (see docs/pretrain.md for each format)")
    return state


def _find_state_dict(raw: object) -> StateDict | None:
    if not isinstance(raw, dict) or not raw:
        return None
    tensors = {str(k): v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if len(tensors) == len(raw):
        return tensors
    for key in CONTAINER_KEYS:
        found = _find_state_dict(raw.get(key))
        if found is not None:
            return found
    return None


@isolated_rng
def import_weights(
    format: str,
    weights: str | Path,
    out: str | Path,
    *,
    trust_pickle: bool = False,
    allow_partial: bool = False,
    seed: int = 0,
    preprocess: PreprocessConfig | None = None,
    fingerprint_data: DatasetSpec | None = None,
    inference: InferenceConfig | None = None,
) -> ImportOutput:
    """Convert a public weight file into an assft ssl-only checkpoint (config inferred from the weight shapes).

    Keys the file lacks (e.g. the decoder of an encoder-only SSL file) keep a seeded random initialisation and are
    listed as missing in the report (and in the checkpoint's metadata), so fine-tuning loads every non-head key.

    Args:
        format: one of IMPORT_FORMATS (swin-ssl, suprem, voco, models-genesis).
        weights: the local file.
        out: checkpoint to write.
        trust_pickle: allow non-tensor pickled objects in the file (torch.load weights_only=False).
        allow_partial: write the checkpoint even when part of the required sub-network is missing or mismatched.
        seed: seed of the random initialisation of keys the file does not provide.
        preprocess: intensity normalisation stored with the checkpoint (PreprocessConfig() by default).
        fingerprint_data: optional source-like volumes to compute a fingerprint from (written beside `out`).
        inference: sliding window for that fingerprint.
    Returns:
        ImportOutput with the key report.
    Raises:
        CheckpointError: unreadable file, wrong format, or required keys missing/mismatched.
        UnknownNameError: unknown format name.
    """
    spec = IMPORT_FORMATS.get(format)
    path = Path(weights)
    state = read_weight_file(path, trust_pickle=trust_pickle)
    model_config, mapped = spec.convert(state, path)
    torch.manual_seed(derive_seed(seed, "import-init"))
    model = build_model(model_config)
    report = compare_state_dicts(model.state_dict(), mapped)
    prefix = REQUIRED_PREFIX.get(model_config.name, "")
    missing_core = [k for k in report.missing if k.startswith(prefix) and not k.endswith("num_batches_tracked")]
    bad = missing_core + [k for k, _, _ in report.mismatched]
    if (bad or not report.loaded) and not allow_partial:
        guess = detect_format(state)
        hint = f" The keys look like --format {guess}." if guess and guess != format else ""
        raise CheckpointError(f"the file does not fit {format!r}: {report.summary()}.{hint}", path=path,
                              fix="check --format (see `assft import --help`), or pass --allow-partial")
    model.load_state_dict({k: mapped[k] for k in report.loaded}, strict=False)
    metadata = {"imported_from": str(path), "import_format": format, "key_report": report.to_dict(),
                "randomly_initialised": report.missing, "labels_note": "source classes unknown; fine-tune a new head"}
    fp_path = None
    fingerprint = None
    if fingerprint_data is not None:
        from assft.pretrain.fingerprint import FINGERPRINT_FILE, compute_fingerprint, save_fingerprint
        from assft.pretrain.pretraining import default_roi

        inference = inference or InferenceConfig(roi_size=default_roi(model_config), channels_last=False)
        fingerprint = compute_fingerprint(model, fingerprint_data.cases, preprocess or PreprocessConfig(), inference,
                                          model_config=model_config)
        fp_path = save_fingerprint(Path(out).parent / FINGERPRINT_FILE, fingerprint,
                                   {"checkpoint": Path(out).name, "source_cases": fingerprint_data.case_ids})
    ckpt = make_checkpoint(model.cpu(), model_config, {0: "background"}, kind="ssl-only", preprocess=preprocess,
                           metadata=metadata, fingerprint=fingerprint)
    save_checkpoint(out, ckpt)
    return ImportOutput(Path(out), format, model_config, report, fp_path)
