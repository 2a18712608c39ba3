"""Multi-kernel maximum mean discrepancy (MK-MMD) with a sum of Gaussian kernels.

UF-AMA (Wang et al., arXiv:2606.00170) Eq. 9-10: the squared RKHS distance between the source and
the target mean embeddings, with the kernel ``kappa = sum_u k_u`` of ``K`` Gaussian RBF kernels.

Two estimators:

``quadratic`` (default, Eq. 10): the biased V-statistic over all pairs,
    ``mean K(S,S) + mean K(T,T) - 2 mean K(S,T)``; source and target sizes may differ. For equal
    sizes it equals the released code's ``mmd_rbf_no_accelerate``.
``linear``: the linear-time estimator the released UF-AMA code trains with
    (``loss_mmd.mmd_rbf_accelerate``): ``(1/B) sum_i k(s_i, s_i+1) + k(t_i, t_i+1)
    - k(s_i, t_i+1) - k(s_i+1, t_i)``, index ``i + 1`` wrapping modulo ``B``; needs ``B`` source
    and ``B`` target samples.

Bandwidths follow the released code: the squared distances ``d_ij`` of the pooled batch
(``n = N_S + N_T`` rows) get ``eps = 1e-5`` added to every entry; the base bandwidth is
``sum_ij (d_ij + eps) / (n^2 - n)`` (the mean off-diagonal squared distance), detached, divided
by ``kernel_mul ** (K // 2)``; kernel ``u`` uses ``base * kernel_mul ** u``
(``u = 0..K-1``), i.e. mean/4 ... 4 x mean for ``K = 5``, ``kernel_mul = 2``. The paper calls the
kernel sum a "convex combination" but writes (and the code computes) a plain sum; the sum is used.
"""

from __future__ import annotations

from typing import Literal

import torch

EPS = 1e-5


def pairwise_sq_dists(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(n, m)`` squared Euclidean distances between the rows of ``x (n, d)`` and ``y (m, d)``."""
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return d.clamp_min(0.0)


def bandwidths(pooled: torch.Tensor, kernel_num: int = 5, kernel_mul: float = 2.0,
               eps: float = EPS) -> torch.Tensor:
    """``(kernel_num,)`` detached Gaussian bandwidths of the released code's rule.

    pooled: ``(n, d)`` source and target rows together. ``sum_ij ||z_i - z_j||^2`` is computed in
    ``O(n d)`` as ``2 n sum_i ||z_i - mean||^2`` (centred, so float32 keeps its precision).
    """
    z = pooled.detach()
    n = z.shape[0]
    if n < 2:
        raise ValueError("MK-MMD needs at least two samples in the pooled batch")
    total = 2.0 * n * ((z - z.mean(0, keepdim=True)) ** 2).sum() + n * n * eps
    base = total / (n * n - n) / kernel_mul ** (kernel_num // 2)
    powers = kernel_mul ** torch.arange(kernel_num, dtype=z.dtype, device=z.device)
    return base * powers


def gaussian_kernel_sum(sq_dists: torch.Tensor, bws: torch.Tensor) -> torch.Tensor:
    """``sum_u exp(-d / bw_u)`` elementwise over any shape of squared distances ``d``."""
    return torch.exp(-sq_dists.unsqueeze(-1) / bws).sum(-1)


def mk_mmd(source: torch.Tensor, target: torch.Tensor, kernel_num: int = 5,
           kernel_mul: float = 2.0, estimator: Literal["quadratic", "linear"] = "quadratic",
           eps: float = EPS) -> torch.Tensor:
    """MK-MMD between ``source (N_S, d)`` and ``target (N_T, d)`` (Eq. 10); a scalar tensor.

    Zero for identical batches (both estimators). Gradients reach both inputs; the bandwidths
    are constants (detached), as in the released code.
    """
    if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
        raise ValueError(f"source {tuple(source.shape)} and target {tuple(target.shape)} must be "
                         "(n, d) with the same d")
    bws = bandwidths(torch.cat([source, target]), kernel_num, kernel_mul, eps)
    if estimator == "quadratic":
        pooled = torch.cat([source, target])
        kernel = gaussian_kernel_sum(pairwise_sq_dists(pooled, pooled) + eps, bws)
        ns = source.shape[0]
        return (kernel[:ns, :ns].mean() + kernel[ns:, ns:].mean()
                - 2.0 * kernel[:ns, ns:].mean())
    if estimator == "linear":
        if source.shape[0] != target.shape[0]:
            raise ValueError("the linear MK-MMD estimator needs equal source and target sizes")
        s_next, t_next = source.roll(-1, 0), target.roll(-1, 0)
        sq = torch.stack([(source - s_next).pow(2).sum(1), (target - t_next).pow(2).sum(1),
                          (source - t_next).pow(2).sum(1), (s_next - target).pow(2).sum(1)])
        k = gaussian_kernel_sum(sq + eps, bws)
        return (k[0] + k[1] - k[2] - k[3]).mean()
    raise ValueError(f"unknown MK-MMD estimator {estimator!r}; use 'quadratic' or 'linear'")
