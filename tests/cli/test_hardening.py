"""Hardening that is not a plain error exit: what loads, what is kept, what is stored (known answers)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from assft.config import ModelConfig, TrainConfig, parse_config
from assft.data.layout import load_dataset
from assft.errors import CampaignError, CheckpointError, ConfigError, DataError

ASSFT = shutil.which("assft")
ENTRY = [ASSFT] if ASSFT else [sys.executable, "-c", "from assft.cli.app import main; main()"]
TINY = ModelConfig(out_channels=5, params={"channels": (4, 8, 16), "strides": (2, 2)})


def run_cli(*args: str, cwd: Path | None = None, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """The real console entry point (after `prefix`, a command that runs it, e.g. setpriv)."""
    env = {**os.environ, "ASSFT_THREADS": "1", "COLUMNS": "400"}
    return subprocess.run([*prefix, *ENTRY, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny supervised checkpoint for the phantom labels."""
    from assft.data.synthetic import PHANTOM_LABELS
    from assft.models import build_model, make_checkpoint, save_checkpoint

    path = tmp_path_factory.mktemp("model") / "model.pt"
    return save_checkpoint(path, make_checkpoint(build_model(TINY), TINY, PHANTOM_LABELS,
                                                 metadata={"train_config": {"patch_size": [16, 16, 16]}}))


def test_data_check_exit_codes_through_the_console_script(phantom_dir: Path, tmp_path: Path) -> None:
    assert run_cli("data", "check", phantom_dir).returncode == 0
    broken = Path(shutil.copytree(phantom_dir, tmp_path / "broken"))
    (broken / "labelsTr" / "phantom_002.nii.gz").unlink()
    result = run_cli("data", "check", broken)
    assert result.returncode == 1 and "listed label file is missing" in result.stdout


def test_symlinked_image_keeps_its_own_case_id(phantom_dir: Path, tmp_path: Path) -> None:
    data = Path(shutil.copytree(phantom_dir, tmp_path / "d"))
    elsewhere = tmp_path / "store" / "scan_7.nii.gz"
    elsewhere.parent.mkdir()
    (data / "imagesTr" / "phantom_000.nii.gz").rename(elsewhere)
    (data / "imagesTr" / "phantom_000.nii.gz").symlink_to(elsewhere)  # a deliberate link, placed in the dataset
    spec = load_dataset(data)
    case = spec.get("phantom_000")  # not "scan_7": the id comes from the entry, never the link's target
    assert case.image_path == data / "imagesTr" / "phantom_000.nii.gz"
    assert case.label_path == data / "labelsTr" / "phantom_000.nii.gz"
    assert "scan_7" not in spec.case_ids


def test_outside_root_needs_the_opt_in(phantom_dir: Path, tmp_path: Path) -> None:
    data = Path(shutil.copytree(phantom_dir, tmp_path / "d"))
    shutil.move(data / "imagesTr" / "phantom_000.nii.gz", tmp_path / "shared.nii.gz")
    meta = json.loads((data / "dataset.json").read_text())
    meta["training"][0]["image"] = "../shared.nii.gz"
    (data / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="outside the dataset folder"):
        load_dataset(data)
    spec = load_dataset(data, allow_outside_root=True)
    assert spec.cases[0].image_path == tmp_path / "shared.nii.gz" and spec.cases[0].case_id == "shared"
    assert run_cli("--allow-outside-root", "data", "check", data).returncode == 0


def test_voxel_cap_is_read_from_the_header_before_the_data(phantom_dir: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from assft.data.io import read_header, read_volume

    image = phantom_dir / "imagesTr" / "phantom_000.nii.gz"
    monkeypatch.setenv("ASSFT_MAX_VOXELS", str(16**3))
    assert read_volume(image)[0].shape == (16, 16, 16)  # at the cap: fine
    monkeypatch.setenv("ASSFT_MAX_VOXELS", str(16**3 - 1))
    with pytest.raises(DataError, match="4,096 voxels"):
        read_volume(image)
    monkeypatch.delenv("ASSFT_MAX_VOXELS")
    header = nib.Nifti1Header()
    header.set_data_shape((513, 512, 512))  # one slice over the default 512^3, and no data at all in the file
    with open(tmp_path / "big.nii", "wb") as fh:
        header.write_to(fh)
    for reader in (read_volume, read_header):
        with pytest.raises(DataError, match="over the limit of 134,217,728"):
            reader(tmp_path / "big.nii")


def test_labels_are_validated_before_training(phantom_dir: Path, tmp_path: Path) -> None:
    from assft.data.preprocess import load_case

    data = Path(shutil.copytree(phantom_dir, tmp_path / "d"))
    path = data / "labelsTr" / "phantom_000.nii.gz"
    img = nib.load(path)
    label = np.asarray(img.dataobj)
    case = load_dataset(data).get("phantom_000")
    nib.save(nib.Nifti1Image(label[..., None], img.affine), path)  # (D, H, W, 1) is one map: accepted
    assert load_case(case).label.shape == (16, 16, 16)  # type: ignore[union-attr]
    nib.save(nib.Nifti1Image(label.astype(np.float32) * 1.0, img.affine), path)  # integral floats: accepted
    assert np.array_equal(load_case(case).label, label)
    nib.save(nib.Nifti1Image(label.astype(np.float32) + 0.5, img.affine), path)
    with pytest.raises(DataError, match="non-integer"):
        load_case(case)


def test_train_config_rejects_nothing_to_do() -> None:
    for field, value in (("steps", 0), ("steps", -3), ("batch_size", 0), ("lr", 0.0), ("patch_size", (0, 16, 16))):
        with pytest.raises(ConfigError, match=field):
            parse_config({field: value}, TrainConfig)
    assert parse_config({"steps": 1, "batch_size": 1}, TrainConfig).steps == 1  # type: ignore[attr-defined]


def test_head_mismatch_is_an_error_unless_a_new_head_is_asked_for(model: Path, tmp_path: Path) -> None:
    import torch

    from assft.models import build_from_checkpoint

    raw = torch.load(model, weights_only=True)
    raw["model_config"]["out_channels"] = 3  # the config says 3 classes, the stored head has 5
    torch.save(raw, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="segmentation head"):
        build_from_checkpoint(tmp_path / "m.pt")
    net, ckpt, report = build_from_checkpoint(tmp_path / "m.pt", out_channels=2)  # a new head: fine
    assert ckpt.model_config.out_channels == 2 and report.mismatched
    net, _, _ = build_from_checkpoint(model)  # a consistent checkpoint loads every key
    assert torch.equal(net.state_dict()[next(iter(raw["state_dict"]))], next(iter(raw["state_dict"].values())))


def test_predict_refuses_to_write_into_its_inputs(phantom_dir: Path, model: Path) -> None:
    from assft.config import InferenceConfig, PreprocessConfig
    from assft.inference.predict import predict_to_folder
    from assft.models import build_from_checkpoint

    net, _, _ = build_from_checkpoint(model)
    cases = load_dataset(phantom_dir).cases[:1]
    before = (phantom_dir / "labelsTr" / "phantom_000.nii.gz").read_bytes()
    with pytest.raises(ConfigError, match="holds the input"):
        predict_to_folder(net, cases, PreprocessConfig(), InferenceConfig(roi_size=(16, 16, 16)),
                          phantom_dir / "labelsTr")
    assert (phantom_dir / "labelsTr" / "phantom_000.nii.gz").read_bytes() == before


def test_unwritable_output_fails_before_any_work(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    # Root writes anywhere through CAP_DAC_OVERRIDE: drop it (util-linux's setpriv), so CI, which runs as root,
    # checks the same refusal a user gets.
    prefix: tuple[str, ...] = ()
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "running as root needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE for this test"
        prefix = (setpriv, "--bounding-set=-dac_override,-dac_read_search")
    try:
        result = run_cli("data", "phantoms", "--out", locked / "p", "--n", "1", "--size", "8", prefix=prefix)
        assert result.returncode == 2 and "permission denied" in result.stderr and not (locked / "p").exists()
    finally:
        locked.chmod(0o700)


def test_campaign_init_keeps_the_config_file_and_stores_absolute_paths(phantom_dir: Path, model: Path,
                                                                       tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from assft.campaign.config import load_campaign_config
    from assft.campaign.campaign import load_pool
    from assft.cli.app import app

    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(phantom_dir, work / "pool")
    shutil.copy(model, work / "m.pt")
    (work / "c.yaml").write_text(yaml.safe_dump({"strategy": "random", "rounds": 2, "seed": 7, "budget": "4"}))
    monkeypatch.chdir(work)
    runner = CliRunner()
    result = runner.invoke(app, ["campaign", "init", "--model", "m.pt", "--images", "pool", "--out", "c1",
                                 "--config", "c.yaml"])
    assert result.exit_code == 0, result.output
    config = load_campaign_config(work / "c1")
    assert (config.strategy, config.rounds, config.seed, config.budget) == ("random", 2, 7, "4")  # the file's values
    assert config.model == str(work / "m.pt") and config.pool == str(work / "pool")
    result = runner.invoke(app, ["campaign", "init", "--model", "m.pt", "--images", "pool", "--out", "c2",
                                 "--config", "c.yaml", "--rounds", "4", "--seed", "1"])
    assert result.exit_code == 0, result.output
    config = load_campaign_config(work / "c2")
    assert (config.strategy, config.rounds, config.seed) == ("random", 4, 1)  # given options win over the file
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "pool").mkdir(parents=True)  # a folder with the same name must not be picked up
    monkeypatch.chdir(elsewhere)
    assert load_pool(load_campaign_config(work / "c1")).root == work / "pool"


def test_mistyped_campaign_folder_is_not_created(tmp_path: Path) -> None:
    from assft.campaign.engine import next_round
    from assft.campaign.ledger import Ledger

    with pytest.raises(ConfigError, match="not a campaign directory"):
        next_round(tmp_path / "campx")
    assert not (tmp_path / "campx").exists()
    (tmp_path / "c").mkdir()
    for text, problem in (("[]", "JSON list"), ('{"meta": {}, "rounds": [{"round": 1}]}', "status"),
                          ('{"meta": {}, "rounds": [{"round": 0, "status": "queried"}]}',
                           r"rounds\[0\]\.round: .*greater than or equal to 1"),
                          ('{"rounds": []}', "meta: Field required")):
        (tmp_path / "c" / "ledger.json").write_text(text)
        with pytest.raises(CampaignError, match=problem):
            Ledger.load(tmp_path / "c")
