"""The project's exceptions. Each names the file, key or option at fault and what was expected."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any


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


class CacheError(AffectlabError):
    """The dataset cache folder cannot hold an entry (a file in its place, not writable, a
    full disk): names the folder, the problem and what to do."""

    def __init__(self, folder: str | Path, problem: str, remedy: str):
        self.folder = str(folder)
        self.problem = problem
        super().__init__(f"dataset cache folder {self.folder}: {problem}; {remedy}")


class ProtocolError(AffectlabError):
    """A protocol cannot be applied to this data (too few subjects, one session, ...)."""


def check_option(option: str, value: object, allowed: Iterable[object]) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``allowed``."""
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(option, f"got {value!r}; allowed: {', '.join(map(str, allowed))}")


def option_path(prefix: str, loc: Sequence[Any]) -> str:
    """``data`` + ``("bands", "alpha", 0)`` -> ``data.bands.alpha``: the option a pydantic error
    location names (list indices and union-member tags left out)."""
    parts = [str(part) for part in loc if isinstance(part, str) and part.isidentifier()]
    return ".".join([prefix, *parts] if prefix else parts) or prefix or "config"


def _field_names(model: Any, loc: Sequence[Any]) -> list[str] | None:
    """The option names of the (nested) pydantic model holding ``loc``'s last part."""
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        model = getattr(field, "annotation", None)
    names = getattr(model, "model_fields", None)
    return sorted(names) if names is not None else None


def _problem(error: Mapping[str, Any], model: Any) -> str:
    """``got <value>; <what is allowed>`` for one pydantic error."""
    if error["type"] == "extra_forbidden":
        names = _field_names(model, error["loc"])
        return "unknown option" + (f"; valid: {', '.join(names)}" if names else "")
    if error["type"] == "missing" and error["loc"] and isinstance(error["loc"][-1], int):
        return f"got {_short(error.get('input'))}; item {error['loc'][-1] + 1} is missing"
    if error["type"] == "missing":
        return "is required"
    message = str(error["msg"]).removeprefix("Value error, ")
    if message.startswith("Input should be "):
        message = "allowed: " + message.removeprefix("Input should be ")
    return f"got {_short(error.get('input'))}; {message[:1].lower()}{message[1:]}"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def config_error(errors: Sequence[Mapping[str, Any]], prefix: str = "",
                 model: Any = None) -> ConfigError:
    """One :class:`ConfigError` for the errors of a pydantic ``ValidationError``
    (``exc.errors()``): named after the first option at fault, every problem on one line.
    ``model``: the pydantic model validated (its fields are listed for an unknown option)."""
    first, *others = errors
    problem = _problem(first, model)
    for error in others:
        problem += f"; option '{option_path(prefix, error['loc'])}': {_problem(error, model)}"
    return ConfigError(option_path(prefix, first["loc"]), problem)
