"""Read a dataset folder in MSD layout, nnU-Net v2 layout, or as a plain folder of volumes (an unlabeled pool).

A plain folder's volumes are NIfTI, NRRD or MetaImage files and DICOM series sub-folders (assft.data.formats);
every other entry is listed in `DatasetSpec.not_read` with the reason, so no file is skipped silently.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from assft.data.cases import Case, DatasetSpec
from assft.data.formats import has_dicom_series, is_data_file, is_volume_file, strip_volume_suffix
from assft.data.io import load_json
from assft.data.limits import allow_outside_root as env_allow_outside_root
from assft.errors import DataError

LABELED_FOLDERS = ("imagesTr", "labelsTr", "imagesTs", "labelsTs")  # layout folders, never DICOM cases


def strip_suffix(name: str) -> str:
    """File name without its volume extension (.nii.gz, .nii, .nrrd, .nhdr, .mha, .mhd): the case id."""
    return strip_volume_suffix(name)


def load_dataset(path: str | Path, *, labels: dict[int, str] | None = None,
                 allow_outside_root: bool | None = None) -> DatasetSpec:
    """Parse `path`: a folder with dataset.json (MSD or nnU-Net v2), or a plain folder of volumes (optionally
    imagesTr/ + labelsTr/): NIfTI, NRRD, MHA/MHD files or one DICOM series per sub-folder.

    Every file a dataset.json lists must lie inside `path` (DataError otherwise) unless `allow_outside_root` (default:
    the ASSFT_ALLOW_OUTSIDE_ROOT environment variable, set by `assft --allow-outside-root`).
    """
    allow = env_allow_outside_root() if allow_outside_root is None else allow_outside_root
    root = Path(os.path.abspath(path))  # lexical: case paths stay under the folder the user named
    if not root.exists():
        raise DataError("dataset folder not found.", path=root, fix="check the path")
    if root.is_file():
        raise DataError("expected a folder, got a file.", path=root, fix="pass the dataset folder")
    meta_path = root / "dataset.json"
    if meta_path.exists():
        meta = load_json(meta_path)
        if not isinstance(meta, dict):
            raise DataError("dataset.json is not a JSON object.", path=meta_path, fix="see the MSD dataset.json format")
        if "channel_names" in meta or "file_ending" in meta:
            spec = _parse_nnunet(root, meta)
        else:
            spec = _parse_msd(root, meta, allow)
    else:
        spec = _parse_folder(root, labels or {})
    _check_unique_ids(spec)
    if not spec.cases:
        skipped = "; not read: " + ", ".join(f"{name} ({why})" for name, why in spec.not_read[:5]) if spec.not_read else ""
        raise DataError(f"no cases found{skipped}.", path=root,
                        fix="add volumes (.nii.gz, .nii, .nrrd, .mha, .mhd, or one DICOM series per sub-folder) directly "
                            "in the folder or in imagesTr/ (with dataset.json for MSD/nnU-Net layouts)")
    return spec


def _parse_labels(meta: dict[str, Any], meta_path: Path) -> dict[int, str]:
    raw = meta.get("labels")
    if not isinstance(raw, dict) or not raw:
        raise DataError("dataset.json has no 'labels' map.", path=meta_path,
                        fix='add "labels": {"0": "background", "1": "..."}')
    out: dict[int, str] = {}
    try:
        for key, value in raw.items():
            if isinstance(value, int | list):  # nnU-Net v2: {name: int} (regions as lists are not supported)
                if isinstance(value, list):
                    raise DataError(f"region-based label {key!r} is not supported.", path=meta_path,
                                    fix="use one integer per class")
                out[int(value)] = str(key)
            else:  # MSD: {"0": name}
                out[int(key)] = str(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"cannot parse 'labels' ({exc}).", path=meta_path,
                        fix='use {"0": "background", ...} (MSD) or {"background": 0, ...} (nnU-Net v2)') from exc
    negative = sorted(k for k in out if k < 0)
    if negative:
        raise DataError(f"'labels' has negative class values {negative}.", path=meta_path,
                        fix="number the classes 0, 1, 2, ...")
    if 0 not in out:
        raise DataError("'labels' has no background class 0.", path=meta_path, fix="add label 0")
    return out


def _parse_msd(root: Path, meta: dict[str, Any], allow_outside: bool) -> DatasetSpec:
    meta_path = root / "dataset.json"
    labels = _parse_labels(meta, meta_path)
    entries = meta.get("training")
    if not isinstance(entries, list):
        raise DataError("dataset.json has no 'training' list.", path=meta_path,
                        fix='add "training": [{"image": "./imagesTr/X.nii.gz", "label": "./labelsTr/X.nii.gz"}]')
    cases = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            entry = {"image": entry}
        if not isinstance(entry, dict) or "image" not in entry:
            raise DataError(f"training entry {i} has no 'image'.", path=meta_path, fix="give every entry an image path")
        images = entry["image"] if isinstance(entry["image"], list) else [entry["image"]]
        if not images:
            raise DataError(f"training entry {i} has an empty 'image' list.", path=meta_path,
                            fix="list at least one image file per entry")
        image_paths = tuple(resolve_entry(root, p, meta_path=meta_path, what=f"training entry {i} 'image'",
                                          allow_outside=allow_outside) for p in images)
        label = entry.get("label")
        label_path = resolve_entry(root, label, meta_path=meta_path, what=f"training entry {i} 'label'",
                                   allow_outside=allow_outside) if label is not None and label != "" else None
        # The id comes from the entry's own file name, never a symlink's target (that would re-pair images/labels).
        cases.append(Case(strip_suffix(image_paths[0].name), image_paths, label_path))
    modality = meta.get("modality", {})
    return DatasetSpec(root, str(meta.get("name", root.name)), "msd", labels, cases,
                       modality=str(modality.get("0", "unknown")) if isinstance(modality, dict) else str(modality),
                       extra={k: v for k, v in meta.items() if k.startswith("assft")})


def resolve_entry(root: Path, value: Any, *, meta_path: Path, what: str, allow_outside: bool = False) -> Path:
    """The absolute path a dataset.json entry names; DataError unless it is a path string inside `root`.

    The check is lexical (`..` folded, symlinks not followed): a symlink someone placed inside the dataset folder is
    a deliberate link and is followed when reading, while the entry keeps its own name (and so its case id).
    """
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise DataError(f"{what} must be a non-empty path string, got {type(value).__name__} {shown}.",
                        path=meta_path, fix='write it as a relative path, e.g. "./imagesTr/X.nii.gz"')
    path = Path(os.path.normpath(os.path.join(root, value)))  # an absolute `value` replaces root
    if not allow_outside and not path.is_relative_to(root):
        raise DataError(f"{what} {value!r} points outside the dataset folder.", path=meta_path,
                        fix="move the file into the dataset folder and list it relative to it "
                            "(./imagesTr/X.nii.gz), or pass --allow-outside-root if you trust this dataset.json")
    return path


def _parse_nnunet(root: Path, meta: dict[str, Any]) -> DatasetSpec:
    meta_path = root / "dataset.json"
    labels = _parse_labels(meta, meta_path)
    ending = str(meta.get("file_ending", ".nii.gz"))
    channels = meta.get("channel_names", {"0": "image"})
    n_channels = len(channels) if isinstance(channels, dict) else 1
    images_dir, labels_dir = root / "imagesTr", root / "labelsTr"
    if not images_dir.is_dir():
        raise DataError("nnU-Net dataset has no imagesTr folder.", path=root, fix="put images in imagesTr/X_0000" + ending)
    ids = sorted({f.name[: -len(ending) - 5] for f in images_dir.iterdir()
                  if f.name.endswith("_0000" + ending)})
    cases = []
    for cid in ids:
        image_paths = tuple(images_dir / f"{cid}_{c:04d}{ending}" for c in range(n_channels))
        label = labels_dir / f"{cid}{ending}"
        cases.append(Case(cid, image_paths, label if labels_dir.is_dir() else None))
    return DatasetSpec(root, str(meta.get("name", root.name)), "nnunet", labels, cases,
                       modality=str(next(iter(channels.values()))) if isinstance(channels, dict) and channels else "unknown",
                       file_ending=ending, extra={k: v for k, v in meta.items() if k.startswith("assft")})


def _parse_folder(root: Path, labels: dict[int, str]) -> DatasetSpec:
    images_dir = root / "imagesTr" if (root / "imagesTr").is_dir() else root
    labels_dir = root / "labelsTr"
    volumes, not_read = scan_volumes(images_dir)
    label_volumes = scan_volumes(labels_dir)[0] if labels_dir.is_dir() else {}
    cases = [Case(cid, (path,), label_volumes.get(cid)) for cid, path in sorted(volumes.items())]
    prefix = "" if images_dir == root else f"{images_dir.name}/"
    return DatasetSpec(root, root.name, "folder", labels, cases,
                       not_read=[(prefix + name, why) for name, why in not_read])


def scan_volumes(folder: Path) -> tuple[dict[str, Path], list[tuple[str, str]]]:
    """The volumes in `folder` by case id (files by stem, DICOM series sub-folders by name) and what was not read.

    Hidden entries (a leading dot: temp files, .DS_Store) and the layout's own folders are ignored; detached pixel
    data (X.raw beside X.mhd) is read through its header. Anything else that is not a volume is listed with the reason.
    """
    entries = sorted(folder.iterdir(), key=lambda p: p.name)
    names = {p.name for p in entries}
    volumes: dict[str, Path] = {}
    not_read: list[tuple[str, str]] = []
    for entry in entries:
        if entry.name.startswith(".") or (entry.is_dir() and entry.name in LABELED_FOLDERS):
            continue
        if entry.is_dir():
            if has_dicom_series(entry):
                case_id = entry.name
            else:
                not_read.append((entry.name + "/", "folder without a DICOM series"))
                continue
        elif is_volume_file(entry):
            case_id = strip_volume_suffix(entry.name)
        elif is_data_file(entry, names):
            continue
        else:
            not_read.append((entry.name, "unknown format"))
            continue
        if case_id in volumes:
            not_read.append((entry.name, f"a second volume for case {case_id!r} (read: {volumes[case_id].name})"))
            continue
        volumes[case_id] = entry
    return volumes, not_read


def describe_not_read(spec: DatasetSpec, limit: int = 3) -> str | None:
    """One line naming the folder entries `spec` did not read (None when every entry was read)."""
    if not spec.not_read:
        return None
    shown = ", ".join(f"{name} ({why})" for name, why in spec.not_read[:limit])
    more = f" and {len(spec.not_read) - limit} more" if len(spec.not_read) > limit else ""
    return f"{len(spec.not_read)} entries of {spec.root} not read: {shown}{more}; `assft data check {spec.root}` lists all"


def _check_unique_ids(spec: DatasetSpec) -> None:
    seen: set[str] = set()
    dups = sorted({c.case_id for c in spec.cases if c.case_id in seen or seen.add(c.case_id)})  # type: ignore[func-returns-value]
    if dups:
        raise DataError(f"duplicate case ids: {', '.join(dups[:5])}.", path=spec.root / "dataset.json",
                        fix="list each case once")
