"""Small training utilities shared by the PyTorch methods (no framework on top of torch).

Batches are drawn by indexing contiguous tensors that already sit on the training device; no
per-sample Python in the loop.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

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


def minibatches(n: int, batch_size: int, generator: torch.Generator | None = None,
                shuffle: bool = True, drop_last: bool = False,
                device: torch.device | None = None) -> Iterator[torch.Tensor]:
    """Yield index tensors covering ``range(n)`` in batches (one permutation per call)."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    if device is not None:
        order = order.to(device)
    stop = n - (n % batch_size) if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


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
