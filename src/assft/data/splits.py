"""Deterministic case splits (e.g. source / pool / test) saved as JSON and read back by every command."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from assft.data.cases import DatasetSpec
from assft.data.io import load_json, read_text_file
from assft.errors import ConfigError, DataError
from assft.utils.atomic import atomic_write_json
from assft.utils.seeding import make_rng


def make_split(case_ids: list[str], fractions: dict[str, float], seed: int) -> dict[str, list[str]]:
    """Shuffle `case_ids` with `seed` and cut by `fractions` (normalised if they sum to <= 1; rest is dropped).

    A fraction > 1 is read as an absolute number of cases. Independent of input order (ids are sorted first).
    """
    if not fractions:
        raise ConfigError("no split fractions given.", fix="e.g. --fractions source=0.3,pool=0.5,test=0.2")
    ids = sorted(case_ids)
    order = make_rng(seed, "split").permutation(len(ids))
    shuffled = [ids[i] for i in order]
    counts: dict[str, int] = {}
    fractional = {k: v for k, v in fractions.items() if v <= 1}
    total_frac = sum(fractional.values())
    if any(v < 0 for v in fractions.values()):
        raise ConfigError(f"negative split size in {fractions}.", fix="use fractions in [0, 1] or counts >= 1")
    absolute = sum(int(v) for v in fractions.values() if v > 1)
    if absolute > len(ids):
        raise ConfigError(f"split asks for {absolute} cases but the dataset has {len(ids)}.", fix="ask for fewer")
    remaining = len(ids) - absolute
    if total_frac > 1 + 1e-9:
        raise ConfigError(f"split fractions sum to {total_frac:.3f} > 1.", fix="make them sum to at most 1")
    for name, value in fractions.items():
        counts[name] = int(value) if value > 1 else int(np.floor(value * remaining + 1e-9))
    # hand leftover cases (from flooring) to the fractional parts in order, so fractions summing to 1 use every case
    if abs(total_frac - 1) < 1e-9:
        leftover = len(ids) - sum(counts.values())
        for name in list(fractional)[:leftover]:
            counts[name] += 1
    out, start = {}, 0
    for name in fractions:
        out[name] = sorted(shuffled[start:start + counts[name]])
        start += counts[name]
    return out


def save_split(path: str | Path, splits: dict[str, list[str]], *, seed: int, fractions: dict[str, float],
               dataset: str | Path) -> Path:
    """Write the split JSON (with its seed, fractions and dataset path as provenance)."""
    return atomic_write_json(path, {"dataset": str(dataset), "seed": seed, "fractions": fractions, "splits": splits})


def read_case_ids(path: str | Path, *, allow_empty: bool = False) -> list[str]:
    """Case ids from a text file, one per line; blank lines and '#' comments are skipped."""
    path = Path(path)
    text = read_text_file(path, "case-id file")
    ids = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    ids = [i for i in ids if i]
    if not ids and not allow_empty:
        raise DataError("no case ids in the file.", path=path, fix="write one case id per line")
    return ids


def load_split(path: str | Path) -> dict[str, list[str]]:
    """Read a split JSON -> {subset name: case ids}."""
    raw = load_json(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("splits"), dict):
        raise DataError("not an assft split file (no 'splits' object).", path=path, fix="create one with `assft data split`")
    bad = [str(k) for k, v in raw["splits"].items() if not isinstance(v, list) or not all(isinstance(i, str) for i in v)]
    if bad:
        raise DataError(f"split subset {bad[0]!r} is not a list of case ids.", path=path,
                        fix="recreate the split with `assft data split`")
    return {str(k): list(v) for k, v in raw["splits"].items()}


def select_cases(spec: DatasetSpec, split: str | Path | None = None, subset: str | None = None,
                 limit: int | None = None) -> DatasetSpec:
    """Restrict `spec` to a split subset (and/or the first `limit` cases)."""
    if split is not None:
        splits = load_split(split)
        if subset is None or subset not in splits:
            raise ConfigError(f"subset {subset!r} is not in the split (has: {', '.join(splits)}).", path=split,
                              fix="pass --subset with one of those names")
        spec = spec.subset(splits[subset])
    if limit is not None:
        spec = spec.subset(spec.case_ids[:limit])
    return spec
