"""θ0 follows provenance: an adapted (or fine-tuned) checkpoint names the pre-trained model it came from, and the
query measures KD against it unless --pretrained says otherwise."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from assft.config import ModelConfig, TrainConfig
from assft.errors import CheckpointError
from assft.query.config import QueryConfig

QUERY = QueryConfig(strategy="assft", budget="3")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Eight 16^3 phantoms (MR: a pool unlike the CT source), a 3-step CT source UNet and its AdaBN adaptation."""
    from assft.adapt import AdaptConfig, adapt_checkpoint
    from assft.data import load_dataset
    from assft.data.synthetic import make_phantom_dataset
    from assft.pretrain.supervised import train_supervised

    root = tmp_path_factory.mktemp("theta0")
    source_data = load_dataset(make_phantom_dataset(root / "ct", 3, shape=(16, 16, 16), seed=1))
    pool = load_dataset(make_phantom_dataset(root / "mr", 8, shape=(16, 16, 16), seed=2, contrast="mr"))
    model = train_supervised(source_data, root / "src",
                             model_config=ModelConfig(out_channels=5, params={"channels": (4, 8, 16), "strides": (2, 2)}),
                             train_config=TrainConfig(steps=3, batch_size=2, patch_size=(16, 16, 16))).best
    adapted = adapt_checkpoint(model, pool, AdaptConfig(method="adabn"), root / "adapted.pt").checkpoint
    return {"root": root, "pool": pool, "source": model, "adapted": adapted}


def test_the_adapted_checkpoint_names_its_theta0(models: dict) -> None:
    from assft.models.checkpoint import load_checkpoint, recorded_theta0

    assert recorded_theta0(load_checkpoint(models["adapted"])) == str(models["source"])
    assert recorded_theta0(load_checkpoint(models["source"])) is None  # a trained model is its own θ0


def test_query_on_an_adapted_checkpoint_measures_kd_against_the_source(models: dict) -> None:
    from assft.query.api import run_query

    default = run_query(models["adapted"], models["pool"], QUERY)
    explicit = run_query(models["adapted"], models["pool"], QUERY, pretrained=models["source"])
    old = run_query(models["adapted"], models["pool"], QUERY, pretrained=models["adapted"])  # θ = θ0: the old default
    assert default.selected == explicit.selected
    assert default.selection.columns == explicit.selection.columns
    assert default.provenance["theta0_from"] == "provenance" and explicit.provenance["theta0_from"] == "pretrained"
    assert default.provenance["pretrained"] == str(models["source"]) and old.provenance["theta_equals_theta0"]
    assert default.selection.columns != old.selection.columns
    assert default.selected != old.selected


def test_a_missing_theta0_is_an_error_naming_the_file_and_the_fix(models: dict, tmp_path: Path) -> None:
    from assft.query.api import run_query

    gone = tmp_path / "gone.pt"
    shutil.copy(models["source"], gone)
    from assft.adapt import AdaptConfig, adapt_checkpoint

    orphan = adapt_checkpoint(gone, models["pool"], AdaptConfig(method="adabn"), tmp_path / "orphan.pt").checkpoint
    gone.unlink()
    with pytest.raises(CheckpointError, match="gone.pt") as info:
        run_query(orphan, models["pool"], QUERY)
    assert "--pretrained" in (info.value.fix or "")
    assert run_query(orphan, models["pool"], QUERY, pretrained=models["source"]).selected  # the override works


def test_finetuning_an_adapted_checkpoint_keeps_the_same_theta0(models: dict, tmp_path: Path) -> None:
    from assft.finetune.config import FinetuneConfig
    from assft.finetune.ssft import run_ssft
    from assft.models.checkpoint import load_checkpoint, recorded_theta0

    pool = models["pool"]
    config = FinetuneConfig.model_validate({"ssft": False, "train": {"steps": 1, "batch_size": 1,
                                                                      "patch_size": [16, 16, 16]}})
    result = run_ssft(models["adapted"], pool.subset(pool.case_ids[:1]), pool.subset(pool.case_ids[1:]).without_labels(),
                      tmp_path / "ft", config)
    assert recorded_theta0(load_checkpoint(result.checkpoint)) == str(models["source"])


def test_cli_query_prints_which_theta0_it_measured_against(models: dict, tmp_path: Path) -> None:
    script = shutil.which("assft")
    base = [script] if script else [sys.executable, "-c", "from assft.cli.app import main; main()"]
    out = subprocess.run([*base, "--threads", "1", "query", "--model", str(models["adapted"]), "--images",
                          str(models["pool"].root), "--budget", "3", "--out", str(tmp_path / "q")],
                         capture_output=True, text=True, encoding="utf-8")
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert f"KD measured against θ0 = {models['source']} (from the checkpoint's provenance)" in text


def test_finetuning_an_ssl_checkpoint_on_a_folder_without_classes_names_data_init(models: dict, tmp_path: Path) -> None:
    from assft.data import load_dataset
    from assft.errors import DataError
    from assft.finetune.ssft import run_ssft
    from assft.models.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(models["source"])
    ckpt.kind = "ssl-only"
    ssl = save_checkpoint(tmp_path / "ssl.pt", ckpt)
    plain = shutil.copytree(models["pool"].root, tmp_path / "plain")
    (plain / "dataset.json").unlink()
    spec = load_dataset(plain)
    with pytest.raises(DataError, match="names no classes") as info:
        run_ssft(ssl, spec, spec.without_labels(), tmp_path / "ft")
    assert f"assft data init {plain} --classes" in (info.value.fix or "")
    assert not (tmp_path / "ft").exists()
