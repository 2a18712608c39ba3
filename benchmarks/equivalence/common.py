"""Helpers shared by the equivalence harnesses (affectlab against the authors' released code).

* :func:`rel_error`: the error measure of every comparison.
* :class:`Rule`, :func:`map_state`, :func:`load_mapped`: explicit state-dict mappings from the
  released modules to affectlab's, checked for completeness and shapes.
* :func:`interleaved_timing`, :func:`timing_summary`: CPU seconds per step, alternating the
  implementations one call each so that the load of a shared machine hits all of them alike.
* :func:`format_table`: the printed result table.
* :func:`import_released`, :func:`cuda_as_cpu`, :func:`float64_port`, :func:`record_backward`,
  :func:`disable_dropout`: running the released scripts' code on a CPU, in float64, and
  reading the losses their training loops back-propagate.

Nothing here is specific to one method, and nothing needs a checkout of the released code.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import importlib
import importlib.util
import json
import math
import platform
import re
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: relative tolerance of a float64 / float32 comparison
TOLERANCE = {"float64": 1e-9, "float32": 1e-4}
#: float32 tolerance of a weight change: one step moves a weight by about ``lr`` (1e-4 in M2S
#: pre-training) and float32 resolves the updated weight to one unit in its last place, up to
#: 1.2e-7 for weights near 1: 1.2e-3 of the change
STEP_TOLERANCE = {"float64": 1e-9, "float32": 2e-3}
DTYPES = {"float64": torch.float64, "float32": torch.float32}


# --------------------------------------------------------------------------- error measure

#: Adam's first step is ``-lr g / (|g| + eps)``: for ``|g|`` near its eps (1e-8) a round-off
#: difference of the gradients changes the step by up to ``lr``; weight changes are compared
#: on the entries whose gradient is at least this (1000 x eps)
ADAM_FLOOR = 1e-5


def rel_error(ours: Any, theirs: Any, floor: float = 0.0) -> float:
    """Largest relative error between two results, over every leaf of nested dicts / lists.

    Float tensors and floats: ``max |ours - theirs| / max(max |theirs|, max |ours|, floor)``
    per leaf (the error relative to the leaf's scale, so entries near zero do not blow it up;
    0 when both are all zero). ``floor`` keeps a leaf that is zero in exact arithmetic (and
    holds only round-off) from counting as a large relative error. Anything else (integer or
    bool tensors, ints, strings, sets) must be equal: 0, else ``inf``. Different keys, lengths
    or shapes give ``inf``.
    """
    if isinstance(ours, Mapping) or isinstance(theirs, Mapping):
        if not (isinstance(ours, Mapping) and isinstance(theirs, Mapping)) \
                or set(ours) != set(theirs):
            return math.inf
        return max((rel_error(ours[k], theirs[k], floor) for k in ours), default=0.0)
    if isinstance(ours, (list, tuple)) or isinstance(theirs, (list, tuple)):
        if not (isinstance(ours, (list, tuple)) and isinstance(theirs, (list, tuple))) \
                or len(ours) != len(theirs):
            return math.inf
        return max((rel_error(a, b, floor) for a, b in zip(ours, theirs, strict=True)),
                   default=0.0)
    if _is_float(ours) and _is_float(theirs):
        a = torch.as_tensor(ours, dtype=torch.float64).detach().cpu()
        b = torch.as_tensor(theirs, dtype=torch.float64).detach().cpu()
        if a.shape != b.shape:
            return math.inf
        if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
            return 0.0 if torch.equal(a, b) else math.inf
        if a.numel() == 0:
            return 0.0
        scale = max(float(a.abs().max()), float(b.abs().max()), floor)
        return 0.0 if scale == 0.0 else float((a - b).abs().max()) / scale
    if isinstance(ours, torch.Tensor) or isinstance(theirs, torch.Tensor):
        return 0.0 if isinstance(ours, torch.Tensor) and isinstance(theirs, torch.Tensor) \
            and ours.shape == theirs.shape and torch.equal(ours.cpu(), theirs.cpu()) else math.inf
    return 0.0 if ours == theirs else math.inf


def _is_float(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.is_floating_point()
    return isinstance(value, float)


def gradient_error(ours: Mapping[str, torch.Tensor], theirs: Mapping[str, torch.Tensor],
                   relative_floor: float = 1e-3) -> float:
    """:func:`rel_error` of two gradients ``{name: tensor}``, each tensor relative to its own
    largest entry or to ``relative_floor`` x the largest entry of all of them, whichever is
    larger (a tensor whose exact gradient is zero, e.g. a bias the loss is invariant to, holds
    only round-off)."""
    largest = max((float(g.abs().max()) for g in theirs.values()
                   if g is not None and g.numel()), default=0.0)
    return rel_error(ours, theirs, relative_floor * largest)


def change_errors(before: Mapping[str, torch.Tensor], after_ours: Mapping[str, torch.Tensor],
                  after_theirs: Mapping[str, torch.Tensor],
                  gradients: Mapping[str, torch.Tensor | None], floor: float = ADAM_FLOOR
                  ) -> tuple[float, float]:
    """Errors of the weight change of an optimiser step from the common state ``before``:
    over every entry, and over the entries whose gradient (``gradients[name]``: what the
    first step's Adam sees, its L2 weight decay included) is at least ``floor`` (names without
    one are compared whole). Non-float entries (counters) must be equal."""
    ours, theirs, kept_ours, kept_theirs = {}, {}, {}, {}
    for name, start in before.items():
        if not start.is_floating_point():
            ours[name], theirs[name] = after_ours[name], after_theirs[name]
            kept_ours[name], kept_theirs[name] = ours[name], theirs[name]
            continue
        ours[name], theirs[name] = after_ours[name] - start, after_theirs[name] - start
        grad = gradients.get(name)
        keep = grad.abs() >= floor if grad is not None \
            else torch.ones_like(start, dtype=torch.bool)
        kept_ours[name], kept_theirs[name] = ours[name][keep], theirs[name][keep]
    return rel_error(ours, theirs), rel_error(kept_ours, kept_theirs)


def within(error: float, dtype: str, tolerance: Mapping[str, float] | None = None) -> bool:
    """Whether ``error`` is within the tolerance of ``dtype`` (``float64`` / ``float32``):
    ``tolerance[dtype]`` if given, else :data:`TOLERANCE`."""
    return error <= (tolerance or TOLERANCE)[dtype]


def row_matches(row: Mapping[str, Any]) -> bool:
    """Whether every dtype of a result row is within its tolerance (the row's own, if any)."""
    return all(within(e, d, row.get("tolerance")) for d, e in row["errors"].items())


# --------------------------------------------------------------------------- state mapping

@dataclass(frozen=True)
class Rule:
    """affectlab key ``target`` filled from released key(s) ``sources`` (several: concatenated
    along dim 0, e.g. per-step predictors stored as one ``Linear``)."""

    target: str
    sources: tuple[str, ...]


def rules(pairs: Iterable[tuple[str, str | Sequence[str]]]) -> list[Rule]:
    """``[(target, source or [sources]), ...]`` -> rules."""
    return [Rule(t, (s,) if isinstance(s, str) else tuple(s)) for t, s in pairs]


def prefixed(prefix_target: str, prefix_source: str, names: Iterable[str]) -> list[Rule]:
    """One rule per ``name``: ``prefix_target + name <- prefix_source + name``."""
    return [Rule(prefix_target + n, (prefix_source + n,)) for n in names]


def rules_from_prefixes(source_keys: Iterable[str], prefixes: Sequence[tuple[str, str]]
                        ) -> list[Rule]:
    """One rule per source key under a released module prefix: ``(ours, theirs)`` pairs map
    ``theirs + rest`` to ``ours + rest`` (prefixes end with a dot)."""
    out = []
    for key in source_keys:
        for ours, theirs in prefixes:
            if key.startswith(theirs):
                out.append(Rule(ours + key[len(theirs):], (key,)))
    return out


def map_state(source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor],
              mapping: Sequence[Rule], unused: Iterable[str] = ()) -> dict[str, torch.Tensor]:
    """The ``target`` state dict filled from ``source`` through ``mapping``.

    Every target key must be filled by exactly one rule; every source key must be read by a
    rule or match a pattern of ``unused`` (``fnmatch``, e.g. the released template layers
    that are deep-copied and never run); shapes must agree; values take the target's dtype.
    Raises ``ValueError`` listing every problem.
    """
    problems: list[str] = []
    counts: dict[str, int] = {}
    for rule in mapping:
        counts[rule.target] = counts.get(rule.target, 0) + 1
    problems += [f"target {k!r} filled by {n} rules" for k, n in counts.items() if n > 1]
    problems += [f"target {k!r} has no rule" for k in target if k not in counts]
    problems += [f"rule for unknown target {k!r}" for k in counts if k not in target]
    read = {s for rule in mapping for s in rule.sources}
    problems += [f"rule reads unknown source {k!r}" for k in sorted(read - set(source))]
    patterns = list(unused)
    problems += [f"source {k!r} is neither mapped nor declared unused" for k in source
                 if k not in read and not any(fnmatch.fnmatchcase(k, p) for p in patterns)]
    out: dict[str, torch.Tensor] = {}
    for rule in mapping:
        if rule.target not in target or any(s not in source for s in rule.sources):
            continue
        parts = [source[s] for s in rule.sources]
        value = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
        want = target[rule.target]
        if tuple(value.shape) != tuple(want.shape):
            problems.append(f"{rule.target!r}: shape {tuple(value.shape)} from "
                            f"{', '.join(rule.sources)} != {tuple(want.shape)}")
            continue
        out[rule.target] = value.detach().clone().to(want.dtype)
    if problems:
        raise ValueError("state-dict mapping: " + "; ".join(problems))
    return out


def load_mapped(module: nn.Module, source: Mapping[str, torch.Tensor],
                mapping: Sequence[Rule], unused: Iterable[str] = ()) -> None:
    """Copy ``source`` (a released state dict) into ``module`` through ``mapping`` (strict)."""
    module.load_state_dict(map_state(source, module.state_dict(), mapping, unused), strict=True)


# --------------------------------------------------------------------------- timing

def interleaved_timing(steps: Mapping[str, Callable[[], object]], repeats: int,
                       warmup: int = 1, clock: Callable[[], float] = time.process_time
                       ) -> dict[str, list[float]]:
    """Time each callable ``repeats`` times, one call of each in turn (after ``warmup`` rounds
    that are not timed). Returns the ``clock`` seconds of every timed call, per name. The
    default clock is the process CPU time (``time.process_time``): waits for a busy CPU do
    not count, and with one thread it is the compute cost of the call."""
    for _ in range(warmup):
        for fn in steps.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            start = clock()
            fn()
            times[name].append(clock() - start)
    return times


def timing_summary(times: Mapping[str, Sequence[float]]) -> dict[str, dict[str, float]]:
    """Median, minimum, maximum and count of each name's timings."""
    return {name: {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}
            for name, v in times.items() if v}


# --------------------------------------------------------------------------- reporting

def format_table(rows: Sequence[Mapping[str, Any]], dtypes: Sequence[str] = ("float64",
                                                                             "float32")) -> str:
    """Markdown table: component, the max relative error per dtype, and whether every dtype is
    within its tolerance. ``rows``: ``{"component": str, "errors": {dtype: float}}``, with an
    optional ``"tolerance": {dtype: float}`` (marked ``*``)."""
    header = ["component", *[f"{d} max rel. error" for d in dtypes], "match"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        errors = row["errors"]
        cells = [f"{errors[d]:.2e}" if d in errors else "-" for d in dtypes]
        star = "*" if row.get("tolerance") else ""
        lines.append(f"| {row['component']}{star} | " + " | ".join(cells)
                     + f" | {'yes' if row_matches(row) else 'NO'} |")
    tol = ", ".join(f"{d} {TOLERANCE[d]:g}" for d in dtypes)
    text = "\n".join(lines) + f"\n(tolerance: {tol}"
    special = {f"{d} {row['tolerance'][d]:g}" for row in rows if row.get("tolerance")
               for d in dtypes if d in row["tolerance"] and row["tolerance"][d] != TOLERANCE[d]}
    return text + (f"; * {', '.join(sorted(special))}" if special else "") + ")"


def jsonable(value: Any) -> Any:
    """``value`` with non-finite floats as strings and tensors as lists (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


RESULTS = Path(__file__).resolve().parents[1] / "results"


def harness_arguments(doc: str, repository: str, result_name: str, repeats: int,
                      warmup: int) -> argparse.ArgumentParser:
    """The options of a harness script: ``--official`` (checkout of ``repository``),
    ``--repeats`` / ``--warmup`` (timed and untimed steps per variant), ``--no-timing`` and
    ``--out`` (default ``benchmarks/results/<result_name>``)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--official", type=Path, required=True,
                        help=f"checkout of {repository}")
    parser.add_argument("--repeats", type=int, default=repeats, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / result_name)
    return parser


def environment() -> dict[str, Any]:
    """torch / Python versions, machine and torch thread count, for a result file."""
    return {"torch": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "threads": torch.get_num_threads()}


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(payload), indent=2, allow_nan=False) + "\n")


def git_commit(path: Path) -> str | None:
    """The checked-out commit of ``path`` if it is a git work tree, else None."""
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True,
                             text=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


# --------------------------------------------------------------------------- running released code

def import_released(root: Path, names: Sequence[str],
                    stubs: Mapping[str, Mapping[str, Any]] | None = None
                    ) -> tuple[dict[str, types.ModuleType], list[str]]:
    """Import the released modules ``names`` from the folder ``root``.

    ``stubs``: module name -> attributes of a stand-in module, registered only when the module
    cannot be found (a file missing from the release, a plotting package not installed).
    Returns the modules and the names that were stubbed.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder (a checkout of the released code)")
    sys.path.insert(0, str(root))
    stubbed = []
    for name, attrs in (stubs or {}).items():
        if name in sys.modules or importlib.util.find_spec(name) is not None:
            continue
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module
        stubbed.append(name)
    return {name: importlib.import_module(name) for name in names}, stubbed


@contextlib.contextmanager
def cuda_as_cpu() -> Iterator[None]:
    """``Tensor.cuda()`` and ``Module.cuda()`` return their input (released code calls them
    on every batch)."""
    tensor_cuda, module_cuda = torch.Tensor.cuda, nn.Module.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    nn.Module.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda, nn.Module.cuda = tensor_cuda, module_cuda


@contextlib.contextmanager
def float64_port(active: bool = True) -> Iterator[None]:
    """With ``active``: default dtype float64 and ``Tensor.float()`` the identity, so code that
    casts its inputs or new tensors to float32 runs in float64 (values unchanged otherwise)."""
    if not active:
        yield
        return
    default, tensor_float = torch.get_default_dtype(), torch.Tensor.float
    torch.set_default_dtype(torch.float64)
    torch.Tensor.float = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.set_default_dtype(default)
        torch.Tensor.float = tensor_float


@contextlib.contextmanager
def record_backward() -> Iterator[list[torch.Tensor]]:
    """Collect a detached copy of every tensor ``.backward()`` is called on (the losses a
    training loop back-propagates, in order)."""
    calls: list[torch.Tensor] = []
    original = torch.Tensor.backward

    def spy(self, *args, **kwargs):
        calls.append(self.detach().clone())
        return original(self, *args, **kwargs)

    torch.Tensor.backward = spy
    try:
        yield calls
    finally:
        torch.Tensor.backward = original


def disable_dropout(module: nn.Module) -> int:
    """Set every dropout probability of ``module`` to 0 (``nn.Dropout*`` modules and the
    attention dropout of ``nn.MultiheadAttention``); returns how many were non-zero."""
    changed = 0
    for sub in module.modules():
        if isinstance(sub, nn.modules.dropout._DropoutNd):
            changed += sub.p > 0
            sub.p = 0.0
        elif isinstance(sub, nn.MultiheadAttention):
            changed += sub.dropout > 0
            sub.dropout = 0.0
    return changed


def count_calls(module: nn.Module) -> list[int]:
    """A list that grows by one at every forward call of ``module`` (a forward hook)."""
    calls: list[int] = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


def reshape_rearrange(tensor: torch.Tensor, pattern: str, **sizes: int) -> torch.Tensor:
    """``einops.rearrange`` for patterns that only regroup axes (the order of the elementary
    axes is the same on both sides): a reshape. Stand-in when einops is not installed."""
    left, right = (_groups(side) for side in pattern.split("->"))
    if [a for g in left for a in g] != [a for g in right for a in g]:
        raise NotImplementedError(f"pattern {pattern!r} reorders axes")
    if len(left) != tensor.dim():
        raise ValueError(f"pattern {pattern!r} has {len(left)} input axes, tensor {tensor.dim()}")
    known = dict(sizes)
    for group, size in zip(left, tensor.shape, strict=True):
        unknown = [a for a in group if a not in known]
        if len(unknown) > 1:
            raise ValueError(f"pattern {pattern!r}: sizes of {unknown} are not given")
        rest = math.prod(known[a] for a in group if a in known)
        if unknown:
            known[unknown[0]] = size // rest
        if math.prod(known[a] for a in group) != size:
            raise ValueError(f"pattern {pattern!r}: axis of size {size} != {group}")
    return tensor.reshape([math.prod(known[a] for a in g) for g in right])


def _groups(side: str) -> list[list[str]]:
    groups: list[list[str]] = []
    current: list[str] | None = None
    for token in re.findall(r"\(|\)|\w+", side):
        if token == "(":
            current = []
        elif token == ")":
            groups.append(current or [])
            current = None
        elif current is not None:
            current.append(token)
        else:
            groups.append([token])
    return groups
