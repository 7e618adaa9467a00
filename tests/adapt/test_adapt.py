"""Test-time adaptation (budget 0): AdaBN statistics against a direct computation, TENT's reach, provenance, campaigns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from assft.adapt import AdaptConfig, adapt_checkpoint, estimate_batchnorm_statistics
from assft.adapt.batchnorm import apply_batchnorm_statistics
from assft.config import InferenceConfig, ModelConfig, TrainConfig
from assft.data.preprocess import LoadedCase
from assft.errors import ConfigError
from assft.utils.progress import silenced


def _volume(case_id: str, values: np.ndarray) -> LoadedCase:
    return LoadedCase(case_id, values[None].astype(np.float32), None, np.eye(4), values.shape, (1.0, 1.0, 1.0))


class TwoBatchNorms(nn.Module):
    """x -> BN1 -> BN2 -> 1x1 conv to 2 classes (a net whose statistics have a known answer)."""

    def __init__(self) -> None:
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm3d(1), nn.BatchNorm3d(1)
        self.head = nn.Conv3d(1, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.bn2(self.bn1(x)))


INFER = InferenceConfig(roi_size=(4, 4, 4), sw_batch_size=1, overlap=0.0, channels_last=False, mode="constant")


def test_adabn_statistics_are_the_pooled_moments_of_every_voxel() -> None:
    rng = np.random.default_rng(0)
    volumes = [rng.normal(3.0, 2.0, (4, 4, 4)), rng.normal(-1.0, 0.5, (4, 4, 4))]  # one window each, no padding
    net = TwoBatchNorms()
    stats = estimate_batchnorm_statistics(net, [_volume(f"v{i}", v) for i, v in enumerate(volumes)], INFER)
    voxels = np.concatenate([v.ravel() for v in volumes]).astype(np.float64)
    mean, var, n = stats["bn1"]
    assert n == voxels.size == 128
    assert float(mean) == pytest.approx(voxels.mean(), rel=1e-5)
    assert float(var) == pytest.approx(voxels.var(ddof=1), rel=1e-5)  # BatchNorm stores the unbiased variance
    # bn2 sees bn1's output normalised with each window's own statistics (train-mode BatchNorm, as in training):
    # every window is then zero-mean with biased variance var/(var + eps), so the pooled mean is exactly 0.
    mean2, var2, _ = stats["bn2"]
    per_window = [v.var() / (v.var() + net.bn1.eps) for v in volumes]
    assert abs(float(mean2)) < 1e-5
    assert float(var2) == pytest.approx(np.mean(per_window) * 128 / 127, rel=1e-4)


def test_estimation_leaves_the_model_unchanged_until_applied() -> None:
    net = TwoBatchNorms()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    stats = estimate_batchnorm_statistics(net, [_volume("v", np.full((4, 4, 4), 5.0) + np.arange(64).reshape(4, 4, 4))],
                                          INFER)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert net.bn1.momentum == 0.1 and not net.training
    apply_batchnorm_statistics(net, stats)
    assert float(net.bn1.running_mean) == pytest.approx(5.0 + 31.5)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Eight 16^3 phantoms and a 3-step source UNet (BatchNorm)."""
    from assft.data import load_dataset
    from assft.data.synthetic import make_phantom_dataset
    from assft.pretrain.supervised import train_supervised

    root = tmp_path_factory.mktemp("adapt")
    data = make_phantom_dataset(root / "data", 8, shape=(16, 16, 16), seed=1)
    spec = load_dataset(data)
    model = train_supervised(spec.subset(spec.case_ids[:3]), root / "src",
                             model_config=ModelConfig(out_channels=5, params={"channels": (4, 8, 16), "strides": (2, 2)}),
                             train_config=TrainConfig(steps=3, batch_size=2, patch_size=(16, 16, 16))).best
    return {"root": root, "spec": spec, "model": model}


def test_adapt_checkpoint_adabn_writes_provenance_and_never_reads_labels(source: dict, monkeypatch) -> None:
    from assft.data import io
    from assft.models.checkpoint import load_checkpoint

    labels = {str(c.label_path) for c in source["spec"].cases}
    real = io.read_volume

    def guarded(path, *args, **kwargs):
        assert str(path) not in labels, f"adaptation read a label: {path}"
        return real(path, *args, **kwargs)

    monkeypatch.setattr(io, "read_volume", guarded)
    monkeypatch.setattr("assft.data.preprocess.read_volume", guarded)
    out = source["root"] / "adabn.pt"
    result = adapt_checkpoint(source["model"], source["spec"], AdaptConfig(method="adabn"), out)
    ckpt, original = load_checkpoint(out), load_checkpoint(source["model"])
    info = ckpt.metadata["adaptation"]
    assert info["method"] == "adabn" and info["n_volumes"] == 8 and info["from"] == str(source["model"])
    assert len(result.statistics_layers) == info["statistics_layers"] > 0
    changed = {k for k in ckpt.state_dict if not torch.equal(ckpt.state_dict[k], original.state_dict[k])}
    assert changed and all(k.endswith(("running_mean", "running_var")) for k in changed)  # statistics only


def test_tent_trains_only_norm_affine_and_is_seeded(source: dict) -> None:
    from assft.models.checkpoint import load_checkpoint

    config = AdaptConfig(method="tent", tent_epochs=2, tent_lr=1e-2, patch_size=(16, 16, 16), seed=3)
    a = adapt_checkpoint(source["model"], source["spec"], config, source["root"] / "tent_a.pt")
    adapt_checkpoint(source["model"], source["spec"], config, source["root"] / "tent_b.pt")
    sa, sb = (load_checkpoint(source["root"] / f"tent_{x}.pt").state_dict for x in "ab")
    original = load_checkpoint(source["model"]).state_dict
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # same seed, same weights
    changed = {k for k in sa if not torch.equal(sa[k], original[k])}
    assert any(k.endswith(".weight") and ".adn.N." in k for k in changed)  # a BatchNorm gamma moved
    conv = [k for k in original if k.endswith("conv.weight")]
    assert conv and all(torch.equal(sa[k], original[k]) for k in conv)  # convolutions are frozen
    assert a.details["tent"]["steps"] == 8  # 2 passes x ceil(8 volumes / batch 2)


def test_tent_needs_a_head(source: dict, tmp_path: Path) -> None:
    from assft.models.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(source["model"])
    ckpt.kind = "ssl-only"
    ssl = save_checkpoint(tmp_path / "ssl.pt", ckpt)
    with pytest.raises(ConfigError, match="TENT needs predictions"):
        adapt_checkpoint(ssl, source["spec"], AdaptConfig(method="tent"))
    assert adapt_checkpoint(ssl, source["spec"], AdaptConfig(method="adabn")).statistics_layers  # AdaBN works


def test_adabn_on_a_network_without_running_statistics_is_refused_with_the_fix(source: dict, tmp_path: Path) -> None:
    """Nothing to re-estimate: an unchanged copy would pass for an adapted model, so AdaBN refuses and names TENT."""
    from assft.errors import ConfigError
    from assft.models.checkpoint import make_checkpoint, save_checkpoint
    from assft.models.zoo import build_model

    config = ModelConfig(out_channels=5, params={"channels": (4, 8, 16), "strides": (2, 2), "norm": "instance"})
    ckpt = save_checkpoint(tmp_path / "in.pt", make_checkpoint(build_model(config), config,
                                                                {i: str(i) for i in range(5)},
                                                                metadata={"train_config": {"patch_size": [16] * 3}}))
    with pytest.raises(ConfigError, match="has none") as err:
        adapt_checkpoint(ckpt, source["spec"], AdaptConfig(method="adabn"), out=tmp_path / "out.pt")
    assert "--method tent" in (err.value.fix or "")
    assert not (tmp_path / "out.pt").exists()


def test_campaign_round0_adapts_and_records_both_starts(source: dict, tmp_path: Path) -> None:
    from assft.campaign.config import CampaignConfig
    from assft.campaign.campaign import init_campaign
    from assft.campaign.layout import ADAPTED_CHECKPOINT
    from assft.campaign.simulate import run_campaign

    ids = source["spec"].case_ids
    config = CampaignConfig.model_validate({
        "model": str(source["model"]), "pool": str(source["spec"].root), "pool_ids": ids[:5],
        "test": str(source["spec"].root), "test_ids": ids[5:], "budget": "2", "rounds": 1, "strategy": "random",
        "oracle": "ground_truth", "adapt": {"method": "adabn"},
        "finetune": {"steps_per_round": 2, "train": {"batch_size": 1, "patch_size": [16, 16, 16]},
                     "pseudo": {"reliability": "none"}},
        "inference": {"roi_size": [16, 16, 16], "channels_last": False}})
    folder = init_campaign(tmp_path / "camp", config)
    with silenced():
        ledger = run_campaign(folder)
    meta = ledger.meta
    assert meta.adaptation["method"] == "adabn" and (folder / ADAPTED_CHECKPOINT).exists()
    assert meta.baseline_metrics["mean_dice"] != meta.unadapted_metrics["mean_dice"]
    first = ledger.records()[0]
    assert first.model == str(ADAPTED_CHECKPOINT) and first.init_model == str(ADAPTED_CHECKPOINT)
    assert first.compute["optimizer_steps"] == 2


@pytest.mark.slow
def test_cli_adapt_through_the_console_script(source: dict, tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    from assft.models.checkpoint import load_checkpoint

    script = shutil.which("assft")
    base = [script] if script else [sys.executable, "-c", "from assft.cli.app import main; main()"]
    out = tmp_path / "adapted.pt"
    ok = subprocess.run([*base, "--threads", "1", "adapt", "--model", str(source["model"]), "--images",
                         str(source["spec"].root), "--out", str(out)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "adabn: adapted" in ok.stdout and load_checkpoint(out).metadata["adaptation"]["method"] == "adabn"
    bad = subprocess.run([*base, "adapt", "--model", str(source["model"]), "--images", str(source["spec"].root),
                          "--out", str(tmp_path / "x.pt"), "--method", "bogus"], capture_output=True, text=True)
    assert bad.returncode == 2 and "method" in bad.stdout + bad.stderr and not (tmp_path / "x.pt").exists()


@pytest.mark.slow
def test_cli_campaign_with_round0_adaptation(source: dict, tmp_path: Path) -> None:
    import json
    import shutil
    import subprocess
    import sys

    script = shutil.which("assft")
    base = [script] if script else [sys.executable, "-c", "from assft.cli.app import main; main()"]
    camp = tmp_path / "camp"
    init = subprocess.run([*base, "campaign", "init", "--model", str(source["model"]), "--images",
                           str(source["spec"].root), "--out", str(camp), "--budget", "2", "--rounds", "2",
                           "--strategy", "random", "--adapt", "adabn"], capture_output=True, text=True)
    assert init.returncode == 0, init.stderr
    step = subprocess.run([*base, "--threads", "1", "campaign", "next", str(camp)], capture_output=True, text=True)
    assert step.returncode == 0, step.stderr
    assert "round 0: started from the pool-adapted model round0/adapted.pt" in step.stdout
    meta = json.loads((camp / "ledger.json").read_text())["meta"]
    assert meta["adaptation"]["method"] == "adabn" and (camp / "round0" / "adapted.pt").exists()
    assert any((camp / "volumes").glob("*.image.npy"))  # the pool was cached (the default) ...
    off = subprocess.run([*base, "campaign", "init", "--model", str(source["model"]), "--images",
                          str(source["spec"].root), "--out", str(tmp_path / "off"), "--budget", "2", "--rounds", "2",
                          "--no-volume-cache"],
                         capture_output=True, text=True)
    assert off.returncode == 0, off.stderr
    assert "cache_volumes: false" in (tmp_path / "off" / "campaign.yaml").read_text()  # ... unless switched off
    bad = subprocess.run([*base, "campaign", "init", "--model", str(source["model"]), "--images",
                          str(source["spec"].root), "--out", str(tmp_path / "c2"), "--adapt", "adabm"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "adapt" in bad.stderr and not (tmp_path / "c2").exists()
