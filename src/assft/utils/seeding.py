"""Seeds: derived generators so every random choice depends only on (seed, purpose keys)."""

from __future__ import annotations

import hashlib
import random

import numpy as np


def derive_seed(seed: int, *keys: object) -> int:
    """A stable 32-bit seed from `seed` and any keys (case id, round, purpose); independent of PYTHONHASHSEED."""
    text = "|".join([str(seed), *map(str, keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def make_rng(seed: int, *keys: object) -> np.random.Generator:
    """A numpy Generator for (seed, keys)."""
    return np.random.default_rng(derive_seed(seed, *keys))


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch global RNGs (used by training loops and the CLI only)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
