"""Raw run configurations: YAML files and ``--set key=value`` overrides.

Only the standard library and PyYAML: the command line parses and checks a configuration's names
with this module before it imports torch, scikit-learn or the methods. The validated model is
:class:`affectlab.run.RunConfig`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from affectlab.errors import ConfigError

OPTION_GROUPS = ("method", "protocol", "data")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"method.epochs=5"`` -> (["method", "epochs"], 5); values are parsed as YAML."""
    if "=" not in text:
        raise ConfigError("--set", f"'{text}' is not key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to a raw config dict (groups go under ``options``)."""
    raw = json.loads(json.dumps(raw))
    raw.setdefault("options", {})
    for text in overrides:
        path, value = parse_override(text)
        if path[0] in OPTION_GROUPS and len(path) > 1:
            target = raw["options"].setdefault(path[0], {})
            path = path[1:]
        else:
            target = raw
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(".".join(path), "is not a group of options")
        target[path[-1]] = value
    return raw


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML config file holds; an unreadable file or a non-mapping is refused."""
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError("--config", f"{path} does not hold a mapping")
    return raw
