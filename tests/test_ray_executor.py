"""`simulate --executor ray`: a local Ray instance (2 CPUs) gives the ledgers `--jobs 1` gives, and a second driver
skips what a killed first one finished and continues what it left half done."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assft.campaign.engine import init_campaign, next_round
from assft.campaign.executors import is_finished, run_one
from assft.campaign.simulate import campaign_config, run_simulation
from assft.errors import ConfigError

from test_campaign import setup  # noqa: F401  (module-scoped phantom fixture)
from test_simulate_arms import _experiment

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'assft[ray]'")


def _outcome(dirs: list[Path], out: Path) -> dict:
    ledgers = {d.relative_to(out).as_posix(): json.loads((d / "ledger.json").read_text()) for d in dirs}
    return {k: (v["rounds"][0]["selected"], v["rounds"][0]["metrics"]["mean_dice"]) for k, v in ledgers.items()}


@pytest.mark.timeout(420)
def test_ray_resumes_a_killed_driver_and_matches_the_sequential_run(setup: dict, tmp_path: Path) -> None:  # noqa: F811
    grid = {"strategies": ["random", "entropy"], "seeds": [0, 1]}
    sequential_dirs = run_simulation(_experiment(setup, tmp_path / "seq", **grid), show_progress=False)
    sequential = _outcome(sequential_dirs, tmp_path / "seq")

    out = tmp_path / "ray"
    config = _experiment(setup, out, **grid)
    # what a killed driver leaves behind: one campaign finished, one half done (queried, not labeled), two untouched
    first, half = out / "identity" / "random" / "seed0", out / "identity" / "entropy" / "seed1"
    for campaign_dir, strategy, seed in ((first, "random", 0), (half, "entropy", 1)):
        init_campaign(campaign_dir, campaign_config(config, "identity", strategy, seed))
    run_one(str(first), 1, str(out / "_volumes"))
    next_round(half, show_progress=False)
    finished_stamp = (first / "ledger.json").stat().st_mtime_ns
    assert is_finished(first) and not is_finished(half)

    reported: list[Path] = []
    dirs = run_simulation(config, show_progress=False, executor="ray", on_campaign=reported.append,
                          ray_options={"num_cpus": 2, "cpus_per_campaign": 1})
    assert (first / "ledger.json").stat().st_mtime_ns == finished_stamp  # not submitted again
    assert sorted(reported) == sorted(d for d in dirs if d != first)
    assert all(is_finished(d) for d in dirs)
    ray_outcome = _outcome(dirs, out)
    assert ray_outcome.keys() == sequential.keys() and len(ray_outcome) == 4
    for key, (selected, dice) in sequential.items():
        assert ray_outcome[key][0] == selected, key
        assert ray_outcome[key][1] == pytest.approx(dice, abs=1e-4), key  # 1 thread per task vs the caller's


def test_unknown_executor_is_a_config_error(setup: dict, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(ConfigError, match="unknown executor 'dask'"):
        run_simulation(_experiment(setup, tmp_path / "x"), executor="dask")
    assert not (tmp_path / "x").exists()  # refused before anything was prepared
