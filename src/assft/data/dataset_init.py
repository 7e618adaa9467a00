"""Give a plain folder of volumes its class names: parse `0:background,1:anterior,...` and write dataset.json.

The file is written in the MSD dialect that assft.data.layout reads (and nnU-Net's converter accepts): "labels"
{"0": name}, and a "training" list naming each case's image (and label when labelsTr/ holds one) relative to the
folder, in whatever format the folder holds (a DICOM series is listed as its folder).
"""

from __future__ import annotations

import re
from pathlib import Path

from assft.data.cases import DatasetSpec
from assft.errors import ConfigError, DataError

_PAIR = re.compile(r"^\s*(-?\d+)\s*:\s*(.*?)\s*$")
_EXAMPLE = "e.g. --classes 0:background,1:anterior,2:posterior"


def parse_classes(text: str, option: str = "--classes") -> dict[int, str]:
    """'0:background,1:anterior' -> {0: 'background', 1: 'anterior'}; ConfigError naming `option` when malformed."""
    classes: dict[int, str] = {}
    for item in text.split(","):
        match = _PAIR.match(item)
        if match is None:
            raise ConfigError(f"{option}: cannot read {item.strip()!r} as VALUE:NAME.", fix=_EXAMPLE)
        value, name = int(match.group(1)), match.group(2)
        if value < 0 or value > 255:
            raise ConfigError(f"{option}: class value {value} is outside 0..255.", fix="number the classes 0, 1, 2, ...")
        if not name:
            raise ConfigError(f"{option}: class {value} has no name.", fix=_EXAMPLE)
        if value in classes:
            raise ConfigError(f"{option}: class {value} is given twice ({classes[value]!r}, {name!r}).", fix=_EXAMPLE)
        if name in classes.values():
            raise ConfigError(f"{option}: the name {name!r} is used for two classes.", fix="give each class its own name")
        classes[value] = name
    if 0 not in classes:
        raise ConfigError(f"{option} has no background class 0.", fix="start with 0:background")
    return dict(sorted(classes.items()))


def classes_fix(root: Path | str, values: list[int] | None = None) -> str:
    """The `assft data init` command that gives `root` class names (with the label values found, when known)."""
    values = sorted(set(values or [0, 1]) | {0})
    pairs = ",".join("0:background" if v == 0 else f"{v}:NAME{v}" for v in values)
    return f"assft data init {root} --classes {pairs}"


def missing_classes_error(spec: DatasetSpec, what: str = "training") -> DataError:
    """The one-line error for a labeled command run on a folder that names no classes (no dataset.json)."""
    return DataError(f"the folder names no classes (it has no dataset.json); {what} needs them.", path=spec.root,
                     fix=f"write them once with `{classes_fix(spec.root)}` (`assft data check` shows the label values)")


def init_dataset_json(spec: DatasetSpec, classes: dict[int, str], *, force: bool = False,
                      modality: str = "unknown") -> Path:
    """Write ROOT/dataset.json listing `spec`'s cases (a plain folder) with `classes`; refuses to overwrite one."""
    from assft.data.io import write_msd_dataset_json

    target = spec.root / "dataset.json"
    if target.exists() and not force:
        raise DataError("dataset.json already exists.", path=target,
                        fix="keep it, or pass --force to replace it (the old file is overwritten)")
    if spec.layout != "folder" and not force:
        raise DataError(f"the folder is already a {spec.layout} dataset.", path=spec.root, fix="pass --force to rewrite it")
    entries = []
    for case in spec.cases:
        entry = {"image": "./" + case.image_path.relative_to(spec.root).as_posix()}
        if case.label_path is not None:
            entry["label"] = "./" + case.label_path.relative_to(spec.root).as_posix()
        entries.append(entry)
    return write_msd_dataset_json(spec.root, [], classes, name=spec.name, modality=modality,
                                  extra={"training": entries, "numTraining": len(entries)})
