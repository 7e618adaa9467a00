"""Model registry, checkpoint round-trip and key reports, hooks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from assft.config import ModelConfig
from assft.errors import CheckpointError, ConfigError, UnknownNameError
from assft.inference.reducers import hooked_moments
from assft.models import (
    MODELS,
    bottleneck_module,
    build_from_checkpoint,
    build_model,
    head_keys,
    load_checkpoint,
    make_checkpoint,
    norm_layers,
    save_checkpoint,
)

LABELS = {0: "background", 1: "a", 2: "b", 3: "c", 4: "d"}


def test_registry_has_the_issue_networks() -> None:
    assert {"unet", "segresnet", "swinunetr", "dynunet"} <= set(MODELS.names())


def test_unknown_model_suggests_the_closest() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'unet'"):
        build_model(ModelConfig(name="unte"))


def test_unknown_param_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown parameters \\['chanels'\\]"):
        build_model(ModelConfig(params={"chanels": (4, 8)}))


@pytest.mark.parametrize("name,size", [("unet", 16), ("segresnet", 16), ("dynunet", 16), ("swinunetr", 64)])
def test_every_network_has_embedding_and_norm_layers(name: str, size: int) -> None:
    params = {"feature_size": 12, "depths": (1, 1, 1, 1)} if name == "swinunetr" else {}
    config = ModelConfig(name=name, out_channels=2, params=params)
    model = build_model(config).eval()
    seen = {}

    def record(module, inputs, output) -> None:
        seen["shape"] = output.shape

    handle = bottleneck_module(model, name).register_forward_hook(record)
    with torch.inference_mode():
        out = model(torch.randn(1, 1, size, size, size))
    handle.remove()
    assert out.shape == (1, 2, size, size, size)
    assert len(seen["shape"]) == 5 and seen["shape"][2] < size  # a downsampled feature map
    assert len(norm_layers(model)) > 0
    assert head_keys(config) and all(k in model.state_dict() for k in head_keys(config))


def test_checkpoint_round_trip(tmp_path: Path, tiny_model_config: ModelConfig) -> None:
    model = build_model(tiny_model_config)
    ckpt = make_checkpoint(model, tiny_model_config, LABELS, kind="supervised", metadata={"note": "x"},
                           fingerprint={"layer": {"mean": [0.0], "var": [1.0]}})
    path = save_checkpoint(tmp_path / "m.pt", ckpt)
    loaded = load_checkpoint(path)
    assert loaded.model_config == tiny_model_config and loaded.labels == LABELS and loaded.kind == "supervised"
    assert loaded.metadata == {"note": "x"} and loaded.fingerprint == {"layer": {"mean": [0.0], "var": [1.0]}}
    rebuilt, _, report = build_from_checkpoint(path)
    assert not report.missing and not report.unexpected and not report.mismatched
    for key, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value)


def test_new_head_keeps_the_body(tmp_path: Path, tiny_model_config: ModelConfig) -> None:
    model = build_model(tiny_model_config)
    path = save_checkpoint(tmp_path / "m.pt", make_checkpoint(model, tiny_model_config, LABELS))
    rebuilt, ckpt, report = build_from_checkpoint(path, out_channels=3)
    heads = head_keys(ckpt.model_config)
    assert ckpt.model_config.out_channels == 3
    assert {k for k, _, _ in report.mismatched} == heads - set(report.missing)
    body = [k for k in model.state_dict() if k not in heads]
    assert all(torch.equal(rebuilt.state_dict()[k], model.state_dict()[k]) for k in body)


def test_prefixed_keys_are_stripped(tmp_path: Path, tiny_model_config: ModelConfig) -> None:
    model = build_model(tiny_model_config)
    ckpt = make_checkpoint(model, tiny_model_config, LABELS)
    ckpt.state_dict = {f"module._orig_mod.{k}": v for k, v in ckpt.state_dict.items()}
    path = save_checkpoint(tmp_path / "m.pt", ckpt)
    _, _, report = build_from_checkpoint(path)
    assert len(report.loaded) == len(model.state_dict()) and not report.unexpected


def test_body_mismatch_is_an_error_unless_partial(tmp_path: Path, tiny_model_config: ModelConfig) -> None:
    model = build_model(tiny_model_config)
    ckpt = make_checkpoint(model, tiny_model_config, LABELS)
    first = next(iter(ckpt.state_dict))
    ckpt.state_dict["extra.weight"] = torch.zeros(1)
    del ckpt.state_dict[first]
    path = save_checkpoint(tmp_path / "m.pt", ckpt)
    with pytest.raises(CheckpointError, match="missing 1, unexpected 1") as info:
        build_from_checkpoint(path)
    assert "m.pt" in str(info.value) and "--allow-partial" in str(info.value)
    _, _, report = build_from_checkpoint(path, allow_partial=True)
    assert report.missing == [first] and report.unexpected == ["extra.weight"]


def test_foreign_and_missing_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not an assft checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")


def test_norm_moments_match_direct_statistics(tiny_model_config: ModelConfig) -> None:
    model = build_model(tiny_model_config).eval()
    layers = norm_layers(model)
    first_name, first = next(iter(layers.items()))
    seen = {}

    def record(module, inputs) -> None:
        seen["x"] = inputs[0].clone()

    handle = first.register_forward_pre_hook(record)
    x = torch.randn(2, 1, 16, 16, 16)
    with torch.inference_mode(), hooked_moments(layers) as moments:
        model(x)
    handle.remove()
    mean, var = moments[first_name].result()
    direct = seen["x"].transpose(0, 1).reshape(seen["x"].shape[1], -1).double()
    assert torch.allclose(mean, direct.mean(1), atol=1e-6)
    assert torch.allclose(var, direct.var(1, unbiased=False), atol=1e-6)
    assert not first._forward_pre_hooks  # hooks are removed after the block
