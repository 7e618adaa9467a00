"""Tests for the synthetic abdominal phantoms (assft.data.synthetic)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from assft.data.io import read_volume
from assft.data.synthetic import PHANTOM_LABELS, make_phantom, make_phantom_dataset
from assft.errors import ConfigError


def test_deterministic_by_seed() -> None:
    a_img, a_lab = make_phantom(3, seed=7)
    b_img, b_lab = make_phantom(3, seed=7)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    c_img, _ = make_phantom(3, seed=8)
    assert not np.array_equal(a_img, c_img)


def test_cases_differ() -> None:
    _, lab0 = make_phantom(0)
    _, lab1 = make_phantom(1)
    _, lab_str = make_phantom("phantom_000")
    assert not np.array_equal(lab0, lab1)
    assert not np.array_equal(lab0, lab_str)


@pytest.mark.parametrize("shape", [(32, 32, 32), (16, 16, 16), (16, 24, 20)])
def test_all_labels_present_and_shapes(shape: tuple[int, int, int]) -> None:
    for case in range(6):
        image, label = make_phantom(case, shape=shape, contrast="ct" if case % 2 else "mr")
        assert image.shape == label.shape == shape
        assert image.dtype == np.float32 and label.dtype == np.uint8
        assert set(np.unique(label)) == set(PHANTOM_LABELS)
        assert np.all(np.isfinite(image))


def test_ct_and_mr_tissue_ordering_differ() -> None:
    ct, label = make_phantom(0, contrast="ct")
    mr, label_mr = make_phantom(0, contrast="mr")
    assert np.array_equal(label, label_mr)  # same anatomy, different contrast
    ct_means = [ct[label == k].mean() for k in (1, 2, 3)]
    mr_means = [mr[label == k].mean() for k in (1, 2, 3)]
    assert ct_means[0] > ct_means[1]  # CT: liver brighter than spleen
    assert mr_means[0] < mr_means[1]  # MR: liver darker than spleen
    assert list(np.argsort(ct_means)) != list(np.argsort(mr_means))
    assert mr.min() >= 0 and ct.min() < -500


def test_unknown_contrast() -> None:
    with pytest.raises(ConfigError, match="contrast"):
        make_phantom(0, contrast="pet")


@pytest.mark.parametrize("contrast,modality", [("ct", "CT"), ("mr", "MRI")])
def test_dataset_written(tmp_path, contrast: str, modality: str) -> None:
    root = make_phantom_dataset(tmp_path / "ds", n_cases=3, shape=(16, 16, 16), seed=1, contrast=contrast)
    spec = json.loads((root / "dataset.json").read_text())
    assert spec["modality"] == {"0": modality}
    assert spec["labels"] == {str(k): v for k, v in PHANTOM_LABELS.items()}
    assert [e["image"] for e in spec["training"]] == [f"./imagesTr/phantom_{i:03d}.nii.gz" for i in range(3)]
    for i, entry in enumerate(spec["training"]):
        image, affine = read_volume(root / entry["image"])
        label, _ = read_volume(root / entry["label"], dtype=np.uint8)
        exp_image, exp_label = make_phantom(i, shape=(16, 16, 16), seed=1, contrast=contrast)
        assert np.array_equal(image, exp_image) and np.array_equal(label, exp_label)
        assert np.allclose(affine, np.eye(4))


def test_dataset_without_labels(tmp_path) -> None:
    root = make_phantom_dataset(tmp_path, n_cases=2, shape=(16, 16, 16), with_labels=False, prefix="tgt")
    spec = json.loads((root / "dataset.json").read_text())
    assert all("label" not in e for e in spec["training"])
    assert not (root / "labelsTr").exists()
    assert (root / "imagesTr" / "tgt_001.nii.gz").is_file()
