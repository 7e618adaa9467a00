"""Self-supervised pre-training: pretext math (known answers), loss decrease, ssl-only checkpoint, fingerprint, resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from assft.config import InferenceConfig, ModelConfig
from assft.data.layout import load_dataset
from assft.data.synthetic import make_phantom_dataset
from assft.errors import CheckpointError, ConfigError
from assft.models import build_from_checkpoint, head_keys, load_checkpoint
from assft.pretrain import (
    PretrainConfig,
    compute_inpainting_loss,
    compute_nt_xent,
    compute_rotation,
    make_cube_mask,
    pretrain_ssl,
    resume_path,
)

TINY = ModelConfig(params={"channels": (4, 8, 16), "strides": (2, 2)})
INFERENCE = InferenceConfig(roi_size=(16, 16, 16), sw_batch_size=1, channels_last=False)
RECIPE = PretrainConfig(patch_size=16, batch_size=4, steps=10, lr=3e-3, save_every=5)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory):
    """Four 16^3 phantoms (labels are ignored by pre-training)."""
    return load_dataset(make_phantom_dataset(tmp_path_factory.mktemp("ssl_src"), 4, shape=(16, 16, 16)))


@pytest.fixture(scope="module")
def pretrained(source, tmp_path_factory: pytest.TempPathFactory):
    """One uninterrupted 10-step run of the default recipe on the tiny UNet."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("ssl_run") / "ssl.pt"
    return pretrain_ssl(source, out, model_config=TINY, config=RECIPE, inference=INFERENCE)


# --- pure pretext functions -----------------------------------------------------------------------------------------

def test_rotation_known_answers() -> None:
    x = torch.arange(2 * 4**3, dtype=torch.float32).reshape(2, 1, 4, 4, 4)
    assert torch.equal(compute_rotation(x, torch.tensor([4, 0])), x)
    out = compute_rotation(x, torch.tensor([1, 2]), axes=(1, 2))
    assert torch.equal(out[0], torch.rot90(x[0], 1, dims=(2, 3)))
    assert torch.equal(out[1], torch.rot90(x[1], 2, dims=(2, 3)))
    assert torch.equal(compute_rotation(compute_rotation(x, torch.tensor([1, 3])), torch.tensor([3, 1])), x)


def test_cube_mask_and_inpainting_loss() -> None:
    mask = make_cube_mask(3, 8, ratio=27 / 512, cube=3, rng=np.random.default_rng(0))  # exactly one 3^3 cube each
    assert mask.shape == (3, 1, 8, 8, 8) and mask.dtype == torch.bool
    assert mask.sum(dim=(1, 2, 3, 4)).tolist() == [27, 27, 27]
    target = torch.zeros(3, 1, 8, 8, 8)
    recon = torch.where(mask, 2.0, 1.0)  # error 2 on masked voxels, 1 elsewhere
    expected = 2.0 + 0.5 * (27 * 2 + (512 - 27)) / 512
    assert compute_inpainting_loss(recon, target, mask, unmasked_weight=0.5).item() == pytest.approx(expected)


def test_nt_xent_known_answer() -> None:
    z = torch.eye(3, 5)  # orthonormal rows; view 2 identical -> positive cos 1, negatives cos 0
    t = 0.5
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2 * (3 - 1)))
    assert compute_nt_xent(z, z.clone(), temperature=t).item() == pytest.approx(expected, rel=1e-6)


def test_pooled_moments_law_of_total_variance() -> None:
    from assft.inference.reducers import ChannelMoments

    acc = ChannelMoments()
    acc.add_moments(1, torch.tensor([0.0]), torch.tensor([1.0]))
    acc.add_moments(1, torch.tensor([2.0]), torch.tensor([1.0]))
    mean, var = acc.result()
    assert mean.tolist() == [1.0] and var.tolist() == [2.0]  # within 1 + between 1
    acc = ChannelMoments()
    acc.add_moments(3, torch.tensor([0.0]), torch.tensor([0.0]))
    acc.add_moments(1, torch.tensor([4.0]), torch.tensor([0.0]))
    mean, var = acc.result()
    assert mean.tolist() == [1.0] and var.tolist() == [3.0]  # 0.75*0 + 0.25*16 - 1


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        PretrainConfig(tasks=())
    with pytest.raises(ValueError):
        PretrainConfig(tasks=("contrastive",), batch_size=1)


# --- the pre-training run -----------------------------------------------------------------------------------------

def test_pretext_losses_decrease(pretrained) -> None:
    history = pretrained.history
    assert [r["step"] for r in history] == list(range(1, 11))
    for task in ("inpaint", "rotation"):
        first = np.mean([r[task] for r in history[:4]])
        last = np.mean([r[task] for r in history[-4:]])
        assert last < first, (task, first, last)


def test_checkpoint_is_ssl_only_with_fingerprint(pretrained) -> None:
    ckpt = load_checkpoint(pretrained.checkpoint)
    assert ckpt.kind == "ssl-only" and ckpt.labels == {0: "background"}
    assert ckpt.model_config.out_channels == 1 and ckpt.metadata["source_cases"]
    assert not resume_path(pretrained.checkpoint).exists()  # removed after a complete run
    on_disk = json.loads(pretrained.fingerprint.read_text())
    assert pretrained.fingerprint.name == "fingerprint.json" and on_disk["format"] == "assft-fingerprint"
    assert on_disk["layers"] == ckpt.fingerprint
    model, _, _ = build_from_checkpoint(pretrained.checkpoint)
    norms = dict(model.named_modules())
    head = head_keys(ckpt.model_config)
    for name, stats in ckpt.fingerprint.items():
        assert len(stats["mean"]) == len(stats["var"]) == norms[name].num_features
        assert min(stats["var"]) >= 0.0
        assert not any(k.startswith(name + ".") for k in head)  # the head's norm layer is left out
    from assft.models import norm_layers

    assert set(ckpt.fingerprint) == set(norm_layers(model)) - {"model.2.0.adn.N"}  # every BatchNorm but the head's


def test_finetune_from_ssl_checkpoint_loads_every_body_key(pretrained) -> None:
    model, ckpt, report = build_from_checkpoint(pretrained.checkpoint, out_channels=5)
    head = head_keys(ckpt.model_config)
    assert report.missing == [] and report.unexpected == []
    assert {k for k, _, _ in report.mismatched} <= head and report.mismatched
    saved = load_checkpoint(pretrained.checkpoint).state_dict
    state = model.state_dict()
    assert all(torch.equal(state[k], saved[k]) for k in report.loaded)
    assert set(report.loaded) == set(state) - head


def test_fingerprint_of_one_case_equals_its_pass_moments(pretrained, source) -> None:
    from assft.data.preprocess import load_case
    from assft.inference import run_pass
    from assft.pretrain import compute_fingerprint
    from assft.pretrain.fingerprint import fingerprint_layers

    model, ckpt, _ = build_from_checkpoint(pretrained.checkpoint)
    fp = compute_fingerprint(model, source.cases[:1], ckpt.preprocess, INFERENCE, model_config=ckpt.model_config)
    layers = fingerprint_layers(model, ckpt.model_config)
    moments = run_pass(model, load_case(source.cases[0]).image, INFERENCE, norm_layers=layers).norm_moments
    for name, (mean, var) in moments.items():
        assert fp[name]["mean"] == pytest.approx(mean.tolist()) and fp[name]["var"] == pytest.approx(var.tolist())


class _Killed(Exception):
    pass


def test_resume_continues_exactly(pretrained, source, tmp_path: Path) -> None:
    out = tmp_path / "ssl.pt"

    def kill_at_7(step: int, record: dict) -> None:
        if step == 7:
            raise _Killed

    with pytest.raises(_Killed):
        pretrain_ssl(source, out, model_config=TINY, config=RECIPE, inference=INFERENCE, on_step=kill_at_7)
    state = resume_path(out)
    assert state.exists() and not out.exists()
    with pytest.raises(CheckpointError, match="--resume"):
        pretrain_ssl(source, out, model_config=TINY, config=RECIPE, inference=INFERENCE)
    with pytest.raises(ConfigError, match="pretrain.lr"):
        pretrain_ssl(source, out, model_config=TINY, config=RECIPE.model_copy(update={"lr": 1e-2}),
                     inference=INFERENCE, resume=True)
    resumed = pretrain_ssl(source, out, model_config=TINY, config=RECIPE, inference=INFERENCE, resume=True)
    assert resumed.resumed_from_step == 5  # the last state saved before the kill
    assert [r["step"] for r in resumed.history] == list(range(1, 11))
    for a, b in zip(resumed.history, pretrained.history):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
    straight = load_checkpoint(pretrained.checkpoint).state_dict
    again = load_checkpoint(out).state_dict
    for key, value in straight.items():
        torch.testing.assert_close(again[key], value, rtol=1e-5, atol=1e-6)


def test_cli_pretrain_smoke(tmp_path: Path, source) -> None:
    from typer.testing import CliRunner

    from assft.cli.app import app

    out = tmp_path / "cli" / "ssl.pt"
    args = ["pretrain", "--images", str(source.root), "--out", str(out), "--steps", "2", "--batch-size", "2",
            "--patch", "16", "--roi", "16", "--limit", "2", "--fingerprint-cases", "1", "--tasks", "inpaint,rotation"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "ssl-only" in result.output and (out.parent / "fingerprint.json").exists()
    assert load_checkpoint(out).kind == "ssl-only"
    result = CliRunner().invoke(app, [*args[:-2], "--tasks", "jigsaw"])
    assert result.exit_code != 0 and "tasks" in str(result.exception)


def test_contrastive_option_and_other_nets() -> None:
    from assft.models import build_model
    from assft.pretrain import fit_pretext

    rng = np.random.default_rng(0)
    volumes = [rng.standard_normal((1, 12, 18, 16)).astype(np.float32) for _ in range(2)]  # padded to the patch
    recipe = PretrainConfig(tasks=("inpaint", "rotation", "contrastive"), patch_size=16, batch_size=2, steps=2)
    for config in (TINY.model_copy(update={"out_channels": 1}),
                   ModelConfig(name="genesis_unet", out_channels=1, params={"base": 2})):
        torch.manual_seed(0)
        result = fit_pretext(build_model(config), config, volumes, recipe)
        assert [sorted(r) for r in result.history] == [
            ["contrastive", "inpaint", "loss", "rotation", "rotation_acc", "step"]] * 2
        assert all(math.isfinite(r["loss"]) for r in result.history)
        assert any(k.startswith("projection.") for k in result.heads_state)


def test_fingerprint_is_accepted_by_kd(pretrained) -> None:
    """The fingerprint validates against θ0 with the SSL head and with a fresh K-class head (the head's norm is out)."""
    from assft.models import source_stats as query_fp
    ckpt = load_checkpoint(pretrained.checkpoint)
    for out_channels in (None, 5):
        model, _, _ = build_from_checkpoint(pretrained.checkpoint, out_channels=out_channels)
        assert set(query_fp.check_fingerprint(ckpt.fingerprint, model)) == set(ckpt.fingerprint)
    assert query_fp.load_fingerprint(pretrained.fingerprint) == ckpt.fingerprint
