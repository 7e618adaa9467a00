"""The package's layering (pyproject's import-linter contracts) holds: no import runs up the layers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.fail("lint-imports not installed: pip install -e '.[dev]'")
    result = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_tests_mirror_the_package_layout() -> None:
    """Each tests/<folder> is named after the assft subpackage it tests (or `benchmarks`), so a module's tests are
    found where the module is; only whole-package tests and shared helpers sit at the top."""
    packages = {p.name for p in (ROOT / "src" / "assft").iterdir() if (p / "__init__.py").is_file()}
    folders = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and any(p.glob("test_*.py"))}
    assert folders <= packages | {"benchmarks"}, folders - packages
    top = sorted(p.name for p in (ROOT / "tests").glob("test_*.py"))
    assert top == ["test_architecture.py", "test_public_api.py"], top
