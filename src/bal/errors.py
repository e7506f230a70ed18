"""The errors a user can cause, each ending a stage with one sentence (stages/common.fails_cleanly)."""

from __future__ import annotations


class ConfigError(Exception):
    """A bad value in params.yaml."""


class DataError(Exception):
    """A missing, corrupt or inconsistent data file or setting; the message says which and what to do."""


class Invalid(ConfigError):
    """A bad value of one field of a settings dataclass, named relative to that dataclass; whoever built
    it from params.yaml (bal.config) puts the full key in front."""

    def __init__(self, field: str, value, allowed: str):
        super().__init__(f"{field} = {value!r}: {allowed}.")
        self.field, self.value, self.allowed = field, value, allowed


def require(ok: bool, field: str, value, allowed: str) -> None:
    """Raise :class:`Invalid` unless ``ok``."""
    if not ok:
        raise Invalid(field, value, allowed)
