"""CLI smoke tests (typer CliRunner): `assft query`, `assft fingerprint`, `assft list-strategies`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from assft.cli.app import app
from assft.config import ModelConfig
from assft.data.synthetic import PHANTOM_LABELS, make_phantom_dataset
from assft.errors import BudgetError
from assft.models import build_model, load_checkpoint, make_checkpoint, save_checkpoint

runner = CliRunner()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Six 16^3 phantoms and a tiny BatchNorm UNet checkpoint (and an InstanceNorm one)."""
    root = tmp_path_factory.mktemp("query_cli")
    data = make_phantom_dataset(root / "pool", 6, shape=(16, 16, 16))
    paths = []
    for name, norm in (("model.pt", "batch"), ("instance.pt", "instance")):
        config = ModelConfig(out_channels=5, params={"channels": (4, 8, 16), "strides": (2, 2), "norm": norm})
        torch.manual_seed(0)
        ckpt = make_checkpoint(build_model(config), config, PHANTOM_LABELS,
                               metadata={"train_config": {"patch_size": [16, 16, 16]}})
        paths.append(save_checkpoint(root / name, ckpt))
    return data, paths[0], paths[1]


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "selection.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("strategy", ["assft", "random"])
def test_query_writes_selection_csv_and_json(workspace, tmp_path: Path, strategy: str) -> None:
    data, model, _ = workspace
    out = tmp_path / strategy
    result = invoke("query", "--model", model, "--images", data, "--budget", 2, "--strategy", strategy,
                    "--out", out, "--seed", 3)
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    assert list(rows[0])[:8] == ["case_id", "rank", "selected", "Q", "DKD", "KD", "Div", "ASD"]
    assert len(rows) == 6 and [r["rank"] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    assert [r["selected"] for r in rows] == ["1", "1", "0", "0", "0", "0"]
    assert len({r["case_id"] for r in rows}) == 6
    meta = json.loads((out / "selection.json").read_text())
    assert meta["seed"] == 3 and meta["budget"] == 2 and meta["config"]["strategy"] == strategy
    assert {"assft", "torch", "monai"} <= set(meta["versions"]) and "total_s" in meta["timings"]
    assert [s["case_id"] for s in meta["selected"]] == [r["case_id"] for r in rows[:2]]
    for row in rows[:2]:
        assert row["case_id"] in result.output
    if strategy == "assft":
        assert all(r["Q"] and r["DKD"] and r["KD"] and r["Div"] and r["ASD"] for r in rows)
        rationale = meta["selected"][0]["rationale"]  # also printed (wrapped) in the table
        assert "pre-training (KD" in rationale and "(Div" in rationale and "foreground (ASD" in rationale
        assert meta["config"]["alpha"] == 0.5 and meta["provenance"]["kd_source"] == "running_stats"
        assert "KD source: running_stats" in result.output  # the table's title says which KD it used
    else:
        assert all(r["Q"] == "" for r in rows) and meta["selected"][0]["rationale"] == "uniform random draw"
        again = tmp_path / "again"
        invoke("query", "--model", model, "--images", data, "--budget", 2, "--strategy", strategy, "--out", again,
               "--seed", 3)
        assert _rows(again) == rows  # same seed, same selection


def test_query_options_labeled_ids_and_errors(workspace, tmp_path: Path) -> None:
    data, model, _ = workspace
    ids = tmp_path / "labeled.txt"
    ids.write_text("phantom_001\n# a comment\nphantom_004\n")
    out = tmp_path / "out"
    result = invoke("query", "--model", model, "--images", data, "--budget", "50%", "--labeled-ids", ids,
                    "--alpha", 0.2, "--dkd-combine", "sum", "--asd-reduce", "mean", "--out", out)
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    assert len(rows) == 4 and {"phantom_001", "phantom_004"}.isdisjoint(r["case_id"] for r in rows)
    assert sum(r["selected"] == "1" for r in rows) == 2  # 50 % of the 4 candidates
    config = json.loads((out / "selection.json").read_text())["config"]
    assert (config["alpha"], config["kd"]["combine"], config["asd"]["reduce"]) == (0.2, "sum", "mean")
    result = invoke("query", "--model", model, "--images", data, "--budget", 5, "--labeled-ids", ids, "--out", out)
    assert isinstance(result.exception, BudgetError) and "budget 5" in str(result.exception) \
        and "pool of 4" in str(result.exception)


def test_fingerprint_command_and_query_with_it(workspace, tmp_path: Path) -> None:
    data, _, instance = workspace
    fp = tmp_path / "fp.json"
    attached = tmp_path / "with_fp.pt"
    result = invoke("fingerprint", "--model", instance, "--images", data, "--out", fp, "--attach-to", attached,
                    "--limit", 3)
    assert result.exit_code == 0, result.output
    saved = json.loads(fp.read_text())
    assert saved["format"] == "assft-fingerprint" and saved["metadata"]["n_cases"] == 3
    layer = next(iter(saved["layers"].values()))
    assert len(layer["mean"]) == len(layer["var"]) and all(v >= 0 for v in layer["var"])
    assert load_checkpoint(attached).fingerprint == saved["layers"]
    out = tmp_path / "q"
    result = invoke("query", "--model", instance, "--fingerprint", fp, "--images", data, "--budget", 1,
                    "--strategy", "dkd", "--out", out)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "selection.json").read_text())["provenance"]["kd_source"].startswith("fingerprint:")


def test_list_strategies() -> None:
    result = invoke("list-strategies")
    assert result.exit_code == 0
    for name in ("assft", "dkd", "kd", "asd", "random", "fg-random", "entropy", "bald", "coreset", "badge",
                 "typiclust"):
        assert name in result.output
