"""Output locations checked before any work: a bad --out fails in a second, not after the compute with a traceback."""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from assft.errors import ConfigError


def _nearest_existing(path: Path) -> Path:
    """`path` or its closest ancestor that exists."""
    current = Path(os.path.abspath(path))
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def _check_parent(path: Path, option: str) -> None:
    """The existing part of `path`'s parent must be a writable folder (the rest is created later)."""
    anchor = _nearest_existing(Path(os.path.abspath(path)).parent)
    if not anchor.is_dir():
        raise ConfigError(f"{option} lies under {anchor}, which is a file, not a folder.", path=path,
                          fix=f"choose a {option} path whose parent folders are folders")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise ConfigError(f"{option}: cannot write into {anchor} (permission denied).", path=path,
                          fix=f"choose a {option} location you can write to")


def check_output_dir(path: str | Path, option: str = "--out") -> Path:
    """Raise ConfigError unless `path` is, or can become, a writable folder; creates nothing."""
    path = Path(path)
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"{option}: the folder is not writable (permission denied).", path=path,
                              fix=f"choose a {option} folder you can write to")
        return path
    if path.exists() or path.is_symlink():
        raise ConfigError(f"{option} is an existing file, not a folder.", path=path,
                          fix=f"pass a folder for {option} (a new or an existing one), or move the file away")
    _check_parent(path, option)
    return path


# The single files assft writes, each recognisable by its content, so a re-run may replace its own output and
# nothing else. The strings are the formats' own tags (models.checkpoint, models.source_stats, data.splits,
# reporting); utils sits below those modules, so it names them instead of importing them.
OutputKind = Literal["checkpoint", "fingerprint", "split", "figure"]
CHECKPOINT_TAG = b"assft-checkpoint"
FINGERPRINT_TAG = "assft-fingerprint"
FIGURE_TAG = b"assft"  # PNG text chunk "Software: assft" (reporting.png.save_png)
_SNIFF_BYTES = 1 << 20


def _is_assft_checkpoint(path: Path) -> bool:
    """A torch zip archive whose pickled dict carries assft's format tag (read without unpickling)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            return any(CHECKPOINT_TAG in archive.open(n).read(_SNIFF_BYTES) for n in pickles[:1])
    except (OSError, zipfile.BadZipFile, KeyError, ValueError):
        return False


def _json_object(path: Path) -> dict | None:
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def written_by_assft(path: str | Path, kind: OutputKind) -> bool:
    """Whether the existing file `path` is an output assft writes as `kind` (judged by its content, not its name)."""
    path = Path(path)
    if kind == "checkpoint":
        return _is_assft_checkpoint(path)
    if kind == "figure":
        try:
            with open(path, "rb") as handle:
                head = handle.read(4096)
        except OSError:
            return False
        return head.startswith(b"\x89PNG") and b"Software" in head and FIGURE_TAG in head
    raw = _json_object(path)
    if raw is None:
        return False
    if kind == "fingerprint":
        return raw.get("format") == FINGERPRINT_TAG
    return {"dataset", "seed", "fractions", "splits"} <= raw.keys()  # split: data.splits.save_split's keys


def check_output_file(path: str | Path, option: str = "--out", kind: OutputKind | None = None) -> Path:
    """Raise ConfigError unless `path` is, or can become, a writable file; creates nothing.

    With `kind`, an existing file is replaced only when assft wrote it as that kind (`written_by_assft`): a
    re-run may refresh its own output, never a file of the user's that happens to carry the name.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{option} is an existing folder, not a file.", path=path,
                          fix=f"pass a file path for {option}, e.g. {path / 'name'}")
    if kind is not None and (path.is_file() or path.is_symlink()) and not written_by_assft(path, kind):
        raise ConfigError(f"{option} is an existing file that is not an assft {kind}; writing would replace it.",
                          path=path, fix=f"choose a new file name for {option}, or move {path.name} away first")
    # Files are written atomically (a temporary file beside the target, then a rename): the folder must be writable.
    _check_parent(path, option)
    return path


def check_not_inputs(out_dir: str | Path, inputs: Iterable[str | Path | None], option: str = "--out") -> None:
    """Raise ConfigError when `out_dir` is a folder that holds one of `inputs` (writing there could overwrite it)."""
    target = Path(out_dir).resolve()
    for item in inputs:
        if item is None:
            continue
        p = Path(item)
        # Both the folder that lists the file and the folder of a symlink's target would be overwritten.
        if target in (p.parent.resolve(), p.resolve().parent):
            raise ConfigError(f"{option} is the folder that holds the input {p.name}; writing there would overwrite "
                              "inputs.", path=out_dir, fix=f"choose a new {option} folder")


# ---------------------------------------------------------------------------------------------------------------
# The output guard: nothing a command writes may destroy one of its own inputs.

GENERATED_MARKER = ".assft-generated"  # in every folder assft generates as a whole (apps, campaigns, simulations)


def _resolved(path: str | Path) -> Path:
    """Absolute path with symlinks resolved (a link to an input is that input)."""
    return Path(os.path.realpath(os.path.abspath(path)))


def _within(child: Path, parent: Path) -> bool:
    return child != parent and child.is_relative_to(parent)


def check_output_guard(out: str | Path, inputs: dict[str, str | Path | None], option: str = "--out", *,
                       inside_ok: bool = False) -> Path:
    """Raise ConfigError when output `out` equals, contains or lies inside one of `inputs` ({option: path}).

    The one rule every writing command applies before any work (after resolving symlinks): writing there could
    replace or mix into the input. A command that exists to update a file in place does not list that file here;
    `inside_ok` is for an output that lives in a folder of its own inside its input by design (a report inside the
    runs it summarises), and says so in its --help.
    """
    target = _resolved(out)
    for name, item in inputs.items():
        if item is None:
            continue
        source = _resolved(item)
        if target == source:
            relation = "is"
        elif _within(target, source) and not inside_ok:
            relation = "lies inside"
        elif _within(source, target):
            relation = "contains"
        else:
            continue
        raise ConfigError(f"{option} {relation} the input {name} {item}; writing there would overwrite or mix "
                          "into the input.", path=out,
                          fix=f"choose a {option} outside every input (a new file or folder beside them)")
    return Path(out)


def check_generated_folder(out: str | Path, kind: str, option: str = "--out",
                           signatures: tuple[str, ...] = ()) -> Path:
    """Raise ConfigError unless `out` may become a generated `kind` folder: absent, empty, or already one.

    "Already one": it carries the marker of the same kind (or, for folders written before the marker existed, one
    of the `signatures` files only assft writes there). A folder of the user's own files is never written into.
    """
    out = Path(out)
    if not out.is_dir():
        return out
    marker = out / GENERATED_MARKER
    if marker.is_file():
        found = marker.read_text(encoding="utf-8", errors="replace").strip()
        if found == kind:
            return out
        raise ConfigError(f"{option} is an assft {found or 'output'} folder, not a {kind} folder.", path=out,
                          fix=f"choose a new {option} folder for the {kind}")
    entries = sorted(p.name for p in out.iterdir())
    if entries and not any((out / s).exists() for s in signatures):
        raise ConfigError(f"{option} is a folder that assft did not create and is not empty ({', '.join(entries[:3])}"
                          f"{', ...' if len(entries) > 3 else ''}); writing the {kind} there could overwrite its files.",
                          path=out, fix=f"choose a new or empty {option} folder")
    return out


def mark_generated_folder(out: str | Path, kind: str) -> Path:
    """Create `out` (if needed) and write its marker: later runs may then complete or reuse it, nothing else."""
    from assft.utils.atomic import atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    marker = out / GENERATED_MARKER
    if not marker.is_file():
        atomic_write_text(marker, kind + "\n")
    return out


# ---------------------------------------------------------------------------------------------------------------
# Confinement: a name from a config, a file name or a case id stays inside its folder.

# Room for the longest suffix assft adds to a name while writing it: ".NAME.XXXXXXXX.tmp" (atomic_write) plus the
# ".nii.gz" nibabel needs on a temporary volume.
TEMP_NAME_ROOM = 21


def name_max(folder: str | Path) -> int:
    """Longest file name (bytes) the file system under `folder` allows (255 where it cannot be asked)."""
    try:
        return int(os.pathconf(_nearest_existing(Path(folder)), "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


def check_text(value: str, what: str) -> str:
    """Raise ConfigError when `value` holds a control character (a newline, a tab, NUL, ...)."""
    # Cc: C0/C1 controls (newline, tab, NUL, ...); Zl/Zp: the Unicode line and paragraph separators
    bad = sorted({c for c in value if unicodedata.category(c) in ("Cc", "Zl", "Zp")})
    if bad:
        raise ConfigError(f"{what} {value!r} contains control characters ({', '.join(repr(c) for c in bad)}).",
                          fix=f"write {what} without newlines, tabs or other control characters")
    return value


def check_plain_name(name: str, what: str, *, path: str | Path | None = None,
                     max_bytes: int = 255 - TEMP_NAME_ROOM) -> str:
    """Raise ConfigError unless `name` is one plain file name: no separators, no `..`, not absolute, no control
    characters, and at most `max_bytes` long (by default room is left for the temporary suffixes)."""
    fix = f"name the {what} with letters, digits, '-', '_' or '.' (no '/', no '..')"
    if not isinstance(name, str) or not name.strip() or name in (".", "..") or "/" in name or "\\" in name \
            or os.path.isabs(name):
        raise ConfigError(f"{what} {name!r} is not a plain name; it would be used as a folder name.", path=path,
                          fix=fix)
    check_text(name, what)
    if len(name.encode()) > max_bytes:
        raise ConfigError(f"{what} {name[:40]!r}... is {len(name.encode())} bytes long; at most {max_bytes} fit "
                          "a file name here.", path=path, fix=f"choose a shorter {what}")
    return name


def confine(root: str | Path, name: str | Path, what: str = "path") -> Path:
    """`root / name` after resolving symlinks; ConfigError when that leaves `root` (`..`, absolute, a link out)."""
    base = _resolved(root)
    candidate = _resolved(base / name)
    if candidate != base and not candidate.is_relative_to(base):
        raise ConfigError(f"{what} {str(name)!r} leads outside {root} (to {candidate}).", path=root,
                          fix=f"use a {what} inside {root}: no '..', no absolute path, no link out of the folder")
    return candidate


def check_file_names(folder: str | Path, names: Iterable[str], what: str = "file name") -> None:
    """Raise ConfigError, before the first write, unless every name to be written in `folder` is a plain name
    within the file system's limit (callers stage under short temporary names, so the final name is what counts)."""
    limit = name_max(folder)
    for name in names:
        check_plain_name(name, what, path=folder, max_bytes=limit)
