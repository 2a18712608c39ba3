"""Temporal contrastive prediction of future steps (CLMER Eq. 3, after TS-TCC / CA-TCC [36]).

A summary ``s_t`` of the steps ``z_1 .. z_t`` of a sequence predicts the next ``M`` steps through
``F_i`` (one linear map per step ahead); each prediction ``F_i(s_t)`` must score its true future
step ``z_{t+i}`` above the negatives. Two readings of the negatives are offered:

``"time"``  CLMER Eq. 3 as printed: the other time steps of the same sequence,
            ``j in T \\ {t}`` (every step of the period except the summary's own last step).
``"batch"`` the released TS-TCC code of [36]: the same future step ``z_{t+i}`` of the other
            sequences in the mini-batch.

``sim`` is the dot product, as in [36] (Eq. 3 has no temperature).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Negatives = Literal["time", "batch"]


def temporal_contrastive_loss(pred: torch.Tensor, z: torch.Tensor, t: int,
                              negatives: Negatives = "time") -> torch.Tensor:
    """CLMER Eq. 3, averaged over the ``M`` steps ahead and over the batch.

    pred: ``(B, M, d)``, ``pred[:, i]`` = ``F_{i+1}(s_t)``, the prediction of ``z_{t+i+1}``.
    z: ``(B, T, d)`` the (target) sequence; ``t`` is the 0-based index of the last summarised
    step, so the targets are ``z[:, t+1 : t+1+M]`` (``t + M < T`` is required).
    """
    batch, steps, _ = pred.shape
    length = z.shape[1]
    if not 0 <= t < length - steps:
        raise ValueError(f"t={t} with {steps} steps ahead does not fit a sequence of {length}")
    if negatives == "time":
        logits = torch.einsum("bmd,bjd->bmj", pred, z)
        excluded = torch.zeros(length, dtype=torch.bool, device=z.device)
        excluded[t] = True
        logits = logits.masked_fill(excluded, float("-inf"))
        targets = (t + 1 + torch.arange(steps, device=z.device)).expand(batch, steps)
        return F.cross_entropy(logits.reshape(batch * steps, length), targets.reshape(-1))
    if negatives == "batch":
        future = z[:, t + 1:t + 1 + steps]
        logits = torch.einsum("bmd,cmd->mbc", pred, future)
        targets = torch.arange(batch, device=z.device).expand(steps, batch)
        return F.cross_entropy(logits.reshape(steps * batch, batch), targets.reshape(-1))
    raise ValueError(f"negatives must be 'time' or 'batch', got {negatives!r}")


def sequence_loss(sample: torch.Tensor, temporal: torch.Tensor, lambda_sample: float,
                  lambda_temporal: float) -> torch.Tensor:
    """CLMER Eq. 4: ``lambda_1 * L_sample + lambda_2 * L_temporal``."""
    return lambda_sample * sample + lambda_temporal * temporal
