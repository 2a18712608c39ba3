"""Contrastive losses: NT-Xent (SimCLR) and symmetric InfoNCE (CLIP)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """NT-Xent over ``2n`` views: ``z_a[i]`` and ``z_b[i]`` are positives, all others negatives.

    z_a, z_b: ``(n, d)``. Embeddings are L2-normalised; each of the ``2n`` anchors contributes
    ``-log softmax`` of its positive among the other ``2n - 1`` samples; the mean over anchors is
    returned (CLMER Eq. 1-2, ME-MHACL Eq. 9-12).
    """
    n = z_a.shape[0]
    z = F.normalize(torch.cat([z_a, z_b], dim=0), dim=1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device),
                                float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n, device=z.device),      # made on the device:
                         torch.arange(0, n, device=z.device)])         # no copy per step
    return F.cross_entropy(logits, targets)


def info_nce(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float | torch.Tensor = 0.07,
             normalize: bool = True) -> torch.Tensor:
    """Symmetric InfoNCE between paired batches ``(n, d)``: mean of a->b and b->a CE.

    ``temperature`` may be a tensor (a learnable CLIP scale passes ``1 / exp(logit_scale)``).
    """
    if normalize:
        z_a, z_b = F.normalize(z_a, dim=1), F.normalize(z_b, dim=1)
    logits = z_a @ z_b.T / temperature
    targets = torch.arange(z_a.shape[0], device=z_a.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))
