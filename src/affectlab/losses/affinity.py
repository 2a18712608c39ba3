"""Affinity binary cross-entropy for intra-class compactness (UF-AMA Eq. 6-8).

For a labelled batch, ``Y_ij = 1[y_i = y_j]`` (Eq. 6) and ``S_ij`` is a similarity in [0, 1];
the loss is the binary cross-entropy between ``S`` and ``Y`` over pairs (Eq. 8, written in the
paper without its minus sign; the negative log-likelihood is minimised).

Two readings, selected by the caller:

paper (default): ``S_ij = (cos(x_i, x_j) + 1) / 2`` of *features* (Eq. 7), averaged over the
    ``N (N - 1)`` pairs ``i != j``; ``S`` is clamped to ``[clamp, 1 - clamp]`` so that identical
    feature vectors of different classes give a finite loss.
official (released code): ``S_ij = cos(p_i, p_j)`` of the *softmax outputs* (already in [0, 1],
    no rescaling), ``-(Y log(S + eta) + (1 - Y) log(1 - S + eta))`` with ``eta = 1e-3``, averaged
    over all ``N^2`` pairs, diagonal included: ``rescale=False, include_diagonal=True,
    eta=1e-3, clamp=0``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine_matrix(x: torch.Tensor) -> torch.Tensor:
    """``(n, n)`` cosine similarities between the rows of ``x (n, d)``."""
    z = F.normalize(x, dim=1, eps=1e-8)
    return z @ z.T


def affinity_bce(x: torch.Tensor, y: torch.Tensor, rescale: bool = True,
                 include_diagonal: bool = False, eta: float = 0.0,
                 clamp: float = 1e-6) -> torch.Tensor:
    """Affinity BCE of ``x (n, d)`` (features, or probabilities for the official reading) with
    integer labels ``y (n,)``; a scalar tensor (Eq. 6-8). Computed in float32 under autocast
    (in bf16 ``1 - clamp`` is 1, and ``log(1 - s)`` would be ``-inf``).
    """
    n = x.shape[0]
    if n < 2 and not include_diagonal:
        return x.sum() * 0.0
    if x.dtype in (torch.bfloat16, torch.float16) or torch.is_autocast_enabled(x.device.type):
        with torch.autocast(x.device.type, enabled=False):
            return affinity_bce(x.float(), y, rescale, include_diagonal, eta, clamp)
    cos = cosine_matrix(x)
    s = (cos + 1.0) / 2.0 if rescale else cos
    if clamp > 0:
        s = s.clamp(clamp, 1.0 - clamp)
    same = (y[:, None] == y[None, :]).to(x.dtype)                         # Eq. 6
    nll = -(same * torch.log(s + eta) + (1.0 - same) * torch.log(1.0 - s + eta))
    if include_diagonal:
        return nll.mean()
    off = 1.0 - torch.eye(n, dtype=x.dtype, device=x.device)
    return (nll * off).sum() / (n * (n - 1))                              # Eq. 8, i != j
