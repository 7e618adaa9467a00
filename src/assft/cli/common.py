"""Shared CLI pieces: console, options parsing helpers, config loading."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:
    from assft.utils.paths import OutputKind

STATE: dict[str, Any] = {"debug": False}
console = Console(stderr=False)
err_console = Console(stderr=True)


def default_of(model: type, dotted: str) -> str:
    """A config field's default as help text shows it (e.g. `default_of(FinetuneConfig, "train.lr")` -> "0.0005").

    Defaults live in the pydantic config classes only; help texts read them from there instead of repeating them.
    """
    value: Any = model
    for part in dotted.split("."):
        if isinstance(value, type):
            value = value.model_fields[part].get_default(call_default_factory=True)
        else:
            value = getattr(value, part)
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_triple(text: str | None, option: str = "size") -> tuple[int, int, int] | None:
    """'40,56,40' -> (40, 56, 40); one number means a cube; sizes must be positive."""
    if text is None:
        return None
    from assft.errors import ConfigError

    fix = f"write three positive integers for {option}, e.g. 40,56,40"
    try:
        parts = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError as exc:
        raise ConfigError(f"{option}: cannot parse size {text!r}.", fix=fix) from exc
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3:
        raise ConfigError(f"{option}: size {text!r} needs 3 values.", fix=fix)
    if min(parts) < 1:
        raise ConfigError(f"{option}: size {text!r} has a value below 1.", fix=fix)
    from assft.data.limits import check_requested_size

    check_requested_size(parts, option)
    return parts  # type: ignore[return-value]


def parse_fractions(text: str) -> dict[str, float]:
    """'source=0.3,pool=0.5,test=0.2' -> dict."""
    from assft.errors import ConfigError

    out: dict[str, float] = {}
    for item in text.split(","):
        if "=" not in item:
            raise ConfigError(f"cannot parse {item!r} in --fractions.", fix="write name=value pairs, e.g. source=0.3,test=0.2")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = float(value)
        except ValueError as exc:
            raise ConfigError(f"{value!r} is not a number in --fractions.", fix="use fractions or counts") from exc
    return out


def check_output_dir(path: Path, option: str = "--out", inputs: dict[str, Path | str | None] | None = None) -> Path:
    """Fail now, before any work, when `path` cannot become a writable output folder, or would overwrite, contain
    or lie inside one of the command's `inputs` ({option: path}; assft.utils.paths.check_output_guard)."""
    from assft.utils.paths import check_output_dir as check
    from assft.utils.paths import check_output_guard

    check_output_guard(path, inputs or {}, option)
    return check(path, option)


def check_output_file(path: Path, option: str = "--out", inputs: dict[str, Path | str | None] | None = None,
                      kind: OutputKind | None = None) -> Path:
    """Fail now, before any work, when `path` cannot become a writable output file, is (or lies inside) one of
    the command's `inputs` ({option: path}), or is an existing file that assft did not write as `kind`."""
    from assft.utils.paths import check_output_file as check
    from assft.utils.paths import check_output_guard

    check_output_guard(path, inputs or {}, option)
    return check(path, option, kind)


def load_data(path: Path, split: Path | None = None, subset: str | None = None, limit: int | None = None):
    """Dataset at `path`, restricted to a split subset and/or the first `limit` cases."""
    from assft.data.layout import load_dataset
    from assft.data.splits import select_cases

    spec = load_dataset(path)
    note_not_read(spec)
    return select_cases(spec, split, subset, limit)


def note_not_read(spec: Any) -> None:
    """One stderr line when a plain folder held entries that are not volumes (`assft data check` lists them)."""
    from assft.data.layout import describe_not_read

    line = describe_not_read(spec)
    if line:
        err_console.print(f"[yellow]note:[/] {line}", highlight=False, soft_wrap=True)


def recorded_theta0_of(model: str | Path | None) -> str | None:
    """The θ0 an adapted or fine-tuned checkpoint's provenance names (None: no such file, or it names none)."""
    if model is None or not Path(model).is_file():
        return None  # the command's own check reports a missing --model
    from assft.models.checkpoint import load_checkpoint, resolve_recorded_theta0

    found = resolve_recorded_theta0(load_checkpoint(model), model)
    return str(found) if found is not None else None


def default_query_of(theta0: str | Path | None, fingerprint: str | Path | None = None) -> tuple[str, str] | None:
    """(strategy, why) for a command whose user named no strategy, from θ0's network (None: no such file)."""
    if theta0 is None or not Path(theta0).is_file():
        return None  # the command's own check reports a missing --model
    from assft.models.checkpoint import build_from_checkpoint
    from assft.models.source_stats import default_query_for

    model, checkpoint, _ = build_from_checkpoint(theta0, allow_partial=True)
    return default_query_for(model, checkpoint, fingerprint)


# ---------------------------------------------------------------------------------------------------------------
# The error boundary's answers to the machine's own faults (a full disk, no permission, a folder gone).

ABORTED = "aborted, nothing written by the interrupted step (completed steps are kept; run the command again)"


def _fault_path(exc: OSError) -> str:
    return str(exc.filename) if exc.filename is not None else "the output location"


def describe_fault(exc: BaseException) -> str | None:
    """One line `PATH: what happened. Fix: ...` for an environment fault, or None for anything else (a bug).

    Every write goes through a temporary file and a rename (assft.utils.atomic), so after any of these faults the
    files a step had already committed are intact and nothing half-written is left under its final name.
    """
    import errno

    if not isinstance(exc, OSError) or exc.errno is None:
        return None
    path = _fault_path(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return (f"{path}: no space left on the device (or the disk quota is used up); nothing was changed by the "
                "failed step. Fix: free space on that file system (or choose an output on another one) and run the "
                "command again")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        what = "the file system is read-only" if exc.errno == errno.EROFS else "permission denied"
        return (f"{path}: cannot write ({what}); nothing was changed. Fix: make the folder writable for this user "
                "(chmod u+w, or ask its owner), or copy it to a location you can write to")
    if exc.errno in (errno.ENOENT, errno.ESTALE, errno.ENOTDIR):
        return (f"{path}: no longer exists (a folder was moved or deleted while the command ran, or the disk was "
                "unmounted). Fix: restore the folder (or check the path) and run the command again")
    if exc.errno == errno.ENAMETOOLONG:
        return f"{path}: the file name is too long for the file system. Fix: use shorter names (case ids, folders)"
    return None
