"""Seeds: derived generators so every random choice depends only on (seed, purpose keys)."""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import numpy as np

P = ParamSpec("P")
R = TypeVar("R")


def derive_seed(seed: int, *keys: object) -> int:
    """A stable 32-bit seed from `seed` and any keys (case id, round, purpose); independent of PYTHONHASHSEED."""
    text = "|".join([str(seed), *map(str, keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def make_rng(seed: int, *keys: object) -> np.random.Generator:
    """A numpy Generator for (seed, keys)."""
    return np.random.default_rng(derive_seed(seed, *keys))


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch global RNGs (the CLI; library entry points do it inside `isolated_rng`)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def isolated_rng(func: Callable[P, R]) -> Callable[P, R]:
    """Run `func` on the global RNGs it seeds itself, then give the caller back its own RNG states.

    MONAI's network constructors, dropout and torch's init functions draw from the global generators and take no
    generator argument, so the training entry points seed those themselves (same seed, same weights). This keeps
    that seeding from leaking: python's `random`, numpy's global RNG and torch's CPU generator are restored after
    the call, whatever happened inside.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        import torch

        python_state, numpy_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            try:
                return func(*args, **kwargs)
            finally:
                random.setstate(python_state)
                np.random.set_state(numpy_state)

    return wrapper
