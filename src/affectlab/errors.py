"""The project's exceptions. Each names the file, key or option at fault and what was expected."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class AffectlabError(Exception):
    """Base class of every error affectlab raises on purpose."""


class DatasetFormatError(AffectlabError):
    """A dataset file or folder does not have the expected layout, key, shape or values."""

    def __init__(self, path: str | Path, problem: str, expected: str | None = None):
        self.path = str(path)
        self.problem = problem
        self.expected = expected
        message = f"{self.path}: {problem}"
        if expected:
            message += f" (expected {expected})"
        super().__init__(message)


class ConfigError(AffectlabError):
    """An option has a value that is not allowed."""

    def __init__(self, option: str, problem: str):
        self.option = option
        super().__init__(f"option '{option}': {problem}")


class UnknownNameError(ConfigError):
    """A name (dataset, preset, method, protocol, label scheme, ...) is not registered."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        self.kind = kind
        self.name = name
        self.valid = sorted(valid)
        super().__init__(kind, f"unknown {kind} '{name}'; valid: {', '.join(self.valid)}")


class ProtocolError(AffectlabError):
    """A protocol cannot be applied to this data (too few subjects, one session, ...)."""


def check_option(option: str, value: object, allowed: Iterable[object]) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``allowed``."""
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(option, f"got {value!r}; allowed: {', '.join(map(str, allowed))}")
