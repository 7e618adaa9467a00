"""CLI smoke tests (typer CliRunner) for data, domains, train, predict and evaluate on tiny generated data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assft.cli.app import app

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def test_help_lists_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("train", "predict", "evaluate", "data", "domains"):
        assert command in result.output


def test_data_check_ok_and_problem(phantom_dir: Path, tmp_path: Path) -> None:
    result = invoke("data", "check", phantom_dir)
    assert result.exit_code == 0, result.output
    assert "6 (6 labeled)" in result.output and "problems" in result.output
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(phantom_dir, broken)
    (broken / "labelsTr" / "phantom_001.nii.gz").unlink()
    result = invoke("data", "check", broken)
    assert result.exit_code == 1 and "listed label file is missing" in result.output


def test_data_split_and_phantoms(tmp_path: Path) -> None:
    result = invoke("data", "phantoms", "--out", tmp_path / "ph", "--n", 4, "--size", 16, "--contrast", "mr")
    assert result.exit_code == 0, result.output
    result = invoke("data", "split", tmp_path / "ph", "--out", tmp_path / "split.json", "--fractions", "a=0.5,b=0.5")
    assert result.exit_code == 0, result.output
    splits = json.loads((tmp_path / "split.json").read_text())["splits"]
    assert len(splits["a"]) == 2 and len(splits["b"]) == 2


def test_domains_list_and_apply(phantom_dir: Path, tmp_path: Path) -> None:
    result = invoke("domains", "list")
    assert result.exit_code == 0 and "t2like" in result.output and "mixed" in result.output
    result = invoke("domains", "apply", "--domain", "bias", "--data", phantom_dir, "--out", tmp_path / "b", "--seed", 1)
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "b" / "dataset.json").read_text())
    assert meta["assft_provenance"]["domain"] == "bias"


def test_train_predict_evaluate(phantom_dir: Path, tmp_path: Path) -> None:
    result = invoke("data", "split", phantom_dir, "--out", tmp_path / "s.json", "--fractions", "train=4,test=2")
    assert result.exit_code == 0, result.output
    result = invoke("train", "--data", phantom_dir, "--split", tmp_path / "s.json", "--subset", "train",
                    "--val-subset", "test", "--out", tmp_path / "model", "--steps", 2, "--batch-size", 1,
                    "--patch", "16,16,16")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "model" / "best.pt").exists() and (tmp_path / "model" / "last.pt").exists()
    result = invoke("predict", "--model", tmp_path / "model" / "best.pt", "--images", phantom_dir,
                    "--out", tmp_path / "pred", "--split", tmp_path / "s.json", "--subset", "test")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "pred").glob("*.nii.gz"))) == 2
    result = invoke("evaluate", "--data", phantom_dir, "--split", tmp_path / "s.json", "--subset", "test",
                    "--model", tmp_path / "model" / "best.pt", "--out", tmp_path / "eval")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["n_cases"] == 2
    csv_lines = (tmp_path / "eval" / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("case_id,") and "dice_liver" in csv_lines[0] and len(csv_lines) == 3
    result = invoke("evaluate", "--data", phantom_dir, "--split", tmp_path / "s.json", "--subset", "test",
                    "--pred", tmp_path / "pred", "--out", tmp_path / "eval2")
    assert result.exit_code == 0, result.output
    # evaluating the written predictions is evaluating the model: the same Dice (a known answer, not a range)
    again = json.loads((tmp_path / "eval2" / "summary.json").read_text())
    assert again["mean_dice"]["mean"] == pytest.approx(summary["mean_dice"]["mean"], abs=1e-6)


@pytest.mark.parametrize("args,message", [
    (("train", "--data", "/nonexistent", "--out", "x"), "dataset folder not found"),
    (("evaluate", "--data", "/nonexistent", "--out", "x"), "exactly one of --model and --pred"),
    (("predict", "--model", "/nonexistent.pt", "--images", "/nonexistent", "--out", "x"), "checkpoint not found"),
])
def test_errors_are_one_clear_line(args: tuple[str, ...], message: str, capsys: pytest.CaptureFixture) -> None:
    import sys

    from assft.cli.app import main

    argv = sys.argv
    sys.argv = ["assft", *args]
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        sys.argv = argv
    out = capsys.readouterr().err  # errors go to stderr
    assert exit_info.value.code == 2
    assert message in out and "Traceback" not in out


def test_help_texts_read_defaults_from_the_config_classes() -> None:
    from assft.campaign.config import CampaignConfig
    from assft.cli.common import default_of
    from assft.finetune.config import FinetuneConfig
    from assft.query.config import QueryConfig

    assert default_of(FinetuneConfig, "train.lr") == "0.0005"  # the fine-tuning rate, not TrainConfig's 2e-3
    assert default_of(FinetuneConfig, "train.patch_size") == "40,56,40"
    assert default_of(FinetuneConfig, "pseudo.mask_threshold") == "none"
    assert default_of(FinetuneConfig, "record_true_dice") == "on"
    assert default_of(QueryConfig, "alpha") == "0.5" and default_of(CampaignConfig, "budget") == "20%"
