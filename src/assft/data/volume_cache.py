"""Preprocessed volumes cached on disk, memory-mapped: a campaign reads and normalises each volume once, not once per
round and per step (query, pseudo-labels, BN statistics, evaluation).

A cached volume is keyed by its files (path, size, modification time), the preprocessing config and this module's
format version, so an edited file or another preprocessing never hits a stale entry. Entries are written atomically
(temporary files, then `os.replace`; the JSON header is written last and is the commit marker), so concurrent
workers sharing a cache and a killed process leave either a whole entry or none. Arrays are opened copy-on-write
(`mmap_mode="c"`): a caller that modifies a volume in place changes its own copy, never the cache.

Why not MONAI's `PersistentDataset`: it caches the output of a transform chain keyed by the data dict, while a case
here is read, validated and normalised by `load_case` (with its clear errors); the cache wraps exactly that call.

Activated for a block with `use_volume_cache(folder)`; `load_case` consults the active cache (a context variable,
so worker processes and threads each set their own).
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from assft.config import PreprocessConfig, config_hash
from assft.data.cases import Case, LoadedCase, NnunetGrid

CACHE_FORMAT = 1
_ACTIVE: contextvars.ContextVar[VolumeCache | None] = contextvars.ContextVar("assft_volume_cache", default=None)


def _file_stamp(path: Path) -> list:
    if Path(path).is_dir():  # a DICOM series: a slice rewritten in place leaves the folder's own stamp unchanged
        stats = [os.stat(f) for f in sorted(Path(path).iterdir()) if f.is_file()]
        return [str(Path(path).resolve()), sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0),
                len(stats)]
    stat = os.stat(path)
    return [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]


class VolumeCache:
    """A folder of preprocessed volumes: `get` what `load_case` returned before, `put` what it read now."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def key(self, case: Case, config: PreprocessConfig, with_label: bool) -> str:
        """Stable key of one case's preprocessed arrays."""
        label = _file_stamp(case.label_path) if with_label and case.label_path is not None else None
        raw = json.dumps({"format": CACHE_FORMAT, "case": case.case_id, "preprocess": config_hash(config),
                          "images": [_file_stamp(p) for p in case.image_paths], "label": label}, sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:24]

    def get(self, case: Case, config: PreprocessConfig, with_label: bool) -> LoadedCase | None:
        """The cached volume, or None (never stored, or a damaged entry: the caller reads it and `put`s it)."""
        key = self.key(case, config, with_label)
        header = self.root / f"{key}.json"
        if not header.exists():
            return None
        try:
            meta = json.loads(header.read_text(encoding="utf-8"))
            image = np.load(self.root / f"{key}.image.npy", mmap_mode="c")
            label = np.load(self.root / f"{key}.label.npy").astype(np.int64) if meta["has_label"] else None
            grid = meta.get("grid_affine")
            nnunet_grid = NnunetGrid(meta["nnunet_grid"], config.nnunet) if config.nnunet is not None else None
        except (OSError, ValueError, KeyError):
            return None  # a damaged entry (disk full, foreign file): rebuilt by the caller's `put`
        self.hits += 1
        return LoadedCase(case.case_id, image, label, np.asarray(meta["affine"], dtype=np.float64),
                          tuple(meta["original_shape"]), tuple(meta["spacing"]),  # type: ignore[arg-type]
                          None if grid is None else np.asarray(grid, dtype=np.float64), nnunet_grid)

    def put(self, case: Case, config: PreprocessConfig, with_label: bool, loaded: LoadedCase) -> LoadedCase:
        """Store a volume `load_case` read from its files; returns it."""
        self.misses += 1
        self._store(self.key(case, config, with_label), loaded)
        return loaded

    def _store(self, key: str, loaded: LoadedCase) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        suffix = f".{os.getpid()}.tmp"
        arrays = {"image": np.ascontiguousarray(loaded.image, dtype=np.float32)}
        if loaded.label is not None:  # labels are small integers: int16 on disk, int64 when loaded
            label = loaded.label
            arrays["label"] = label.astype(np.int16) if label.size and -32768 <= label.min() and \
                label.max() <= 32767 else label
        for name, array in arrays.items():
            tmp = self.root / f"{key}.{name}.npy{suffix}"
            with open(tmp, "wb") as fh:
                np.save(fh, array)
            os.replace(tmp, self.root / f"{key}.{name}.npy")
        meta = {"case_id": loaded.case_id, "has_label": loaded.label is not None,
                "affine": np.asarray(loaded.affine).tolist(), "original_shape": list(loaded.original_shape),
                "spacing": list(loaded.spacing),
                "grid_affine": None if loaded.grid_affine is None else np.asarray(loaded.grid_affine).tolist(),
                "nnunet_grid": loaded.nnunet_grid.to_json() if loaded.nnunet_grid is not None else None}
        tmp = self.root / f"{key}.json{suffix}"
        tmp.write_text(json.dumps(meta), encoding="utf-8")
        os.replace(tmp, self.root / f"{key}.json")


def active_volume_cache() -> VolumeCache | None:
    """The cache `load_case` uses now (None: read every volume from its files)."""
    return _ACTIVE.get()


@contextmanager
def use_volume_cache(root: str | Path | None) -> Iterator[VolumeCache | None]:
    """Within the block, `load_case` reads through a cache in `root` (None: no cache; an active one is kept when
    `root` is None, so a simulation's grid-wide cache wins over a campaign's default)."""
    if root is None:
        yield _ACTIVE.get()
        return
    cache = VolumeCache(root)
    token = _ACTIVE.set(cache)
    try:
        yield cache
    finally:
        _ACTIVE.reset(token)
