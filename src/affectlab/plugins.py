"""Methods from outside the package: import paths, entry points, and classes handed over directly.

A run names its method with one string, sent as such to every worker (process or Ray):

``logreg``                 a registered name (the built-in methods);
``mypkg.methods:MyMethod`` an import path, ``module:attribute``; the attribute is a
                           :class:`~affectlab.methods.Method` subclass (or what
                           :func:`~affectlab.adapters.SklearnMethod` / ``TorchMethod`` return);
``my_method``              the name of an entry point of group ``affectlab.methods`` declared by
                           an installed package (``[project.entry-points."affectlab.methods"]
                           my_method = "mypkg.methods:MyMethod"``).

Every worker resolves the same string the same way, so the module must be importable there
(installed, or on ``PYTHONPATH``; the command line puts its working directory first on
``sys.path``, and Ray workers get the driver's working directory too). A class handed to
:func:`affectlab.run` is named by its import path and *pinned* in this process; the Ray executor
sends pinned classes with each task (by value when no worker could import them).
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

from affectlab.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    import torch

    from affectlab.methods import Method

ENTRY_POINT_GROUP = "affectlab.methods"
_PINNED: dict[str, type] = {}


def method_entry_points() -> dict[str, EntryPoint]:
    """Installed entry points of group ``affectlab.methods``, by name (nothing imported)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def is_import_path(spec: str) -> bool:
    return ":" in spec


def check_import_path(spec: str) -> tuple[str, str]:
    """``"pkg.mod:Attr"`` -> ``("pkg.mod", "Attr")``; anything else is refused."""
    module, _, attr = spec.partition(":")
    parts = [*module.split("."), *attr.split(".")]
    if not module or not attr or not all(part.isidentifier() for part in parts):
        raise ConfigError("method", f"got {spec!r}; an import path is module:attribute, e.g. "
                                    "mypkg.methods:MyMethod")
    return module, attr


def import_object(spec: str) -> Any:
    """The object an import path ``module:attribute`` names (dots in the attribute walk
    into it)."""
    module_name, attr = check_import_path(spec)
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not f"{module_name}.".startswith(f"{exc.name}."):
            raise                       # a module the user's module imports is missing
        raise ConfigError("method", f"cannot import {module_name!r} for {spec!r}: no such "
                                    "module here (install it, or put its folder on "
                                    "PYTHONPATH)") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError("method", f"{module_name} has no attribute {attr!r} (from "
                                        f"{spec!r})")
        obj = getattr(obj, part)
    return obj


def pin(spec: str, cls: type) -> None:
    """Resolve ``spec`` to ``cls`` in this process (a class handed over, not imported)."""
    _PINNED[spec] = cls


def pinned(spec: str) -> type | None:
    return _PINNED.get(spec)


def resolve_method(spec: str | type) -> type[Method]:
    """The method class a run's ``method`` names: a class, a pinned or registered name, an
    import path ``module:attribute`` or an ``affectlab.methods`` entry point. An unknown name
    lists the registered methods and the entry points."""
    from affectlab.methods import METHODS

    if isinstance(spec, type):
        return _checked(spec, spec.__name__)
    if spec in _PINNED:
        return _checked(_PINNED[spec], spec)
    if spec in METHODS:
        return METHODS.get(spec)
    if is_import_path(spec):
        return _checked(import_object(spec), spec)
    found = method_entry_points()
    if spec not in found:
        raise UnknownNameError("method", spec, [*METHODS.names(), *found])
    return _checked(found[spec].load(), f"{spec} (entry point {found[spec].value})")


def _checked(obj: Any, spec: str) -> type[Method]:
    from affectlab.methods import Method

    if not (isinstance(obj, type) and issubclass(obj, Method)):
        raise ConfigError("method", f"{spec} is {obj!r}, not a subclass of affectlab.Method")
    if "default" not in obj.presets:
        raise ConfigError("method", f"{spec}: presets lack 'default' (has "
                                    f"{', '.join(obj.presets) or 'none'})")
    return obj


def method_reference(cls: type[Method]) -> str:
    """The string a run names ``cls`` by: its registered name for a built-in method, else
    its import path ``module:attribute`` (found in the module by identity). The class is
    pinned, so this process resolves the string to it even where no import could."""
    from affectlab.methods import METHODS

    _checked(cls, cls.__name__)
    if cls.name in METHODS and METHODS.get(cls.name) is cls and \
            cls.__module__.startswith("affectlab."):
        return cls.name
    module = sys.modules.get(cls.__module__)
    found = [name for name, value in vars(module).items() if value is cls] if module else []
    attr = cls.__qualname__ if cls.__qualname__ in found or not found else found[0]
    reference = f"{cls.__module__}:{attr}"
    pin(reference, cls)
    return reference


def method_label(spec: str, cls: type[Method]) -> str:
    """A name for run directories: ``spec`` unless it is an import path, then the class's
    ``name`` (or its class name)."""
    return (cls.name or cls.__name__) if is_import_path(spec) else spec


def create_method(method: str | type[Method], config: dict[str, Any] | None = None,
                  n_classes: int = 2, seed: int = 0, device: str | torch.device = "cpu",
                  preset: str = "default") -> Method:
    """Build a method (a registered name, import path, entry point or class) with a validated
    configuration: defaults <- ``preset`` <- ``config``."""
    from affectlab.methods import build_config

    cls = resolve_method(method)
    return cls(build_config(cls, preset, config), n_classes=n_classes, seed=seed, device=device)
