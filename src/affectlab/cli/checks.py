"""Names checked against the static catalog before a command imports torch, scikit-learn or the
methods, so that a typo is answered at once. The library repeats every check on the live
registries (with the same messages); these only answer sooner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from affectlab import catalog
from affectlab.errors import AffectlabError, ConfigError


def check_dataset_preset(dataset: str, preset: str | None) -> str:
    """The dataset's canonical name; an unknown dataset or preset, or a preset that does not
    support the dataset, is refused."""
    name = catalog.check("datasets", dataset)
    if preset is not None:
        catalog.check("presets", preset)
        supported = catalog.CATALOG["presets"][preset]["datasets"]
        if name not in supported:
            raise ConfigError("preset", f"preset '{preset}' does not support {name}; it "
                                        f"supports {', '.join(supported)}")
    return name


def check_run_names(raw: dict[str, Any]) -> None:
    """Method, dataset, data preset, protocol, label scheme, method preset and tracker of a raw
    run config (values of the wrong type are left to the full validation)."""
    method, protocol = raw.get("method"), raw.get("protocol", "subject_dependent")
    if isinstance(method, str):
        catalog.check_method(method)
    if isinstance(raw.get("dataset"), str):
        check_dataset_preset(raw["dataset"], _text(raw.get("preset")))
    if isinstance(protocol, str):
        catalog.check("protocols", protocol)
    labels = raw.get("labels")
    if isinstance(labels, dict) and isinstance(labels.get("scheme"), str):
        catalog.check("label_schemes", labels["scheme"])
    if isinstance(method, str) and method in catalog.CATALOG["methods"]:
        _check_builtin_method(method, raw.get("method_preset", "default"), protocol)
    if isinstance(raw.get("track"), str):
        from affectlab.tracking import check_tracking

        check_tracking(raw["track"])


def _check_builtin_method(method: str, method_preset: Any, protocol: Any) -> None:
    entry = catalog.CATALOG["methods"][method]
    if isinstance(method_preset, str) and method_preset not in entry["presets"]:
        raise ConfigError("method_preset", f"unknown preset '{method_preset}' for {method}; "
                                           f"valid: {', '.join(entry['presets'])}")
    supported = entry["protocols"]
    if isinstance(protocol, str) and supported is not None and protocol not in supported:
        raise ConfigError("protocol", f"{method} supports {', '.join(supported)}; got "
                                      f"{protocol}")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def check_run_dirs(run_dirs: list[Path]) -> None:
    """Every path is a finished run directory (it has a summary.json)."""
    for run_dir in run_dirs:
        if not (Path(run_dir) / "summary.json").is_file():
            what = "no such folder" if not Path(run_dir).is_dir() else "no summary.json"
            raise AffectlabError(f"{run_dir}: {what} (is this a finished run directory?)")
