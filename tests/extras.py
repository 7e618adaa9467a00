"""Optional parts of the test environment (headless Chromium, the MONAI Label extra): a test module that needs one
skips where it is absent, unless the environment says it must be there (`ASSFT_REQUIRE_<NAME>=1`, which .ci/run
sets), in which case its absence fails the run instead of passing it silently."""

from __future__ import annotations

import os

import pytest


def required(name: str) -> bool:
    """Whether ASSFT_REQUIRE_<NAME>=1 demands the optional part `name` (e.g. "CHROMIUM", "MONAILABEL")."""
    return os.environ.get(f"ASSFT_REQUIRE_{name.upper()}") == "1"


def absent(name: str, reason: str) -> None:
    """The optional part `name` is missing: fail when it is required, else skip the calling module."""
    if required(name):
        pytest.fail(f"{reason} (ASSFT_REQUIRE_{name.upper()}=1 requires it)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)
