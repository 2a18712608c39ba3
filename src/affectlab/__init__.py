"""affectlab: multimodal emotion recognition from physiological and behavioural signals.

The working path, importable from the package itself::

    import affectlab

    ws = affectlab.load("deap", root)                          # WindowSet
    labels = affectlab.make_labels(ws.meta, "deap", "binary_valence")
    keep, dropped = affectlab.usable_windows(ws, labels)       # as the runner drops
    protocol = affectlab.create_protocol("loso", "deap")       # folds, or a CV splitter
    method = affectlab.create_method("logreg", n_classes=2)    # fit(Split) / predict(Split)
    results = affectlab.run("logreg", "deap", root, protocol="loso")

Names are imported on first use (module ``__getattr__``), so ``import affectlab`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load": "affectlab.api",
    "run": "affectlab.api",
    "reproduce": "affectlab.api",
    "Results": "affectlab.api",
    "make_labels": "affectlab.labels",
    "Labels": "affectlab.labels",
    "create_protocol": "affectlab.protocols",
    "create_method": "affectlab.plugins",
    "resolve_method": "affectlab.plugins",
    "usable_windows": "affectlab.data",
    "WindowSet": "affectlab.data",
    "Split": "affectlab.methods.base",
    "Method": "affectlab.methods.base",
    "MethodConfig": "affectlab.methods.base",
    "Predictions": "affectlab.methods.base",
    "register_method": "affectlab.methods.base",
    "SklearnMethod": "affectlab.adapters",
    "TorchMethod": "affectlab.adapters",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    """Import an exported name's module on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'affectlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    if name != "run":           # importing affectlab.run binds the module to this name
        globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names and the module's dunders (not its own imports)."""
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})
