"""The campaign's volume cache: pool and test volumes read and normalised once, then memory-mapped."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from assft.campaign.config import load_campaign_config
from assft.campaign.layout import VOLUME_CACHE
from assft.data.volume_cache import active_volume_cache, use_volume_cache
from assft.errors import AssftError

T = TypeVar("T")


@contextmanager
def campaign_volume_cache(campaign_dir: Path) -> Iterator[None]:
    """Within the block, volumes load through the campaign's cache (`VOLUME_CACHE`), unless one is active already
    (a simulation shares one across its grid) or the campaign turned it off."""
    try:
        wanted = active_volume_cache() is None and load_campaign_config(campaign_dir).cache_volumes
    except AssftError:  # not a campaign (yet): the step itself reports it
        wanted = False
    with use_volume_cache(campaign_dir / VOLUME_CACHE if wanted else None):
        yield


def with_volume_cache(step: Callable[..., T]) -> Callable[..., T]:
    """Run a campaign step (first argument: the campaign folder) inside `campaign_volume_cache`."""

    @functools.wraps(step)
    def run(campaign_dir: str | Path, *args: Any, **kwargs: Any) -> T:
        with campaign_volume_cache(Path(campaign_dir)):
            return step(campaign_dir, *args, **kwargs)

    return run
