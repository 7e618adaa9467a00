"""`assft finetune` / `assft plot-pseudo-labels` smoke tests (CliRunner) and the Figure-5 plot."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from assft.cli.app import app
from assft.config import ModelConfig
from assft.data.synthetic import PHANTOM_LABELS
from assft.errors import ConfigError, DataError
from assft.finetune.pseudo_labels import PseudoLabelStats
from assft.models import build_model, make_checkpoint, save_checkpoint
from assft.reporting.pseudo_labels_plot import plot_pseudo_label_dice

TINY = ["--steps", "2", "--ssft-steps", "2", "--batch-size", "2", "--patch", "16", "--seed", "0"]


@pytest.fixture()
def tiny_checkpoint(tmp_path: Path) -> Path:
    config = ModelConfig(name="unet", out_channels=5, params={"channels": (4, 8, 16), "strides": (2, 2)})
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "src.pt", make_checkpoint(build_model(config), config, PHANTOM_LABELS))


def test_finetune_cli_with_labeled_ids(phantom_dir: Path, tmp_path: Path, tiny_checkpoint: Path) -> None:
    ids = tmp_path / "labeled.txt"
    ids.write_text("# labeled by the oracle\nphantom_000\nphantom_001\n\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["finetune", "--model", str(tiny_checkpoint), "--labeled-ids", str(ids),
                                      "--unlabeled", str(phantom_dir), "--out", str(out), "--reliability", "both",
                                      "--qc", "0.5", "--qd", "0.5", "--save-pseudo-labels", *TINY])
    assert result.exit_code == 0, result.output
    for name in ("finetuned.pt", "pseudo_labels.csv", "ssft_log.json", "pseudo_label_dice.png"):
        assert (out / name).is_file(), name
    assert "median true Dice of pseudo-labels" in result.output
    log = json.loads((out / "ssft_log.json").read_text())
    assert log["labeled_cases"] == ["phantom_000", "phantom_001"] and log["pool_size"] == 4
    assert log["finetune_config"]["train"]["steps"] == 2 and log["finetune_config"]["ssft_steps"] == 2

    plot = CliRunner().invoke(app, ["plot-pseudo-labels", str(out / "pseudo_labels.csv"),
                                    str(out / "pseudo_labels.csv"), "--out", str(tmp_path / "rounds.png")])
    assert plot.exit_code == 0, plot.output
    assert (tmp_path / "rounds.png").read_bytes()[:4] == b"\x89PNG"


def test_finetune_cli_no_ssft_with_labeled_folder(phantom_dir: Path, tmp_path: Path, tiny_checkpoint: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["finetune", "--model", str(tiny_checkpoint), "--labeled", str(phantom_dir),
                                      "--unlabeled", str(phantom_dir), "--out", str(out), "--no-ssft", *TINY])
    assert result.exit_code == 0, result.output
    assert (out / "finetuned.pt").is_file() and not (out / "pseudo_labels.csv").exists()


def test_finetune_cli_option_errors(phantom_dir: Path, tmp_path: Path, tiny_checkpoint: Path) -> None:
    base = ["finetune", "--model", str(tiny_checkpoint), "--unlabeled", str(phantom_dir), "--out", str(tmp_path)]
    neither = CliRunner().invoke(app, base)
    assert isinstance(neither.exception, ConfigError) and "exactly one of --labeled" in str(neither.exception)
    clash = CliRunner().invoke(app, [*base, "--labeled", str(phantom_dir), "--no-ssft", "--reliability", "all"])
    assert isinstance(clash.exception, ConfigError) and "contradicts" in str(clash.exception)
    bad = CliRunner().invoke(app, [*base, "--labeled", str(phantom_dir), "--reliability", "sometimes"])
    assert isinstance(bad.exception, ConfigError) and "pseudo.reliability" in str(bad.exception)


def test_plot_pseudo_label_dice_per_round(tmp_path: Path) -> None:
    round1 = [PseudoLabelStats(f"c{i}", 0.9, 0.1, 5, selected=i < 3, true_dice=0.5 + 0.1 * i) for i in range(5)]
    round2 = [{"case_id": "c0", "conf": 0.9, "sd": 0.1, "selected": "1", "true_dice": "0.9"},
              {"case_id": "c1", "conf": 0.5, "sd": 0.3, "selected": "0", "true_dice": "0.2"}]
    png = plot_pseudo_label_dice([round1, round2], tmp_path / "fig5.png")
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000
    single = plot_pseudo_label_dice(round1, tmp_path / "one.png", title="one round")
    assert single.is_file()
    with pytest.raises(DataError, match="no true Dice values"):
        plot_pseudo_label_dice([PseudoLabelStats("c0", 0.9, 0.1, 5, True)], tmp_path / "x.png")
    with pytest.raises(DataError, match="one name per table"):
        plot_pseudo_label_dice([round1, round2], tmp_path / "x.png", names=["only one"])


def test_read_case_ids_skips_comments_and_rejects_empty_files(tmp_path: Path) -> None:
    from assft.cli.finetune import read_case_ids

    ids = tmp_path / "ids.txt"
    ids.write_text("a  # first\n\n# comment\nb\n")
    assert read_case_ids(ids) == ["a", "b"]
    ids.write_text("\n# nothing\n")
    with pytest.raises(ConfigError, match="no case ids"):
        read_case_ids(ids)
