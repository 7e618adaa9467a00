"""A campaign starts from the validated fine-tuning recipe (40 steps a round, batch 2, lr 5e-4, BatchNorm from the
pool), and `campaign init` / `campaign finetune` change it without editing YAML (through the console script)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from assft.campaign.config import CampaignConfig, load_campaign_config, recipe_finetune, with_finetune_steps
from assft.config import ModelConfig
from assft.data.synthetic import PHANTOM_LABELS
from assft.errors import ConfigError
from assft.models import build_model, make_checkpoint, save_checkpoint

SCRIPT = shutil.which("assft")
ENTRY = [SCRIPT] if SCRIPT else [sys.executable, "-c", "from assft.cli.app import main; main()"]


def assft(*args: str) -> subprocess.CompletedProcess:
    """Run the console script with one thread."""
    return subprocess.run([*ENTRY, "--threads", "1", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny supervised checkpoint (init only reads it)."""
    config = ModelConfig(name="unet", out_channels=5, params={"channels": (4, 8, 16), "strides": (2, 2)})
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("m") / "m.pt",
                           make_checkpoint(build_model(config), config, PHANTOM_LABELS))


def _finetune(campaign: Path) -> dict:
    return yaml.safe_load((campaign / "campaign.yaml").read_text())["finetune"]


@pytest.mark.slow
def test_campaign_init_writes_the_validated_recipe(model: Path, phantom_dir: Path, tmp_path: Path) -> None:
    init = assft("campaign", "init", "--model", str(model), "--images", str(phantom_dir), "--out", str(tmp_path / "c"),
                 "--budget", "2", "--rounds", "2")
    assert init.returncode == 0, init.stderr
    written = _finetune(tmp_path / "c")
    assert written["steps_per_round"] == 40 and written["train"]["batch_size"] == 2
    assert written["train"]["lr"] == 5e-4 and written["bn_stats"] == "pool"
    assert load_campaign_config(tmp_path / "c").finetune.stage_steps() == (20, 20)  # SSFT: half and half
    before = (tmp_path / "c" / "campaign.yaml").read_text()
    early = assft("campaign", "finetune", str(tmp_path / "c"), "--steps-per-round", "80")  # no round yet
    assert early.returncode == 2 and "no round has started" in early.stdout + early.stderr
    assert (tmp_path / "c" / "campaign.yaml").read_text() == before  # a refused step changes nothing

    given = assft("campaign", "init", "--model", str(model), "--images", str(phantom_dir), "--out",
                  str(tmp_path / "d"), "--budget", "2", "--rounds", "2", "--steps-per-round", "12", "--lr", "1e-4")
    assert given.returncode == 0, given.stderr
    written = _finetune(tmp_path / "d")
    assert written["steps_per_round"] == 12 and written["train"]["lr"] == 1e-4 and written["train"]["batch_size"] == 2


def test_a_config_file_that_states_its_steps_keeps_them(model: Path, phantom_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"finetune": {"train": {"steps": 7, "batch_size": 1}, "ssft_steps": 3}}))
    init = assft("campaign", "init", "--model", str(model), "--images", str(phantom_dir), "--out", str(tmp_path / "c"),
                 "--budget", "2", "--rounds", "2", "--config", str(config))
    assert init.returncode == 0, init.stderr
    loaded = load_campaign_config(tmp_path / "c").finetune
    assert loaded.stage_steps() == (7, 3) and loaded.steps_per_round is None and loaded.train.batch_size == 1
    assert loaded.train.lr == 5e-4  # the recipe fills what the file leaves out


def test_a_bad_step_count_is_one_line_and_writes_nothing(model: Path, phantom_dir: Path, tmp_path: Path) -> None:
    bad = assft("campaign", "init", "--model", str(model), "--images", str(phantom_dir), "--out", str(tmp_path / "c"),
                "--steps-per-round", "0")
    assert bad.returncode == 2 and "--steps-per-round" in bad.stdout + bad.stderr
    assert not (tmp_path / "c").exists()


def test_recipe_and_step_changes_known_answers() -> None:
    assert recipe_finetune() == {"steps_per_round": 40, "bn_stats": "pool", "train": {"batch_size": 2, "lr": 5e-4}}
    assert "steps_per_round" not in recipe_finetune({"train": {"steps": 5}})
    assert recipe_finetune({"train": {"batch_size": 8}})["train"] == {"batch_size": 8, "lr": 5e-4}
    old = CampaignConfig.model_validate({"model": "m", "pool": "p", "finetune": {"train": {"steps": 7},
                                                                               "ssft_steps": 3}})
    changed = with_finetune_steps(old, 10, 1e-4).finetune
    assert changed.stage_steps() == (5, 5) and changed.train.lr == 1e-4
    assert with_finetune_steps(old, lr=2e-4).finetune.stage_steps() == (7, 3)
    with pytest.raises(ConfigError, match="steps_per_round"):
        with_finetune_steps(old, 0)
