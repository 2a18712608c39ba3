"""SGMC-specific helpers of ``sgmc.py``; none of them needs a checkout of the released code.

* :func:`script_functions`, :func:`function_statements`: take functions (or single lines of a
  function) out of the released *scripts* without running their top-level code, which loads
  data files and trains on import.
* :func:`cuda_device_as_cpu`, :class:`TorchFloatAs`: the two stand-ins the released training
  code needs on a CPU in float64 (``.to('cuda')`` calls; ``dtype=torch.float`` hard-coded).
* :func:`sgmc_key_map`: the explicit state-dict mapping from SGMC's ``ResNet`` to affectlab's
  encoder, projector and classifier under ``official``.
* :func:`sgmc_draws`, :func:`group_rows`: SGMC's per-iteration random draws and the windows
  affectlab gathers for the same draws.
* :func:`output_shapes`: the output shape of chosen submodules for one input.
"""

from __future__ import annotations

import ast
import contextlib
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: SGMC's DEAP split point: ``random.randint(1, 128 - 2)``
SPLIT_RANGE = (1, 126)
BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
LINEAR_KEYS = ("weight", "bias")


# --------------------------------------------------------------------------- released scripts

def script_functions(path: Path, names: Sequence[str],
                     namespace: dict[str, Any]) -> dict[str, Callable]:
    """Define the top-level functions ``names`` of the script ``path`` in ``namespace`` (their
    globals) and return them; nothing else of the script runs."""
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    found = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    missing = [n for n in names if n not in found]
    if missing:
        raise LookupError(f"{path}: no top-level function {', '.join(missing)}")
    module = ast.Module(body=[found[n] for n in names], type_ignores=[])
    exec(compile(module, str(path), "exec"), namespace)          # noqa: S102 (released code)
    return {n: namespace[n] for n in names}


def function_statements(path: Path, function: str, needles: Sequence[str]) -> str:
    """Source of the statements of ``function`` in ``path`` that contain one of ``needles``,
    in their order in the function (each needle must match exactly one statement)."""
    source = Path(path).read_text()
    tree = ast.parse(source, filename=str(path))
    body = next((node for node in ast.walk(tree)
                 if isinstance(node, ast.FunctionDef) and node.name == function), None)
    if body is None:
        raise LookupError(f"{path}: no function {function}")
    statements = [ast.get_source_segment(source, stmt) or "" for stmt in ast.walk(body)
                  if isinstance(stmt, ast.stmt) and stmt is not body]
    chosen = []
    for needle in needles:
        hits = [s for s in statements if needle in s and "\n" not in s]
        if len(hits) != 1:
            raise LookupError(f"{function}: {len(hits)} statements contain {needle!r}")
        chosen.append(hits[0])
    return "\n".join(sorted(chosen, key=statements.index))


@contextlib.contextmanager
def cuda_device_as_cpu() -> Iterator[None]:
    """``Tensor.to('cuda')`` / ``to(device='cuda')`` go to the CPU (SGMC's loss moves its
    labels and masks with ``.to('cuda')``)."""
    original = torch.Tensor.to

    def to(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        args = tuple("cpu" if _is_cuda(a) else a for a in args)
        if _is_cuda(kwargs.get("device")):
            kwargs["device"] = "cpu"
        return original(self, *args, **kwargs)

    torch.Tensor.to = to
    try:
        yield
    finally:
        torch.Tensor.to = original


def _is_cuda(value: Any) -> bool:
    if isinstance(value, str):
        return value.startswith("cuda")
    return isinstance(value, torch.device) and value.type == "cuda"


class TorchFloatAs:
    """``torch`` as the released code sees it, except that ``torch.float`` is ``dtype`` (SGMC's
    training loop builds its batch with ``dtype=torch.float``; the float64 run needs float64)."""

    def __init__(self, dtype: torch.dtype):
        self._dtype = dtype

    def __getattr__(self, name: str) -> Any:
        return self._dtype if name == "float" else getattr(torch, name)


# --------------------------------------------------------------------------- state mapping

def sgmc_key_map(blocks_per_stage: Sequence[int] = (2, 2, 2, 2)) -> list[tuple[str, str]]:
    """``(affectlab key, SGMC key)`` for every tensor of SGMC's ``ResNet`` state dict.

    affectlab side: ``encoder.`` (:class:`affectlab.nn.resnet1d.ResNet1D`: ``stem.0`` conv,
    ``stem.1`` BN, ``blocks.k`` residual blocks with ``shortcut.0/1`` for a projected
    shortcut), ``projector.mlp.`` (official projector: Linear 0, BN 1, dropout 2, Linear 3,
    BN 4, dropout 5, Linear 6) and ``classifier.`` (Linear 0, BN 1, ReLU 2, Linear 3, BN 4,
    ReLU 5, dropout 6, Linear 7). SGMC side: ``conv1``/``bn1`` stem, ``layer{s}.{i}`` blocks
    with ``downsample.0/1`` in the first block of each stage, ``fc_projector{1,2,3}`` with
    ``bn_fc_p{1,2}``, ``fc_classifier{1,2,3}`` with ``bn_fc{1,2}``.
    """
    pairs = [("encoder.stem.0.weight", "conv1.weight")]
    pairs += _bn("encoder.stem.1.", "bn1.")
    k = 0
    for stage, n_blocks in enumerate(blocks_per_stage, start=1):
        for i in range(n_blocks):
            ours, theirs = f"encoder.blocks.{k}.", f"layer{stage}.{i}."
            for conv, bn in (("conv1", "bn1"), ("conv2", "bn2")):
                pairs.append((f"{ours}{conv}.weight", f"{theirs}{conv}.weight"))
                pairs += _bn(f"{ours}{bn}.", f"{theirs}{bn}.")
            if i == 0:
                pairs.append((f"{ours}shortcut.0.weight", f"{theirs}downsample.0.weight"))
                pairs += _bn(f"{ours}shortcut.1.", f"{theirs}downsample.1.")
            k += 1
    heads = (("projector.mlp.0.", "fc_projector1."), ("projector.mlp.1.", "bn_fc_p1."),
             ("projector.mlp.3.", "fc_projector2."), ("projector.mlp.4.", "bn_fc_p2."),
             ("projector.mlp.6.", "fc_projector3."),
             ("classifier.0.", "fc_classifier1."), ("classifier.1.", "bn_fc1."),
             ("classifier.3.", "fc_classifier2."), ("classifier.4.", "bn_fc2."),
             ("classifier.7.", "fc_classifier3."))
    for ours, theirs in heads:
        pairs += _bn(ours, theirs) if theirs.startswith("bn") else \
            [(ours + n, theirs + n) for n in LINEAR_KEYS]
    return pairs


def _bn(ours: str, theirs: str) -> list[tuple[str, str]]:
    return [(ours + n, theirs + n) for n in BN_KEYS]


def map_to_affectlab(state: Mapping[str, torch.Tensor],
                     pairs: Sequence[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """SGMC's state dict under affectlab's keys (detached copies)."""
    return {ours: state[theirs].detach().clone() for ours, theirs in pairs}


# --------------------------------------------------------------------------- random draws

def sgmc_draws(rng: random.Random, n_subjects: int) -> tuple[list[int], int]:
    """What SGMC's ``_train`` draws per iteration, in its order: the subject order
    ``random.sample(range(0, ss), ss)`` and the split ``random.randint(1, 128 - 2)``."""
    return rng.sample(range(0, n_subjects), n_subjects), rng.randint(*SPLIT_RANGE)


def group_rows(perm: Sequence[int], q: int, n_subjects: int, n_clips: int) -> torch.Tensor:
    """affectlab's ``(P, 2Q)`` window positions for SGMC's draw: clip ``p`` of a
    ``(clips, subjects)`` array flattened row-major, members ``perm[0..2Q-1]`` (member k pairs
    with k + Q, as SGMC pairs ``perm[i]`` with ``perm[i + Q]``)."""
    members = torch.as_tensor(list(perm[:2 * q]))
    return torch.arange(n_clips)[:, None] * n_subjects + members[None, :]


# --------------------------------------------------------------------------- shapes

def output_shapes(model: nn.Module, names: Sequence[str], *inputs: Any,
                  **kwargs: Any) -> list[tuple[int, ...]]:
    """Output shapes of the submodules ``names`` of ``model`` for one forward call."""
    modules = dict(model.named_modules())
    shapes: dict[str, tuple[int, ...]] = {}

    def recorder(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            shapes.setdefault(name, tuple(output.shape))     # None: the output is unchanged
        return hook

    hooks = [modules[n].register_forward_hook(recorder(n)) for n in names]
    try:
        with torch.no_grad():
            model(*inputs, **kwargs)
    finally:
        for hook in hooks:
            hook.remove()
    return [shapes[n] for n in names]
