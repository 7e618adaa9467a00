"""Rule: where two volumes meet, they are compared on the same grid in world space (assft.data.geometry): stored in
another orientation -> reoriented; another grid -> refused naming the difference; label values checked against the
model's classes whatever the pool's layout. Console-script cases snapshot every folder they could touch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from tree_snapshot import one_error_line, phantoms, run_assft, snapshot, tiny_model

from assft.data.checks import check_dataset
from assft.data.geometry import grid_difference, on_reference_grid
from assft.data.layout import load_dataset
from assft.data.preprocess import load_case
from assft.errors import DataError


def x_reversed(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same volume in world space, stored with the first axis reversed."""
    flipped = np.array(affine, dtype=np.float64)
    flipped[:, 0] = -affine[:, 0]
    flipped[:3, 3] = affine[:3, 3] + affine[:3, 0] * (array.shape[0] - 1)
    return np.ascontiguousarray(array[::-1]), flipped


def moved(affine: np.ndarray, mm: float) -> np.ndarray:
    """The affine shifted `mm` along x."""
    out = np.array(affine, dtype=np.float64)
    out[0, 3] += mm
    return out


def save(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(np.asarray(array, dtype=np.uint8), affine), str(path))


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(str(path))
    return np.asarray(img.dataobj), img.affine


# ---------------------------------------------------------------------------------------------------------------
# Known answers of the rule itself

def test_reoriented_volume_lands_on_the_reference_voxel_for_voxel() -> None:
    rng = np.random.default_rng(0)
    label = rng.integers(0, 3, (4, 5, 6))
    affine = np.diag([1.5, 1.0, 2.0, 1.0])
    affine[:3, 3] = (10, -4, 7)
    data, flipped = x_reversed(label, affine)
    out, was_moved = on_reference_grid(data, flipped, label.shape, affine, path="p", what="label")
    assert was_moved and np.array_equal(out, label)
    transposed = affine[:, [1, 0, 2, 3]]
    out, was_moved = on_reference_grid(label.transpose(1, 0, 2), transposed, label.shape, affine, path="p",
                                       what="label")
    assert was_moved and np.array_equal(out, label)


@pytest.mark.parametrize("change, words", [
    (lambda a: moved(a, 40.0), "origin 40.0 mm away"),
    (lambda a: a @ np.diag([2.0, 1.0, 1.0, 1.0]), "voxel spacing (2.0, 1.0, 1.0) mm vs (1.0, 1.0, 1.0) mm"),
])
def test_another_grid_is_named(change, words: str) -> None:
    affine = np.eye(4)
    assert words in grid_difference((4, 5, 6), change(affine), (4, 5, 6), affine)
    with pytest.raises(DataError, match="not on the grid"):
        on_reference_grid(np.zeros((4, 5, 6)), change(affine), (4, 5, 6), affine, path="p", what="label")


def test_a_reoriented_label_is_accepted_by_check_and_training(tmp_path: Path) -> None:
    data = phantoms(tmp_path / "d", 2)
    path = data / "labelsTr" / "phantom_000.nii.gz"
    label, affine = load(path)
    save(path, *x_reversed(label, affine))
    assert check_dataset(load_dataset(data)).problems == []
    loaded = load_case(load_dataset(data).get("phantom_000"))
    assert np.array_equal(loaded.label, label)


# ---------------------------------------------------------------------------------------------------------------
# evaluate --pred uses the prediction's affine

@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Dataset `d` (3 phantoms), checkpoint `m.pt`, and a plain-folder pool `pool` of the same images."""
    root = tmp_path_factory.mktemp("geometry")
    phantoms(root / "d")
    tiny_model(root / "m.pt")
    shutil.copytree(root / "d" / "imagesTr", root / "pool")
    return root


@pytest.mark.slow
def test_evaluate_scores_in_world_space(base: Path, tmp_path: Path) -> None:
    pred = tmp_path / "p"
    pred.mkdir()
    for path in sorted((base / "d" / "labelsTr").glob("*.nii.gz")):
        save(pred / path.name, *x_reversed(*load(path)))
    result = run_assft("evaluate", "--data", base / "d", "--pred", pred, "--out", tmp_path / "e", "--limit", "2")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert summary["mean_dice"]["mean"] == pytest.approx(1.0)


@pytest.mark.slow
def test_evaluate_refuses_a_prediction_elsewhere_in_space(base: Path, tmp_path: Path) -> None:
    pred = tmp_path / "p"
    pred.mkdir()
    for path in sorted((base / "d" / "labelsTr").glob("*.nii.gz")):
        label, affine = load(path)
        save(pred / path.name, label, moved(affine, 40.0))  # the same voxels, 40 mm away
    before = snapshot(base, pred)
    message = one_error_line(run_assft("evaluate", "--data", base / "d", "--pred", pred, "--out", tmp_path / "e", "--limit", "2"))
    assert "prediction is not on the grid of the reference label" in message and "origin 40.0 mm" in message
    assert snapshot(base, pred) == before and not (tmp_path / "e").exists()


# ---------------------------------------------------------------------------------------------------------------
# import-labels: the model's classes for any pool layout, reorientation instead of a mirroring fix

@pytest.fixture(scope="module")
def queried(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A campaign on the plain-folder pool, queried once (2 volumes)."""
    camp = tmp_path_factory.mktemp("camp") / "c"
    for args in (("campaign", "init", "--model", base / "m.pt", "--images", base / "pool", "--out", camp,
                  "--budget", "2", "--rounds", "1", "--strategy", "random", "--no-figures"),
                 ("campaign", "next", camp)):
        result = run_assft(*args)
        assert result.returncode == 0, result.stderr
    return camp


def selected(camp: Path) -> list[str]:
    return json.loads((camp / "ledger.json").read_text())["rounds"][0]["selected"]


def label_folder(base: Path, camp: Path, folder: Path, change=None) -> Path:
    folder.mkdir()
    for i, case_id in enumerate(selected(camp)):
        label, affine = load(base / "d" / "labelsTr" / f"{case_id}.nii.gz")
        if change is not None and i == 0:
            label, affine = change(label, affine)
        save(folder / f"{case_id}.nii.gz", label, affine)
    return folder


@pytest.mark.slow
def test_folder_pool_label_values_are_checked_against_the_model(base: Path, queried: Path, tmp_path: Path) -> None:
    labels = label_folder(base, queried, tmp_path / "L", lambda a, aff: (np.where(a == 1, 7, a), aff))
    before = snapshot(queried, labels)
    message = one_error_line(run_assft("campaign", "import-labels", queried, "--labels", labels))
    assert "values [7] are not among the model's classes [0, 1, 2, 3, 4]" in message
    assert snapshot(queried, labels) == before


@pytest.mark.slow
def test_a_label_stored_x_reversed_is_imported_reoriented(base: Path, queried: Path, tmp_path: Path) -> None:
    camp = tmp_path / "c"
    shutil.copytree(queried, camp, symlinks=True)
    ledger = json.loads((camp / "ledger.json").read_text())
    labels = label_folder(base, camp, tmp_path / "L", x_reversed)
    result = run_assft("campaign", "import-labels", camp, "--labels", labels)
    assert result.returncode == 0, result.stderr
    first = selected(camp)[0]
    imported, affine = load(camp / "labels" / f"{first}.nii.gz")
    original, image_affine = load(base / "d" / "labelsTr" / f"{first}.nii.gz")
    assert np.array_equal(imported, original) and np.allclose(affine, image_affine)
    assert json.loads((camp / "ledger.json").read_text())["rounds"][0]["status"] == "labeled"
    assert ledger["rounds"][0]["status"] == "queried"


@pytest.mark.slow
def test_a_label_linked_out_of_its_folder_is_not_imported(base: Path, queried: Path, tmp_path: Path) -> None:
    labels = label_folder(base, queried, tmp_path / "L")
    first = selected(queried)[0]
    elsewhere = tmp_path / "elsewhere.nii.gz"
    (labels / f"{first}.nii.gz").rename(elsewhere)
    (labels / f"{first}.nii.gz").symlink_to(elsewhere)  # a valid label, but not a file of the label folder
    before = snapshot(queried, labels)
    message = one_error_line(run_assft("campaign", "import-labels", queried, "--labels", labels))
    assert f"label file '{first}.nii.gz' leads outside" in message
    assert snapshot(queried, labels) == before
