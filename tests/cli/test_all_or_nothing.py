"""Rule: a step that writes several files validates everything it will write (names within the file system's limit,
label strings without control characters) before the first file, stages under short temporary names and renames
at the end; a failure leaves every folder as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tree_snapshot import one_error_line, phantoms, run_assft, snapshot, tiny_model

from assft.campaign.oracle import copy_labels
from assft.data.layout import load_dataset
from assft.errors import ConfigError
from assft.utils.paths import check_file_names

LONG_ID = "c" * 248  # ID.nii.gz is 255 bytes: the longest name a label file can have; its old temp name was not


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Dataset `d`, checkpoint `m.pt`, and a plain-folder pool whose second case has the longest legal id."""
    root = tmp_path_factory.mktemp("aon")
    data = phantoms(root / "d", 2)
    tiny_model(root / "m.pt")
    (root / "pool").mkdir()
    shutil.copy(data / "imagesTr" / "phantom_000.nii.gz", root / "pool" / "phantom_000.nii.gz")
    shutil.copy(data / "imagesTr" / "phantom_001.nii.gz", root / "pool" / f"{LONG_ID}.nii.gz")
    (root / "L").mkdir()
    shutil.copy(data / "labelsTr" / "phantom_000.nii.gz", root / "L" / "phantom_000.nii.gz")
    shutil.copy(data / "labelsTr" / "phantom_001.nii.gz", root / "L" / f"{LONG_ID}.nii.gz")
    return root


@pytest.mark.slow
def test_import_of_the_longest_legal_case_id_is_complete(base: Path, tmp_path: Path) -> None:
    camp = tmp_path / "c"
    for args in (("campaign", "init", "--model", base / "m.pt", "--images", base / "pool", "--out", camp, "--budget",
                  "2", "--rounds", "1", "--strategy", "random"), ("campaign", "next", camp)):  # figures named too
        result = run_assft(*args)
        assert result.returncode == 0, result.stderr
    result = run_assft("campaign", "import-labels", camp, "--labels", base / "L")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (camp / "labels").iterdir()) == sorted(p.name for p in (base / "L").iterdir())
    assert json.loads((camp / "ledger.json").read_text())["rounds"][0]["status"] == "labeled"
    assert not [p for p in camp.iterdir() if p.name.startswith(".import-")]  # the staging folder is gone


def test_a_name_over_the_limit_is_refused_before_the_first_file(base: Path, tmp_path: Path) -> None:
    pool = load_dataset(base / "d")
    found = {"phantom_000": (base / "d" / "labelsTr" / "phantom_000.nii.gz", False),
             "x" * 250: (base / "d" / "labelsTr" / "phantom_001.nii.gz", False)}
    dest = tmp_path / "camp" / "labels"
    dest.parent.mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError, match="255"):
        copy_labels(found, dest, pool)
    assert snapshot(tmp_path) == before
    with pytest.raises(ConfigError, match="control characters"):
        check_file_names(tmp_path, ["a\nb.nii.gz"])


def test_a_failure_midway_leaves_the_destination_as_it_was(base: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    pool = load_dataset(base / "d")
    found = {c: (base / "d" / "labelsTr" / f"{c}.nii.gz", False) for c in ("phantom_000", "phantom_001")}
    dest = tmp_path / "labels"
    dest.mkdir()
    (dest / "phantom_000.nii.gz").write_text("the label imported earlier\n")
    calls = []
    real_copy = shutil.copyfile

    def copy_then_fail(src: str, dst: str) -> None:
        calls.append(src)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", dst)
        real_copy(src, dst)

    monkeypatch.setattr("assft.campaign.oracle.shutil.copyfile", copy_then_fail)
    before = snapshot(tmp_path)
    with pytest.raises(OSError):
        copy_labels(found, dest, pool)
    assert snapshot(tmp_path) == before  # neither label moved in, no staging folder left


def test_monailabel_labels_with_a_newline_write_nothing(base: Path, tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    message = one_error_line(run_assft("monailabel", "app", "--out", tmp_path / "app", "--model", base / "m.pt",
                                       "--classes", "liver\nkidney,spleen,pancreas,stomach"))
    assert "--classes name 'liver\\nkidney' contains control characters" in message
    assert snapshot(tmp_path) == before
    good = ("monailabel", "app", "--out", tmp_path / "app", "--model", base / "m.pt", "--classes", "a,b,c,d")
    assert run_assft(*good).returncode == 0
    again = run_assft(*good)  # the same app again: a no-op, not an unexpected error
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "app" / "labels.txt").read_text() == "1\ta\n2\tb\n3\tc\n4\td\n"
