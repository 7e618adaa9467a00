"""Sliding-window inference: stitching, hook outputs, prediction files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from assft.config import InferenceConfig, ModelConfig, PreprocessConfig
from assft.data import load_dataset, read_volume
from assft.inference import predict_to_folder, prepare_model, run_pass
from assft.models import bottleneck_module, build_model, norm_layers
from assft.utils.progress import reporting, silenced


class ConstantNet(nn.Module):
    """Logits that are the same everywhere: the stitched probabilities must equal softmax of them exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor([0.0, 1.0, 2.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.view(1, 3, 1, 1, 1).expand(x.shape[0], 3, *x.shape[2:])


def test_constant_model_is_stitched_to_that_constant() -> None:
    config = InferenceConfig(roi_size=(8, 8, 8), overlap=0.5, channels_last=False)
    probs = run_pass(ConstantNet(), np.zeros((1, 13, 17, 9), np.float32), config).probs
    expected = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0)
    assert probs.shape == (3, 13, 17, 9)
    assert torch.allclose(probs, expected.view(3, 1, 1, 1).expand_as(probs), atol=1e-6)


def test_pass_returns_probs_embedding_and_moments(tiny_model_config: ModelConfig, tiny_inference: InferenceConfig) -> None:
    model = prepare_model(build_model(tiny_model_config), tiny_inference)
    image = np.random.default_rng(0).normal(size=(1, 16, 16, 16)).astype(np.float32)
    result = run_pass(model, image, tiny_inference, embedding_module=bottleneck_module(model, "unet"),
                      norm_layers=norm_layers(model))
    assert result.probs.shape == (5, 16, 16, 16)
    assert torch.allclose(result.probs.sum(0), torch.ones(16, 16, 16), atol=1e-5)
    assert result.embedding.shape == (16,) and abs(float(result.embedding.norm()) - 1) < 1e-5
    assert set(result.norm_moments) == set(norm_layers(model))
    again = run_pass(model, image, tiny_inference, embedding_module=bottleneck_module(model, "unet"))
    assert torch.equal(again.probs, result.probs) and torch.allclose(again.embedding, result.embedding)


def test_predict_to_folder_keeps_affine(phantom_dir: Path, tiny_model_config: ModelConfig,
                                        tiny_inference: InferenceConfig, tmp_path: Path) -> None:
    spec = load_dataset(phantom_dir)
    written = predict_to_folder(build_model(tiny_model_config), spec.cases[:2], PreprocessConfig(), tiny_inference,
                                tmp_path, save_probs=True)
    label, affine = read_volume(written[0])
    _, image_affine = read_volume(spec.cases[0].image_path)
    assert label.shape == (16, 16, 16) and set(np.unique(label)) <= set(range(5))
    assert np.allclose(affine, image_affine)
    probs, _ = read_volume(tmp_path / f"{spec.cases[0].case_id}_probs.nii.gz")
    assert probs.shape == (16, 16, 16, 5)


def test_prediction_is_silent_in_a_silenced_block(phantom_dir: Path, tiny_model_config: ModelConfig,
                                                  tiny_inference: InferenceConfig, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """No progress parameter: the loop follows the active reporter, here one that prints at every volume."""
    spec = load_dataset(phantom_dir)
    model = build_model(tiny_model_config)
    with reporting(True, fancy=False, watchdog=False, interval=0.0):
        with silenced():
            predict_to_folder(model, spec.cases[:2], PreprocessConfig(), tiny_inference, tmp_path / "quiet")
        assert capsys.readouterr().err == ""
        predict_to_folder(model, spec.cases[:2], PreprocessConfig(), tiny_inference, tmp_path / "loud")
    assert "Predicting 2/2" in capsys.readouterr().err
