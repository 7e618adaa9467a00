"""Volume formats: NRRD, MHA/MHD, NIfTI and DICOM series read to the same array and RAS affine as the NIfTI source;
a plain folder lists what it does not read; `data init` gives a folder its classes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st

from assft.data.formats import itk_geometry, ras_affine, read_itk_volume
from assft.data.io import read_header, read_volume
from assft.data.layout import load_dataset
from assft.data.synthetic import write_dicom_series
from assft.errors import DataError

# An oblique, anisotropic, right-handed grid with a non-zero origin: axis swaps and flips show up in every entry.
AFFINE = np.array([[0.0, -1.5, 0.0, 10.0], [2.0, 0.0, 0.0, -5.0], [0.0, 0.0, 0.8, 3.0], [0.0, 0.0, 0.0, 1.0]])
ITK_FORMATS = (".nrrd", ".nhdr", ".mha", ".mhd")


def _console() -> list[str]:
    script = shutil.which("assft")
    return [script] if script else [sys.executable, "-c", "from assft.cli.app import main; main()"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*_console(), *args], capture_output=True, text=True, encoding="utf-8", timeout=120)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 5x6x7 integer volume saved as NIfTI, then re-saved by SimpleITK in every other format and as DICOM."""
    root = tmp_path_factory.mktemp("formats")
    array = np.random.default_rng(0).integers(-100, 1000, size=(5, 6, 7)).astype(np.int16)
    nifti = root / "vol.nii.gz"
    nib.save(nib.Nifti1Image(array, AFFINE), str(nifti))
    image = sitk.ReadImage(str(nifti))
    paths = {".nii.gz": nifti, ".nii": root / "vol.nii"}
    nib.save(nib.Nifti1Image(array, AFFINE), str(paths[".nii"]))
    for suffix in ITK_FORMATS:
        paths[suffix] = root / f"vol{suffix}"
        sitk.WriteImage(image, str(paths[suffix]))
    paths["dicom"] = write_dicom_series(root / "series", array, AFFINE)
    return {"root": root, "array": array, "paths": paths}


def test_ras_affine_known_answer() -> None:
    # ITK: identity direction, spacing (2, 3, 4), origin (1, 2, 3) in LPS -> RAS flips x and y.
    affine = ras_affine(np.eye(3).ravel(), (2, 3, 4), (1, 2, 3))
    np.testing.assert_array_equal(affine, [[-2, 0, 0, -1], [0, -3, 0, -2], [0, 0, 4, 3], [0, 0, 0, 1]])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=3, max_size=3), st.lists(st.floats(0.1, 5), min_size=3, max_size=3),
       st.lists(st.floats(-500, 500), min_size=3, max_size=3), st.permutations([0, 1, 2]),
       st.lists(st.sampled_from([-1.0, 1.0]), min_size=3, max_size=3))
def test_itk_geometry_inverts_ras_affine(angles, spacing, origin, perm, signs) -> None:
    from scipy.spatial.transform import Rotation

    direction = Rotation.from_rotvec(angles).as_matrix()[:, perm] * np.array(signs)
    affine = ras_affine(direction.ravel(), spacing, origin)
    back = ras_affine(*itk_geometry(affine))
    np.testing.assert_allclose(back, affine, atol=1e-9)


def test_a_nifti_reads_the_same_through_nibabel_and_simpleitk(source: dict) -> None:
    path = source["paths"][".nii.gz"]
    by_nibabel = read_volume(path)
    by_itk = read_itk_volume(path)
    np.testing.assert_array_equal(by_itk[0], by_nibabel[0])
    np.testing.assert_allclose(by_itk[1], by_nibabel[1], atol=1e-5)
    np.testing.assert_allclose(by_nibabel[1], AFFINE, atol=1e-6)


@pytest.mark.parametrize("fmt", [".nii", *ITK_FORMATS, "dicom"])
def test_every_format_gives_the_nifti_array_and_affine(source: dict, fmt: str) -> None:
    array, affine = read_volume(source["paths"][fmt])
    np.testing.assert_array_equal(array, source["array"])
    np.testing.assert_allclose(affine, AFFINE, atol=1e-4)
    shape, header_affine, spacing = read_header(source["paths"][fmt])
    assert shape == (5, 6, 7) and spacing == pytest.approx((2.0, 1.5, 0.8))
    np.testing.assert_allclose(header_affine, AFFINE, atol=1e-4)


def test_a_folder_with_two_dicom_series_is_refused_naming_them(tmp_path: Path) -> None:
    folder = tmp_path / "two"
    write_dicom_series(folder / "a", np.zeros((4, 4, 3)), series_uid="1.2.3.4")
    write_dicom_series(folder / "b", np.ones((4, 4, 3)), series_uid="1.2.3.5")
    for file in (folder / "b").iterdir():
        file.rename(folder / "a" / f"b_{file.name}")
    with pytest.raises(DataError, match=r"2 DICOM series \(1\.2\.3\.4, 1\.2\.3\.5\)"):
        read_volume(folder / "a")


@pytest.fixture()
def mixed(tmp_path: Path, source: dict) -> Path:
    """A pool of one volume per format plus things that are not volumes."""
    pool = tmp_path / "pool"
    pool.mkdir()
    for i, fmt in enumerate((".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")):
        shutil.copy(source["paths"][fmt], pool / f"case{i}{fmt}")
    shutil.copy(source["root"] / "vol.raw", pool / "case4.raw")  # the .mhd's pixel data, named in its header
    text = (pool / "case4.mhd").read_text().replace("vol.raw", "case4.raw")
    (pool / "case4.mhd").write_text(text)
    shutil.copytree(source["paths"]["dicom"], pool / "case5")
    (pool / "notes.png").write_bytes(b"\x89PNG")
    (pool / "empty").mkdir()
    (pool / ".hidden").write_text("")
    return pool


def test_a_mixed_folder_reads_every_format_and_lists_the_rest(mixed: Path, source: dict) -> None:
    spec = load_dataset(mixed)
    assert spec.case_ids == [f"case{i}" for i in range(6)]
    assert spec.not_read == [("empty/", "folder without a DICOM series"), ("notes.png", "unknown format")]
    for case in spec.cases:
        array, affine = read_volume(case.image_path)
        np.testing.assert_array_equal(array, source["array"])
        np.testing.assert_allclose(affine, AFFINE, atol=1e-4)


def test_labels_in_another_format_pair_by_case_id(tmp_path: Path, source: dict) -> None:
    root = tmp_path / "ds"
    write_dicom_series(root / "imagesTr" / "c1", source["array"], AFFINE)
    (root / "labelsTr").mkdir()
    sitk.WriteImage(sitk.ReadImage(str(source["paths"][".nii.gz"])) > 500, str(root / "labelsTr" / "c1.nrrd"))
    spec = load_dataset(root)
    assert spec.cases[0].label_path == root / "labelsTr" / "c1.nrrd"
    from assft.data.checks import check_dataset

    report = check_dataset(spec)
    assert report.ok, report.problems  # same grid: the NRRD label's affine equals the DICOM image's
    assert set(report.label_counts) == {0, 1}


def test_data_check_lists_unread_files_and_the_missing_classes(mixed: Path) -> None:
    out = _run("data", "check", str(mixed))
    assert out.returncode == 0, out.stdout + out.stderr
    text = " ".join(out.stdout.split())
    assert "not read: notes.png (unknown format)" in text and "not read: empty/ (folder without a DICOM series)" in text
    assert f"assft data init {mixed} --classes 0:background" in text


def test_a_command_prints_one_notice_of_unread_files(mixed: Path, tmp_path: Path) -> None:
    out = _run("data", "split", str(mixed), "--out", str(tmp_path / "split.json"), "--fractions", "a=0.5,b=0.5")
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stderr.split())
    assert text.count("not read") == 1 and "2 entries of" in text and "notes.png (unknown format)" in text


@pytest.fixture()
def labeled_folder(tmp_path: Path) -> Path:
    """A plain folder: two DICOM series in imagesTr/, their NIfTI labels in labelsTr/, no dataset.json."""
    root = tmp_path / "plain"
    for cid in ("a", "b"):
        image = np.zeros((16, 16, 16))
        image[4:12, 4:12, 4:12] = 100
        write_dicom_series(root / "imagesTr" / cid, image, np.eye(4))
        (root / "labelsTr").mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image((image > 0).astype(np.uint8), np.eye(4)), str(root / "labelsTr" / f"{cid}.nii.gz"))
    return root


def test_data_init_writes_a_dataset_json_the_layout_reads(labeled_folder: Path) -> None:
    bad = _run("data", "init", str(labeled_folder), "--classes", "0:background,1:cube,1:again")
    assert bad.returncode == 2 and "--classes" in bad.stderr and not (labeled_folder / "dataset.json").exists()
    ok = _run("data", "init", str(labeled_folder), "--classes", "0:background,1:cube", "--modality", "CT")
    assert ok.returncode == 0, ok.stderr
    meta = json.loads((labeled_folder / "dataset.json").read_text())
    assert meta["labels"] == {"0": "background", "1": "cube"} and meta["numTraining"] == 2
    assert meta["training"][0] == {"image": "./imagesTr/a", "label": "./labelsTr/a.nii.gz"}
    spec = load_dataset(labeled_folder)
    assert spec.layout == "msd" and spec.labels == {0: "background", 1: "cube"} and spec.has_labels
    again = _run("data", "init", str(labeled_folder), "--classes", "0:background,1:other")
    assert again.returncode == 2 and "--force" in again.stderr
    assert json.loads((labeled_folder / "dataset.json").read_text()) == meta  # nothing changed
    forced = _run("data", "init", str(labeled_folder), "--classes", "0:background,1:other", "--force")
    assert forced.returncode == 0 and load_dataset(labeled_folder).labels[1] == "other"
    old = _run("data", "init", str(labeled_folder), "--labels", "0:background,1:cube", "--force")  # the first spelling
    assert old.returncode == 0 and "`assft data init --labels` is now --classes" in old.stderr
    assert load_dataset(labeled_folder).labels[1] == "cube"


def test_train_on_a_folder_without_classes_names_data_init(labeled_folder: Path, tmp_path: Path) -> None:
    out = _run("train", "--data", str(labeled_folder), "--out", str(tmp_path / "m"), "--steps", "1")
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and f"assft data init {labeled_folder} --classes" in errors[0], out.stderr
    assert "Warning" not in out.stderr and not (tmp_path / "m" / "best.pt").exists()


@pytest.mark.parametrize("fmt", [".nrrd", ".mha", "dicom"])
def test_the_voxel_cap_holds_for_every_format(source: dict, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSFT_MAX_VOXELS", "100")  # the volume has 210
    for read in (read_volume, read_header):
        with pytest.raises(DataError, match="over the limit of 100"):
            read(source["paths"][fmt])


def test_reading_and_writing_dicom_keeps_the_process_locale(tmp_path: Path) -> None:
    """GDCM sets LC_CTYPE to "C"; assft gives the locale back, so later text I/O of the process stays UTF-8."""
    import locale

    from assft.data.io import read_volume
    from assft.data.synthetic import write_dicom_series

    before = locale.setlocale(locale.LC_ALL)
    write_dicom_series(tmp_path / "series", np.zeros((4, 4, 3)), np.eye(4))
    assert locale.setlocale(locale.LC_ALL) == before
    read_volume(tmp_path / "series")
    assert locale.setlocale(locale.LC_ALL) == before
