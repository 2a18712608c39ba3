"""CLUB: contrastive log-ratio upper bound of mutual information (Cheng et al., ICML 2020).

M2S (Liu et al., AAAI 2025, Eq. 1) minimises the CLUB estimate between the emotion-related
(ER) features ``z`` and the emotion-independent (EI) features ``z'`` of a modality::

    L_CLUB(z, z') = E_p(z, z')[log q(z'|z)] - E_p(z) E_p(z')[log q(z'|z)]

with a variational Gaussian ``q(z'|z) = N(mu(z), diag exp(logvar(z)))`` (:class:`CLUBNet`), which
has its own optimiser step: it is fitted by maximising the log-likelihood of the *detached*
feature pairs (:meth:`CLUBNet.learning_loss`), while the encoders minimise the estimate.

Sequences ``(B, T, D)`` follow the layout of the released M2S code (``CLUBSample_group``): the
network runs on every time step; the likelihood is averaged over batch and time; the estimate
averages the squared error over time and divides by ``exp`` of the time-mean ``logvar``. The
``log sigma^2`` terms of ``log q`` cancel between the two expectations (same conditioning ``z``),
and the factor 1/2 of the Gaussian density is kept, so the estimate is exactly Eq. 1 with
``q`` Gaussian. ``(B, D)`` inputs are treated as ``T = 1``.
"""

from __future__ import annotations

import torch
from torch import nn


def _mlp(x_dim: int, hidden: int, y_dim: int) -> nn.Sequential:
    """``x_dim -> hidden -> hidden -> hidden -> y_dim`` with ReLU (the CLUB reference layout)."""
    return nn.Sequential(nn.Linear(x_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                         nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, y_dim))


def gaussian_log_likelihood(mu: torch.Tensor, logvar: torch.Tensor,
                            y: torch.Tensor) -> torch.Tensor:
    """Gaussian log-likelihood without its constant: mean over samples of
    ``sum_d [-(y-mu)^2 / e^logvar - logvar] / 2``.

    All inputs ``(..., D)``; leading axes (batch, time) are averaged. It is the log-density of
    ``N(mu, diag e^logvar)`` plus ``D/2 log(2 pi)``, the objective of the CLUB network (the
    released ``CLUBSample_group.loglikeli``, with its ``/ 2``).
    """
    per_sample = (-(mu - y) ** 2 / logvar.exp() - logvar).sum(dim=-1)
    return per_sample.mean() / 2


def club_upper_bound(mu: torch.Tensor, logvar: torch.Tensor, y: torch.Tensor,
                     negatives: str = "shuffle",
                     perm: torch.Tensor | None = None) -> torch.Tensor:
    """CLUB estimate of Eq. 1 from ``q``'s parameters and the paired targets.

    mu, logvar: ``(B, T, D)`` (or ``(B, D)``) = ``q``'s parameters given ``z`` of sample ``b``;
    y: ``z'`` of the same shape. For each sample ``b``::

        pos_b = -sum_d mean_t (mu_btd - y_btd)^2 / (2 exp(mean_t logvar_btd))

    ``negatives="shuffle"`` (sampled CLUB, the released code): the negative pairs ``b`` with
    ``perm[b]`` (a random permutation when ``perm`` is None); ``"all"``: the negative term is the
    mean over every ``b'`` (the product of marginals of Eq. 1, computed without a
    ``(B, B, T, D)`` tensor). Returns ``mean_b (pos_b - neg_b)``.
    """
    if mu.dim() == 2:
        mu, logvar, y = mu[:, None], logvar[:, None], y[:, None]
    inv_var = (-logvar.mean(dim=1)).exp()                         # (B, D)
    positive = -(((mu - y) ** 2).mean(dim=1) * inv_var).sum(dim=-1) / 2
    if negatives == "shuffle":
        if perm is None:
            perm = torch.randperm(len(y), device=y.device)
        negative = -(((mu - y[perm]) ** 2).mean(dim=1) * inv_var).sum(dim=-1) / 2
    elif negatives == "all":
        steps = mu.shape[1]
        mu_sq = ((mu ** 2).mean(dim=1) * inv_var).sum(dim=-1)      # (B,)
        y_sq = inv_var @ (y ** 2).mean(dim=1).T                    # (B, B'): sum_d w_bd ybar2_b'd
        cross = torch.einsum("btd,bd,ctd->bc", mu, inv_var, y) / steps
        negative = -(mu_sq[:, None] - 2 * cross + y_sq).mean(dim=1) / 2
    else:
        raise ValueError(f"negatives must be 'shuffle' or 'all', got {negatives!r}")
    return (positive - negative).mean()


class CLUBNet(nn.Module):
    """Variational network ``q_theta(z'|z)``: Gaussian mean and ``tanh``-bounded log-variance.

    x_dim: size of ``z`` (ER features); y_dim: size of ``z'`` (EI features); hidden: the
    reference ``hidden_size`` (the MLPs are ``hidden // 2`` wide, as in ``CLUBSample_group``).
    """

    def __init__(self, x_dim: int, y_dim: int, hidden: int = 64):
        super().__init__()
        width = max(hidden // 2, 1)
        self.mu = _mlp(x_dim, width, y_dim)
        self.logvar = nn.Sequential(_mlp(x_dim, width, y_dim), nn.Tanh())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(..., x_dim) -> (mu, logvar)``, each ``(..., y_dim)``."""
        return self.mu(x), self.logvar(x)

    def learning_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of ``y`` under ``q(.|x)``; call it on detached features."""
        mu, logvar = self(x)
        return -gaussian_log_likelihood(mu, logvar, y)

    def mi_upper_bound(self, x: torch.Tensor, y: torch.Tensor, negatives: str = "shuffle",
                       perm: torch.Tensor | None = None) -> torch.Tensor:
        """Eq. 1 for features ``x = z`` and ``y = z'`` (gradients reach both)."""
        mu, logvar = self(x)
        return club_upper_bound(mu, logvar, y, negatives, perm)
