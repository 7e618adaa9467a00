"""`simulate --executor ray`: a driver killed with SIGKILL mid-grid is run again; the second driver skips what the
first finished, continues what it left half done, and the ledgers equal the sequential (`--jobs 1`) run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from assft.campaign.campaign import init_campaign
from assft.campaign.executors import is_finished, run_one
from assft.campaign.ledger import campaign_lock
from assft.campaign.simulate import campaign_config, run_quietly, run_simulation
from assft.errors import CampaignLockedError, ConfigError
from assft.utils.progress import silenced

from test_campaign import setup  # noqa: F401  (module-scoped phantom fixture)
from test_simulate_arms import _experiment

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'assft[ray]'")


def _outcome(dirs: list[Path], out: Path) -> dict:
    ledgers = {d.relative_to(out).as_posix(): json.loads((d / "ledger.json").read_text()) for d in dirs}
    return {k: ([r["selected"] for r in v["rounds"]], v["rounds"][-1]["metrics"]["mean_dice"])
            for k, v in ledgers.items()}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_killed_ray_driver_resumes_and_matches_the_sequential_run(setup: dict, tmp_path: Path) -> None:  # noqa: F811
    grid = {"strategies": ["random", "entropy"], "seeds": [0, 1], "rounds": 2, "budget": "2"}
    with silenced():
        sequential_dirs = run_simulation(_experiment(setup, tmp_path / "seq", **grid))
    sequential = _outcome(sequential_dirs, tmp_path / "seq")

    out = tmp_path / "ray"
    config = _experiment(setup, out, **grid)
    config_path = tmp_path / "exp.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_unset=True)))
    # a real driver (the console entry point, its own session so the kill takes its local Ray with it), killed with
    # SIGKILL as soon as the first campaign has finished: the others are running or untouched
    driver = subprocess.Popen([sys.executable, "-m", "assft", "simulate", "--config", str(config_path),
                               "--executor", "ray"], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    finished: list[Path] = []
    deadline = time.monotonic() + 400
    while not finished and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        finished = [d for d in out.glob("*/*/seed*") if (d / "ledger.json").exists() and is_finished(d)]
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    assert finished, driver.stderr.read().decode()[-2000:]
    # the Ray workers live in their own process groups and may finish the campaign they were on after the kill;
    # the second driver's tasks wait for such a campaign's lock (run_one) and continue from its ledger
    finished = [d for d in out.glob("*/*/seed*") if is_finished(d)]
    stamps = {d: (d / "ledger.json").stat().st_mtime_ns for d in finished}

    reported: list[Path] = []
    with silenced():
        dirs = run_simulation(config, executor="ray", on_campaign=reported.append,
                              ray_options={"num_cpus": 2, "cpus_per_campaign": 1})
    assert {d: (d / "ledger.json").stat().st_mtime_ns for d in finished} == stamps  # not submitted again
    assert reported and not set(reported) & set(stamps)
    assert all(is_finished(d) for d in dirs)
    ray_outcome = _outcome(dirs, out)
    assert ray_outcome.keys() == sequential.keys() and len(ray_outcome) == 4
    for key, (selected, dice) in sequential.items():
        assert ray_outcome[key][0] == selected, key
        assert ray_outcome[key][1] == pytest.approx(dice, abs=1e-4), key  # 1 thread per task vs the caller's


def test_a_worker_waits_for_a_campaign_another_process_holds(setup: dict, tmp_path: Path) -> None:  # noqa: F811
    config = _experiment(setup, tmp_path / "x")
    campaign_dir = tmp_path / "x" / "c"
    init_campaign(campaign_dir, campaign_config(config, "identity", "random", 0))
    with campaign_lock(campaign_dir), pytest.raises(CampaignLockedError, match="another assft process"):
        run_one(str(campaign_dir), 1, str(tmp_path / "cache"), run_quietly, lock_wait_s=0)
    assert not is_finished(campaign_dir)

    holder = threading.Event()
    worker = threading.Thread(target=run_one, args=(str(campaign_dir), 1, str(tmp_path / "cache"), run_quietly),
                              kwargs={"poll_s": 0.05})
    with campaign_lock(campaign_dir):
        worker.start()
        holder.wait(0.5)
        assert worker.is_alive() and not is_finished(campaign_dir)  # waiting, not failing
    worker.join(timeout=120)
    assert not worker.is_alive() and is_finished(campaign_dir)


def test_unknown_executor_is_a_config_error(setup: dict, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(ConfigError, match="unknown executor 'dask'"):
        run_simulation(_experiment(setup, tmp_path / "x"), executor="dask")
    assert not (tmp_path / "x").exists()  # refused before anything was prepared
