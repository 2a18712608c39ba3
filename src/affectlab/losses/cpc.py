"""Multi-to-multi contrastive predictive coding (M2S, Liu et al., AAAI 2025, Eq. 8-13).

Each modality ``A`` has an autoregressive two-layer LSTM over its ER embeddings
``z^A = (z_1 .. z_T)`` (Eq. 8-11). The contexts at the last observed step ``M`` of every
modality are concatenated (own context first) and a linear map ``W_n^A`` per prediction step
``n = 1..N`` predicts the future embedding; that prediction is scored against the true futures
``z_{M+n}^B`` of *every* modality ``B`` (Eq. 12)::

    L^{A2B} = -1/N sum_n log softmax_j( z_j^B . W_n^A [c_M^A, c_M^B, ...] )[positive]

with raw dot products (no normalisation, no temperature, as in the released code) and the other
samples of the batch as negatives. ``normalize="targets"`` is Eq. 12 (softmax over the candidate
futures ``z_j`` for one prediction); ``"predictions"`` is the released code (``LogSoftmax`` with
the implicit dim 1 of ``futures @ predictions.T``: softmax over the batch's predictions for one
true future). Eq. 13 sums the ``K^2`` terms; the weighting is left to the caller.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORMALIZE = ("targets", "predictions")


def m2m_cpc_terms(preds: torch.Tensor, futures: torch.Tensor,
                  normalize: str = "targets") -> torch.Tensor:
    """All ``L^{A2B}`` terms of Eq. 12 at once.

    preds: ``(K, N, B, D)``, the prediction of source modality ``A`` for step ``n`` and sample
    ``b``; futures: ``(K, N, B, D)``, the true ER embedding of modality ``B`` at step ``M + n``.
    Returns ``(K, K)``: entry ``[A, B]`` is ``L^{A2B}`` averaged over steps and batch.
    """
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {NORMALIZE}, got {normalize!r}")
    logits = torch.einsum("anbd,cnjd->acnbj", preds, futures)     # (K, K, N, B, B)
    axis = -1 if normalize == "targets" else -2
    log_prob = F.log_softmax(logits, dim=axis)
    return -log_prob.diagonal(dim1=-2, dim2=-1).mean(dim=(-2, -1))


class M2MCPC(nn.Module):
    """LSTM context per modality + step predictors ``W_n^A`` (Eq. 10-12).

    n_modalities: ``K``; dim: ER embedding size ``D``; hidden: LSTM size ``D'``; layers: LSTM
    depth (2 in the paper); steps: ``N``. The ``N`` maps ``W_n^A: K D' -> D`` of a modality are
    stored as one ``Linear(K D', N D)`` (identical to ``N`` separate layers).
    """

    def __init__(self, n_modalities: int, dim: int, hidden: int = 64, layers: int = 2,
                 steps: int = 2):
        super().__init__()
        self.n_modalities, self.dim, self.steps = n_modalities, dim, steps
        self.lstms = nn.ModuleList(nn.LSTM(dim, hidden, layers, batch_first=True)
                                   for _ in range(n_modalities))
        self.predictors = nn.ModuleList(nn.Linear(n_modalities * hidden, steps * dim)
                                        for _ in range(n_modalities))

    def contexts(self, z: list[torch.Tensor], observed: int) -> list[torch.Tensor]:
        """``c_M`` per modality: the LSTM output at step ``M`` over ``z[:, :M]`` -> ``(B, D')``."""
        return [lstm(za[:, :observed])[0][:, -1] for lstm, za in zip(self.lstms, z, strict=True)]

    def predictions(self, contexts: list[torch.Tensor]) -> torch.Tensor:
        """``(K, N, B, D)``: ``W_n^A`` applied to ``[c^A, c^others...]`` (own context first)."""
        out = []
        for a, predictor in enumerate(self.predictors):
            joined = torch.cat([contexts[a], *contexts[:a], *contexts[a + 1:]], dim=-1)
            pred = predictor(joined).view(len(joined), self.steps, self.dim)
            out.append(pred.transpose(0, 1))
        return torch.stack(out)

    def forward(self, z: list[torch.Tensor], observed: int,
                normalize: str = "targets") -> torch.Tensor:
        """``z``: K tensors ``(B, T, D)``; ``observed``: ``M`` with ``M + N <= T``.

        Returns the ``(K, K)`` matrix of ``L^{A2B}`` (Eq. 12).
        """
        length = z[0].shape[1]
        if not 1 <= observed <= length - self.steps:
            raise ValueError(f"observed length M={observed} needs 1 <= M <= T - N = "
                             f"{length - self.steps}")
        preds = self.predictions(self.contexts(z, observed))
        futures = torch.stack([za[:, observed:observed + self.steps].transpose(0, 1)
                               for za in z])
        return m2m_cpc_terms(preds, futures, normalize)
