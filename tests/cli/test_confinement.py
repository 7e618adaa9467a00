"""Rule: every path from a config, a file name or a case id stays inside its folder after resolving symlinks
(assft.utils.paths.confine / check_plain_name); files taken from a dataset are read as volumes, never copied blind;
`simulate` checks its `out` before any work and leaves nothing behind when it fails."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tree_snapshot import one_error_line, phantoms, run_assft, snapshot, tiny_model

from assft.errors import ConfigError
from assft.utils.paths import check_plain_name, confine


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Dataset `d` (3 phantoms) and checkpoint `m.pt`."""
    root = tmp_path_factory.mktemp("confine")
    phantoms(root / "d")
    tiny_model(root / "m.pt")
    return root


def experiment(folder: Path, base: Path, **fields: object) -> Path:
    """A one-campaign simulation YAML in `folder` (out: folder/sim), with `fields` overriding."""
    raw = {"out": "sim", "model": str(base / "m.pt"), "data": str(base / "d"), "strategies": ["random"],
           "seeds": [0], "budget": "1", "rounds": 1, "bounds": False,
           "finetune": {"train": {"steps": 1, "batch_size": 1, "patch_size": [16, 16, 16]}, "ssft_steps": 0},
           "inference": {"roi_size": [16, 16, 16], "channels_last": False}, **fields}
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("fields, words", [
    ({"arms": {"../../escaped": {"strategy": "random"}}}, "arm name '../../escaped' is not a plain name"),
    ({"arms": {"/tmp/anywhere": {"strategy": "random"}}}, "arm name '/tmp/anywhere' is not a plain name"),
    ({"domains": ["../up"]}, "domain name '../up' is not a plain name"),
    ({"strategies": ["random/x"]}, "strategy name 'random/x' is not a plain name"),
    ({"arms": {"a\nb": {"strategy": "random"}}}, "control characters"),
], ids=["arm-dotdot", "arm-absolute", "domain-dotdot", "strategy-separator", "arm-newline"])
@pytest.mark.slow
def test_simulate_names_stay_plain(fields: dict, words: str, base: Path, tmp_path: Path) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    config = experiment(work, base, **fields)
    before = snapshot(tmp_path, base)
    message = one_error_line(run_assft("simulate", "--config", config, cwd=work))
    assert words in message
    assert snapshot(tmp_path, base) == before


@pytest.mark.slow
def test_simulate_out_is_checked_before_work(base: Path, tmp_path: Path) -> None:
    (tmp_path / "sim").write_text("a file where the experiment folder should go\n")
    config = experiment(tmp_path, base)
    before = snapshot(tmp_path, base)
    message = one_error_line(run_assft("simulate", "--config", config, cwd=tmp_path))
    assert "out is an existing file, not a folder" in message
    assert snapshot(tmp_path, base) == before


@pytest.mark.slow
def test_a_failing_simulation_leaves_nothing_behind(base: Path, tmp_path: Path) -> None:
    (tmp_path / "m.pt").write_text("not a checkpoint\n")
    config = experiment(tmp_path, base, model=str(tmp_path / "m.pt"))
    before = snapshot(tmp_path, base)
    one_error_line(run_assft("simulate", "--config", config, cwd=tmp_path))
    assert snapshot(tmp_path, base) == before and not (tmp_path / "sim").exists()


@pytest.mark.slow
def test_simulate_into_its_data_is_refused(base: Path, tmp_path: Path) -> None:
    config = experiment(tmp_path, base, out=str(base / "d" / "sim"))
    before = snapshot(tmp_path, base)
    message = one_error_line(run_assft("simulate", "--config", config, cwd=tmp_path))
    assert "out lies inside the input data" in message
    assert snapshot(tmp_path, base) == before


def test_domains_apply_reads_labels_instead_of_copying_links(base: Path, tmp_path: Path) -> None:
    data = phantoms(tmp_path / "d", 2)
    label = data / "labelsTr" / "phantom_001.nii.gz"
    label.unlink()
    label.symlink_to("/etc/passwd")  # a link to a system file, placed where a label should be
    before = snapshot(tmp_path)
    message = one_error_line(run_assft("domains", "apply", "--domain", "bias", "--data", data, "--out",
                                       tmp_path / "out"))
    assert "phantom_001.nii.gz" in message and "cannot read NIfTI" in message
    assert not (tmp_path / "out" / "labelsTr" / "phantom_001.nii.gz").exists()
    assert all(not key.startswith(str(tmp_path / "out" / "labelsTr" / "phantom_001")) for key in snapshot(tmp_path))
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith(str(tmp_path / "out"))} == before


def test_domains_apply_writes_checked_labels(base: Path, tmp_path: Path) -> None:
    result = run_assft("domains", "apply", "--domain", "bias", "--data", base / "d", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out" / "labelsTr"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (base / "d" / "labelsTr").iterdir())
    assert not any(p.is_symlink() for p in out.iterdir())


# ---------------------------------------------------------------------------------------------------------------
# Properties of the one confinement helper

_atoms = st.one_of(
    st.sampled_from(["..", ".", "a", "b", "link", "é", "データ", "x" * 300, "", "/", "/etc", "//", "a/../..",
                     "link/..", "../b"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1,
            max_size=12),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(_atoms, min_size=1, max_size=5), absolute=st.booleans())
def test_confine_never_returns_a_path_outside_its_folder(tmp_path: Path, parts: list[str], absolute: bool) -> None:
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True, exist_ok=True)
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    if not (root / "link").is_symlink():
        (root / "link").symlink_to(outside)  # a link that leads out of the folder
    name = "/".join(parts)
    if absolute:
        name = "/" + name
    try:
        result = confine(root, name, "case file")
    except ConfigError as exc:
        assert "leads outside" in str(exc) and "Fix:" in str(exc)
        return
    except OSError:  # a name the file system itself rejects (too long): never a path outside either
        return
    real_root = Path(os.path.realpath(root))
    assert result == real_root or real_root in result.parents
    assert Path(os.path.realpath(result)) == result  # symlinks already resolved: nothing can redirect it later


@settings(max_examples=300, deadline=None)
@given(name=st.one_of(_atoms, st.text(min_size=0, max_size=300)))
def test_a_plain_name_is_one_component_inside_its_folder(name: str) -> None:
    try:
        check_plain_name(name, "arm name")
    except ConfigError as exc:
        assert "Fix:" in str(exc)
        return
    root = Path("/r")
    joined = Path(os.path.normpath(root / name))
    assert joined.parent == root and joined.name == name  # exactly one level below, never elsewhere
    assert not any(unicodedata.category(c) == "Cc" for c in name)
    assert len(name.encode()) <= 255
