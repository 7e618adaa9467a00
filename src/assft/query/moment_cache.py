"""θ0's norm-layer moments per volume, kept on disk between query rounds (KD never changes for a volume).

One JSON file: {"key": ..., "moments": {case_id: {layer: [mean list, var list]}}}. The key hashes θ0's checkpoint
bytes, its preprocessing and the sliding-window settings, so a cache written for another θ0 or window is ignored
(and rewritten), never misused. float64 values survive JSON exactly (repr round-trip). Written atomically.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from assft.config import InferenceConfig
from assft.utils.atomic import atomic_write_json

__all__ = ["load_moment_cache", "moment_cache_key", "open_moment_cache", "save_moment_cache"]

Moments = dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]]  # case id -> {layer: (mean (C,), var (C,))}


def moment_cache_key(checkpoint_path: str | Path, preprocess: dict, inference: InferenceConfig) -> str:
    """Hash of θ0's file, its preprocessing and the window settings that shape the moments."""
    digest = hashlib.sha256(Path(checkpoint_path).read_bytes())
    window = inference.model_dump(mode="json")
    window.pop("device", None)
    digest.update(json.dumps([preprocess, window], sort_keys=True, default=str).encode())
    return digest.hexdigest()


def load_moment_cache(path: str | Path, key: str) -> dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """case id -> {layer: (mean (C,), var (C,)) float64}; empty when the file is missing, unreadable or for another key."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict) or raw.get("key") != key:
        return {}
    return {case: {layer: (torch.tensor(m, dtype=torch.float64), torch.tensor(v, dtype=torch.float64))
                   for layer, (m, v) in layers.items()}
            for case, layers in raw.get("moments", {}).items()}


def save_moment_cache(path: str | Path, key: str, moments: dict[str, dict]) -> Path:
    """Write the cache atomically."""
    data = {case: {layer: [torch.as_tensor(m).double().tolist(), torch.as_tensor(v).double().tolist()]
                   for layer, (m, v) in layers.items()}
            for case, layers in sorted(moments.items())}
    return atomic_write_json(Path(path), {"key": key, "moments": data})


@contextmanager
def open_moment_cache(path: str | Path | None, key: str | None, *, write: bool = True) -> Iterator[Moments | None]:
    """The cached moments to read and extend while scoring; written back on a clean exit when volumes were added
    (unless `write` is False: the other ranks of a distributed pass leave the file to rank 0).

    `path` or `key` None: no cache (yields None). An exception inside the block leaves the file as it was.
    """
    if path is None or key is None:
        yield None
        return
    moments = load_moment_cache(path, key)
    known = len(moments)
    yield moments
    if write and len(moments) > known:
        save_moment_cache(path, key, moments)
