"""An imported MONAI network (SegResNet with GroupNorm) goes through predict, query and fine-tuning; the steps that
need what it lacks (BatchNorm statistics for AdaBN, source statistics for KD) fail naming the fix."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from assft.models.zoo import bottleneck_module, build_model, size_divisor

ARGS = {"spatial_dims": 3, "in_channels": 1, "out_channels": 5, "init_filters": 4, "blocks_down": [1, 1],
        "blocks_up": [1], "norm": ["GROUP", {"num_groups": 2}]}


def assft(*args: str | Path) -> subprocess.CompletedProcess:
    """The console script, as a user types it."""
    env = {**os.environ, "ASSFT_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(["assft", *map(str, args)], capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def imported(phantom_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An imported tiny SegResNet over the phantoms' five classes, 16^3 window."""
    from monai.networks.nets import SegResNet

    root = tmp_path_factory.mktemp("imported")
    torch.manual_seed(0)
    torch.save(SegResNet(**ARGS).state_dict(), root / "w.pt")
    result = assft("import", "--format", "monai", "--arch", "SegResNet", "--arch-args", json.dumps(ARGS),
                   "--weights", root / "w.pt", "--out", root / "m.pt", "--roi", "16,16,16",
                   "--labels", "background,liver,spleen,kidney_left,kidney_right")
    assert result.returncode == 0, result.stderr
    return root / "m.pt"


@pytest.mark.slow
def test_predict_query_finetune(imported: Path, phantom_dir: Path, tmp_path: Path) -> None:
    """predict, query (random, entropy, coreset: embeddings from the SegResNet's bottleneck), a few fine-tuning steps."""
    result = assft("predict", "--model", imported, "--images", phantom_dir, "--out", tmp_path / "pred")
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "pred").glob("*.nii.gz"))) == 6
    for strategy in ("random", "entropy", "coreset"):
        result = assft("query", "--model", imported, "--images", phantom_dir, "--budget", "2", "--strategy", strategy,
                       "--out", tmp_path / strategy)
        assert result.returncode == 0, (strategy, result.stderr)
        assert len(json.loads((tmp_path / strategy / "selection.json").read_text())["selected"]) == 2
    ids = tmp_path / "labeled.txt"
    ids.write_text("phantom_000\nphantom_001\n")
    result = assft("finetune", "--model", imported, "--labeled-ids", ids, "--images", phantom_dir, "--out",
                   tmp_path / "ft", "--steps", "2", "--ssft-steps", "2", "--batch-size", "2", "--patch", "16")
    assert result.returncode == 0, result.stderr
    from assft.models.checkpoint import load_checkpoint

    tuned = load_checkpoint(tmp_path / "ft" / "finetuned.pt")
    assert tuned.model_config.name == "monai.SegResNet" and tuned.inference_config().blend == "logits"


def test_steps_needing_what_the_model_lacks_name_the_fix(imported: Path, phantom_dir: Path, tmp_path: Path) -> None:
    """AdaBN: no BatchNorm to re-estimate -> use TENT; the paper's KD (--kd-source running_stats): no running
    statistics, no fingerprint -> fingerprint (auto picks a source-free KD source instead)."""
    result = assft("adapt", "--model", imported, "--images", phantom_dir, "--method", "adabn", "--out",
                   tmp_path / "a.pt")
    assert result.returncode == 2 and "AdaBN" in result.stderr and "--method tent" in result.stderr
    assert not (tmp_path / "a.pt").exists()
    result = assft("query", "--model", imported, "--images", phantom_dir, "--budget", "2", "--strategy", "kd",
                   "--kd-source", "running_stats", "--out", tmp_path / "kd")
    assert result.returncode == 2 and "assft fingerprint" in result.stderr, result.stderr


@pytest.mark.parametrize("arch, kwargs, divisor", [
    ("AttentionUnet", {"spatial_dims": 3, "channels": (4, 8), "strides": (2,)}, 2),
    ("UNETR", {"img_size": (16, 16, 16), "feature_size": 4, "hidden_size": 24, "mlp_dim": 48, "num_heads": 2}, 16),
    ("SegResNet", {"spatial_dims": 3, "init_filters": 8, "blocks_down": (1, 1, 1), "blocks_up": (1, 1)}, 4),
])
def test_any_monai_class_has_a_bottleneck_and_divisor(arch: str, kwargs: dict, divisor: int) -> None:
    """Classes without a known bottleneck get one from a probe pass: the deepest (smallest) 3D feature map."""
    from assft.config import ModelConfig

    config = ModelConfig(name=f"monai.{arch}", out_channels=2, params=kwargs, dropout=0.0)
    net = build_model(config)
    assert size_divisor(config) == divisor
    seen = []
    handle = bottleneck_module(net, config.name).register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with torch.no_grad():
        net.eval()(torch.zeros(1, 1, 16, 16, 16))
    handle.remove()
    assert len(seen) == 1 and len(seen[0]) == 5 and seen[0][2] < 16
