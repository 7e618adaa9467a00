"""A real (non-simulated) campaign through the console script on tiny phantoms: round 0 evaluated, pre-annotations
beside each pick, status and report showing source -> adapted -> round 1, and `campaign extend`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from assft.campaign.extend import extend_campaign
from assft.data.io import read_volume
from assft.errors import BudgetError

SCRIPT = shutil.which("assft")
ENTRY = [SCRIPT] if SCRIPT else [sys.executable, "-c", "from assft.cli.app import main; main()"]
TINY = {"finetune": {"train": {"steps": 2, "patch_size": [16, 16, 16]}, "ssft_steps": 2},
        "inference": {"roi_size": [16, 16, 16], "channels_last": False}}


def assft(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    """Run the console script with one thread; with `ok`, fail the test on a non-zero exit."""
    done = subprocess.run([*ENTRY, "--threads", "1", *args], capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "COLUMNS": "200"})
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 6-volume pool, a 3-volume test set (other phantoms) and a 3-step source model."""
    from assft.config import ModelConfig, TrainConfig
    from assft.data import load_dataset
    from assft.data.synthetic import make_phantom_dataset
    from assft.pretrain.supervised import train_supervised

    root = tmp_path_factory.mktemp("user")
    pool = make_phantom_dataset(root / "pool", 6, shape=(16, 16, 16), seed=0)
    test = make_phantom_dataset(root / "test", 3, shape=(16, 16, 16), seed=1, prefix="test")
    model = train_supervised(load_dataset(pool).subset(["phantom_000", "phantom_001"]), root / "src",
                             model_config=ModelConfig(out_channels=5, params={"channels": (4, 8, 16),
                                                                              "strides": (2, 2)}),
                             train_config=TrainConfig(steps=3, batch_size=2, patch_size=(16, 16, 16))).best
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    return {"root": root, "pool": pool, "test": test, "model": model, "config": config}


@pytest.mark.slow
def test_a_real_campaign_shows_before_and_after_and_hands_out_pre_annotations(data: dict, tmp_path: Path) -> None:
    camp = tmp_path / "camp"
    assft("campaign", "init", "--model", str(data["model"]), "--images", str(data["pool"]), "--test", str(data["test"]),
          "--out", str(camp), "--budget", "2", "--rounds", "1", "--strategy", "random", "--adapt", "adabn",
          "--config", str(data["config"]), "--upper-model", str(data["model"].parent / "last.pt"))
    step = assft("campaign", "next", str(camp))
    assert "round 0 on the test set: source model Dice" in step.stdout
    meta = json.loads((camp / "ledger.json").read_text())["meta"]
    assert meta["unadapted_metrics"]["mean_dice"] is not None and meta["baseline_metrics"]["mean_dice"] is not None
    assert meta["upper_metrics"]["mean_dice"] is not None  # the reference model the gap closed is measured to

    # pre-annotations: the current model's label map on the image's own grid, as `assft predict` writes it
    record = json.loads((camp / "ledger.json").read_text())["rounds"][0]
    folder = camp / "rounds" / "r001" / "to_annotate" / "pre_annotations"
    predicted = tmp_path / "predicted"
    assft("predict", "--model", str(camp / record["model"]), "--images", str(data["pool"]), "--out", str(predicted),
          "--roi", "16,16,16")  # the current model: round 0's adapted one
    for case_id in record["selected"]:
        pre, pre_affine = read_volume(folder / f"{case_id}.nii.gz")
        image, image_affine = read_volume(data["pool"] / "imagesTr" / f"{case_id}.nii.gz")
        assert pre.shape == image.shape and np.allclose(pre_affine, image_affine)
        assert np.array_equal(pre, read_volume(predicted / f"{case_id}.nii.gz")[0])
    assert "pre-annotations" in step.stdout

    labels = tmp_path / "labels"  # the annotator's corrected maps (here the truth), imported as before
    labels.mkdir()
    for case_id in record["selected"]:
        shutil.copyfile(data["pool"] / "labelsTr" / f"{case_id}.nii.gz", labels / f"{case_id}.nii.gz")
    assft("campaign", "import-labels", str(camp), "--labels", str(labels))
    assft("campaign", "finetune", str(camp))
    status = assft("campaign", "status", str(camp)).stdout
    for row in ("source model", "adapted (adabn)", "round 1"):
        assert row in status
    assert "AUBC 0." in status and "upper reference Dice" in status and "extend" in status

    report = assft("report", str(camp), "--out", str(tmp_path / "report"))
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    aubc = next(iter(next(iter(summary["aubc"].values())).values()))
    assert aubc["mean"] is not None and aubc["n"] == 1, report.stdout

    # extend: a spent plan gets one more round of one volume; a budget beyond the pool changes nothing
    before = {p: (camp / p).read_bytes() for p in ("campaign.yaml", "ledger.json")}
    with pytest.raises(BudgetError, match="4 pool volumes are not in the plan yet"):
        extend_campaign(camp, 1, "99")
    assert {p: (camp / p).read_bytes() for p in before} == before
    more = assft("campaign", "extend", str(camp), "--rounds", "1", "--budget", "1")
    assert "3 volumes over 2 rounds" in more.stdout
    assert yaml.safe_load((camp / "campaign.yaml").read_text())["extensions"] == [{"rounds": 1, "budget": "1"}]
    second = assft("campaign", "next", str(camp))
    assert "round 2" in second.stdout
