"""The campaign ledger: one JSON file rewritten atomically after every step, plus a lock against a second process.

Why a JSON file and not SQLite: a campaign has one writer (the lock enforces it) and a few dozen small records; a
whole-file `os.replace` is atomic on POSIX, the file stays human-readable and diffable, and resuming is just reading
it. SQLite would add transactions we do not need and make the ledger opaque to annotators and reviewers.
"""

from __future__ import annotations

import copy
import errno
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from assft.campaign.config import CONFIG_NAME
from assft.errors import CampaignError, CampaignLockedError, ConfigError
from assft.utils.atomic import atomic_write_json

LEDGER_NAME = "ledger.json"
LOCK_NAME = ".lock"
Step = Literal["queried", "labeled", "finetuned", "evaluated"]
STEPS: tuple[str, ...] = get_args(Step)  # the order every round goes through
VOLATILE_KEYS = frozenset({"timings", "started_at", "finished_at", "versions", "pid"})  # differ between machines/runs
_FIX = "restore it from a backup; assft writes it atomically, so a hand edit broke it"


class _Record(BaseModel):
    # extra="allow": a ledger written by a newer version still reads; the fields below are the ones code relies on
    model_config = ConfigDict(extra="allow", protected_namespaces=())


class RoundRecord(_Record):
    """One round of the ledger; each step adds its fields (queried -> labeled -> finetuned -> evaluated)."""

    round: StrictInt = Field(ge=1)
    status: Step
    # queried: the picks, the model that scored them, the labels known before
    selected: list[str] = Field(default_factory=list)
    model: str | None = None
    budget: int | None = None
    labeled_before: int | None = None
    pre_annotations: str | None = None  # the folder of the model's label maps to correct, relative to the round
    query_files: list[str] = Field(default_factory=list)  # the round's query outputs, relative to its folder
    # labeled: the ids whose annotations arrived, and what each cost to draw (metrics.annotation_cost: fg_slices,
    # fg_slices_min, fg_voxels, structures, ...; absent in ledgers written before it was recorded)
    labels_received: list[str] | None = None
    annotation_cost: dict[str, dict[str, Any]] | None = None
    # finetuned: the new checkpoint, pseudo-label table (case_id, conf, sd, selected, true_dice) and compute spent
    checkpoint: str | None = None
    init_model: str | None = None
    head: str | None = None
    pseudo_labels: list[dict[str, Any]] = Field(default_factory=list)
    compute: dict[str, Any] | None = None
    # evaluated: test metrics after the round, and the labels they were reached with
    metrics: dict[str, Any] | None = None
    labeled_total: int | None = None
    budget_fraction: float | None = None
    timings: dict[str, float] = Field(default_factory=dict)


class LedgerMeta(_Record):
    """What the campaign planned (pool, budget, rounds) and its budget-0 reference points."""

    pool_size: int | None = None
    budget_total: int | None = None
    rounds: int | None = None
    per_round: list[int] = Field(default_factory=list)
    strategy: str | None = None
    arm: str | None = None
    seed: int | None = None
    baseline_metrics: dict[str, Any] | None = None  # the start model on the test set (the budget-0 point)
    unadapted_metrics: dict[str, Any] | None = None  # with round-0 adaptation: the source model as is
    upper_metrics: dict[str, Any] | None = None  # the campaign's upper reference model, when it has one
    adaptation: dict[str, Any] | None = None
    started_at: str | None = None
    finished_at: str | None = None
    versions: dict[str, str] | None = None
    extensions: list[dict[str, Any]] = Field(default_factory=list)  # `campaign extend`: {"extension", "at"} each


class LedgerData(_Record):
    """A whole ledger file, typed: `meta` and the round records in file order."""

    meta: LedgerMeta
    rounds: list[RoundRecord]


def read_ledger(path: str | Path) -> LedgerData:
    """Read and validate a ledger.json; CampaignError naming the file for bad JSON or a wrong structure."""
    return _validate(_read_json(Path(path)), Path(path))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CampaignError(f"ledger is not valid JSON ({exc}).", path=path, fix=_FIX) from exc
    except OSError as exc:
        raise CampaignError(f"cannot read the ledger ({exc.__class__.__name__}).", path=path,
                            fix="check the path and its permissions") from exc


def _validate(data: Any, path: Path) -> LedgerData:
    if not isinstance(data, dict):
        raise CampaignError(f"ledger has an unexpected shape: the top level is a JSON {type(data).__name__}, "
                            "not an object.", path=path, fix=_FIX)
    try:
        return LedgerData.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        raise CampaignError(f"ledger has an unexpected shape: {where or 'the top level'}: {err['msg']}.",
                            path=path, fix=_FIX) from None


class Ledger:
    """Rounds of a campaign, read and written as typed records (`RoundRecord`, `LedgerMeta`).

    The file's JSON object is kept as read (fields a newer version wrote survive a save); every read hands out a
    validated snapshot and every change goes through `update_round` / `update_meta`, which save atomically.
    """

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self._data = data

    @classmethod
    def load(cls, campaign_dir: str | Path) -> Ledger:
        """Read the ledger of a campaign directory (empty when the campaign has not started)."""
        path = Path(campaign_dir) / LEDGER_NAME
        if not path.exists():
            return cls(path, {"meta": {}, "rounds": []})
        data = _read_json(path)
        _validate(data, path)  # the raw dict stays the store (saved as read); the check is the typed model's
        return cls(path, data)

    def save(self) -> None:
        """Atomically rewrite the ledger."""
        atomic_write_json(self.path, self._data)

    @property
    def meta(self) -> LedgerMeta:
        """What the campaign planned and its budget-0 points (a snapshot: changes go through `update_meta`)."""
        return LedgerMeta.model_validate(self._data["meta"])

    def update_meta(self, **fields: Any) -> LedgerMeta:
        """Merge `fields` into the meta and save atomically."""
        self._data["meta"].update(fields)
        self.save()
        return self.meta

    def records(self) -> list[RoundRecord]:
        """The rounds as typed records in order (a snapshot: changes go through `update_round`)."""
        return [RoundRecord.model_validate(r) for r in self._data["rounds"]]

    def record(self, index: int) -> RoundRecord | None:
        """The record of round `index` (1-based) or None."""
        raw = self._raw_round(index)
        return None if raw is None else RoundRecord.model_validate(raw)

    def last(self) -> RoundRecord | None:
        """The last round record, if any."""
        rounds = self._data["rounds"]
        return RoundRecord.model_validate(rounds[-1]) if rounds else None

    def update_round(self, index: int, status: str, **fields: Any) -> RoundRecord:
        """Create or update round `index`, set its status, merge `fields` (timings add up), save atomically."""
        if status not in STEPS:
            raise ValueError(f"unknown step {status!r}")
        record = self._raw_round(index)
        if record is None:
            record = {"round": index, "status": status}
            self._data["rounds"].append(record)
        record["status"] = status
        for key, value in fields.items():
            if key == "timings":
                record.setdefault("timings", {}).update(value)
            else:
                record[key] = value
        self.save()
        return RoundRecord.model_validate(record)

    def labeled_ids(self) -> list[str]:
        """Every case id labeled so far, in the order they were queried."""
        out: list[str] = []
        for record in self.records():
            if STEPS.index(record.status) >= STEPS.index("labeled"):
                out.extend(record.selected)
        return out

    def canonical(self) -> dict[str, Any]:
        """The ledger without timings, timestamps and versions: equal for equal runs, however interrupted."""
        return _strip(copy.deepcopy(self._data))

    def _raw_round(self, index: int) -> dict[str, Any] | None:
        for record in self._data["rounds"]:
            if record["round"] == index:
                return record
        return None


def _strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE_KEYS}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


@contextmanager
def campaign_lock(campaign_dir: str | Path, *, creating: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on the campaign; a second process gets a clear CampaignError instead of waiting.

    Unless `creating` (campaign init), the folder must already be a campaign: a mistyped path is an error and gets
    no folder and no .lock file.
    """
    path = Path(campaign_dir) / LOCK_NAME
    if creating:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not (Path(campaign_dir) / CONFIG_NAME).is_file():
        raise ConfigError(f"not a campaign directory (no {CONFIG_NAME}).", path=campaign_dir,
                          fix="check the path, or create a campaign with `assft campaign init`")
    try:
        handle = open(path, "a+")
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        raise CampaignError("the campaign folder is not writable, and this step records its result there.",
                            path=campaign_dir, fix="make the folder writable (chmod u+w) or copy the campaign; "
                            "`assft campaign status` and `assft report` only read and work as they are") from exc
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise CampaignLockedError(f"another assft process (pid {holder}) is working on this campaign.",
                                path=campaign_dir, fix="wait for it to finish (the lock is released when it exits)") from exc
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the flock, also after kill -9 (the kernel drops it with the process)
