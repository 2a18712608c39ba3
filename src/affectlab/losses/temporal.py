"""Temporal contrastive prediction of future steps (CLMER Eq. 3, after TS-TCC / CA-TCC [36]).

A summary ``s_t`` of the steps ``z_1 .. z_t`` of a sequence predicts the next ``M`` steps through
``F_i`` (one linear map per step ahead); each prediction ``F_i(s_t)`` must score its true future
step ``z_{t+i}`` above the negatives. Two readings of the negatives are offered:

``"time"``  CLMER Eq. 3 as printed: the other time steps of the same sequence,
            ``j in T \\ {t}`` (every step of the period except the summary's own last step).
            Every candidate sits at a different position, so an encoder that marks positions
            (zero padding at the window's ends, position codes) can score the true future step
            without reading its content: on sequences whose future is independent of their
            past the loss still falls below chance.
``"batch"`` the released TS-TCC code of [36]: the same future step ``z_{t+i}`` of the other
            sequences in the mini-batch. Every candidate sits at the same position, so only
            content can tell the true future from the negatives.

and two normalisations of the batch scores ``S[b, c] = z_{t+i}^{(b)} . F_i(s_t^{(c)})``:

``"futures"``      for every prediction, a softmax over the candidate futures (CPC's InfoNCE;
                   the reading of Eq. 3, whose denominator sums over the targets ``z_j``).
``"predictions"``  for every true future, a softmax over the batch's predictions: TS-TCC's
                   code applies ``LogSoftmax`` along the predictions axis of that matrix.

``sim`` is the dot product, as in [36] (Eq. 3 has no temperature). The loss is averaged over the
``M`` steps ahead and over the batch (TS-TCC's code divides its sum by ``batch * M`` too).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Negatives = Literal["time", "batch"]
Softmax = Literal["futures", "predictions"]


def temporal_contrastive_loss(pred: torch.Tensor, z: torch.Tensor, t: int,
                              negatives: Negatives = "batch",
                              softmax: Softmax = "futures") -> torch.Tensor:
    """CLMER Eq. 3, averaged over the ``M`` steps ahead and over the batch.

    pred: ``(B, M, d)``, ``pred[:, i]`` = ``F_{i+1}(s_t)``, the prediction of ``z_{t+i+1}``.
    z: ``(B, T, d)`` the (target) sequence; ``t`` is the 0-based index of the last summarised
    step, so the targets are ``z[:, t+1 : t+1+M]`` (``t + M < T`` is required).
    """
    batch, steps, _ = pred.shape
    length = z.shape[1]
    if not 0 <= t < length - steps:
        raise ValueError(f"t={t} with {steps} steps ahead does not fit a sequence of {length}")
    if softmax not in ("futures", "predictions"):
        raise ValueError(f"softmax must be 'futures' or 'predictions', got {softmax!r}")
    if negatives == "time":
        if softmax != "futures":
            raise ValueError("softmax='predictions' needs negatives='batch' (one prediction "
                             "per step ahead and sequence)")
        logits = torch.einsum("bmd,bjd->bmj", pred, z)
        excluded = torch.zeros(length, dtype=torch.bool, device=z.device)
        excluded[t] = True
        logits = logits.masked_fill(excluded, float("-inf"))
        targets = (t + 1 + torch.arange(steps, device=z.device)).expand(batch, steps)
        return F.cross_entropy(logits.reshape(batch * steps, length), targets.reshape(-1))
    if negatives == "batch":
        future = z[:, t + 1:t + 1 + steps]
        # logits[m, b, c]: prediction b against future c ("futures") or future b against
        # prediction c ("predictions"); the positive is c == b either way
        pattern = "bmd,cmd->mbc" if softmax == "futures" else "cmd,bmd->mbc"
        logits = torch.einsum(pattern, pred, future)
        targets = torch.arange(batch, device=z.device).expand(steps, batch)
        return F.cross_entropy(logits.reshape(steps * batch, batch), targets.reshape(-1))
    raise ValueError(f"negatives must be 'time' or 'batch', got {negatives!r}")


def sequence_loss(sample: torch.Tensor, temporal: torch.Tensor, lambda_sample: float,
                  lambda_temporal: float) -> torch.Tensor:
    """CLMER Eq. 4: ``lambda_1 * L_sample + lambda_2 * L_temporal``."""
    return lambda_sample * sample + lambda_temporal * temporal
