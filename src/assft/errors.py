"""Error types: every user-facing failure names what was found, what was expected, and the fix."""

from __future__ import annotations

from pathlib import Path


class AssftError(Exception):
    """Base class for errors the CLI reports as one clear line (exit code 2)."""

    def __init__(self, message: str, *, path: str | Path | None = None, fix: str | None = None) -> None:
        self.path = str(path) if path is not None else None
        self.fix = fix
        self.message = message
        parts = []
        if self.path:
            parts.append(f"{self.path}: ")
        parts.append(message)
        if fix:
            parts.append(f" Fix: {fix}")
        super().__init__("".join(parts))


class DataError(AssftError):
    """A dataset, image or label file is missing, unreadable or inconsistent."""


class ConfigError(AssftError):
    """A configuration value or file is invalid."""


class CheckpointError(AssftError):
    """A checkpoint cannot be read or does not match the model."""


class BudgetError(AssftError):
    """A query budget cannot be met (e.g. larger than the pool)."""


class CampaignError(AssftError):
    """A campaign directory is in a state that forbids the requested step."""


class CampaignLockedError(CampaignError):
    """Another process holds the campaign's lock (it is working on the campaign now)."""


class UnknownNameError(AssftError, KeyError):
    """A registry lookup failed; the message lists the closest match and every known name."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return Exception.__str__(self)


class ConfigNotice(UserWarning):
    """A config was read as meant but is written in an old spelling; the CLI prints it as one "note:" line."""
