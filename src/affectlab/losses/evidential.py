"""Evidential loss terms (DHCM-CACL Eq. 22-27) and the subjective-logic algebra they feed.

Heads (Eq. 22-25) give, per sample and class, ``gamma >= 0`` (ReLU), ``v > eps``
(Softplus + eps), ``alpha > 1`` (Softplus + 1) and ``beta > 0`` (Softplus). The evidence loss of
Eq. 27 is, with ``S = alpha + v``,

    L_Evd = mean_i sum_k [ (y_ik - gamma_ik / (S_ik - 1))^2 + v_ik / (S_ik (S_ik - 1)) ]
            + lambda * mean_i sum_k (1 / (beta_ik + eps))^2

(the paper sums over the batch; the mean keeps the loss weight independent of the batch size).
``S - 1 = softplus(.) + v >= eps`` so every ratio is finite.

Opinions: ``gamma`` is read as the class evidence of a Dirichlet opinion (ReLU evidence as in
Sensoy et al., 2018): ``alpha_D = gamma + 1``, strength ``S_D = sum_k alpha_D``, belief
``b = gamma / S_D``, uncertainty mass ``u = C / S_D`` (``sum_k b_k + u = 1``). Two modalities'
opinions are fused with the reduced Dempster's rule of Han et al. (TMC, ICLR 2021).
"""

from __future__ import annotations

import torch


def evidence_fit(gamma: torch.Tensor, v: torch.Tensor, alpha: torch.Tensor,
                 y: torch.Tensor) -> torch.Tensor:
    """First part of Eq. 27 per sample: ``(B, C)`` parameters and one-hot ``y`` -> ``(B,)``."""
    s = alpha + v
    return ((y - gamma / (s - 1)) ** 2 + v / (s * (s - 1))).sum(dim=-1)


def inverse_scale_penalty(beta: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Regulariser of Eq. 27, ``||1 / (beta + eps)||^2`` per sample ``(B, C) -> (B,)``: keeps the
    scale ``beta`` away from 0."""
    return ((1.0 / (beta + eps)) ** 2).sum(dim=-1)


def evidential_loss(gamma: torch.Tensor, v: torch.Tensor, alpha: torch.Tensor,
                    beta: torch.Tensor, y: torch.Tensor, lam: float = 0.1,
                    eps: float = 1e-6) -> torch.Tensor:
    """Eq. 27 (mean over the batch). ``y``: class indices ``(B,)`` or one-hot ``(B, C)``."""
    if y.dim() == 1:
        y = torch.nn.functional.one_hot(y, gamma.shape[-1]).to(gamma.dtype)
    return (evidence_fit(gamma, v, alpha, y) + lam * inverse_scale_penalty(beta, eps)).mean()


def dirichlet_opinion(evidence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Evidence ``(B, C) >= 0`` -> belief ``(B, C)`` and uncertainty ``(B,)`` (``b + u`` sums
    to 1)."""
    strength = evidence.sum(dim=-1) + evidence.shape[-1]
    return evidence / strength[:, None], evidence.shape[-1] / strength


def dempster_combine(b1: torch.Tensor, u1: torch.Tensor, b2: torch.Tensor,
                     u2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reduced Dempster's rule for two opinions (Han et al., 2021).

    ``conflict = sum_{i != j} b1_i b2_j``; ``b = (b1 b2 + b1 u2 + b2 u1) / (1 - conflict)``;
    ``u = u1 u2 / (1 - conflict)``. A vacuous opinion (``u = 1``) leaves the other unchanged.
    """
    conflict = b1.sum(-1) * b2.sum(-1) - (b1 * b2).sum(-1)
    scale = 1.0 / (1.0 - conflict)
    belief = (b1 * b2 + b1 * u2[:, None] + b2 * u1[:, None]) * scale[:, None]
    return belief, u1 * u2 * scale


def opinion_to_dirichlet(belief: torch.Tensor, uncertainty: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dirichlet_opinion`: concentration ``alpha_D = b C / u + 1`` ``(B, C)``."""
    return belief * (belief.shape[-1] / uncertainty)[:, None] + 1.0
