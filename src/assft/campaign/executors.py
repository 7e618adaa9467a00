"""Where a simulation grid's campaigns run: one after another, a process pool on this machine, or Ray tasks.

Every executor runs the same worker body (`run_one`: the simulation's `run`, e.g.
`assft.campaign.simulate.run_quietly`, with a fixed thread share and the grid's volume cache), and every campaign
resumes from its ledger, so executors differ only in where the body runs.

Ray (`pip install "assft[ray]"`): each campaign is one task with `num_cpus` / `num_gpus` (fractions allowed); the
driver collects tasks as they finish (`ray.wait`). Retry policy: a task whose worker died (a lost node, an OOM
kill) is retried up to `RAY_MAX_RETRIES` times by Ray and continues from its ledger; an `OSError` raised by a
campaign (a transient shared-filesystem failure) is retried the same way; assft's own errors and every other
exception are deterministic (a bad config, bad data), so they are not retried: the driver lets the other campaigns
finish, then raises one CampaignError listing the failed campaigns. Campaigns already finished in their ledgers are
not submitted, so a killed driver resumes by running the same command again. The campaign folders must be on a
filesystem every Ray worker sees at the same path (datasets, bounds, start models and θ0 caches are prepared once
by the driver and read from there).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from assft.campaign.ledger import Ledger
from assft.data.volume_cache import use_volume_cache
from assft.errors import CampaignError, CampaignLockedError, ConfigError
from assft.utils.threads import set_thread_policy

__all__ = ["RAY_MAX_RETRIES", "is_finished", "run_on_processes", "run_on_ray", "run_one"]

RAY_MAX_RETRIES = 3  # re-runs of a campaign task whose worker process or node was lost
# How long a worker waits for a campaign another process holds. Why wait at all: a Ray worker outlives a driver killed
# with SIGKILL (it runs in its own process group) and finishes the campaign it was on, so a driver started again
# right away finds that campaign locked; waiting turns "failed: locked" into "resumed once the orphan is done".
LOCK_WAIT_S = 3600.0

OnCampaign = Callable[[Path], None] | None
RunCampaign = Callable[[str], object]  # runs or resumes one campaign folder; a module-level function (it is pickled)


def run_one(campaign_dir: str, threads: int, volume_cache: str, run: RunCampaign, *,
            lock_wait_s: float = LOCK_WAIT_S, poll_s: float = 2.0) -> str:
    """Worker body: `run` one campaign with `threads` torch threads and the grid's volume cache, waiting up to
    `lock_wait_s` while another process (e.g. the orphaned worker of a killed driver) holds the campaign."""
    set_thread_policy(threads)  # a fixed share: cores / jobs
    deadline = time.monotonic() + lock_wait_s
    with use_volume_cache(volume_cache):
        while True:
            try:
                run(campaign_dir)
                return campaign_dir
            except CampaignLockedError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(poll_s)  # the holder records each step in the ledger; we continue from its last one


def is_finished(campaign_dir: str | Path) -> bool:
    """Whether the campaign's ledger records its end (every round evaluated)."""
    try:
        return Ledger.load(campaign_dir).meta.finished_at is not None
    except (OSError, ValueError, KeyError):
        return False


def run_on_processes(dirs: Sequence[Path], jobs: int, threads: int, volume_cache: str, run: RunCampaign,
                     on_campaign: OnCampaign = None) -> None:
    """`jobs` campaigns at once in worker processes of this machine, `threads` torch threads each."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn, not fork: forking after torch has run its OpenMP pool (bounds, datasets) can deadlock the children.
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_one, str(d), threads, volume_cache, run) for d in dirs]
        for future in as_completed(futures):
            done = Path(future.result())
            if on_campaign is not None:
                on_campaign(done)


def run_on_ray(dirs: Sequence[Path], volume_cache: str, run: RunCampaign, *, address: str | None = None,
               cpus_per_campaign: float = 1.0, gpus_per_campaign: float = 0.0, num_cpus: int | None = None,
               on_campaign: OnCampaign = None) -> None:
    """Each unfinished campaign as a Ray task (see the module docstring for resources and the retry policy).

    address: a running cluster ("auto", "ray://host:10001", "host:6379"); None starts a local Ray instance with
    `num_cpus` CPUs (default: all) and shuts it down afterwards.
    """
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("the ray executor needs Ray, which is not installed.",
                          fix='pip install "assft[ray]" (pin torch with a constraints file)') from exc
    if cpus_per_campaign <= 0 or gpus_per_campaign < 0:
        raise ConfigError(f"--cpus-per-campaign must be > 0 and --gpus-per-campaign >= 0, got {cpus_per_campaign} "
                          f"and {gpus_per_campaign}.", fix="e.g. --cpus-per-campaign 1 --gpus-per-campaign 0.25")
    todo = [d for d in dirs if not is_finished(d)]
    if not todo:
        return
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                 logging_level="warning", log_to_driver=False)
    try:
        task = ray.remote(num_cpus=cpus_per_campaign, num_gpus=gpus_per_campaign, max_retries=RAY_MAX_RETRIES,
                          retry_exceptions=[OSError])(run_one)
        threads = max(1, int(cpus_per_campaign))
        pending = {task.remote(str(d), threads, volume_cache, run): d for d in todo}
        failed: list[tuple[Path, str]] = []
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            campaign_dir = pending.pop(ready[0])
            try:
                ray.get(ready[0])
            except ray.exceptions.RayError as exc:  # a task's own exception, or its worker/node lost past retries
                failed.append((campaign_dir, str(getattr(exc, "cause", None) or exc).strip().splitlines()[-1]))
                continue
            if on_campaign is not None:
                on_campaign(campaign_dir)
    finally:
        if started:
            ray.shutdown()
    if failed:
        listing = "; ".join(f"{d}: {why}" for d, why in failed)
        raise CampaignError(f"{len(failed)} of {len(todo)} campaigns failed on Ray ({listing}).",
                            fix="fix the cause and run the same command again: finished campaigns are skipped")
