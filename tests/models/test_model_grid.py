"""Spacing and orientation belong to the model: every pass brings a volume to them (MONAI's Orientation, Spacing) and
writes results back on the volume's own grid."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from assft.config import PreprocessConfig
from assft.data.cases import Case
from assft.data.io import write_volume
from assft.data.preprocess import grid_changes, load_case, orientation_of, to_original_grid

THIN = np.diag([0.5, 0.5, 3.0, 1.0])  # 0.5 x 0.5 x 3 mm, RAS


def _world_z(shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """Each voxel's world z (mm): a linear field, which linear resampling reproduces exactly."""
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).astype(np.float64)
    return (idx @ affine[:3, :3].T + affine[:3, 3])[..., 2].astype(np.float32)


def test_thin_slices_resampled_to_1mm_and_back(tmp_path: Path) -> None:
    """Known answer: a 0.5 x 0.5 x 3 mm volume of world z, scored by a 1 mm model, lies on a 1 mm grid with the same
    world values, and a map on that grid returns to the input's shape with the input's values inside."""
    shape = (8, 8, 4)
    image = _world_z(shape, THIN)
    write_volume(tmp_path / "thin.nii.gz", image, THIN)
    config = PreprocessConfig(target_spacing=(1.0, 1.0, 1.0), normalization="none")
    loaded = load_case(Case("thin", (tmp_path / "thin.nii.gz",), None), config)
    # MONAI's Spacing spans the first to the last voxel centre: (n - 1) * old / new + 1 voxels (z: 3 * 3 + 1)
    assert loaded.image.shape[1:] == (4, 4, 10) and loaded.original_shape == shape
    assert np.allclose(np.abs(np.diag(loaded.grid_affine)[:3]), 1.0)
    assert np.allclose(loaded.image[0], _world_z((4, 4, 10), loaded.grid_affine), atol=1e-4)
    back = to_original_grid(torch.from_numpy(np.asarray(loaded.image)), loaded)[0].numpy()
    assert back.shape == shape
    assert np.allclose(back, image, atol=1e-4)  # every input z lies inside the 1 mm grid (x beyond it: border)
    assert grid_changes(THIN, config) == ["resample 0.5 x 0.5 x 3 mm -> 1 x 1 x 1 mm"]
    assert grid_changes(THIN, PreprocessConfig()) == []


def test_orientation_is_validated() -> None:
    """Axis codes: three letters, one per axis."""
    from pydantic import ValidationError

    assert PreprocessConfig(orientation="las").orientation == "LAS"
    for bad in ("RAR", "RA", "XYZ"):
        with pytest.raises(ValidationError):
            PreprocessConfig(orientation=bad)


def assft(*args: str | Path) -> subprocess.CompletedProcess:
    """The console script, as a user types it."""
    env = {**os.environ, "ASSFT_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(["assft", *map(str, args)], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
def test_reoriented_copy_gets_the_same_world_space_prediction(tmp_path: Path) -> None:
    """A 1 mm RAS model predicts a thin-slice volume and its axis-swapped, flipped copy: each output has its input's
    shape and affine, and the two agree voxel for voxel in world space; `data check --model` says what happens."""
    from monai.networks.nets import DynUNet

    kwargs = {"spatial_dims": 3, "in_channels": 1, "out_channels": 3, "kernel_size": [3, 3, 3],
              "strides": [1, 2, 2], "upsample_kernel_size": [2, 2], "filters": [4, 8, 16], "norm_name": "instance"}
    torch.manual_seed(0)
    torch.save(DynUNet(**kwargs).state_dict(), tmp_path / "w.pt")
    rng = np.random.default_rng(0)
    image = nib.Nifti1Image((rng.random((24, 20, 6)) * 100).astype(np.float32), THIN)
    copy = image.as_reoriented(np.array([[1, -1], [0, 1], [2, 1]]))  # swap the first two axes, flip one
    assert orientation_of(copy.affine) != orientation_of(image.affine)
    (tmp_path / "images").mkdir()
    nib.save(image, tmp_path / "images" / "a.nii.gz")
    nib.save(copy, tmp_path / "images" / "b.nii.gz")
    result = assft("import", "--format", "monai", "--arch", "DynUNet", "--arch-args", json.dumps(kwargs),
                   "--weights", tmp_path / "w.pt", "--out", tmp_path / "m.pt", "--roi", "16,16,16",
                   "--spacing", "1,1,1", "--orientation", "RAS")
    assert result.returncode == 0, result.stderr
    result = assft("predict", "--model", tmp_path / "m.pt", "--images", tmp_path / "images", "--out",
                   tmp_path / "pred", "--probs")
    assert result.returncode == 0, result.stderr
    for name, source in (("a", image), ("b", copy)):
        written = nib.load(tmp_path / "pred" / f"{name}.nii.gz")
        assert written.shape == source.shape and np.allclose(written.affine, source.affine)
    probs_a = nib.load(tmp_path / "pred" / "a_probs.nii.gz")
    probs_b = nib.load(tmp_path / "pred" / "b_probs.nii.gz")
    a_as_b = np.asarray(probs_a.as_reoriented(np.array([[1, -1], [0, 1], [2, 1]])).dataobj)
    assert np.abs(a_as_b - np.asarray(probs_b.dataobj)).max() < 1e-4
    labels_a = nib.load(tmp_path / "pred" / "a.nii.gz").as_reoriented(np.array([[1, -1], [0, 1], [2, 1]]))
    assert np.array_equal(np.asarray(labels_a.dataobj), np.asarray(nib.load(tmp_path / "pred" / "b.nii.gz").dataobj))

    result = assft("data", "check", tmp_path / "images", "--model", tmp_path / "m.pt", "--header-only")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "expects orientation RAS, spacing 1 x 1 x 1 mm" in text
    assert "resample 0.5 x 0.5 x 3 mm -> 1 x 1 x 1 mm" in text and "reorient" in text
