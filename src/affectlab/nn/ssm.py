"""Dynamic state-space layer with an input-dependent, norm-bounded transition (DHCM-CACL Eq. 3-6).

The recurrence of Eq. 6,

    h_t = f_t * (A_t h_{t-1}) + (1 - f_t) * x_t       (f_t: forget gate, x_t = W_state H_t),

is an affine map per step, ``h_t = M_t h_{t-1} + u_t`` with ``M_t = diag(f_t) A_t`` and
``u_t = (1 - f_t) * x_t``. Affine maps compose, ``(M2, u2) o (M1, u1) = (M2 M1, M2 u1 + u2)``,
so the whole sequence is a prefix scan:

* :func:`affine_scan_sequential` - the reference, one step per time point (a Python loop);
* :func:`affine_scan` - a chunked two-level scan (all chunks scanned at once, then a short carry
  over the chunk boundaries; about ``2 sqrt(T)`` sequential steps);
* :func:`affine_scan_doubling` - a Hillis-Steele log-depth scan (``ceil(log2 T)`` rounds of
  batched matrix products).

All give the same states up to float rounding (tests/methods/test_dhcm_cacl.py). The parallel
forms compose dense ``d x d`` maps, ``O(T d^3)`` work against the loop's ``O(T d^2)``: on a CPU
the loop (vectorised over the batch; ``unbind`` keeps its backward linear in ``T``) is the
fastest at every length measured (benchmarks/dhcm_cacl.py), while on an accelerator the
``T`` sequential steps, each a few kernel launches, are what costs, so :class:`DynamicSSM`'s
default ``scan="auto"`` picks the loop on CPU and the chunked scan elsewhere.

Stability. ``A_t`` is produced by an MLP (Eq. 4) and then rescaled so that its spectral norm is
at most ``rho < 1``: ``A_t = rho * M / max(1, sqrt(||M||_1 ||M||_inf))``, where ``||.||_1`` /
``||.||_inf`` are the largest absolute column / row sums. Since ``||M||_2 <= sqrt(||M||_1
||M||_inf)`` (Hoelder), ``||A_t||_2 <= rho``; with ``f_t`` in (0, 1), ``||M_t||_2 <= rho`` too, so
the homogeneous part of every step is a contraction and ``||h_t|| <= max_s ||u_s|| / (1 - rho)``
for any input. The bound is cheap (two reductions per matrix, no SVD), differentiable almost
everywhere, and tight for diagonal-like matrices (the identity keeps norm 1), so slow memories
(eigenvalues near ``rho``) remain reachable.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

Transition = Literal["dynamic", "static", "random"]
Scan = Literal["auto", "chunked", "doubling", "sequential"]


def spectral_scale(m: torch.Tensor, rho: float) -> torch.Tensor:
    """Factor ``(...)`` that brings square matrices ``(..., d, d)`` to ``||A||_2 <= rho``:
    ``rho / max(1, sqrt(||m||_1 ||m||_inf))`` (see module doc)."""
    magnitude = m.abs()
    col = magnitude.sum(dim=-2).amax(dim=-1)
    row = magnitude.sum(dim=-1).amax(dim=-1)
    return rho / torch.sqrt(col * row).clamp_min(1.0)


def bound_spectral_norm(m: torch.Tensor, rho: float) -> torch.Tensor:
    """Rescale square matrices ``(..., d, d)`` so that ``||A||_2 <= rho``."""
    return m * spectral_scale(m, rho)[..., None, None]


def affine_scan_sequential(m: torch.Tensor, u: torch.Tensor,
                           h0: torch.Tensor | None = None) -> torch.Tensor:
    """Reference scan ``h_t = m_t h_{t-1} + u_t``, one step at a time.

    m: ``(B, T, d, d)``; u: ``(B, T, d)``; h0: ``(B, d)`` or ``None`` (zeros). Returns
    ``(B, T, d)``.
    """
    h = torch.zeros_like(u[:, 0]) if h0 is None else h0
    out = []
    for m_t, u_t in zip(m.unbind(dim=1), u.unbind(dim=1), strict=True):
        h = torch.einsum("bij,bj->bi", m_t, h) + u_t
        out.append(h)
    return torch.stack(out, dim=1)


def _doubling_scan(m: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inclusive prefix composition over dim 1: returns ``(P_t, U_t)`` with
    ``h_t = P_t h_{-1} + U_t`` for the steps ``0..t`` of ``(m, u)`` (Hillis-Steele)."""
    n = u.shape[1]
    step = 1
    while step < n:
        m_prev, u_prev = m[:, :-step], u[:, :-step]
        m_cur, u_cur = m[:, step:], u[:, step:]
        u = torch.cat([u[:, :step], u_cur + torch.einsum("btij,btj->bti", m_cur, u_prev)], 1)
        m = torch.cat([m[:, :step], m_cur @ m_prev], dim=1)
        step *= 2
    return m, u


def affine_scan_doubling(m: torch.Tensor, u: torch.Tensor,
                         h0: torch.Tensor | None = None) -> torch.Tensor:
    """Log-depth scan (same contract as :func:`affine_scan_sequential`): ``ceil(log2 T)``
    rounds of batched matrix products over all steps (``O(T log T d^3)`` work)."""
    p, acc = _doubling_scan(m, u)
    return acc if h0 is None else acc + torch.einsum("btij,bj->bti", p, h0)


def affine_scan(m: torch.Tensor, u: torch.Tensor, h0: torch.Tensor | None = None,
                chunk: int | None = None) -> torch.Tensor:
    """Chunked two-level scan (same contract as :func:`affine_scan_sequential`), the default.

    The sequence is cut into chunks of ``chunk`` steps (default ``ceil(sqrt(T))``). (1) Inside
    all chunks at once, from a zero state: local states ``U_t`` and transfer matrices
    ``P_t = m_t ... m_first``. (2) The state entering each chunk is carried across the chunk
    boundaries. (3) ``h_t = U_t + P_t h_in`` for every step in one batched product. About
    ``2 sqrt(T)`` sequential steps instead of ``T``, ``O(T d^3)`` work.
    """
    batch, n, d = u.shape
    chunk = chunk or max(1, math.ceil(math.sqrt(n)))
    n_chunks = math.ceil(n / chunk)
    pad = n_chunks * chunk - n
    if pad:
        eye = torch.eye(d, dtype=m.dtype, device=m.device).expand(batch, pad, d, d)
        m = torch.cat([m, eye], dim=1)
        u = torch.cat([u, u.new_zeros(batch, pad, d)], dim=1)
    steps_m = m.reshape(batch, n_chunks, chunk, d, d).unbind(dim=2)   # unbind: linear backward
    steps_u = u.reshape(batch, n_chunks, chunk, d).unbind(dim=2)
    p, acc = steps_m[0], steps_u[0]
    transfers, local = [p], [acc]
    for m_t, u_t in zip(steps_m[1:], steps_u[1:], strict=True):             # (1)
        p = m_t @ p
        acc = torch.einsum("bcij,bcj->bci", m_t, acc) + u_t
        transfers.append(p)
        local.append(acc)
    transfer, states = torch.stack(transfers, dim=2), torch.stack(local, dim=2)
    h = torch.zeros_like(u[:, 0]) if h0 is None else h0
    incoming = []
    for p_c, u_c in zip(transfers[-1].unbind(dim=1), local[-1].unbind(dim=1), strict=True):
        incoming.append(h)                                                 # (2)
        h = torch.einsum("bij,bj->bi", p_c, h) + u_c
    states = states + torch.einsum("bctij,bcj->bcti", transfer, torch.stack(incoming, dim=1))
    return states.reshape(batch, n_chunks * chunk, d)[:, :n]                # (3)


class DynamicSSM(nn.Module):
    """Selective state transition of DHCM-CACL (Eq. 3-6): ``(B, T, d_model) -> (B, T, d_state)``.

    transition: ``dynamic`` - ``A_t = Reshape(MLP(H_t))`` (Eq. 4); ``static`` - one learned
        ``A`` for every step (Table 5, "static state matrix"); ``random`` - a fixed random ``A``
        drawn at initialisation and never trained (Table 5, "random state matrix"). All three are
        bounded to spectral norm ``<= rho``.
    forget_gate: ``True`` - Eq. 5-6; ``False`` - no gate, ``h_t = A_t h_{t-1} + x_t`` (Table 5
        "no forget gate"; the literal ``f_t = 1`` in Eq. 6 would cut the input off entirely).
    scan: ``chunked`` (:func:`affine_scan`), ``doubling`` (:func:`affine_scan_doubling`),
        ``sequential`` (the reference loop) or ``auto`` (default: ``sequential`` on CPU, where
        the ``d_s``-times smaller arithmetic wins, ``chunked`` on accelerators, where the number
        of sequential steps (kernel launches) dominates); ``chunk``: chunk length of ``chunked``.
    """

    def __init__(self, d_model: int, d_state: int = 32, hidden: int = 64,
                 transition: Transition = "dynamic", forget_gate: bool = True,
                 rho: float = 0.99, scan: Scan = "auto",
                 chunk: int | None = None):
        super().__init__()
        if not 0 < rho < 1:
            raise ValueError(f"rho must be in (0, 1), got {rho}")
        self.d_state, self.transition, self.forget_gate = d_state, transition, forget_gate
        self.rho, self.scan, self.chunk = rho, scan, chunk
        self.w_state = nn.Linear(d_model, d_state)                       # Eq. 3
        self.w_f = nn.Linear(d_model, d_state) if forget_gate else None  # Eq. 5
        eye = torch.eye(d_state)
        if transition == "dynamic":                                      # Eq. 4
            self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.ReLU(),
                                     nn.Linear(hidden, d_state * d_state))
            nn.init.normal_(self.mlp[2].weight, std=0.01)
            with torch.no_grad():
                self.mlp[2].bias.copy_(eye.flatten())   # start near rho * I: a gated EMA
        elif transition == "static":
            self.a = nn.Parameter(eye + 0.01 * torch.randn(d_state, d_state))
        elif transition == "random":
            a = torch.randn(d_state, d_state)
            self.register_buffer("a", a / torch.linalg.matrix_norm(a, ord=2))  # ||a||_2 = 1
        else:
            raise ValueError(f"unknown transition {transition!r}")

    def transition_matrices(self, x: torch.Tensor) -> torch.Tensor:
        """``A_t`` ``(B, T, d_s, d_s)`` (static / random: one matrix broadcast over steps)."""
        batch, n = x.shape[:2]
        d = self.d_state
        if self.transition == "dynamic":
            return bound_spectral_norm(self.mlp(x).reshape(batch, n, d, d), self.rho)
        a = self.rho * self.a if self.transition == "random" else \
            bound_spectral_norm(self.a, self.rho)
        return a.expand(batch, n, d, d)

    def forget(self, x: torch.Tensor) -> torch.Tensor | None:
        """Forget gate ``f_t`` ``(B, T, d_s)`` in (0, 1) (Eq. 5), or ``None`` without gate."""
        return None if self.w_f is None else torch.sigmoid(self.w_f(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``(B, T, d_model)`` -> states ``(B, T, d_state)`` (causal: right padding is
        harmless to the valid steps)."""
        x_state = self.w_state(x)
        f = self.forget(x)
        if self.transition == "dynamic":     # diag(f_t) A_t with the bound in one product
            raw = self.mlp(x).reshape(*x.shape[:2], self.d_state, self.d_state)
            factor = spectral_scale(raw, self.rho)[..., None]
            m = raw * (factor if f is None else factor * f)[..., None]
        else:
            a = self.transition_matrices(x)
            m = a if f is None else f[..., None] * a
        u = x_state if f is None else (1 - f) * x_state                    # Eq. 6
        scan = self.scan
        if scan == "auto":
            scan = "sequential" if u.device.type == "cpu" else "chunked"
        if scan == "sequential":
            return affine_scan_sequential(m, u)
        if scan == "doubling":
            return affine_scan_doubling(m, u)
        return affine_scan(m, u, chunk=self.chunk)
