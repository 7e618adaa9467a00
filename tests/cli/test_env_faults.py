"""Rule: the machine's own faults (a full disk, no permission, a read-only file system, a vanished folder, Ctrl-C)
are answers, not bugs: one line naming the path and the fix, exit 2 (130 for Ctrl-C), nothing changed. The faults
are planted in the console script's own process (`inject`), which runs the real entry point afterwards."""

from __future__ import annotations

import errno
import stat
from pathlib import Path

import pytest
from tree_snapshot import one_error_line, phantoms, run_assft, snapshot, tiny_model

from assft.cli.common import describe_fault
from assft.errors import CampaignError
from assft.utils.atomic import atomic_torch_save, atomic_write_text

FAIL_REPLACE = """
import errno, os
def _replace(src, dst, **kw):
    raise OSError(errno.{code}, os.strerror(errno.{code}), str(dst))
os.replace = _replace
"""

TORCH_DISK_FULL = """
import torch
def _save(obj, f, *a, **k):
    raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4416 vs 4310")
torch.save = _save
"""

READ_ONLY_LOCK = """
import builtins, errno, os
_open = builtins.open
def _ro(file, mode="r", *a, **k):
    if str(file).endswith(".lock") and any(c in mode for c in "wa+"):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
    return _open(file, mode, *a, **k)
builtins.open = _ro
"""

CTRL_C = """
import assft.data.splits as splits
def _interrupted(*a, **k):
    raise KeyboardInterrupt
splits.make_split = _interrupted
"""


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Dataset `d` (2 phantoms) and checkpoint `m.pt`."""
    root = tmp_path_factory.mktemp("faults")
    phantoms(root / "d", 2)
    tiny_model(root / "m.pt")
    return root


@pytest.mark.parametrize("code, words", [
    ("ENOSPC", "no space left on the device"),
    ("EROFS", "cannot write (the file system is read-only)"),
    ("EACCES", "cannot write (permission denied)"),
    ("ENOENT", "no longer exists"),
])
def test_a_fault_while_writing_is_one_line(code: str, words: str, base: Path, tmp_path: Path) -> None:
    before = snapshot(tmp_path, base)
    message = one_error_line(run_assft("data", "split", base / "d", "--out", tmp_path / "split.json",
                                       inject=FAIL_REPLACE.format(code=code)))
    assert words in message and str(tmp_path / "split.json") in message
    assert len(message.splitlines()) == 1
    assert snapshot(tmp_path, base) == before  # the temporary file is gone too


def test_torch_full_disk_is_a_disk_full_answer(base: Path, tmp_path: Path) -> None:
    before = snapshot(tmp_path, base)
    message = one_error_line(run_assft("adapt", "--model", base / "m.pt", "--images", base / "d", "--out",
                                       tmp_path / "adapted.pt", inject=TORCH_DISK_FULL))
    assert "adapted.pt: no space left on the device" in message and "free space" in message
    assert snapshot(tmp_path, base) == before


def test_ctrl_c_prints_one_aborted_line(base: Path, tmp_path: Path) -> None:
    before = snapshot(tmp_path, base)
    result = run_assft("data", "split", base / "d", "--out", tmp_path / "split.json", inject=CTRL_C)
    assert result.returncode == 130, result.stderr
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        "aborted, nothing written by the interrupted step (completed steps are kept; run the command again)"]
    assert snapshot(tmp_path, base) == before


@pytest.fixture(scope="module")
def campaign(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh campaign created under umask 022."""
    camp = tmp_path_factory.mktemp("camp") / "c"
    result = run_assft("campaign", "init", "--model", base / "m.pt", "--images", base / "d", "--out", camp,
                       "--budget", "1", "--rounds", "1", "--strategy", "random", umask=0o022)
    assert result.returncode == 0, result.stderr
    return camp


def test_shared_files_follow_the_umask(campaign: Path, tmp_path: Path) -> None:
    for name in ("campaign.yaml", "ledger.json"):
        assert stat.S_IMODE((campaign / name).stat().st_mode) == 0o644, name
    atomic_write_text(tmp_path / "a.txt", "x")
    import os

    old = os.umask(0o077)
    try:
        atomic_write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600


def test_status_reads_without_the_write_lock(campaign: Path) -> None:
    (campaign / ".lock").unlink()
    before = snapshot(campaign)
    result = run_assft("campaign", "status", campaign)
    assert result.returncode == 0, result.stderr
    assert snapshot(campaign) == before and not (campaign / ".lock").exists()


def test_a_read_only_campaign_is_one_line_for_a_step_and_no_matter_for_status(campaign: Path) -> None:
    before = snapshot(campaign)
    message = one_error_line(run_assft("campaign", "next", campaign, inject=READ_ONLY_LOCK))
    assert f"{campaign}: the campaign folder is not writable" in message and "chmod u+w" in message
    result = run_assft("campaign", "status", campaign, inject=READ_ONLY_LOCK)
    assert result.returncode == 0, result.stderr
    assert snapshot(campaign) == before


def test_a_campaign_that_cannot_be_written_is_named(campaign: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import assft.campaign.ledger as ledger

    def denied(path, mode="r", *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(ledger, "open", denied, raising=False)  # root is never denied: plant the answer
    with pytest.raises(CampaignError, match="not writable") as info:
        with ledger.campaign_lock(campaign):
            pass
    assert "chmod u+w" in str(info.value) and str(campaign) in str(info.value)


@pytest.mark.parametrize("exc, words", [
    (OSError(errno.ENOSPC, "No space left on device", "/c/ledger.json"), "/c/ledger.json: no space left"),
    (OSError(errno.EDQUOT, "Disk quota exceeded", "/c/x"), "disk quota"),
    (PermissionError(errno.EACCES, "Permission denied", "/c/.lock"), "/c/.lock: cannot write (permission denied)"),
    (OSError(errno.EROFS, "Read-only file system", "/c/.lock"), "read-only"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/c/rounds"), "/c/rounds: no longer exists"),
])
def test_the_boundary_maps_each_fault(exc: OSError, words: str) -> None:
    text = describe_fault(exc)
    assert text is not None and words in text and "Fix: " in text


def test_other_errors_stay_bugs() -> None:
    assert describe_fault(ValueError("x")) is None
    assert describe_fault(OSError(errno.EINVAL, "Invalid argument")) is None


def test_torch_save_failure_becomes_enospc_and_keeps_the_old_file(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    path = tmp_path / "m.pt"
    atomic_torch_save(path, {"a": 1})
    before = snapshot(tmp_path)

    def full(obj, f, *a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError) as info:
        atomic_torch_save(path, {"a": 2})
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert snapshot(tmp_path) == before
