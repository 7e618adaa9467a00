"""torchrun pool scoring: 2 gloo processes pick what one process picks, each volume scored once, rank 0 writes."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from assft.config import ModelConfig
from assft.data.synthetic import PHANTOM_LABELS, make_phantom_dataset
from assft.models import build_model, make_checkpoint, save_checkpoint
from assft.utils.distributed import Ranks, gather_in_order, join_process_group, merge_across_ranks, shard


def test_shards_deal_round_robin_without_duplicates() -> None:
    items = list(range(7))
    parts = [shard(items, Ranks(rank, 3)) for rank in range(3)]
    assert parts == [[0, 3, 6], [1, 4], [2, 5]]  # sizes differ by at most one; nothing padded or repeated
    assert shard(items, Ranks()) == items


def test_a_single_process_is_rank_0_of_1() -> None:
    assert "WORLD_SIZE" not in os.environ or os.environ["WORLD_SIZE"] == "1"
    ranks = join_process_group()
    assert ranks == Ranks(0, 1) and ranks.is_main and not ranks.distributed
    assert gather_in_order([3, 1], ranks) == [3, 1] and merge_across_ranks({"a": 1}, ranks) == {"a": 1}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "selection.csv", newline="") as fh:
        return {row["case_id"]: row for row in csv.DictReader(fh)}


def _tiny_model(path: Path) -> Path:
    config = ModelConfig(out_channels=5, params={"channels": (4, 8, 16), "strides": (2, 2)})
    torch.manual_seed(0)
    return save_checkpoint(path, make_checkpoint(build_model(config), config, PHANTOM_LABELS,
                                                 metadata={"train_config": {"patch_size": [16, 16, 16]}}))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_torchrun_processes_select_what_one_process_selects(tmp_path: Path) -> None:
    data = make_phantom_dataset(tmp_path / "pool", 7, shape=(16, 16, 16))
    model = _tiny_model(tmp_path / "model.pt")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["query", "--model", str(model), "--images", str(data), "--budget", "3", "--seed", "1"]
    single = subprocess.run([sys.executable, "-m", "assft", *args, "--out", str(tmp_path / "one")],
                            capture_output=True, text=True, env=env, timeout=240)
    assert single.returncode == 0, single.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                          "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), "-m", "assft", *args,
                          "--out", str(tmp_path / "two")], capture_output=True, text=True, env=env, timeout=240)
    assert two.returncode == 0, two.stderr[-3000:]
    one_meta, two_meta = (json.loads((tmp_path / d / "selection.json").read_text()) for d in ("one", "two"))
    assert two_meta["selected"] == one_meta["selected"] and len(one_meta["selected"]) == 3
    one_rows, two_rows = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert set(two_rows) == set(one_rows) and len(one_rows) == 7  # every volume, once
    for case_id, row in one_rows.items():
        for column in ("Q", "KD", "ASD"):
            assert float(two_rows[case_id][column]) == pytest.approx(float(row[column]), rel=1e-5, abs=1e-7)
    assert two.stdout.count("scored 7 volumes") == 1  # rank 0 alone prints (and writes)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_campaign_next_under_torchrun_writes_the_round_once(tmp_path: Path) -> None:
    """Round 0 (AdaBN) and the query under 2 ranks: the same picks as one process, one ledger round, no lock clash."""
    import shutil

    data = make_phantom_dataset(tmp_path / "pool", 6, shape=(16, 16, 16))
    model = _tiny_model(tmp_path / "model.pt")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    init = subprocess.run([sys.executable, "-m", "assft", "campaign", "init", "--model", str(model), "--images", str(data),
                           "--out", str(tmp_path / "one"), "--budget", "2", "--rounds", "1", "--adapt", "adabn",
                           "--no-figures"], capture_output=True, text=True, env=env, timeout=120)
    assert init.returncode == 0, init.stderr
    shutil.copytree(tmp_path / "one", tmp_path / "two")
    single = subprocess.run([sys.executable, "-m", "assft", "campaign", "next", str(tmp_path / "one")],
                            capture_output=True, text=True, env=env, timeout=240)
    assert single.returncode == 0, single.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
                          "127.0.0.1", "--master-port", str(_free_port()), "-m", "assft", "campaign", "next",
                          str(tmp_path / "two")], capture_output=True, text=True, env=env, timeout=240)
    assert two.returncode == 0, two.stderr[-3000:]
    one_ledger, two_ledger = (json.loads((tmp_path / d / "ledger.json").read_text()) for d in ("one", "two"))
    assert len(two_ledger["rounds"]) == 1 and two_ledger["rounds"][0]["status"] == "queried"
    assert two_ledger["rounds"][0]["selected"] == one_ledger["rounds"][0]["selected"]
    assert two_ledger["meta"]["adaptation"]["method"] == "adabn"
    assert two.stdout.count("import-labels") == 1  # rank 0 alone prints (the table wraps in a narrow terminal)
