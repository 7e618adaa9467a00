"""Rule: nothing a command writes may destroy its inputs (assft.utils.paths.check_output_guard), and generated
folders carry a marker without which assft never writes into a non-empty folder. Each case runs the real console
script and compares a snapshot of every folder it could touch before and after."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tree_snapshot import one_error_line, phantoms, run_assft, snapshot, tiny_model

from assft.errors import ConfigError
from assft.utils.paths import GENERATED_MARKER, check_generated_folder, check_output_guard, written_by_assft


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-case phantom dataset `d`, a checkpoint `m.pt` and a prediction folder `p` under one root."""
    root = tmp_path_factory.mktemp("guard")
    phantoms(root / "d")
    (root / "d" / GENERATED_MARKER).unlink()  # a dataset of the user's, not one `data phantoms` made
    tiny_model(root / "m.pt")
    shutil.copytree(root / "d" / "labelsTr", root / "p")
    return root


@pytest.fixture()
def sb(base: Path, tmp_path: Path) -> Path:
    """A private copy of the base (commands run in it, with relative paths like a user types them)."""
    shutil.copytree(base, tmp_path, dirs_exist_ok=True)
    return tmp_path


# (id, command, words the one error line must hold); every command must change nothing under the sandbox.
REFUSED = [
    ("split-onto-dataset-json", ("data", "split", "d", "--out", "d/dataset.json"), ("lies inside the input dataset",)),
    ("split-into-dataset", ("data", "split", "d", "--out", "d/split.json"), ("lies inside the input dataset",)),
    ("phantoms-over-dataset", ("data", "phantoms", "--out", "d", "--n", "2", "--size", "8"),
     ("did not create", "dataset.json")),
    ("fingerprint-onto-model", ("fingerprint", "--model", "m.pt", "--images", "d", "--out", "m.pt"),
     ("is the input --model",)),
    ("fingerprint-attach-onto-model", ("fingerprint", "--model", "m.pt", "--images", "d", "--out", "fp.json",
                                       "--attach-to", "m.pt"), ("--attach-to is the input --model",)),
    ("adapt-onto-model", ("adapt", "--model", "m.pt", "--images", "d", "--out", "m.pt"), ("is the input --model",)),
    ("predict-into-labels", ("predict", "--model", "m.pt", "--images", "d", "--out", "d/labelsTr"),
     ("lies inside the input --images",)),
    ("predict-through-a-link", ("predict", "--model", "m.pt", "--images", "d", "--out", "alias/labelsTr"),
     ("lies inside the input --images",)),
    ("evaluate-into-pred", ("evaluate", "--data", "d", "--pred", "p", "--out", "p"), ("is the input --pred",)),
    ("train-into-data", ("train", "--data", "d", "--out", "d/run"), ("lies inside the input --data",)),
    ("train-around-data", ("train", "--data", "d", "--out", "."), ("contains the input --data",)),
    ("domains-into-input", ("domains", "apply", "--domain", "bias", "--data", "d", "--out", "d/shifted"),
     ("lies inside the input --data",)),
    ("campaign-inside-pool", ("campaign", "init", "--model", "m.pt", "--images", "d", "--out", "d/camp"),
     ("lies inside the input pool",)),
    ("query-into-pool", ("query", "--model", "m.pt", "--images", "d", "--budget", "1", "--out", "d/q"),
     ("lies inside the input --images",)),
    ("finetune-into-pool", ("finetune", "--model", "m.pt", "--images", "d", "--data", "d", "--out", "d/ft"),
     ("lies inside the input --images",)),
    ("pretrain-into-images", ("pretrain", "--images", "d", "--out", "d/ssl.pt"), ("lies inside the input --images",)),
    ("monailabel-over-user-files", ("monailabel", "app", "--out", "app", "--model", "m.pt"),
     ("did not create", "main.py")),
    ("monailabel-into-model", ("monailabel", "app", "--out", "m.pt", "--model", "m.pt"), ("is the input --model",)),
    # A single-file output may replace only a file assft wrote as that kind, never a file of the user's.
    ("adapt-over-a-users-file", ("adapt", "--model", "m.pt", "--images", "d", "--out", "notes.pt"),
     ("--out is an existing file that is not an assft checkpoint", "move notes.pt away")),
    ("split-over-a-users-json", ("data", "split", "d", "--out", "config.json"), ("not an assft split",)),
    ("fingerprint-over-a-split", ("fingerprint", "--model", "m.pt", "--images", "d", "--out", "split.json"),
     ("not an assft fingerprint",)),
    ("attach-over-a-users-file", ("fingerprint", "--model", "m.pt", "--images", "d", "--out", "fp.json",
                                  "--attach-to", "notes.pt"), ("--attach-to is an existing file",)),
    ("import-over-a-users-file", ("import", "--format", "monai", "--weights", "m.pt", "--out", "config.json"),
     ("not an assft checkpoint",)),
    ("plot-over-a-users-png", ("plot-pseudo-labels", "table.csv", "--out", "photo.png"), ("not an assft figure",)),
]


@pytest.mark.slow
@pytest.mark.parametrize("case_id, args, needles", REFUSED, ids=[c[0] for c in REFUSED])
def test_an_output_that_would_destroy_an_input_is_refused(case_id: str, args: tuple[str, ...],
                                                          needles: tuple[str, ...], sb: Path) -> None:
    (sb / "alias").symlink_to(sb / "d")
    (sb / "app").mkdir()
    (sb / "app" / "main.py").write_text("# the user's own server\n")
    (sb / "app" / "labels.txt").write_text("1\tliver\n")
    (sb / "notes.pt").write_text("the user's notes\n")
    (sb / "config.json").write_text('{"lr": 0.1}\n')
    (sb / "split.json").write_text('{"dataset": "d", "seed": 0, "fractions": {}, "splits": {}}\n')
    (sb / "table.csv").write_text("case_id,selected,true_dice\n")
    (sb / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    before = snapshot(sb)
    message = one_error_line(run_assft(*args, cwd=sb))
    for needle in needles:
        assert needle in message, message
    assert snapshot(sb) == before


@pytest.mark.slow
def test_a_generated_folder_is_reused_but_a_foreign_one_is_not(tmp_path: Path) -> None:
    result = run_assft("data", "phantoms", "--out", "ph", "--n", "2", "--size", "8", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ph" / GENERATED_MARKER).read_text().strip() == "phantoms"
    again = run_assft("data", "phantoms", "--out", "ph", "--n", "2", "--size", "8", cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # its own folder: regenerated in place
    (tmp_path / "ph" / GENERATED_MARKER).write_text("campaign\n")
    before = snapshot(tmp_path)
    message = one_error_line(run_assft("data", "phantoms", "--out", "ph", "--n", "2", "--size", "8", cwd=tmp_path))
    assert "is an assft campaign folder, not a phantoms folder" in message
    assert snapshot(tmp_path) == before


@pytest.mark.slow
def test_a_rerun_replaces_its_own_single_file_output(sb: Path) -> None:
    first = run_assft("adapt", "--model", "m.pt", "--images", "d", "--out", "adapted.pt", cwd=sb)
    assert first.returncode == 0, first.stderr
    assert written_by_assft(sb / "adapted.pt", "checkpoint") and not written_by_assft(sb / "adapted.pt", "split")
    again = run_assft("adapt", "--model", "m.pt", "--images", "d", "--out", "adapted.pt", cwd=sb)
    assert again.returncode == 0, again.stderr
    for _ in range(2):
        split = run_assft("data", "split", "d", "--out", "split.json", cwd=sb)
        assert split.returncode == 0, split.stderr


def test_file_kinds_are_told_by_their_content(tmp_path: Path) -> None:
    from assft.models.source_stats import save_fingerprint
    from assft.reporting.png import save_png

    model = tiny_model(tmp_path / "anything.bin")
    assert written_by_assft(model, "checkpoint")
    torch_file = tmp_path / "foreign.pt"
    import torch

    torch.save({"format": "someone-else", "state_dict": {}}, torch_file)
    assert not written_by_assft(torch_file, "checkpoint")
    fingerprint = save_fingerprint(tmp_path / "fp.json", {"layer": {"mean": [0.0], "var": [1.0]}})
    assert written_by_assft(fingerprint, "fingerprint") and not written_by_assft(fingerprint, "split")
    from matplotlib.figure import Figure

    figure = save_png(Figure(figsize=(1, 1)), tmp_path / "f.png")
    assert written_by_assft(figure, "figure")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    assert not written_by_assft(tmp_path / "photo.png", "figure")
    (tmp_path / "list.json").write_text("[1, 2]")
    assert not written_by_assft(tmp_path / "list.json", "split")


def test_guard_names_both_paths_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(ConfigError) as info:
        check_output_guard(tmp_path / "d" / "x.json", {"--data": tmp_path / "d"})
    text = str(info.value)
    assert str(tmp_path / "d" / "x.json") in text and f"--data {tmp_path / 'd'}" in text and "Fix:" in text


def test_generated_folder_rules(tmp_path: Path) -> None:
    check_generated_folder(tmp_path / "new", "campaign")  # absent: fine
    (tmp_path / "empty").mkdir()
    check_generated_folder(tmp_path / "empty", "campaign")  # empty: fine
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "campaign.yaml").write_text("x")
    check_generated_folder(tmp_path / "old", "campaign", signatures=("campaign.yaml",))  # written before markers
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="did not create"):
        check_generated_folder(tmp_path / "mine", "campaign", signatures=("campaign.yaml",))


# ---------------------------------------------------------------------------------------------------------------
# Property: the guard refuses exactly the pairs where one path is the other or holds it.

_part = st.sampled_from(["a", "b", "c", "é", "data", "x.pt"])
_rel = st.lists(_part, min_size=1, max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(source=_rel, target=_rel, via_link=st.booleans(), dotted=st.booleans())
def test_guard_refuses_exactly_overlapping_pairs(tmp_path: Path, source: list[str], target: list[str],
                                                 via_link: bool, dotted: bool) -> None:
    root = tmp_path / "prop"
    root.mkdir(exist_ok=True)
    src = root.joinpath(*source)
    out_parts = list(target)
    if dotted:  # the same place written with a detour: "a/../a/b"
        out_parts = [out_parts[0], "..", *out_parts]
    out = root.joinpath(*out_parts)
    if via_link:  # the output written through a link to the root
        link = tmp_path / "link"
        if not link.is_symlink():
            link.symlink_to(root)
        out = link.joinpath(*out_parts)
    overlap = (source[: len(target)] == target) or (target[: len(source)] == source)
    try:
        check_output_guard(out, {"--data": src})
        refused = False
    except ConfigError as exc:
        refused = True
        assert "--data" in str(exc) and "Fix:" in str(exc)
    assert refused == overlap, (source, target, via_link, dotted)
    assert os.path.isdir(root)
