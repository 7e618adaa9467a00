"""The campaign ledger: one JSON file rewritten atomically after every step, plus a lock against a second process.

Why a JSON file and not SQLite: a campaign has one writer (the lock enforces it) and a few dozen small records; a
whole-file `os.replace` is atomic on POSIX, the file stays human-readable and diffable, and resuming is just reading
it. SQLite would add transactions we do not need and make the ledger opaque to annotators and reviewers.
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from assft.errors import CampaignError
from assft.utils.atomic import atomic_write_json

LEDGER_NAME = "ledger.json"
LOCK_NAME = ".lock"
STEPS = ("queried", "labeled", "finetuned", "evaluated")  # the order every round goes through
VOLATILE_KEYS = frozenset({"timings", "started_at", "finished_at", "versions", "pid"})  # differ between machines/runs


class Ledger:
    """Rounds of a campaign: {"rounds": [{"round": r, "status": step, ...}, ...], "meta": {...}}."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def load(cls, campaign_dir: str | Path) -> Ledger:
        """Read the ledger of a campaign directory (empty when the campaign has not started)."""
        path = Path(campaign_dir) / LEDGER_NAME
        if not path.exists():
            return cls(path, {"meta": {}, "rounds": []})
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CampaignError(f"ledger is not valid JSON ({exc}).", path=path,
                                fix="restore it from a backup; assft writes it atomically, so a hand edit broke it") from exc
        problem = _shape_problem(data)
        if problem:
            raise CampaignError(f"ledger has an unexpected shape: {problem}.", path=path,
                                fix="restore it from a backup; assft writes it atomically, so a hand edit broke it")
        return cls(path, data)

    def save(self) -> None:
        """Atomically rewrite the ledger."""
        atomic_write_json(self.path, self.data)

    @property
    def rounds(self) -> list[dict[str, Any]]:
        """Round records in order."""
        return self.data["rounds"]

    def round(self, index: int) -> dict[str, Any] | None:
        """The record of round `index` (1-based) or None."""
        for record in self.rounds:
            if record["round"] == index:
                return record
        return None

    def current(self) -> dict[str, Any] | None:
        """The last round record, if any."""
        return self.rounds[-1] if self.rounds else None

    def update_round(self, index: int, status: str, **fields: Any) -> dict[str, Any]:
        """Create or update round `index`, set its status, merge `fields`, save atomically."""
        if status not in STEPS:
            raise ValueError(f"unknown step {status!r}")
        record = self.round(index)
        if record is None:
            record = {"round": index, "status": status}
            self.rounds.append(record)
        record["status"] = status
        for key, value in fields.items():
            if key == "timings":
                record.setdefault("timings", {}).update(value)
            else:
                record[key] = value
        self.save()
        return record

    def labeled_ids(self) -> list[str]:
        """Every case id labeled so far, in the order they were queried."""
        out: list[str] = []
        for record in self.rounds:
            if STEPS.index(record["status"]) >= STEPS.index("labeled"):
                out.extend(record.get("selected", []))
        return out

    def canonical(self) -> dict[str, Any]:
        """The ledger without timings, timestamps and versions: equal for equal runs, however interrupted."""
        return _strip(copy.deepcopy(self.data))


def _shape_problem(data: Any) -> str | None:
    """What is wrong with a parsed ledger's structure (None when every step can rely on it)."""
    if not isinstance(data, dict):
        return f"the top level is a JSON {type(data).__name__}, not an object"
    if not isinstance(data.get("meta"), dict):
        return "'meta' is missing or not an object"
    rounds = data.get("rounds")
    if not isinstance(rounds, list):
        return "'rounds' is missing or not a list"
    for i, record in enumerate(rounds):
        if not isinstance(record, dict):
            return f"rounds[{i}] is not an object"
        if not isinstance(record.get("round"), int) or isinstance(record.get("round"), bool) or record["round"] < 1:
            return f"rounds[{i}] has no round number >= 1"
        if record.get("status") not in STEPS:
            return f"rounds[{i}] has status {record.get('status')!r}, not one of {', '.join(STEPS)}"
        if not isinstance(record.get("selected", []), list):
            return f"rounds[{i}] 'selected' is not a list"
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
    from assft.campaign.config import CONFIG_NAME
    from assft.errors import ConfigError

    path = Path(campaign_dir) / LOCK_NAME
    if creating:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not (Path(campaign_dir) / CONFIG_NAME).is_file():
        raise ConfigError(f"not a campaign directory (no {CONFIG_NAME}).", path=campaign_dir,
                          fix="check the path, or create a campaign with `assft campaign init`")
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise CampaignError(f"another assft process (pid {holder}) is working on this campaign.",
                                path=campaign_dir, fix="wait for it to finish (the lock is released when it exits)") from exc
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the flock, also after kill -9 (the kernel drops it with the process)
