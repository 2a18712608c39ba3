"""DHCM-CACL: Dynamic Hierarchical Cross-modal Mamba with Confidence-Adaptive Contrastive Learning.

EEG (log-PSD, 32 channels x 5 bands per 3 s window) + facial action units (17 AU means per
window). One trial is one sequence of its windows. Two stages inside ``fit``:

1. Self-supervised pre-training on the training windows without labels (the labelled training
   part plus the runner's unlabelled, non-test part): learnable diffusion (Eq. 1), projection +
   LayerNorm (Eq. 2), per-modality DynamicSSM (Eq. 3-6, :mod:`affectlab.nn.ssm`), hierarchical
   gated cross-modal interaction over ``levels`` (Eq. 7-11), then CACL: K temporal segments,
   segment-level and global symmetric InfoNCE (Eq. 12-16), gate-derived sample confidence
   (Eq. 17) and learnable loss weights (Eq. 18).
2. Fine-tuning on the labelled trials: the input stage and the first ``freeze_levels`` levels are
   frozen, cross-modal attention gating (Eq. 19-21, 9 heads), per-modality evidential heads
   (Eq. 22-25) and the joint loss (Eq. 26-29) with a contrastive consistency term against a frozen
   copy of the pre-trained encoder. The epoch with the lowest validation loss is kept.

Predictions are per trial and broadcast to every window of the trial (probabilities and
uncertainty); embeddings are per window (the aligned features of that time step).

References
----------
B. Wu, Y. Li. DHCM-CACL: Dynamic Hierarchical Cross-modal Mamba with Confidence-Adaptive
Contrastive Learning for Multimodal Emotion Recognition (no venue or year given).
M. Sensoy, L. Kaplan, M. Kandemir. Evidential deep learning to quantify classification
uncertainty. NeurIPS 2018. Z. Han, C. Zhang, H. Fu, J. T. Zhou. Trusted multi-view
classification. ICLR 2021. A. Kendall, Y. Gal, R. Cipolla. Multi-task learning using uncertainty
to weigh losses. CVPR 2018. No official code is public, so there is
no ``official`` switch.

Interpretation
--------------
* Sequences: a trial's windows in window order (gaps left by dropped windows are closed);
  trials of different length are right-padded and masked (the scan is causal, pooling and
  attention are masked, the diffusion re-masks after every step), so every window is used.
* Eq. 1: the diffusion layer is ``x <- x + PW(DW(x))`` repeated ``diffusion_steps`` times with one
  shared depthwise temporal convolution (initialised to the heat-equation step
  ``0.25 * [1, -2, 1]``) and a pointwise 1x1 convolution (initialised to the identity); padded
  steps are zeroed after each step, so a trial's end behaves like the convolution's zero padding.
* Eq. 4: the paper's only width for the DHCM module is its "feed-forward network hidden layer
  dimension" of 1024; the one feed-forward network in DHCM is Eq. 4's MLP, so ``ssm_hidden``
  is 1024 in ``paper`` (``default`` 64, ``fast`` 32: CPU sizes).
* Eq. 4-6: ``A_t`` is bounded to spectral norm <= ``rho`` (:func:`affectlab.nn.ssm
  .bound_spectral_norm`: ``rho / max(1, sqrt(||M||_1 ||M||_inf))``), so every step is a
  contraction; the forget gate is per state dimension. The recurrence is an affine scan;
  ``scan=auto`` runs the step loop on CPU (fastest there: the parallel forms multiply dense
  ``d_s x d_s`` maps) and the chunked scan on GPU (:mod:`affectlab.nn.ssm`).
  ``forget_gate=False`` drops the gate from both terms (``h_t = A_t h_{t-1} + X_state,t``): the
  literal ``f_t = 1`` would cut the input off. ``transition=random`` is a fixed random matrix
  (spectral norm ``rho``), never trained.
* Eq. 7-11: each level has its own DynamicSSM and ``W_rec`` per modality and one shared gate
  ``G``; ``F_m = LayerNorm(H_m^(L))``.
* Eq. 12-13: segments are relative: window ``t`` of a trial of length ``L_b`` belongs to segment
  ``floor(t K / L_b)`` (``torch.chunk`` would return fewer than K chunks when ``T`` is not a
  multiple); segments empty for a short trial are masked out of that segment's loss. The paper
  sets K to the number of subjects with complete recordings (DEAP 18, MAHNOB-HCI 24):
  ``segments`` is 18 in ``paper`` and 24 in ``paper_mahnob`` (what ``paper`` means on
  MAHNOB-HCI); ``segments="subjects"`` counts the subjects of the fold's pre-training data
  instead (train + unlabelled part; e.g. 17 under LOSO on DEAP's 18, 1 subject-dependent).
* Eq. 14-16: cosine similarity over ``tau``; "sum over delta" = both directions (EEG->face and
  face->EEG) summed. The printed denominators exclude the positive (``sum_{k != b}``), which is
  unbounded below and makes the learnable weights of Eq. 18 diverge; ``denominator=all`` (default)
  is the usual InfoNCE with the positive in the denominator, ``negatives`` the literal form.
* Eq. 17: ``c_b = sigmoid(mean_{t,h} G)`` with ``G`` averaged over the levels and masked over
  padding (so ``c_b`` lies in (0.5, 0.73)). It is a weight, detached from the graph
  (``detach_confidence``): otherwise the loss is lowered by closing the gates.
* Eq. 18: ``w1 sum_i mean_b(c_b L_seg_b^(i)) + w2 mean_b(c_b) L_global`` with learnable weights in
  the regularised form of Kendall et al.: ``w_j = exp(-s_j)`` plus ``+ s_j`` in the loss
  (``s_j = 0``: ``w_j = 1`` at the start; ``|s_j| <= 5``). The ``+ s_j`` term makes ``w_j -> 0``
  cost without bound, so the weights cannot collapse to zero (they settle at ``w_j = 1 / L_j``).
* Fine-tuning freezes the diffusion, projection and the first ``min(freeze_levels, levels - 1)``
  levels, so the last level always trains (with ``levels=1`` only the input stage is frozen);
  ``freeze_levels=0`` freezes nothing; the final LayerNorms train. The ``fast`` preset sets
  ``freeze_levels=0``: pre-training on a few dozen trials yields no features worth freezing
  (on synthetic DEAP, subject-dependent, freezing two levels cost ~8 accuracy points).
* Eq. 22-27: heads act on the masked temporal mean of the aligned features, four ``C``-vectors
  per modality; Eq. 27 is applied per class to the one-hot target and averaged over the batch
  (:mod:`affectlab.losses.evidential`). ``gamma`` is the class evidence of a Dirichlet opinion
  (``b = gamma / S_D``, ``u = C / S_D``, ``S_D = sum(gamma + 1)``); the two modalities' opinions
  are fused by the reduced Dempster's rule; the fused Dirichlet gives the class probabilities
  ``alpha_D / S_D`` and ``Predictions.uncertainty`` is the fused uncertainty mass ``u`` in (0, 1].
  Eq. 26's undefined "logit" is the log of those fused probabilities. ``v``, ``alpha`` and ``beta``
  enter only the training objective (Eq. 27 as printed).
* Eq. 28: per modality, ``z_p`` = pooled output of the frozen pre-trained encoder, ``z_f`` =
  pooled output of the fine-tuned encoder; anchor ``z_p,i`` against all ``z_f,j`` of the batch
  (``denominator`` as above); the mean over the two modalities.
* Ablations: ``encoder=transformer`` replaces all of DHCM (diffusion, SSM, gated exchange) by
  ``levels`` pre-LN transformer layers per modality, with the sinusoidal position encoding of
  the original transformer added after the projection (without it self-attention ignores the
  window order the SSM sees), and a feed-forward width (``ffn="matched"``) that gives it the
  DHCM encoder's parameter count within 2 %, so the ablation compares architectures rather
  than sizes; without gates ``c_b = 1``.
  ``contrastive=plain``: only the global symmetric InfoNCE, unweighted. ``head=softmax``: a linear
  classifier on the concatenated pooled aligned features, CE only, ``uncertainty = 1 - max p``.
  ``pretrain=False``: no pre-training, nothing frozen, no Eq. 28 term.
* Eq. 22-25 produce Normal-Inverse-Gamma-looking parameters although the text says "Dirichlet";
  the reading above keeps every equation as printed and takes the Dirichlet opinion from the
  ReLU evidence ``gamma``.
* Single modality (Table 3's E and F rows, ``modalities=[eeg]`` / ``[face_au]``, or a run
  whose data hold only one of them, ``--set modalities=[eeg]``, with ``modalities=None``,
  the default, which uses what the training data hold): one branch
  of the encoder; a level adds the modality's own enhanced features, ``H + G * H_enh`` with
  ``G = sigmoid(W_g H)``; no attention gating (Eq. 19-21 need both modalities); its own
  evidential opinion is the prediction. CACL and Eq. 28 are cross-modal, so such a run has no
  pre-training (the paper does not say what its single-modality rows pre-trained on). The
  runner then keeps every window that has the modality (e.g. all DEAP subjects for EEG).
* Inputs (the ``dhcm_cacl`` data preset; the paper says only "Welch PSD, five bands" and "mean
  AU intensity"): EEG is the log of the Welch PSD (1 s Hann segments, SciPy's default 50 %
  overlap) averaged inside each band, bands delta [1, 4), theta [4, 8), alpha [8, 14), beta
  [14, 31), gamma [31, 50) Hz (half-open; ``data.bands``, ``data.psd_log=false`` for the raw
  PSD); the log makes the band powers, which span orders of magnitude, roughly Gaussian for
  the z-score. Face: the mean of the valid OpenFace frames of 17 AU intensities per window.
* Inputs are z-scored per feature with statistics of the training windows (labelled and
  unlabelled, never the test part).
* Not given in the paper: ``d_model`` (must be a multiple of the 9 heads), batch size, the
  exponential decay rate, the number of diffusion steps and the ``epsilon`` of Eq. 23 / 27
  (``evd_eps``).
* FAD (``Predictions.extras["fad"]``): the paper's feature alignment degree, the mean over test
  trials of ``1/T sum_t cos(F_EEG^(t), F_Face^(t))`` on the fine-tuned encoder's outputs.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from affectlab.errors import AffectlabError
from affectlab.losses.evidential import (
    dempster_combine,
    dirichlet_opinion,
    evidential_loss,
    opinion_to_dirichlet,
)
from affectlab.methods.base import Method, MethodConfig, Predictions, Split, register_method
from affectlab.nn.ssm import DynamicSSM
from affectlab.training import StepValues, full_precision, minibatch_pairs, seed_everything

log = logging.getLogger("affectlab.methods.dhcm_cacl")
MODALITIES = ("eeg", "face_au")


# =========================================================================== layers

class DiffusionLayer(nn.Module):
    """Learnable temporal diffusion (Eq. 1): ``(B, T, D) -> (B, T, D)``, depthwise-separable."""

    def __init__(self, n_features: int, steps: int = 3, kernel: int = 3):
        super().__init__()
        self.steps = steps
        self.depthwise = nn.Conv1d(n_features, n_features, kernel, padding=kernel // 2,
                                   groups=n_features, bias=False)
        self.pointwise = nn.Conv1d(n_features, n_features, 1)
        with torch.no_grad():
            self.depthwise.weight.zero_()
            centre = kernel // 2
            self.depthwise.weight[:, 0, centre - 1:centre + 2] = torch.tensor([0.25, -0.5, 0.25])
            self.pointwise.weight.copy_(torch.eye(n_features)[:, :, None])
            self.pointwise.bias.zero_()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask[:, None, :].to(x.dtype)
        h = x.transpose(1, 2) * keep
        for _ in range(self.steps):
            h = (h + self.pointwise(self.depthwise(h))) * keep
        return h.transpose(1, 2)


class CrossLevel(nn.Module):
    """One DHCM level (Eq. 7-11): per-modality DynamicSSM, ``W_rec``, shared gate ``G``.

    Two modalities exchange their enhanced features (Eq. 10-11); a single modality adds its
    own, ``H + G * H_enh`` with ``G = sigmoid(W_g H)`` (the single-modality rows of Table 3).
    """

    def __init__(self, d_model: int, d_state: int, ssm_options: dict, n_modalities: int = 2):
        super().__init__()
        self.ssm = nn.ModuleList([DynamicSSM(d_model, d_state, **ssm_options)
                                  for _ in range(n_modalities)])
        self.rec = nn.ModuleList([nn.Linear(d_state, d_model) for _ in range(n_modalities)])
        self.gate = nn.Linear(n_modalities * d_model, d_model)

    def forward(self, hs: list[torch.Tensor],
                mask: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        enh = [rec(ssm(h)) for rec, ssm, h in zip(self.rec, self.ssm, hs, strict=True)]
        g = torch.sigmoid(self.gate(torch.cat(hs, dim=-1)))          # Eq. 9
        partners = enh[::-1]                                         # Eq. 10-11: the other's
        return [h + g * e for h, e in zip(hs, partners, strict=True)], g


class TransformerLevel(nn.Module):
    """Ablation "w/o DHCM": one pre-LN transformer layer per modality, no exchange, no gate."""

    def __init__(self, d_model: int, heads: int, ffn: int, dropout: float,
                 n_modalities: int = 2):
        super().__init__()
        self.layers = nn.ModuleList([nn.TransformerEncoderLayer(
            d_model, heads, ffn, dropout, batch_first=True, norm_first=True)
            for _ in range(n_modalities)])

    def forward(self, hs: list[torch.Tensor], mask: torch.Tensor) -> tuple[list[torch.Tensor],
                                                                          None]:
        pad = ~mask
        return [layer(h, src_key_padding_mask=pad)
                for layer, h in zip(self.layers, hs, strict=True)], None


def sinusoidal_positions(n_steps: int, d_model: int, device: torch.device | None = None,
                         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The transformer's fixed sinusoidal encoding of positions ``0..n_steps-1``, ``(T, H)``."""
    position = torch.arange(n_steps, device=device, dtype=torch.float64)[:, None]
    freq = torch.exp(torch.arange(0, d_model, 2, device=device, dtype=torch.float64)
                     * (-math.log(10000.0) / d_model))
    pe = torch.zeros(n_steps, d_model, device=device, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(position * freq)
    pe[:, 1::2] = torch.cos(position * freq)[:, :d_model // 2]
    return pe.to(dtype)


def n_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def matched_ffn(d_eeg: int | None, d_face: int | None, cfg: DHCMCACLConfig) -> int:
    """Feed-forward width at which the transformer ablation has (within one width step) the
    parameter count of the DHCM encoder of the same configuration."""
    dhcm = n_parameters(Encoder(d_eeg, d_face, cfg.model_copy(update={"encoder": "dhcm"})))
    base = n_parameters(Encoder(d_eeg, d_face, cfg.model_copy(
        update={"encoder": "transformer", "ffn": 1})))
    n_modalities = (d_eeg is not None) + (d_face is not None)
    per_width = n_modalities * cfg.levels * (2 * cfg.d_model + 1)   # linear1 + linear2 (+bias)
    return max(1, 1 + round((dhcm - base) / per_width))


class Encoder(nn.Module):
    """DHCM (or the transformer ablation): ``x_eeg (B, T, D_e), x_face (B, T, D_f), mask (B, T)``
    -> ``F_eeg, F_face (B, T, H)`` and the level-averaged gate ``G (B, T, H)`` (or ``None``).

    A modality whose width is ``None`` is absent: its input and output are ``None`` (the
    single-modality configurations). The transformer ablation adds sinusoidal positions after
    the projection and, with ``ffn="matched"``, has about the DHCM encoder's parameter count.
    """

    def __init__(self, d_eeg: int | None, d_face: int | None, cfg: DHCMCACLConfig):
        super().__init__()
        dims = [d for d in (d_eeg, d_face) if d is not None]
        if not dims:
            raise ValueError("the encoder needs at least one modality")
        self.present = (d_eeg is not None, d_face is not None)
        dhcm = cfg.encoder == "dhcm"
        self.diffusion = nn.ModuleList([DiffusionLayer(d, cfg.diffusion_steps, cfg.diffusion_kernel)
                                        for d in dims]) if dhcm else None
        self.proj = nn.ModuleList([nn.Sequential(nn.Linear(d, cfg.d_model),
                                                 nn.LayerNorm(cfg.d_model))
                                   for d in dims])                                 # Eq. 2
        ssm = {"hidden": cfg.ssm_hidden, "transition": cfg.transition,
               "forget_gate": cfg.forget_gate, "rho": cfg.rho, "scan": cfg.scan,
               "chunk": cfg.scan_chunk}
        if dhcm:
            levels = [CrossLevel(cfg.d_model, cfg.d_state, ssm, len(dims))
                      for _ in range(cfg.levels)]
        else:
            ffn = cfg.ffn if isinstance(cfg.ffn, int) else matched_ffn(d_eeg, d_face, cfg)
            self.ffn = ffn
            levels = [TransformerLevel(cfg.d_model, cfg.heads, ffn, cfg.dropout, len(dims))
                      for _ in range(cfg.levels)]
        self.positional = not dhcm
        self.levels = nn.ModuleList(levels)
        self.norm = nn.ModuleList([nn.LayerNorm(cfg.d_model) for _ in dims])

    def forward(self, x_e: torch.Tensor | None, x_f: torch.Tensor | None, mask: torch.Tensor
                ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        xs = [x for x, present in zip((x_e, x_f), self.present, strict=True) if present]
        if self.diffusion is not None:                                             # Eq. 1
            xs = [diffusion(x, mask) for diffusion, x in zip(self.diffusion, xs, strict=True)]
        hs = [proj(x) for proj, x in zip(self.proj, xs, strict=True)]
        if self.positional:
            pe = sinusoidal_positions(mask.shape[1], hs[0].shape[-1], mask.device, hs[0].dtype)
            hs = [h + pe for h in hs]
        gates = []
        for level in self.levels:
            hs, g = level(hs, mask)
            if g is not None:
                gates.append(g)
        gate = torch.stack(gates).mean(dim=0) if gates else None
        outs = iter([norm(h) for norm, h in zip(self.norm, hs, strict=True)])
        f_e, f_f = (next(outs) if present else None for present in self.present)
        return f_e, f_f, gate

    def freeze(self, n_levels: int) -> list[nn.Module]:
        """Freeze the input stage (diffusion, projection) and the first ``n_levels`` levels,
        at most all but the last (which always trains); ``n_levels <= 0`` freezes nothing.
        Returns the frozen parts."""
        if n_levels <= 0:
            return []
        parts = [*([self.diffusion] if self.diffusion is not None else []), self.proj,
                 *self.levels[:min(n_levels, len(self.levels) - 1)]]
        for part in parts:
            part.requires_grad_(False)
        return parts


class AttentionGate(nn.Module):
    """Cross-modal attention gating (Eq. 19-21): queries of one modality attend to the other."""

    def __init__(self, d_model: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, heads, batch_first=True)
        self.gate = nn.Linear(2 * d_model, d_model)

    def forward(self, query: torch.Tensor, other: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attn, _ = self.attn(query, other, other, key_padding_mask=~mask, need_weights=False)
        g = torch.sigmoid(self.gate(torch.cat([query, attn], dim=-1)))            # Eq. 20
        return query + g * attn, g                                                 # Eq. 21


class EvidentialHead(nn.Module):
    """Eq. 22-25: ``(B, H) -> gamma, v, alpha, beta``, each ``(B, C)``."""

    def __init__(self, d_model: int, n_classes: int, eps: float):
        super().__init__()
        self.eps = eps
        self.out = nn.Linear(d_model, 4 * n_classes)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        g, v, a, b = self.out(z).chunk(4, dim=-1)
        return F.relu(g), F.softplus(v) + self.eps, F.softplus(a) + 1.0, F.softplus(b)


class FineTuneModel(nn.Module):
    """Encoder + attention gating + heads. ``forward`` returns a dict (see :meth:`forward`).

    With a single modality there is no cross-modal gating (Eq. 19-21 need both): its encoder
    features are the aligned features, and its own opinion is the prediction (no Dempster
    combination)."""

    def __init__(self, encoder: Encoder, n_classes: int, cfg: DHCMCACLConfig):
        super().__init__()
        self.encoder = encoder
        n_modalities = sum(encoder.present)
        self.align = nn.ModuleList([AttentionGate(cfg.d_model, cfg.heads) for _ in range(2)]) \
            if n_modalities == 2 else None
        self.evidential = cfg.head == "evidential"
        if self.evidential:
            self.heads = nn.ModuleList([EvidentialHead(cfg.d_model, n_classes, cfg.evd_eps)
                                        for _ in range(n_modalities)])
        else:
            self.classifier = nn.Linear(n_modalities * cfg.d_model, n_classes)

    def forward(self, x_e: torch.Tensor | None, x_f: torch.Tensor | None,
                mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Keys: ``features`` (F_eeg, F_face; the present ones), ``aligned`` ``(B, T, nH)``,
        ``log_probs`` ``(B, C)``, ``uncertainty`` ``(B,)``; evidential head: ``params`` (one
        4-tuple per modality) and ``u_modal`` ``(B, n)``."""
        f_e, f_f, _ = self.encoder(x_e, x_f, mask)
        features = tuple(f for f in (f_e, f_f) if f is not None)
        if self.align is not None:                                                # Eq. 19-21
            aligned = [self.align[0](f_e, f_f, mask)[0], self.align[1](f_f, f_e, mask)[0]]
        else:
            aligned = list(features)
        zs = [masked_mean(a, mask) for a in aligned]
        out = {"features": features, "aligned": torch.cat(aligned, dim=-1)}
        if not self.evidential:
            log_probs = F.log_softmax(self.classifier(torch.cat(zs, dim=-1)), dim=-1)
            out.update(log_probs=log_probs, uncertainty=1 - log_probs.exp().amax(dim=-1))
            return out
        params = tuple(head(z) for head, z in zip(self.heads, zs, strict=True))   # Eq. 22-25
        opinions = [dirichlet_opinion(p[0]) for p in params]
        belief, u = opinions[0]
        for other_belief, other_u in opinions[1:]:
            belief, u = dempster_combine(belief, u, other_belief, other_u)
        alpha = opinion_to_dirichlet(belief, u)
        out.update(params=params, u_modal=torch.stack([o[1] for o in opinions], dim=1),
                   uncertainty=u,
                   log_probs=torch.log(alpha) - torch.log(alpha.sum(dim=-1, keepdim=True)))
        return out


class LossWeights(nn.Module):
    """Learnable weights ``w_j = exp(-s_j)`` in the regularised form ``sum_j w_j L_j + s_j``
    (Eq. 18 with Kendall et al.'s log term; ``s_j`` clamped to ``[-5, 5]``)."""

    def __init__(self, n: int):
        super().__init__()
        self.log_var = nn.Parameter(torch.zeros(n))

    @property
    def weights(self) -> torch.Tensor:
        return torch.exp(-self.log_var.clamp(-5.0, 5.0))

    def forward(self, losses: list[torch.Tensor]) -> torch.Tensor:
        s = self.log_var.clamp(-5.0, 5.0)
        return sum(torch.exp(-s[j]) * loss + s[j] for j, loss in enumerate(losses))


# =========================================================================== CACL losses

def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid time steps: ``(B, T, H), (B, T) -> (B, H)``."""
    w = mask.to(x.dtype)
    return (x * w[..., None]).sum(dim=1) / w.sum(dim=1, keepdim=True).clamp_min(1.0)


def segment_means(x: torch.Tensor, mask: torch.Tensor,
                  k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 12-13: ``(B, T, H)`` -> segment means ``(K, B, H)`` and validity ``(K, B)``.

    Window ``t`` of a sequence of length ``L_b`` falls in segment ``floor(t K / L_b)``.
    """
    lengths = mask.sum(dim=1, keepdim=True)
    t = torch.arange(x.shape[1], device=x.device)[None, :]
    seg = torch.div(t * k, lengths.clamp_min(1), rounding_mode="floor")
    onehot = F.one_hot(seg.clamp_max(k - 1), k).to(x.dtype) * mask[..., None].to(x.dtype)
    counts = onehot.sum(dim=1)                                                    # (B, K)
    sums = torch.einsum("btk,bth->kbh", onehot, x)
    return sums / counts.T.clamp_min(1.0)[..., None], (counts > 0).T


def symmetric_infonce(a: torch.Tensor, b: torch.Tensor, tau: float,
                      valid: torch.Tensor | None = None,
                      denominator: Literal["all", "negatives"] = "all") -> torch.Tensor:
    """Per-sample symmetric cross-modal InfoNCE (Eq. 14-16), summed over both directions.

    a, b: ``(..., B, H)`` paired rows; valid: ``(..., B)`` rows taking part (others are neither
    anchors nor negatives). Returns ``(..., B)`` (0 for invalid rows).
    """
    sim = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).transpose(-1, -2) / tau  # Eq. 14
    eye = torch.eye(sim.shape[-1], dtype=torch.bool, device=sim.device)
    if valid is None:
        valid = torch.ones(sim.shape[:-1], dtype=torch.bool, device=sim.device)
    pair = valid[..., :, None] & valid[..., None, :]
    excluded = ~pair | eye if denominator == "negatives" else ~pair & ~eye
    masked = sim.masked_fill(excluded, -1e9)    # finite: empty rows keep finite gradients
    pos = torch.diagonal(sim, dim1=-2, dim2=-1)
    loss = (torch.logsumexp(masked, dim=-1) - pos) + (torch.logsumexp(masked, dim=-2) - pos)
    min_rows = 2 if denominator == "negatives" else 1
    usable = valid & (valid.sum(dim=-1, keepdim=True) >= min_rows)
    return torch.where(usable, loss, torch.zeros_like(loss))


def sample_confidence(gate: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
    """Eq. 17: ``c_b = sigmoid(mean_{t, h} G_{b,t,h})`` over valid steps; ones without gates."""
    if gate is None:
        return torch.ones(mask.shape[0], device=mask.device)
    return torch.sigmoid(masked_mean(gate, mask).mean(dim=-1))


def cacl_terms(f_e: torch.Tensor, f_f: torch.Tensor, gate: torch.Tensor | None,
               mask: torch.Tensor, cfg: DHCMCACLConfig,
               segments: int | None = None) -> dict[str, torch.Tensor]:
    """Confidence-weighted segment and global terms of Eq. 18 (before the learnable weights).

    segments: K (default ``cfg.segments``, which must then be a number)."""
    conf = sample_confidence(gate, mask)
    if cfg.detach_confidence:
        conf = conf.detach()
    glob = symmetric_infonce(masked_mean(f_e, mask), masked_mean(f_f, mask), cfg.tau,
                             denominator=cfg.denominator)                          # Eq. 16
    if cfg.contrastive == "plain":
        return {"global": glob.mean(), "confidence": conf}
    k = segments if segments is not None else cfg.segments
    if not isinstance(k, int):
        raise ValueError(f"segments={k!r} must be resolved to a number first")
    s_e, valid = segment_means(f_e, mask, k)                                       # Eq. 12-13
    s_f, _ = segment_means(f_f, mask, k)
    seg = symmetric_infonce(s_e, s_f, cfg.tau, valid, cfg.denominator)             # Eq. 15
    return {"segment": (conf * seg.sum(dim=0)).mean(), "global": conf.mean() * glob.mean(),
            "confidence": conf}


def consistency_loss(z_p: torch.Tensor, z_f: torch.Tensor, tau: float,
                     denominator: Literal["all", "negatives"] = "all") -> torch.Tensor:
    """Eq. 28: anchor ``z_p,i`` (pre-trained), positive ``z_f,i``, negatives ``z_f,j`` (B, H)."""
    sim = F.normalize(z_p, dim=-1) @ F.normalize(z_f, dim=-1).T / tau
    pos = sim.diagonal()
    if denominator == "negatives":
        sim = sim.masked_fill(torch.eye(len(sim), dtype=torch.bool, device=sim.device),
                              float("-inf"))
    return (torch.logsumexp(sim, dim=-1) - pos).mean()


# =========================================================================== data

@dataclass
class Trials:
    """Trials as padded sequences. ``x``: EEG and face ``(N, T, D_m)`` tensors (``None`` for a
    modality not used); ``mask`` ``(N, T)``; ``pos`` ``(N, T)`` window positions in the Split
    (``-1`` = padding); ``y`` ``(N,)`` or None; ``lengths`` ``(N,)`` valid windows per trial,
    on the host (None: read from ``mask``)."""

    x: tuple[torch.Tensor | None, torch.Tensor | None]
    mask: torch.Tensor
    pos: np.ndarray
    y: torch.Tensor | None
    lengths: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.mask)

    def batch(self, idx: torch.Tensor, rows: np.ndarray | None = None
              ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """Inputs of the trials ``idx``, cut to their longest valid length (``rows``: ``idx``
        on the host, whose longest length is then read from ``lengths``, no device sync)."""
        mask = self.mask[idx]
        if rows is None or self.lengths is None:
            n = int(mask.sum(dim=1).max())
        else:
            n = int(self.lengths[rows].max())
        x_e, x_f = (None if x is None else x[idx, :n] for x in self.x)
        return x_e, x_f, mask[:, :n]


def check_split(split: Split, modalities: Sequence[str] = MODALITIES) -> None:
    """The ``modalities`` present and finite (the runner drops windows whose face is
    missing)."""
    missing = [m for m in modalities if m not in split.windows.names]
    if missing:
        raise AffectlabError(f"dhcm_cacl needs modalities {', '.join(modalities)}; "
                             f"missing: {', '.join(missing)} (use the data preset 'dhcm_cacl')")
    for name in modalities:
        x = split.windows.tensor(name)
        bad = ~torch.isfinite(x.reshape(len(x), -1)).all(dim=1)
        if bad.any():
            subjects = sorted(set(split.windows.meta["subject"].to_numpy()[bad.numpy()]))
            raise AffectlabError(
                f"dhcm_cacl: {int(bad.sum())} windows have NaN/inf in '{name}' (subjects "
                f"{subjects}); it needs both EEG and face in every window: drop windows where "
                f"avail_{name} is False or keep only subjects with face recordings")


def trial_layout(meta) -> np.ndarray:
    """Window positions ``(n_trials, T_max)`` of each trial in window order, ``-1`` padded."""
    keys = meta.groupby(["subject", "session", "trial"], sort=True).ngroup().to_numpy()
    order = np.lexsort((meta["window"].to_numpy(), keys))
    sorted_keys = keys[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_keys)) + 1]
    lengths = np.diff(np.r_[starts, len(order)])
    rank = np.arange(len(order)) - np.repeat(starts, lengths)
    layout = np.full((len(starts), lengths.max()), -1, dtype=np.int64)
    layout[np.repeat(np.arange(len(starts)), lengths), rank] = order
    return layout


def trial_labels(y: np.ndarray, layout: np.ndarray, n_classes: int) -> np.ndarray:
    """Majority label of each trial's windows."""
    valid = layout >= 0
    counts = np.zeros((len(layout), n_classes), np.int64)
    np.add.at(counts, (np.nonzero(valid)[0], y[layout[valid]]), 1)
    return counts.argmax(axis=1)


def resolve_segments(segments: int | str, pool: Sequence[Split]) -> int:
    """K of Eq. 12: a number, or ``"subjects"``: the subjects in the pre-training data."""
    if isinstance(segments, int):
        return segments
    return len({s for part in pool for s in part.windows.meta["subject"].unique()})


# =========================================================================== method

class DHCMCACLConfig(MethodConfig):
    # architecture
    d_model: int = Field(144, ge=1, description="latent width H (a multiple of heads)")
    d_state: int = Field(32, ge=1, description="SSM state dimension d_s (Eq. 4)")
    levels: int = Field(3, ge=1, le=5, description="hierarchical levels L (Eq. 7-11)")
    heads: int = Field(9, ge=1, description="attention heads (Eq. 19)")
    modalities: list[Literal["eeg", "face_au"]] | None = Field(
        None, description="eeg and / or face_au (Table 3's single-modality rows: one of them; "
        "no cross-modal pre-training then); None: both, or the one the run's data hold "
        "(a run with --set modalities=[eeg])")
    ssm_hidden: int = Field(1024, ge=1, description="hidden width of the MLP of Eq. 4 (the "
                            "paper's feed-forward width of the DHCM module, 1024)")
    diffusion_steps: int = Field(3, ge=0)
    diffusion_kernel: int = Field(3, ge=3, description="odd temporal kernel of Eq. 1")
    rho: float = Field(0.99, gt=0, lt=1, description="spectral-norm bound of A_t")
    scan: Literal["auto", "chunked", "doubling", "sequential"] = Field(
        "auto", description="affine scan of Eq. 6 (auto: sequential on CPU, chunked on GPU)")
    scan_chunk: int | None = Field(None, ge=1, description="chunk length of the chunked scan "
                                                           "(default ceil(sqrt(T)))")
    ffn: int | Literal["matched"] = Field(
        "matched", description="feed-forward width of the transformer ablation; matched: the "
        "width that gives it about the DHCM encoder's parameter count")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout (transformer encoder)")
    # ablations (Tables 4-5, Figure 4)
    encoder: Literal["dhcm", "transformer"] = "dhcm"
    contrastive: Literal["cacl", "plain"] = "cacl"
    head: Literal["evidential", "softmax"] = "evidential"
    pretrain: bool = True
    transition: Literal["dynamic", "static", "random"] = "dynamic"
    forget_gate: bool = True
    # CACL (Eq. 12-18)
    segments: int | Literal["subjects"] = Field(
        18, description="K temporal segments (paper: the number of subjects, DEAP 18, MAHNOB-HCI "
        "24; 'subjects': the number of subjects in the fold's pre-training data)")
    tau: float = Field(0.07, gt=0)
    denominator: Literal["all", "negatives"] = "all"
    detach_confidence: bool = True
    # fine-tuning (Eq. 19-29)
    freeze_levels: int = Field(2, ge=0)
    lambda_ce: float = Field(1.0, ge=0)
    lambda_evd: float = Field(0.5, ge=0)
    lambda_contrast: float = Field(0.9, ge=0)
    evd_lambda: float = Field(0.1, ge=0, description="lambda of Eq. 27")
    evd_eps: float = Field(1e-2, gt=0, description="epsilon of Eq. 23 and Eq. 27")
    # optimisation
    lr: float = Field(1e-4, gt=0)
    finetune_lr: float | None = Field(None, gt=0, description="default: lr")
    lr_decay: float = Field(0.95, gt=0, le=1, description="exponential decay per fine-tuning "
                                                          "epoch")
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(32, ge=2)
    pretrain_epochs: int = Field(200, ge=0)
    finetune_epochs: int = Field(40, ge=1)
    patience: int | None = Field(None, ge=1, description="stop fine-tuning after this many "
                                 "epochs without a lower validation loss (None: all epochs)")

    @model_validator(mode="after")
    def _check(self) -> DHCMCACLConfig:
        if self.d_model % self.heads:
            raise ValueError(f"d_model={self.d_model} is not a multiple of heads={self.heads}")
        if self.diffusion_kernel % 2 == 0:
            raise ValueError("diffusion_kernel must be odd")
        if self.modalities is not None and (not self.modalities
                                            or len(set(self.modalities)) != len(self.modalities)):
            raise ValueError(f"modalities must be eeg and / or face_au once each, got "
                             f"{self.modalities}")
        if isinstance(self.segments, int) and self.segments < 1:
            raise ValueError("segments must be >= 1")
        if isinstance(self.ffn, int) and self.ffn < 1:
            raise ValueError("ffn must be >= 1")
        return self


@register_method
class DHCMCACL(Method):
    name = "dhcm_cacl"
    summary = ("DHCM-CACL: EEG PSD + face AUs per 3 s window, dynamic hierarchical cross-modal "
               "SSM, confidence-adaptive contrastive pre-training, evidential fine-tuning "
               "(probabilities + uncertainty)")
    Config = DHCMCACLConfig
    presets = {
        # default: the paper's architecture at a width a CPU trains, with a learning rate at
        # which the model converges at the batch counts of a few subjects (the paper's 1e-4
        # with one or two mini-batches per epoch leaves the validation loss almost flat);
        # every level fine-tuned (see fast), the best validation epoch kept, early stopping.
        # LOSO on 8 synthetic DEAP subjects, first 3 folds, balanced accuracy: lr 3e-3 0.773,
        # lr 1e-3 0.845, logreg on the same inputs 0.830; about 60 CPU s per fold (1 thread).
        "default": {"d_model": 72, "d_state": 32, "ssm_hidden": 64, "segments": 4,
                    "lr": 1e-3, "batch_size": 16, "pretrain_epochs": 40,
                    "finetune_epochs": 100, "patience": 15, "freeze_levels": 0},
        # paper: Sec. "Implementation Details"; K = 18 subjects on DEAP, 24 on MAHNOB-HCI
        "paper": {},
        "paper_mahnob": {"segments": 24},
        # fast: seconds on CPU. Pre-training on a few dozen trials gives no features worth
        # freezing (measured on synthetic DEAP: freezing two levels costs ~8 accuracy points),
        # so the fast preset fine-tunes every level; the paper preset freezes two.
        "fast": {"d_model": 36, "d_state": 16, "ssm_hidden": 32, "segments": 4,
                 "lr": 3e-3, "pretrain_epochs": 15, "finetune_epochs": 30, "batch_size": 16,
                 "freeze_levels": 0},
    }
    dataset_presets = {("paper", "mahnob"): "paper_mahnob"}
    data_presets = {"deap": "dhcm_cacl", "mahnob": "dhcm_cacl"}
    self_supervised = True
    protocols = ("subject_dependent", "loso", "subject_kfold", "label_ratio")
    # the demo's 3 synthetic subjects (one without a face) leave one training subject per
    # fold: validate on its trials
    demo = {"dataset": "deap", "protocol": "subject_kfold", "labels": "binary_valence",
            "options": {"protocol": {"val_by": "trial"}}}
    config: DHCMCACLConfig

    @classmethod
    def used_modalities(cls, config: dict, names: Sequence[str]) -> list[str]:
        return [name for name in config.get("modalities") or MODALITIES if name in names]

    @property
    def modalities(self) -> list[str]:
        """The modalities used, in the fixed order EEG, face: the configured ones, else those
        the training data hold (set by ``fit``), else both."""
        chosen = self.config.modalities or getattr(self, "modalities_", None) or MODALITIES
        return [m for m in MODALITIES if m in chosen]

    @property
    def cross_modal(self) -> bool:
        """Both modalities: the CACL pre-training and the Eq. 28 term exist."""
        return len(self.modalities) == 2

    # ------------------------------------------------------------------ data
    def _trials(self, split: Split, labelled: bool) -> Trials:
        check_split(split, self.modalities)
        layout = trial_layout(split.windows.meta)
        flat = torch.as_tensor(np.where(layout >= 0, layout, 0).reshape(-1))
        mask = torch.as_tensor(layout >= 0)
        xs: list[torch.Tensor | None] = []
        for m, name in enumerate(MODALITIES):
            if name not in self.modalities:
                xs.append(None)
                continue
            x = split.windows.tensor(name).reshape(len(split), -1)
            x = (x - self.mean_[m]) / self.std_[m]
            x = x[flat].reshape(*layout.shape, -1) * mask[..., None]
            xs.append(x.to(self.device))
        y = None
        if labelled:
            y = torch.as_tensor(trial_labels(split.y, layout, self.n_classes), device=self.device)
        return Trials((xs[0], xs[1]), mask.to(self.device), layout, y,
                      (layout >= 0).sum(axis=1))

    def _fit_scaler(self, parts: list[Split]) -> None:
        """Per-feature mean / std over the training windows (labelled and unlabelled)."""
        self.mean_, self.std_ = [], []
        for name in MODALITIES:
            if name not in self.modalities:
                self.mean_.append(None)
                self.std_.append(None)
                continue
            x = torch.cat([p.windows.tensor(name).reshape(len(p), -1) for p in parts])
            self.mean_.append(x.mean(dim=0))
            self.std_.append(x.std(dim=0).clamp_min(1e-6))

    @staticmethod
    def _concat(parts: list[Trials]) -> Trials:
        n = max(p.mask.shape[1] for p in parts)

        def pad(t: torch.Tensor) -> torch.Tensor:
            return F.pad(t, (0, 0, 0, n - t.shape[1])) if t.dim() == 3 else \
                F.pad(t, (0, n - t.shape[1]))

        x = tuple(None if parts[0].x[m] is None else torch.cat([pad(p.x[m]) for p in parts])
                  for m in range(2))
        mask = torch.cat([pad(p.mask) for p in parts])
        lengths = None if any(p.lengths is None for p in parts) else \
            np.concatenate([p.lengths for p in parts])
        return Trials(x, mask, np.zeros((len(mask), 0), np.int64), None, lengths)

    # ------------------------------------------------------------------ fit
    def fit(self, train: Split, unlabeled: Split | None = None,
            val: Split | None = None) -> Method:
        cfg = self.config
        generator, pool, labelled = self._setup(train, unlabeled, labelled=True)
        val_trials = self._trials(val, labelled=True) if val is not None and len(val) else None
        encoder = self._build_encoder(labelled)
        self.history_: dict[str, list[float]] = {"pretrain": [], "finetune": [], "val": []}
        frozen_copy, self.frozen_parts_ = None, []
        n_total = cfg.finetune_epochs + (cfg.pretrain_epochs if self._pretrains() else 0)
        if self._pretrains():
            self._pretrain_stage(encoder, labelled, pool, generator, n_total)
            frozen_copy = copy.deepcopy(encoder).requires_grad_(False).eval()
            self.frozen_parts_ = encoder.freeze(cfg.freeze_levels)
        self.model_ = FineTuneModel(encoder, self.n_classes, cfg).to(self.device)
        self.frozen_encoder_ = frozen_copy
        self._finetune(labelled, val_trials, generator, n_total)
        return self

    def _setup(self, train: Split, unlabeled: Split | None, labelled: bool
               ) -> tuple[torch.Generator, list[Split], Trials]:
        """Seed; check the training pool (train + unlabelled part), fit the scaler on it;
        return the generator, the pool and the training trials (with labels if ``labelled``)."""
        generator = seed_everything(self.seed)
        self.modalities_ = [m for m in MODALITIES if m in train.windows.names] or \
            list(MODALITIES)                  # none: check_split names both as missing
        pool = [train] + ([unlabeled] if unlabeled is not None and len(unlabeled) else [])
        for part in pool:
            check_split(part, self.modalities)
        self._fit_scaler(pool)
        trials = self._trials(train, labelled=labelled)
        if len(trials) < 2:
            kind = "labelled" if labelled else "training"
            raise AffectlabError(f"dhcm_cacl needs at least 2 {kind} trials, got {len(trials)}")
        return generator, pool, trials

    def _pretrains(self) -> bool:
        """Whether ``fit`` runs the CACL stage: asked for, and both modalities present (CACL
        contrasts EEG with face; a single-modality run is fine-tuned from scratch)."""
        cfg = self.config
        if cfg.pretrain and cfg.pretrain_epochs > 0 and not self.cross_modal:
            log.info("dhcm_cacl: modalities=%s: no cross-modal pre-training (CACL needs EEG "
                     "and face)", self.modalities)
        return cfg.pretrain and cfg.pretrain_epochs > 0 and self.cross_modal

    def _build_encoder(self, trials: Trials) -> Encoder:
        dims = tuple(None if x is None else x.shape[-1] for x in trials.x)
        return Encoder(*dims, self.config).to(self.device)

    def _pretrain_stage(self, encoder: Encoder, trials: Trials, pool: list[Split],
                        generator: torch.Generator, n_total: int) -> None:
        """Stage 1 on the training trials plus the unlabelled part's trials (no labels)."""
        unlabelled = [trials] + [self._trials(p, labelled=False) for p in pool[1:]]
        self.segments_ = resolve_segments(self.config.segments, pool)
        self.loss_weights_ = LossWeights(2).to(self.device)
        self._pretrain(encoder, self._concat(unlabelled), generator, n_total)

    def pretext_features(self, train: Split, unlabeled: Split | None, parts: Sequence[Split],
                         pretrain: bool = True) -> list[np.ndarray]:
        """Per window, the pre-trained encoder's outputs at that window's time step of its
        trial sequence, ``[F_eeg, F_face]`` (Eq. 7-11 after the final LayerNorms; what the
        fine-tuning stage's attention gating reads): ``(n, 2 * d_model)`` (``(n, d_model)``
        with one modality, which has no pre-training: random initialisation either way).

        Inputs are z-scored with the training pool's statistics (``train`` and ``unlabeled``,
        as ``fit``). ``pretrain``: the encoder after the CACL stage alone (Eq. 1-18, as ``fit``
        runs it, ``pretrain_epochs`` epochs) on the trials of ``train`` (labels unused) and
        ``unlabeled``; the config's ``pretrain`` switch is not read here. Without
        ``pretrain`` the same encoder (same seed) keeps its random initialisation. Eval mode,
        batches of 256 trials. A window of a part lacking EEG or face (non-finite) is a NaN row
        and is left out of its trial's sequence (the gap is closed, as for dropped windows);
        the training pool must be complete, as in ``fit``.
        """
        cfg = self.config
        generator, pool, trials = self._setup(train, unlabeled, labelled=False)
        encoder = self._build_encoder(trials)
        self.history_ = {"pretrain": [], "finetune": [], "val": []}
        if pretrain and cfg.pretrain_epochs > 0 and self.cross_modal:
            self._pretrain_stage(encoder, trials, pool, generator, cfg.pretrain_epochs)
        encoder.eval()
        out = []
        for part in parts:
            for name in self.modalities:
                if name not in part.windows.names:
                    check_split(part, self.modalities)    # raises: names the missing ones
            complete = np.ones(len(part), bool)
            for name in self.modalities:
                x = part.windows.tensor(name).reshape(len(part), -1)
                complete &= torch.isfinite(x).all(dim=1).numpy()
            rows = np.flatnonzero(complete)
            feats = np.full((len(part), len(self.modalities) * cfg.d_model), np.nan)
            if len(rows):
                data = self._trials(Split(part.windows.subset(rows), None, part.modalities),
                                    labelled=False)
                steps = []
                with torch.no_grad():
                    for host, idx in minibatch_pairs(len(data), 256, shuffle=False,
                                                     device=self.device):
                        x_e, x_f, mask = data.batch(idx, host)
                        f = torch.cat([f for f in encoder(x_e, x_f, mask)[:2] if f is not None],
                                      dim=-1)
                        steps.append(F.pad(f, (0, 0, 0, data.mask.shape[1] - mask.shape[1])))
                per_step = torch.cat(steps).cpu().numpy()
                valid = data.pos >= 0
                feats[rows[data.pos[valid]]] = per_step[valid]
            out.append(feats)
        return out

    def pretrain_loss(self, encoder: Encoder, x_e: torch.Tensor, x_f: torch.Tensor,
                      mask: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 1-18 on one batch of sequences: total loss and its terms."""
        f_e, f_f, gate = encoder(x_e, x_f, mask)
        terms = cacl_terms(f_e, f_f, gate, mask, self.config, getattr(self, "segments_", None))
        if self.config.contrastive == "plain":
            return terms["global"], terms
        return self.loss_weights_([terms["segment"], terms["global"]]), terms      # Eq. 18

    def _pretrain(self, encoder: Encoder, data: Trials, generator: torch.Generator,
                  n_total: int) -> None:
        cfg = self.config
        params = [*encoder.parameters(), *self.loss_weights_.parameters()]
        optimiser = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        encoder.train()
        for epoch in range(cfg.pretrain_epochs):
            losses, sizes = StepValues(), []
            for rows, idx in minibatch_pairs(len(data), cfg.batch_size, generator,
                                             device=self.device):
                if len(idx) < 2:
                    continue
                loss, _ = self.pretrain_loss(encoder, *data.batch(idx, rows))
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                losses.add(loss=loss)
                sizes.append(len(idx))
            self.history_["pretrain"].append(losses.weighted_sum("loss", sizes)
                                             / max(sum(sizes), 1))
            self.report_epoch(epoch, n_total, pretrain_loss=self.history_["pretrain"][-1])

    def finetune_loss(self, x_e: torch.Tensor, x_f: torch.Tensor, mask: torch.Tensor,
                      y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 26-29 on one batch: ``lambda1 CE + lambda2 Evd + lambda3 Contrast``."""
        cfg = self.config
        out = self.model_(x_e, x_f, mask)
        terms = {"ce": F.nll_loss(out["log_probs"], y)}                           # Eq. 26
        loss = cfg.lambda_ce * terms["ce"]
        if "params" in out:                                                        # Eq. 27
            terms["evd"] = sum(evidential_loss(*p, y, cfg.evd_lambda, cfg.evd_eps)
                               for p in out["params"])
            loss = loss + cfg.lambda_evd * terms["evd"]
        if self.frozen_encoder_ is not None and cfg.lambda_contrast > 0:          # Eq. 28
            with torch.no_grad():
                ref = [f for f in self.frozen_encoder_(x_e, x_f, mask)[:2] if f is not None]
            terms["contrast"] = sum(consistency_loss(masked_mean(p, mask), masked_mean(f, mask),
                                                     cfg.tau, cfg.denominator)
                                    for p, f in zip(ref, out["features"], strict=True)) / len(ref)
            loss = loss + cfg.lambda_contrast * terms["contrast"]
        return loss, terms                                                         # Eq. 29

    def _finetune(self, data: Trials, val: Trials | None, generator: torch.Generator,
                  n_total: int) -> None:
        cfg = self.config
        params = [p for p in self.model_.parameters() if p.requires_grad]
        optimiser = torch.optim.Adam(params, lr=cfg.finetune_lr or cfg.lr,
                                     weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma=cfg.lr_decay)
        offset = n_total - cfg.finetune_epochs
        best, best_state, since_best = np.inf, None, 0
        for epoch in range(cfg.finetune_epochs):
            self._set_train()
            losses, sizes = StepValues(), []
            for rows, idx in minibatch_pairs(len(data), cfg.batch_size, generator,
                                             device=self.device):
                if len(idx) < 2:
                    continue
                loss, _ = self.finetune_loss(*data.batch(idx, rows), data.y[idx])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                losses.add(loss=loss)
                sizes.append(len(idx))
            scheduler.step()
            self.history_["finetune"].append(losses.weighted_sum("loss", sizes) / len(data))
            logs = {"loss": self.history_["finetune"][-1]}
            if val is not None:
                logs["val_loss"] = self._val_loss(val)
                self.history_["val"].append(logs["val_loss"])
                since_best += 1
                if logs["val_loss"] < best - 1e-6:
                    best, since_best = logs["val_loss"], 0
                    best_state = copy.deepcopy(self.model_.state_dict())
            self.report_epoch(offset + epoch, n_total, **logs)
            if cfg.patience is not None and since_best >= cfg.patience:
                break
        if best_state is not None:
            self.model_.load_state_dict(best_state)
        self.model_.eval()

    def _set_train(self) -> None:
        """Train mode for the trainable parts; frozen parts stay in eval mode (no dropout)."""
        self.model_.train()
        for part in self.frozen_parts_:
            part.eval()

    @torch.no_grad()
    def _val_loss(self, val: Trials) -> float:
        """Mean class NLL (Eq. 26) of the validation trials."""
        self.model_.eval()
        out = self._forward_all(val)
        return float(F.nll_loss(out["log_probs"], val.y))

    @torch.no_grad()
    def _forward_all(self, data: Trials) -> dict[str, torch.Tensor]:
        """Forward in batches; returns per-trial ``log_probs``, ``uncertainty``, ``u_modal``,
        ``fad`` ``(N,)`` and per-step ``aligned`` ``(N, T, 2H)``."""
        keys = ("log_probs", "uncertainty", "u_modal", "fad", "aligned")
        parts: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
        for rows, idx in minibatch_pairs(len(data), 256, shuffle=False, device=self.device):
            x_e, x_f, mask = data.batch(idx, rows)
            out = self.model_(x_e, x_f, mask)
            if len(out["features"]) == 2:
                f_e, f_f = out["features"]
                out["fad"] = masked_mean(F.cosine_similarity(f_e, f_f, dim=-1)[..., None],
                                         mask)[:, 0]
            out["aligned"] = F.pad(out["aligned"], (0, 0, 0, data.mask.shape[1] - mask.shape[1]))
            for k in keys:
                if k in out:
                    parts[k].append(out[k])
        return {k: full_precision(torch.cat(v)) for k, v in parts.items() if v}

    # ------------------------------------------------------------------ predict
    def predict(self, test: Split) -> Predictions:
        """Per-window predictions: each window gets its trial's probabilities and uncertainty;
        embeddings are the window's own aligned features."""
        data = self._trials(test, labelled=False)
        self.model_.eval()
        out = self._forward_all(data)
        valid = data.pos >= 0
        rows = np.nonzero(valid)[0]
        order = data.pos[valid]
        probs = np.empty((len(test), self.n_classes))
        uncertainty = np.empty(len(test))
        embeddings = np.empty((len(test), out["aligned"].shape[-1]), np.float32)
        probs[order] = out["log_probs"].exp().cpu().numpy()[rows]
        uncertainty[order] = out["uncertainty"].cpu().numpy()[rows]
        embeddings[order] = out["aligned"].cpu().numpy()[valid]
        extras = {"fad": float(out["fad"].mean())} if "fad" in out else {}
        if "u_modal" in out:
            names = {"eeg": "uncertainty_eeg", "face_au": "uncertainty_face"}
            extras.update({names[m]: float(out["u_modal"][:, k].mean())
                           for k, m in enumerate(self.modalities)})
        return Predictions(probs / probs.sum(axis=1, keepdims=True), uncertainty, embeddings,
                           extras=extras)
