"""Property: any dataset.json either loads cases that all lie inside the dataset folder, or raises assft's own error.

Hypothesis generates documents with wrong types, missing keys and path tricks (`..`, absolute paths, NUL bytes,
empty strings, nested lists, nnU-Net keys without files); nothing may escape the folder and nothing may end in a
TypeError/KeyError/AttributeError.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assft.data.layout import load_dataset
from assft.errors import AssftError

PARTS = st.sampled_from(["..", ".", "", "imagesTr", "labelsTr", "a.nii.gz", "b.nii", "/", "~", "x\x00y", "ü", "...",
                         "etc", "passwd", "imagesTr/..", "C:\\x"])
PATHS = st.one_of(
    st.lists(PARTS, min_size=1, max_size=6).map("/".join),  # relative tricks, e.g. ./imagesTr/../../x
    st.lists(PARTS, min_size=1, max_size=4).map(lambda p: "/" + "/".join(p)),  # absolute
    st.text(max_size=20),
)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=6)
NAME = st.text(alphabet="abcXYZ019_-. ü", min_size=1, max_size=8)
INSIDE = st.one_of(  # paths that stay inside, some of them roundabout
    NAME.map(lambda n: f"./imagesTr/{n}.nii.gz"),
    NAME.map(lambda n: f"imagesTr/sub/../{n}.nii"),
    NAME.map(lambda n: f"{n}.nii.gz"),
    NAME.map(lambda n: f"./imagesTr/./{n}"),
)
WILD_ENTRY = st.one_of(
    PATHS,
    st.fixed_dictionaries({"image": st.one_of(PATHS, st.lists(PATHS, max_size=3), JSON)},
                          optional={"label": st.one_of(PATHS, st.none(), JSON)}),
    JSON,
)
GOOD_ENTRY = st.one_of(INSIDE, st.fixed_dictionaries({"image": st.one_of(INSIDE, st.lists(INSIDE, min_size=1,
                                                                                           max_size=2))},
                                                     optional={"label": st.one_of(INSIDE, st.none())}))
ENTRIES = st.lists(st.one_of(GOOD_ENTRY, GOOD_ENTRY, GOOD_ENTRY, WILD_ENTRY), min_size=1, max_size=5)
LABELS = st.one_of(
    st.just({"0": "background", "1": "organ"}),
    st.just({"background": 0, "organ": 1}),  # nnU-Net v2 style
    st.dictionaries(st.text(max_size=4), st.one_of(st.integers(-3, 300), st.text(max_size=4), JSON), max_size=4),
    JSON,
)
WELL_FORMED = st.fixed_dictionaries(
    {"labels": st.sampled_from([{"0": "background", "1": "organ"}, {"background": 0, "a": 1}]), "training": ENTRIES},
    optional={"name": JSON, "modality": JSON})
DOCUMENT = st.one_of(
    # mostly well-formed (so that many examples load and their paths get checked), with wild parts mixed in
    WELL_FORMED, WELL_FORMED, WELL_FORMED,
    st.fixed_dictionaries({"labels": LABELS, "training": st.one_of(ENTRIES, JSON)},
                          optional={"name": JSON, "modality": JSON, "file_ending": JSON, "channel_names": JSON,
                                    "numTraining": JSON}),
    st.dictionaries(st.sampled_from(["labels", "training", "name", "file_ending", "channel_names"]), JSON, max_size=4),
    JSON,
)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset folder with a few (empty) files, so the nnU-Net branch can find cases too."""
    folder = tmp_path_factory.mktemp("fuzz").resolve() / "dataset"
    for sub, name in (("imagesTr", "case_0000.nii.gz"), ("labelsTr", "case.nii.gz"), ("imagesTr", "a.nii.gz")):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / sub / name).write_bytes(b"")
    return folder


def _inside(path: Path, root: Path) -> bool:
    lexical = Path(os.path.normpath(path))
    return lexical.is_relative_to(root) and path.resolve().is_relative_to(root.resolve())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=DOCUMENT)
def test_any_dataset_json_loads_inside_the_root_or_raises_our_error(root: Path, document: object) -> None:
    (root / "dataset.json").write_text(json.dumps(document))
    try:
        spec = load_dataset(root)
    except AssftError as exc:
        assert str(exc) and exc.path  # names the file (or folder) it is about
        return
    assert spec.cases
    for case in spec.cases:
        for path in (*case.image_paths, *([case.label_path] if case.label_path is not None else [])):
            assert _inside(path, root), f"{path} escapes {root}"


@pytest.mark.parametrize("trick", ["../outside.nii.gz", "/etc/passwd", "./imagesTr/../../outside.nii.gz",
                                   "imagesTr/../../../outside.nii.gz"])
def test_known_escapes_are_refused(root: Path, trick: str) -> None:
    for entry in ({"image": trick}, {"image": "./imagesTr/a.nii.gz", "label": trick}, {"image": [trick]}):
        (root / "dataset.json").write_text(json.dumps({"labels": {"0": "bg"}, "training": [entry]}))
        with pytest.raises(AssftError, match="outside the dataset folder"):
            load_dataset(root)
