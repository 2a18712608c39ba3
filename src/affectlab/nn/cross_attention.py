"""Pairwise multi-head cross-modal attention (CLMER Eq. 5-7) and a learned token-length map.

For ``k`` modalities there is one cross-modal transformer per ordered pair ``(alpha, beta)``,
``alpha != beta``: ``k (k - 1)`` directions (3 modalities -> 6). In direction ``alpha -> beta``
the queries come from ``alpha`` and the keys and values from ``beta`` (Eq. 5):
``Y = softmax(Q_alpha K_beta^T / sqrt(d_k)) V_beta`` per head (Eq. 6), heads concatenated and
projected (Eq. 7). Each layer is pre-LayerNorm cross-attention + residual, then a position-wise
feed-forward + residual (the cross-modal transformer of MulT [29], which CLMER builds on).
Dropout acts on the residual branches, not on the attention weights (on CPU, dropout of the
attention matrix costs about eight times the attention itself).
A single modality has no pair; it gets one self-attention direction ``(0, 0)`` instead.

Performance: the parameters of all directions are stacked along a leading axis, so every
direction and every head runs in one batched matrix product and one
``scaled_dot_product_attention`` call. :meth:`PairwiseCrossModalAttention.forward_per_direction`
is the literal per-direction, per-head form of the same maths (used to check the fast path and
as the benchmark's baseline).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn


def directions(n_modalities: int) -> list[tuple[int, int]]:
    """Ordered pairs ``(alpha, beta)`` with ``alpha != beta``; ``[(0, 0)]`` for one modality."""
    if n_modalities < 1:
        raise ValueError("at least one modality is needed")
    if n_modalities == 1:
        return [(0, 0)]
    return list(itertools.permutations(range(n_modalities), 2))


def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None
                         ) -> torch.Tensor:
    """``(length, dim)`` sine / cosine position codes (Vaswani et al.)."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32)
                     * (-math.log(10000.0) / dim))
    codes = torch.zeros(length, dim, device=device)
    codes[:, 0::2] = torch.sin(position * freq)
    codes[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return codes


class TokenLengthMap(nn.Module):
    """Learned map of a token sequence ``(B, n_in, f)`` to ``(B, n_out, f)``.

    Every output token is a learned weighted sum of the input tokens plus a bias (a kernel-1
    convolution across the token axis). The weights start as a plain resampling of the token
    axis: the mean of each output token's share of the input tokens when shortening (area
    interpolation, so every input token counts), linear interpolation when lengthening.

    Interpretation: the paper says only that the map is learned. Starting a shortening map as
    linear interpolation would read 2 of every ``n_in / n_out`` input tokens and drop the rest
    at the start of training; on 5 s DEAP physiology (80 encoded steps to 20 tokens) that start
    cost about 0.15 balanced accuracy under LOSO against area averaging.
    """

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        eye = torch.eye(n_in)[None]                                     # (1, n_in, n_in)
        if n_in == 1:
            resample = torch.ones(1, 1, n_out)
        elif n_out < n_in:
            resample = F.interpolate(eye, size=n_out, mode="area")
        else:
            resample = F.interpolate(eye, size=n_out, mode="linear", align_corners=True)
        self.weight = nn.Parameter(resample[0].T.contiguous())          # (n_out, n_in)
        self.bias = nn.Parameter(torch.zeros(n_out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.weight, x) + self.bias


def _stacked(n: int, n_in: int, n_out: int) -> nn.Parameter:
    weight = torch.empty(n, n_in, n_out)
    for w in weight:
        nn.init.xavier_uniform_(w.T)
    return nn.Parameter(weight)


def _affine(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Per-direction linear map: x ``(D, B, L, n)``, weight ``(D, n, m)``, bias ``(D, m)``."""
    out = torch.baddbmm(bias[:, None, :], x.reshape(x.shape[0], -1, x.shape[-1]), weight)
    return out.view(*x.shape[:-1], weight.shape[-1])


def _norm(x: torch.Tensor, gain: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Per-direction LayerNorm: gain / shift ``(D, d)``."""
    return F.layer_norm(x, x.shape[-1:]) * gain[:, None, None, :] + shift[:, None, None, :]


class _StackedLayer(nn.Module):
    """One cross-modal transformer layer for all ``D`` directions (parameters ``(D, ...)``)."""

    def __init__(self, n_dir: int, d_model: int, d_ff: int):
        super().__init__()
        ones, zeros = torch.ones(n_dir, d_model), torch.zeros(n_dir, d_model)
        self.norm_q_gain, self.norm_q_shift = nn.Parameter(ones.clone()), nn.Parameter(zeros)
        self.norm_kv_gain = nn.Parameter(ones.clone())
        self.norm_kv_shift = nn.Parameter(zeros.clone())
        self.norm_ff_gain = nn.Parameter(ones.clone())
        self.norm_ff_shift = nn.Parameter(zeros.clone())
        self.w_q, self.w_k, self.w_v, self.w_o = (_stacked(n_dir, d_model, d_model)
                                                  for _ in range(4))
        self.b_q, self.b_k, self.b_v, self.b_o = (nn.Parameter(zeros.clone()) for _ in range(4))
        self.w_1, self.w_2 = _stacked(n_dir, d_model, d_ff), _stacked(n_dir, d_ff, d_model)
        self.b_1, self.b_2 = nn.Parameter(torch.zeros(n_dir, d_ff)), nn.Parameter(zeros.clone())

    def forward(self, y: torch.Tensor, source: torch.Tensor, key_mask: torch.Tensor | None,
                n_heads: int, dropout: float) -> torch.Tensor:
        """y: queries ``(D, B, Lq, d)``; source: keys / values ``(D, B, Lk, d)``; key_mask:
        ``(D, Lk)`` True where a key exists (None: all)."""
        n_dir, batch, len_q, d_model = y.shape
        len_k = source.shape[2]
        q_in = _norm(y, self.norm_q_gain, self.norm_q_shift)
        kv_in = _norm(source, self.norm_kv_gain, self.norm_kv_shift)

        def heads(x: torch.Tensor, length: int) -> torch.Tensor:
            return x.view(n_dir * batch, length, n_heads, d_model // n_heads).transpose(1, 2)

        q = heads(_affine(q_in, self.w_q, self.b_q), len_q)
        k = heads(_affine(kv_in, self.w_k, self.b_k), len_k)
        v = heads(_affine(kv_in, self.w_v, self.b_v), len_k)
        if key_mask is not None:                               # (D, Lk) -> (D * B, 1, 1, Lk)
            key_mask = key_mask[:, None, None, None, :].expand(-1, batch, 1, 1, -1).reshape(
                n_dir * batch, 1, 1, len_k)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)   # Eq. 5-6
        attended = attended.transpose(1, 2).reshape(n_dir, batch, len_q, d_model)   # Eq. 7
        y = y + F.dropout(_affine(attended, self.w_o, self.b_o), dropout, self.training)
        hidden = F.relu(_affine(_norm(y, self.norm_ff_gain, self.norm_ff_shift),
                                self.w_1, self.b_1))
        return y + F.dropout(_affine(hidden, self.w_2, self.b_2), dropout, self.training)


class PairwiseCrossModalAttention(nn.Module):
    """``k (k-1)`` cross-modal transformers, one per ordered modality pair (Eq. 5-7).

    Input: a list of ``k`` token sequences ``(B, L_m, d_model)`` (lengths may differ).
    Output: ``(B, D, d_model)``, per direction the mean over the query modality's tokens of the
    last layer's (LayerNorm-ed) output.
    """

    def __init__(self, n_modalities: int, d_model: int, n_heads: int, n_layers: int = 1,
                 ffn_mult: int = 2, dropout: float = 0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.directions = directions(n_modalities)
        self.n_heads, self.dropout = n_heads, dropout
        n_dir = len(self.directions)
        self.layers = nn.ModuleList(_StackedLayer(n_dir, d_model, ffn_mult * d_model)
                                    for _ in range(n_layers))
        self.out_gain = nn.Parameter(torch.ones(n_dir, d_model))
        self.out_shift = nn.Parameter(torch.zeros(n_dir, d_model))
        self.register_buffer("query_index", torch.tensor([a for a, _ in self.directions]))
        self.register_buffer("source_index", torch.tensor([b for _, b in self.directions]))

    @property
    def n_directions(self) -> int:
        return len(self.directions)

    def forward(self, tokens: list[torch.Tensor]) -> torch.Tensor:
        stacked, valid = _pad(tokens)                          # (k, B, L, d), (k, L)
        y = stacked[self.query_index]                          # (D, B, L, d)
        source = stacked[self.source_index]
        same_length = len({t.shape[1] for t in tokens}) == 1   # from shapes: no device sync
        key_mask = None if same_length else valid[self.source_index]        # (D, L)
        for layer in self.layers:
            y = layer(y, source, key_mask, self.n_heads, self.dropout)
        y = _norm(y, self.out_gain, self.out_shift)
        weights = valid[self.query_index].to(y.dtype)          # (D, L)
        pooled = torch.einsum("nblc,nl->nbc", y, weights / weights.sum(1, keepdim=True))
        return pooled.transpose(0, 1)

    def forward_per_direction(self, tokens: list[torch.Tensor]) -> torch.Tensor:
        """The same maths written literally: a loop over directions and heads (reference)."""
        pooled = []
        for di, (alpha, beta) in enumerate(self.directions):
            y, source = tokens[alpha], tokens[beta]
            for layer in self.layers:
                y = self._layer_per_head(layer, di, y, source)
            y = F.layer_norm(y, y.shape[-1:]) * self.out_gain[di] + self.out_shift[di]
            pooled.append(y.mean(dim=1))
        return torch.stack(pooled, dim=1)

    def _layer_per_head(self, layer: _StackedLayer, di: int, y: torch.Tensor,
                        source: torch.Tensor) -> torch.Tensor:
        d_model = y.shape[-1]
        d_k = d_model // self.n_heads
        q_in = F.layer_norm(y, (d_model,)) * layer.norm_q_gain[di] + layer.norm_q_shift[di]
        kv_in = F.layer_norm(source, (d_model,)) * layer.norm_kv_gain[di] \
            + layer.norm_kv_shift[di]
        q = q_in @ layer.w_q[di] + layer.b_q[di]                # Q_alpha = X_alpha W_Q
        k = kv_in @ layer.w_k[di] + layer.b_k[di]               # K_beta = X_beta W_K
        v = kv_in @ layer.w_v[di] + layer.b_v[di]               # V_beta = X_beta W_V
        outputs = []
        for h in range(self.n_heads):
            part = slice(h * d_k, (h + 1) * d_k)
            scores = q[..., part] @ k[..., part].transpose(1, 2) / math.sqrt(d_k)
            outputs.append(torch.softmax(scores, dim=-1) @ v[..., part])          # Eq. 6
        attended = torch.cat(outputs, dim=-1)                                      # Eq. 7
        y = y + F.dropout(attended @ layer.w_o[di] + layer.b_o[di], self.dropout, self.training)
        ff_in = F.layer_norm(y, (d_model,)) * layer.norm_ff_gain[di] + layer.norm_ff_shift[di]
        hidden = torch.relu(ff_in @ layer.w_1[di] + layer.b_1[di])
        return y + F.dropout(hidden @ layer.w_2[di] + layer.b_2[di], self.dropout, self.training)


def _pad(tokens: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``k`` sequences ``(B, L_m, d)`` into ``(k, B, L_max, d)`` + validity ``(k, L_max)``."""
    longest = max(t.shape[1] for t in tokens)
    device = tokens[0].device
    valid = torch.stack([torch.arange(longest, device=device) < t.shape[1] for t in tokens])
    if all(t.shape[1] == longest for t in tokens):
        return torch.stack(tokens), valid
    return torch.stack([F.pad(t, (0, 0, 0, longest - t.shape[1])) for t in tokens]), valid
