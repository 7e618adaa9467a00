"""`assft import`: synthetic state dicts in each public format round-trip into ssl-only checkpoints; wrong files fail."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from assft.cli.app import app
from assft.errors import CheckpointError, UnknownNameError
from assft.models import build_from_checkpoint, head_keys, load_checkpoint
from assft.models.genesis_net import GenesisUNet3D
from assft.pretrain import detect_format, import_weights


@pytest.fixture(scope="module")
def swin_state() -> dict[str, torch.Tensor]:
    """A small MONAI SwinUNETR (feature_size 12, 3 classes): the reference weights every Swin format is made from."""
    from monai.networks.nets import SwinUNETR

    torch.manual_seed(0)
    return SwinUNETR(in_channels=1, out_channels=3, feature_size=12).state_dict()


def _as_swin_ssl(state: dict[str, torch.Tensor]) -> dict:
    """model_swinvit.pt style: encoder only, `module.` + no `swinViT.`, MLP named fc1/fc2, plus an SSL-only key."""
    keys = {"module." + k[len("swinViT."):].replace("mlp.linear1", "mlp.fc1").replace("mlp.linear2", "mlp.fc2"): v
            for k, v in state.items() if k.startswith("swinViT.")}
    return {"state_dict": {**keys, "module.norm.weight": torch.ones(192)}, "epoch": 100}


def _source_key(fmt: str, key: str) -> str:
    """Model key -> the key it came from in each synthetic file."""
    if fmt == "swin-ssl":
        return "module." + key[len("swinViT."):].replace("mlp.linear1", "mlp.fc1").replace("mlp.linear2", "mlp.fc2")
    return {"suprem": "module.backbone.", "voco": "module.", "models-genesis": "module."}[fmt] + key


def _write(fmt: str, tmp_path: Path, swin_state) -> tuple[Path, dict[str, torch.Tensor]]:
    if fmt == "swin-ssl":
        raw = _as_swin_ssl(swin_state)
        flat = raw["state_dict"]
    elif fmt == "suprem":
        flat = {"module.backbone." + k: v for k, v in swin_state.items()}
        raw = {"net": flat, "epoch": 3}
    elif fmt == "voco":
        flat = {"module." + k: v for k, v in swin_state.items()}
        raw = flat
    else:
        torch.manual_seed(1)
        flat = {"module." + k: v for k, v in GenesisUNet3D(base=4).state_dict().items()}
        raw = {"state_dict": flat}
    path = tmp_path / f"{fmt}.pt"
    torch.save(raw, path)
    return path, flat


@pytest.mark.parametrize("fmt", ["swin-ssl", "suprem", "voco", "models-genesis"])
def test_import_round_trip(fmt: str, tmp_path: Path, swin_state) -> None:
    path, flat = _write(fmt, tmp_path, swin_state)
    result = import_weights(fmt, path, tmp_path / "out.pt")
    ckpt = load_checkpoint(tmp_path / "out.pt")
    assert ckpt.kind == "ssl-only" and ckpt.metadata["import_format"] == fmt
    if fmt == "models-genesis":
        assert ckpt.model_config.name == "genesis_unet" and ckpt.model_config.params == {"base": 4}
    else:
        assert ckpt.model_config.name == "swinunetr"
        assert ckpt.model_config.params["feature_size"] == 12  # inferred from the weight shapes
        assert tuple(ckpt.model_config.params["depths"]) == (2, 2, 2, 2)
        assert tuple(ckpt.model_config.params["num_heads"]) == (3, 6, 12, 24)
    report = result.report
    assert report.mismatched == [] and report.loaded
    for key in report.loaded:  # every loaded tensor is the file's tensor, under the mapped name
        assert torch.equal(ckpt.state_dict[key], flat[_source_key(fmt, key)])
    if fmt == "swin-ssl":  # encoder only: the CNN encoder/decoder/head keep a random init and are reported missing
        assert len(report.loaded) == 126 and report.unexpected == ["norm.weight"]
        assert report.missing and all(not k.startswith("swinViT.") for k in report.missing)
        assert ckpt.metadata["randomly_initialised"] == report.missing
    else:
        assert report.missing == [] and report.unexpected == []
    # fine-tuning with a new head loads every other key
    model, new, load_report = build_from_checkpoint(tmp_path / "out.pt", out_channels=4)
    head = head_keys(new.model_config)
    assert load_report.missing == [] and load_report.unexpected == []
    assert {k for k, _, _ in load_report.mismatched} <= head


def test_suprem_unet_file_maps_to_genesis(tmp_path: Path) -> None:
    torch.manual_seed(2)
    state = {"module.backbone." + k: v for k, v in GenesisUNet3D(base=4, out_channels=2).state_dict().items()}
    torch.save({"net": state}, tmp_path / "suprem_unet.pth")
    result = import_weights("suprem", tmp_path / "suprem_unet.pth", tmp_path / "out.pt")
    assert result.model_config.name == "genesis_unet" and result.model_config.out_channels == 2
    assert result.report.missing == [] and result.report.unexpected == []


def test_wrong_files_give_clear_errors(tmp_path: Path, swin_state) -> None:
    genesis, _ = _write("models-genesis", tmp_path, swin_state)
    suprem, _ = _write("suprem", tmp_path, swin_state)
    text = tmp_path / "notes.pt"
    text.write_text("not a torch file")
    junk = tmp_path / "random.pt"
    torch.save({"a": 1, "b": "x"}, junk)
    cases = [
        ("swin-ssl", genesis, "--format models-genesis"),  # wrong flag: the error names the right one
        ("models-genesis", suprem, "--format suprem"),
        ("swin-ssl", suprem, "--format suprem"),
        ("suprem", text, "not a readable PyTorch file"),
        ("suprem", junk, "no state dict of tensors"),
        ("voco", tmp_path / "absent.pt", "not found"),
    ]
    for fmt, path, needle in cases:
        with pytest.raises(CheckpointError) as info:
            import_weights(fmt, path, tmp_path / "x.pt")
        message = str(info.value)
        assert needle in message and str(path) in message and "Fix:" in message, message
    with pytest.raises(UnknownNameError, match="Did you mean 'suprem'"):
        import_weights("supreme", suprem, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_pickled_objects_need_trust(tmp_path: Path) -> None:
    import argparse

    torch.manual_seed(3)
    state = {"module." + k: v for k, v in GenesisUNet3D(base=4).state_dict().items()}
    torch.save({"state_dict": state, "args": argparse.Namespace(lr=1.0)}, tmp_path / "g.pt")
    with pytest.raises(CheckpointError, match="--trust-pickle"):
        import_weights("models-genesis", tmp_path / "g.pt", tmp_path / "out.pt")
    assert import_weights("models-genesis", tmp_path / "g.pt", tmp_path / "out.pt", trust_pickle=True).report.loaded


def test_detect_format() -> None:
    assert detect_format({"module.down_tr64.ops.0.conv1.weight": torch.zeros(1)}) == "models-genesis"
    assert detect_format({"module.backbone.swinViT.patch_embed.proj.weight": torch.zeros(1)}) == "suprem"
    assert detect_format({"module.layers1.0.blocks.0.norm1.weight": torch.zeros(1)}) == "swin-ssl"
    assert detect_format({"fc.weight": torch.zeros(1)}) is None


def test_cli_import_smoke(tmp_path: Path, swin_state) -> None:
    path, _ = _write("models-genesis", tmp_path, swin_state)
    runner = CliRunner()
    result = runner.invoke(app, ["import", "--format", "models-genesis", "--weights", str(path),
                                 "--out", str(tmp_path / "g.pt")])
    assert result.exit_code == 0, result.output
    assert "loaded" in result.output and "ssl-only" in result.output
    assert load_checkpoint(tmp_path / "g.pt").model_config.name == "genesis_unet"
    result = runner.invoke(app, ["import", "--format", "swin-ssl", "--weights", str(path),
                                 "--out", str(tmp_path / "s.pt")])
    assert result.exit_code != 0 and isinstance(result.exception, CheckpointError)


def test_genesis_net_shapes() -> None:
    from assft.config import ModelConfig
    from assft.models import bottleneck_module, build_model, size_divisor

    config = ModelConfig(name="genesis_unet", out_channels=3, params={"base": 2})
    model = build_model(config).eval()
    assert model(torch.zeros(1, 1, 16, 24, 16)).shape == (1, 3, 16, 24, 16) and size_divisor(config) == 8
    assert bottleneck_module(model, "genesis_unet") is model.down_tr512
    assert sorted(head_keys(config)) == ["out_tr.final_conv.bias", "out_tr.final_conv.weight"]
    widths = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
    assert widths[:8] == [2, 4, 4, 8, 8, 16, 16, 32]  # base 32 gives the release's 32, 64, ..., 512
