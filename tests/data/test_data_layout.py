"""Dataset layouts (MSD, nnU-Net v2, folder) and every validation error, each naming the file and the fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from assft.data import check_dataset, load_case, load_dataset
from assft.data.io import write_label_map, write_msd_dataset_json, write_volume
from assft.errors import DataError


def _make_msd(root: Path, n: int = 3, shape=(8, 8, 8)) -> Path:
    rng = np.random.default_rng(0)
    ids = [f"case_{i:03d}" for i in range(n)]
    for cid in ids:
        write_volume(root / "imagesTr" / f"{cid}.nii.gz", rng.normal(size=shape).astype(np.float32))
        label = np.zeros(shape, np.uint8)
        label[2:5, 2:5, 2:5] = 1
        label[5:7, 5:7, 5:7] = 2
        write_label_map(root / "labelsTr" / f"{cid}.nii.gz", label)
    write_msd_dataset_json(root, ids, {0: "background", 1: "a", 2: "b"}, name="toy")
    return root


def test_msd_layout_parses(tmp_path: Path) -> None:
    spec = load_dataset(_make_msd(tmp_path))
    assert spec.layout == "msd" and spec.case_ids == ["case_000", "case_001", "case_002"]
    assert spec.labels == {0: "background", 1: "a", 2: "b"} and spec.num_classes == 3 and spec.has_labels
    report = check_dataset(spec)
    assert report.ok and report.label_counts[2] == 3 * 8


def test_nnunet_layout_parses(tmp_path: Path) -> None:
    for cid in ("x1", "x2"):
        write_volume(tmp_path / "imagesTr" / f"{cid}_0000.nii.gz", np.ones((8, 8, 8), np.float32))
        write_label_map(tmp_path / "labelsTr" / f"{cid}.nii.gz", np.zeros((8, 8, 8), np.uint8))
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "T2"}, "labels": {"background": 0, "organ": 1}, "numTraining": 2, "file_ending": ".nii.gz"}))
    spec = load_dataset(tmp_path)
    assert spec.layout == "nnunet" and spec.case_ids == ["x1", "x2"]
    assert spec.labels == {0: "background", 1: "organ"} and spec.modality == "T2"
    assert spec.cases[0].image_path.name == "x1_0000.nii.gz" and spec.cases[0].label_path.name == "x1.nii.gz"
    assert check_dataset(spec).ok


def test_plain_folder_is_unlabeled_pool(tmp_path: Path) -> None:
    for cid in ("b", "a"):
        write_volume(tmp_path / f"{cid}.nii.gz", np.ones((4, 4, 4), np.float32))
    spec = load_dataset(tmp_path)
    assert spec.layout == "folder" and spec.case_ids == ["a", "b"] and not spec.has_labels


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no cases found"):
        load_dataset(tmp_path)


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_dataset(tmp_path / "nope")


def _problems(root: Path) -> list[str]:
    return [str(p) for p in check_dataset(load_dataset(root)).problems]


def test_shape_mismatch_names_the_label(tmp_path: Path) -> None:
    root = _make_msd(tmp_path)
    write_label_map(root / "labelsTr" / "case_001.nii.gz", np.zeros((8, 8, 7), np.uint8))
    (problem,) = _problems(root)
    assert "case_001.nii.gz" in problem and "label shape (8, 8, 7) != image shape (8, 8, 8)" in problem
    assert "Fix:" in problem
    with pytest.raises(DataError, match="label shape"):
        load_case(load_dataset(root).get("case_001"))


def test_affine_mismatch(tmp_path: Path) -> None:
    root = _make_msd(tmp_path)
    affine = np.eye(4)
    affine[0, 3] = 5.0
    write_label_map(root / "labelsTr" / "case_000.nii.gz", np.zeros((8, 8, 8), np.uint8), affine)
    (problem,) = _problems(root)
    assert "not on the image's grid in world space: origin 5.0 mm" in problem and "case_000" in problem


def test_label_values_not_in_dataset_json(tmp_path: Path) -> None:
    root = _make_msd(tmp_path)
    label = np.zeros((8, 8, 8), np.uint8)
    label[0, 0, 0] = 7
    write_label_map(root / "labelsTr" / "case_002.nii.gz", label)
    (problem,) = _problems(root)
    assert "label values [7] are not in dataset.json labels [0, 1, 2]" in problem


def test_nan_voxels(tmp_path: Path) -> None:
    root = _make_msd(tmp_path)
    image = np.zeros((8, 8, 8), np.float32)
    image[1, 1, 1] = np.nan
    write_volume(root / "imagesTr" / "case_000.nii.gz", image)
    (problem,) = _problems(root)
    assert "1 NaN/Inf voxels" in problem and "imagesTr/case_000" in problem
    with pytest.raises(DataError, match="NaN/Inf"):
        load_case(load_dataset(root).get("case_000"))


def test_corrupt_file(tmp_path: Path) -> None:
    root = _make_msd(tmp_path)
    (root / "imagesTr" / "case_001.nii.gz").write_bytes(b"this is not a nifti file")
    (problem,) = _problems(root)
    assert "cannot read NIfTI" in problem and "case_001" in problem


def test_listed_case_missing(tmp_path: Path) -> None:
    root = _make_msd(tmp_path)
    (root / "labelsTr" / "case_002.nii.gz").unlink()
    (root / "imagesTr" / "case_001.nii.gz").unlink()
    problems = _problems(root)
    assert len(problems) == 2
    assert any("listed image file is missing" in p and "case_001" in p for p in problems)
    assert any("listed label file is missing" in p and "case_002" in p for p in problems)


def test_duplicate_case_ids(tmp_path: Path) -> None:
    root = _make_msd(tmp_path)
    meta = json.loads((root / "dataset.json").read_text())
    meta["training"].append(meta["training"][0])
    (root / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="duplicate case ids: case_000"):
        load_dataset(root)


def test_report_raises_with_every_problem(tmp_path: Path) -> None:
    root = _make_msd(tmp_path)
    shutil.copy(root / "labelsTr" / "case_000.nii.gz", root / "labelsTr" / "tmp.nii.gz")
    write_label_map(root / "labelsTr" / "case_000.nii.gz", np.full((8, 8, 8), 9, np.uint8))
    write_label_map(root / "labelsTr" / "case_001.nii.gz", np.zeros((4, 4, 4), np.uint8))
    report = check_dataset(load_dataset(root))
    with pytest.raises(DataError, match="2 problem"):
        report.raise_if_problems()


def test_zscore_normalisation_over_nonzero(tmp_path: Path) -> None:
    root = _make_msd(tmp_path, n=1)
    image = np.zeros((8, 8, 8), np.float32)
    image[2:6, 2:6, 2:6] = np.arange(64, dtype=np.float32).reshape(4, 4, 4)
    write_volume(root / "imagesTr" / "case_000.nii.gz", image)
    loaded = load_case(load_dataset(root).get("case_000"))
    inside = loaded.image[0][image != 0]
    assert loaded.image.shape == (1, 8, 8, 8) and abs(inside.mean()) < 0.05 and abs(inside.std() - 1) < 0.05
