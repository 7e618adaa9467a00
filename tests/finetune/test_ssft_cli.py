"""`assft finetune` / `assft plot-pseudo-labels` smoke tests (CliRunner) and the Figure-5 plot."""

from __future__ import annotations

import json
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
                                      "--images", str(phantom_dir), "--out", str(out), "--reliability", "both",
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
    result = CliRunner().invoke(app, ["finetune", "--model", str(tiny_checkpoint), "--data", str(phantom_dir),
                                      "--images", str(phantom_dir), "--out", str(out), "--no-ssft", *TINY])
    assert result.exit_code == 0, result.output
    assert (out / "finetuned.pt").is_file() and not (out / "pseudo_labels.csv").exists()


def test_finetune_cli_option_errors(phantom_dir: Path, tmp_path: Path, tiny_checkpoint: Path) -> None:
    base = ["finetune", "--model", str(tiny_checkpoint), "--images", str(phantom_dir), "--out", str(tmp_path / "o")]
    neither = CliRunner().invoke(app, base)
    assert isinstance(neither.exception, ConfigError) and "exactly one of --data" in str(neither.exception)
    clash = CliRunner().invoke(app, [*base, "--data", str(phantom_dir), "--no-ssft", "--reliability", "all"])
    assert isinstance(clash.exception, ConfigError) and "contradicts" in str(clash.exception)
    bad = CliRunner().invoke(app, [*base, "--data", str(phantom_dir), "--reliability", "sometimes"])
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
    from assft.data.splits import read_case_ids

    ids = tmp_path / "ids.txt"
    ids.write_text("a  # first\n\n# comment\nb\n")
    assert read_case_ids(ids) == ["a", "b"]
    ids.write_text("\n# nothing\n")
    with pytest.raises(DataError, match="no case ids"):
        read_case_ids(ids)
    assert read_case_ids(ids, allow_empty=True) == []
    with pytest.raises(DataError, match="not found"):
        read_case_ids(tmp_path / "missing.txt")


def test_the_ssft_switch_is_reconciled_by_the_config_not_the_cli(tmp_path: Path) -> None:
    from assft.cli.finetune import build_config
    from assft.finetune.config import FinetuneConfig

    assert FinetuneConfig.model_validate({"ssft": False}).pseudo.reliability == "none"
    assert FinetuneConfig.model_validate({"ssft": True}).pseudo.reliability == "both"
    on = FinetuneConfig.model_validate({"ssft": True, "pseudo": {"reliability": "confidence"}})
    assert on.pseudo.reliability == "confidence"
    for contradiction in ({"ssft": True, "pseudo": {"reliability": "none"}},
                          {"ssft": False, "pseudo": {"reliability": "both"}}):
        with pytest.raises(ValueError, match="contradicts"):
            FinetuneConfig.model_validate(contradiction)
    # the command-line switch overrides the file's reliability
    off = tmp_path / "off.yaml"
    off.write_text("pseudo: {reliability: none}\n")
    options = dict(reliability=None, qc=None, qd=None, mask_threshold=None, restart_from_pretrained=None, steps=None,
                   ssft_steps=None, lr=None, batch_size=None, patch=None, roi=None, seed=None, true_dice=None)
    assert build_config(off, ssft=True, **options).pseudo.reliability == "both"
    assert build_config(None, ssft=False, **options).pseudo.reliability == "none"
