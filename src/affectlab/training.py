"""Small training utilities shared by the PyTorch methods (no framework on top of torch).

Batches are drawn by indexing contiguous tensors that already sit on the training device; no
per-sample Python in the loop.
"""

from __future__ import annotations

import copy
import os
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager

import numpy as np
import torch

from affectlab.errors import ConfigError


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy's legacy state (for third-party code) and torch; return a generator."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002  (the one seeding helper)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; otherwise the named device (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device", f"'{name}' requested but CUDA is not available")
    return torch.device(name)


#: how each numerics option is declared in a run's summary
NUMERICS = {"amp": "bf16 autocast (amp)", "tf32": "TF32 matmuls and convolutions (tf32)",
            "deterministic": "deterministic algorithms (deterministic)"}


@contextmanager
def numerics(device: torch.device, amp: bool = False, tf32: bool = False,
             deterministic: bool = False) -> Iterator[None]:
    """The run options ``amp``, ``tf32`` and ``deterministic`` for the block (one fold), each
    restored afterwards; off, an option leaves torch as it is.

    amp: bf16 autocast on ``device`` (CPU and CUDA). tf32: TensorFloat-32 for float32 matmuls
    and cuDNN convolutions on CUDA (a no-op elsewhere). deterministic:
    ``torch.use_deterministic_algorithms(True)`` (an op without a deterministic version
    raises), cuDNN's benchmark off and, on CUDA, ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` unless set.
    """
    with ExitStack() as stack:
        if tf32:
            stack.enter_context(_tf32())
        if deterministic:
            stack.enter_context(_deterministic(device))
        if amp:
            stack.enter_context(torch.autocast(device_type=device.type, dtype=torch.bfloat16))
        yield


@contextmanager
def _tf32() -> Iterator[None]:
    precision, cudnn = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(precision)
        torch.backends.cudnn.allow_tf32 = cudnn


@contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    workspace = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    if device.type == "cuda" and workspace is None:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"     # cuBLAS's deterministic mode
    torch.use_deterministic_algorithms(True, warn_only=False)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        torch.backends.cudnn.benchmark = benchmark
        if workspace is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def minibatches(n: int, batch_size: int, generator: torch.Generator | None = None,
                shuffle: bool = True, drop_last: bool = False,
                device: torch.device | None = None) -> Iterator[torch.Tensor]:
    """Yield index tensors covering ``range(n)`` in batches (one permutation per call, moved
    to ``device`` in one copy)."""
    for _, idx in minibatch_pairs(n, batch_size, generator, shuffle, drop_last, device):
        yield idx


def minibatch_pairs(n: int, batch_size: int, generator: torch.Generator | None = None,
                    shuffle: bool = True, drop_last: bool = False,
                    device: torch.device | None = None
                    ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """:func:`minibatches` (the same draws) as ``(host rows, device index)`` pairs: the host
    copy answers questions about a batch (its longest sequence, say) without a device sync."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    host = order.numpy()
    if device is not None:
        order = order.to(device)
    stop = n - (n % batch_size) if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield host[start:start + batch_size], order[start:start + batch_size]


def full_precision(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 when autocast left it in a reduced precision (bf16 / fp16), else as
    it is: what a method hands back (probabilities, embeddings) is float32 or float64."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def draw_int(low: int, high: int, generator: torch.Generator | None = None) -> int:
    """A uniform integer in ``[low, high]`` from a host generator (a host tensor: reading it
    never waits for the device)."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def to_device(tensors: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """Host tensors of one dtype on ``device``, moved in one copy (e.g. an epoch's batch
    indices at its start, not one copy, and one wait for the device, per step)."""
    if not tensors:
        return []
    flat = torch.cat([t.reshape(-1) for t in tensors]).to(device)
    parts = flat.split([t.numel() for t in tensors])
    return [part.view(t.shape) for part, t in zip(parts, tensors, strict=True)]


class StepValues:
    """Scalar tensors logged at each training step (a loss, its terms), kept on their device;
    :meth:`read` fetches them all in one transfer, e.g. once per epoch, instead of a host
    sync per step. The values read are those ``float()`` would have given at each step."""

    def __init__(self) -> None:
        self._steps: list[dict[str, torch.Tensor | float]] = []

    def __len__(self) -> int:
        return len(self._steps)

    def add(self, **values: torch.Tensor | float) -> None:
        """One step's values (tensors, kept detached; a plain number is kept as it is)."""
        self._steps.append({name: value.detach() if isinstance(value, torch.Tensor)
                            else float(value) for name, value in values.items()})

    def weighted(self, name: str, weights: Sequence[float]) -> list[float]:
        """``value_k * weight_k`` of every step that logged ``name`` (e.g. a batch's mean loss
        times its size), in step order; one transfer, as :meth:`read`."""
        return [value * weight
                for value, weight in zip(self.read().get(name, []), weights, strict=True)]

    def weighted_sum(self, name: str, weights: Sequence[float]) -> float:
        """The sum of :meth:`weighted`, added on the host in step order."""
        total = 0.0
        for product in self.weighted(name, weights):
            total += product
        return total

    def read(self) -> dict[str, list[float]]:
        """Per name, the value of every step that logged it, in order; ``{}`` before any."""
        tensors = [value.reshape(()) for step in self._steps for value in step.values()
                   if isinstance(value, torch.Tensor)]
        fetched = iter(torch.stack(tensors).tolist() if tensors else [])
        out: dict[str, list[float]] = {}
        for step in self._steps:
            for name, value in step.items():
                out.setdefault(name, []).append(
                    next(fetched) if isinstance(value, torch.Tensor) else value)
        return out


def standardize_fit(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and std over the first axis (fitted on training data only)."""
    mean = x.mean(dim=0, keepdim=True)
    std = x.std(dim=0, keepdim=True).clamp_min(1e-6)
    return mean, std


def class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights (mean 1) for an imbalanced training part."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0.0)
    return torch.as_tensor(weights, dtype=torch.float32)


Inputs = torch.Tensor | dict[str, torch.Tensor]


def take(x: Inputs, idx: torch.Tensor) -> Inputs:
    """Rows ``idx`` of a tensor, or of every tensor of a dict."""
    return {name: value[idx] for name, value in x.items()} if isinstance(x, dict) else x[idx]


def train_classifier(model: torch.nn.Module, x: Inputs, y: torch.Tensor,
                     val: tuple[Inputs, torch.Tensor] | None = None, *, epochs: int,
                     batch_size: int, lr: float, weight_decay: float = 0.0, patience: int = 10,
                     class_weight: torch.Tensor | None = None,
                     generator: torch.Generator | None = None,
                     report: Callable[..., None] | None = None) -> dict[str, float]:
    """Adam on the cross-entropy of ``model(batch) -> (batch, n_classes)`` logits, over shuffled
    minibatches of ``x`` (a tensor ``(n, ...)`` or a dict of them, on the model's device).

    With ``val`` (inputs, labels): after each epoch the validation loss is computed in eval
    mode, the best weights are kept and restored at the end, and ``patience`` epochs without
    an improvement (by more than 1e-4) stop training. ``report(epoch, n_epochs, **logs)`` is
    called once per epoch. Returns ``epochs_run``, ``best_epoch`` and ``best_val_loss``.
    """
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weight)
    best, best_epoch, best_state, waited = float("inf"), -1, None, 0
    device = y.device
    for epoch in range(epochs):
        model.train()
        for idx in minibatches(len(y), batch_size, generator, device=device):
            optimiser.zero_grad()
            loss_fn(model(take(x, idx)), y[idx]).backward()
            optimiser.step()
        logs = {}
        if val is not None:
            logs["val_loss"] = _loss(model, loss_fn, *val)
            if logs["val_loss"] < best - 1e-4:
                best, best_epoch, waited = logs["val_loss"], epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                waited += 1
        if report is not None:
            report(epoch, epochs, **logs)
        if val is not None and waited >= patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return {"epochs_run": epoch + 1, "best_epoch": best_epoch + 1, "best_val_loss": best}


@torch.no_grad()
def _loss(model: torch.nn.Module, loss_fn: torch.nn.Module, x: Inputs, y: torch.Tensor) -> float:
    model.eval()
    return float(loss_fn(model(x), y))
