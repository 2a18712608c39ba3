"""UF-AMA: unified framework with adaptive multimodal alignment (EEG + eye movements, UDA).

References
----------
Z. Wang, S. Wang, J. Wang, "UF-AMA: A unified framework for cross-domain emotion recognition via
adaptive multimodal alignment", arXiv:2606.00170 (2026); released code
``BetterCoderLab/UF-AMA`` (commit 2b2a02f).

What is implemented (equation numbers of the paper)
---------------------------------------------------
* Intra-modality encoders (Eq. 2-3): every EEG electrode (a 5-band DE vector) and every eye
  feature (a scalar) is a token, embedded by a per-token ``Linear`` to ``d_model = 64``; a stack
  of pre-LN transformer blocks (2 heads, FFN 128, ReLU); the tokens are flattened and mapped to
  one ``d_model`` vector per modality (the "encoded feature" of the heads, BCE and MMD).
* ICAF fusion (Eq. 4-5): ``FC(LN(Z))`` projects each modality's tokens to 128; EEG queries eye
  and eye queries EEG (2-head cross-attention, residual on the projected query); each stream is
  flattened, mapped to 128 and the two are concatenated into the 256-d fused feature.
* Heads: EEG / eye ``64 -> 32 -> C``, fusion ``256 -> 64 -> C`` (ReLU, dropout 0.5). Predictions
  are the fusion head's softmax.
* Source losses: CE on each branch, weights 1/4 (EEG), 1/4 (eye), 1/2 (fusion) (Eq. 14);
  affinity BCE (Eq. 6-8, :func:`affectlab.losses.affinity.affinity_bce`) with the same weights.
* MK-MMD (Eq. 9-10, :func:`affectlab.losses.mmd.mk_mmd`) between source and target EEG, eye and
  fused features, weights 1/4, 1/4, 1/2, times ``delta``.
* Confidence screening (Eq. 11, :func:`screen`): the ``2B`` (sample, modality) pairs of a target
  batch are ranked by their maximum softmax probability; the top ``ceil(alpha * 2B)`` are "high".
  Both modalities high + equal pseudo-labels: consistent; both high, different labels:
  conflicting (dropped); exactly one high: partially low-quality (distillation).
* Global consistency (Eq. 12): CE of the fusion head on the consistent samples against the
  agreed pseudo-label, weight ``theta`` from the current batch's weighted source CE (Eq. 15:
  0.5 if <= 0.1, 0.2 if in (0.1, 0.2), else 0.1).
* Cross-modal distillation (Eq. 13): only if the confidence at the ``alpha`` position is >= beta
  (0.9); for each teacher modality, the partially low-quality samples whose fusion prediction
  equals the teacher's pseudo-label train the *student* head by CE on that label; the two
  directions weigh 1/2 each; weight ``gamma``.
* Staged training (Sec. 2.4): the fine-grained terms (Eq. 12-13) start after the first
  ``fine_start`` fraction of the epochs; before that only source supervision and MMD act.
* Table 7 ablation ``model``: 1 source-only network; 2 + BCE; 3 + MMD; 4 + global consistency
  without screening; 5 + screening; 6 + distillation (full, default).

Training: Adam, 32 source + 32 target windows per step (one forward of the 64 stacked windows),
an epoch is one pass over the smaller domain (the target, in LOSO), 400 epochs. The target part
arrives **without labels** (``unlabeled``, transductive: the target subject / session is also
the test part); its labels never reach this module. The model returned is the last epoch's, or
(``select=val``) the epoch with the best fusion-head score on the validation part carved from
the *source* subjects / trials (``select_on``: balanced accuracy, ties to the lower
cross-entropy, or the reverse); ``patience`` stops training after that many epochs without a
better score, counted from the start of the fine-grained stage (so early stopping never ends
training before Eq. 12-13 have acted). With ``report_oracle=true`` the target probabilities
after every epoch are returned as ``Predictions.epoch_probs``; only the runner scores them
(``oracle_best_epoch``).

Presets: ``paper`` is the paper's Sec. 3.2 literally (400 epochs, last epoch; source
statistics, as the paper names no normalisation); ``default`` keeps the paper's network and
optimiser but z-scores every subject-session with its own statistics and stops early on the
source validation part (see "Interpretation", normalisation); ``fast`` is a smoke test (8
epochs of a smaller network, about 70 optimisation steps on 8 synthetic subjects: far from
converged, never a result).

Interpretation
--------------
* Eq. 8 has no minus sign; its negative (the BCE) is minimised. ``S`` is clamped to
  [1e-6, 1 - 1e-6] (identical features of different classes would give ``log 0``). BCE uses
  the encoded / fused *features* as the paper says (the code uses softmax outputs).
* Eq. 10 writes a plain sum of kernels (the text says "convex combination"): sum used. The
  bandwidth rule is not in the paper; the released code's is used (see ``losses/mmd.py``).
  ``delta`` is not given: 1, constant.
* Eq. 11 ranks within each training batch (the paper's "all target samples" would need a pass
  over the target per step); ties broken by ``torch.topk``. The low-confidence set is the
  complement of the high set, so every (sample, modality) is one or the other
  (``low_set=complement``). The released code takes the bottom ``2B - k`` with a second
  ``topk(largest=False)`` (``low_set=bottom``, official): the same sets unless confidences
  tie across the boundary, where that set can overlap the high set and leave samples in
  neither (e.g. all confidences equal: no distillation candidate at all).
* Model 4 ("global consistency ... without any sample selection"): every target sample of the
  batch, labelled with the fusion head's own pseudo-label (requiring modality agreement would
  already be a selection).
* ``gamma`` is only "relatively small" in the paper: 0.1 (the code's 1e-5 makes distillation a
  no-op, which would make Table 7's Model 6 identical to Model 5; available as ``official``).
* The staged introduction (Sec. 2.4) gives no epoch: ``fine_start = 0.1`` of the epochs (40 of
  400); theta (Eq. 15) then acts from that point on.
* The encoders have no positional encoding (as the code): token identity enters through the
  flatten + ``Linear`` that follows the blocks. Every block has its own initial draw. No final
  LayerNorm after the pre-LN stack (Eq. 3 has none). Encoder dropout 0.1 (PyTorch default, as
  the code; the paper is silent).
* Target features are not detached in screening, consistency or distillation; pseudo-labels are
  argmax values (no gradient), as in the code.
* Normalisation (not in the paper or the code, whose data loaders are not released): z-score
  per feature with the statistics of the source training windows (``normalize=source``, the
  option's default and the ``paper`` preset's). ``subject`` / ``subject_session`` z-score every
  subject (or subject-session) with its own statistics, computed from its windows without
  labels: the target domain's statistics come from the unlabelled target windows (transductive,
  like the method itself; the run summary declares the method transductive). The ``default``
  preset uses ``subject_session``: with source statistics each subject keeps its own DE / eye
  offset and gain, which the encoders and MK-MMD must learn away from 8-15 subjects; measured
  on synthetic SEED-IV (8 subjects, ``hard``, LOSO) the source-only network reaches 0.50
  balanced accuracy after the ``fast`` preset's 8 epochs and 0.72 after 60 with source
  statistics, 0.87 with per-subject-session statistics (logistic regression on the
  source-normalised inputs: 0.70). Per-subject(-session) z-scoring of DE features is the usual
  input step for SEED cross-subject adaptation; here it is a first-and-second-moment alignment
  done before the MMD, which it does not replace (the MMD acts on the learnt features).

``official=True`` (released code, for every option left unset)
----------------------------------------------------------------
Classifier heads never optimised (they keep their random initialisation; gradients still flow
through them to the encoders), post-LN blocks, 1 block on SEED (3 on SEED-IV), no LayerNorm
before the fusion projections, BCE on the cosine of the softmax outputs over all ``B^2`` pairs
with ``eta = 1e-3``, the linear-time MMD estimator, the MMD weight schedule (1 up to epoch 10,
0.49991 up to 40, ``exp(-0.6 e)`` up to 85, then 0; 0-based epochs), ``gamma = 1e-5``,
distillation gate ``> beta`` (strict), no distillation from fewer than 3 candidates, no staged
start (theta only), the low-confidence set by ``topk(largest=False)``. With dropout off, the
forward, the loss and one Adam step equal the released code's to float64 round-off (the
equivalence harness in ``benchmarks/equivalence``). Not reproduced: the code runs source and
target through separate forwards and re-runs the fusion network and heads on the selected
subsets (new dropout masks); here the batch's single forward is indexed. Its initialisation
re-draws every layer of an encoder except the attention output projection, which stays the
same in all blocks (they are deep copies of one layer); here every block is drawn on its own.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field
from sklearn.metrics import balanced_accuracy_score
from torch import nn

from affectlab.errors import ConfigError
from affectlab.losses.affinity import affinity_bce
from affectlab.losses.mmd import mk_mmd
from affectlab.methods.base import Method, MethodConfig, Predictions, Split, register_method
from affectlab.training import full_precision, seed_everything, standardize_fit

BRANCH_WEIGHTS = (0.25, 0.25, 0.5)       # EEG, eye, fusion (Eq. 14)
WINDOW_KEYS = ["subject", "session", "trial", "window"]


class UFAMAConfig(MethodConfig):
    model: int = Field(6, ge=1, le=6, description="Table 7 ablation: 1 source only, 2 + BCE, "
                       "3 + MMD, 4 + consistency w/o screening, 5 + screening, 6 full")
    official: bool = Field(False, description="released-code behaviour for options left unset")
    epochs: int = Field(400, ge=1)
    batch_size: int = Field(32, ge=2, description="source and target windows per step (each)")
    lr: float = Field(5e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    d_model: int = Field(64, ge=2)
    heads: int = Field(2, ge=1)
    ffn_dim: int = Field(128, ge=1)
    blocks: int | None = Field(None, ge=1, description="encoder blocks (None: 3; official: 1 "
                               "on SEED, 3 otherwise)")
    encoder_dropout: float = Field(0.1, ge=0, lt=1)
    fusion_dim: int = Field(128, ge=2)
    head_hidden: int = Field(32, ge=1)
    fusion_head_hidden: int = Field(64, ge=1)
    head_dropout: float = Field(0.5, ge=0, lt=1)
    norm_first: bool | None = Field(None, description="pre-LN blocks (None: True; official: "
                                    "False)")
    fusion_layer_norm: bool | None = Field(None, description="LN before the ICAF projections")
    train_heads: bool | None = Field(None, description="optimise the classifier heads")
    bce_form: Literal["paper", "official"] | None = None
    mmd_estimator: Literal["quadratic", "linear"] | None = None
    kernel_num: int = Field(5, ge=1)
    kernel_mul: float = Field(2.0, gt=1)
    delta: float = Field(1.0, ge=0, description="MMD weight")
    delta_schedule: Literal["constant", "official"] | None = None
    alpha: float = Field(0.5, gt=0, le=1, description="confidence ranking threshold (Eq. 11)")
    beta: float = Field(0.9, ge=0, le=1, description="distillation gate (Sec. 2.4.3)")
    beta_strict: bool | None = Field(None, description="gate on conf > beta (official)")
    gamma: float | None = Field(None, ge=0, description="distillation weight (None: 0.1; "
                                "official: 1e-5)")
    min_distill: int | None = Field(None, ge=1, description="fewest candidates for a "
                                    "distillation term (None: 1; official: 3)")
    fine_start: float | None = Field(None, ge=0, le=1, description="fraction of epochs before "
                                     "Eq. 12-13 start (None: 0.1; official: 0)")
    low_set: Literal["complement", "bottom"] | None = Field(
        None, description="low-confidence set of Eq. 11: the complement of the top set (None), "
                          "or the bottom 2B - k by topk(largest=False) (official; on tied "
                          "confidences it can overlap the top set and leave samples in neither)")
    normalize: Literal["source", "subject", "subject_session", "none"] = "source"
    select: Literal["last", "val"] = "last"
    select_on: Literal["balanced_accuracy", "loss"] = Field(
        "balanced_accuracy", description="validation score of select=val (ties: the other)")
    patience: int | None = Field(None, ge=1, description="select=val: stop after this many "
                                 "epochs without a better validation score")
    report_oracle: bool = Field(False, description="return target probabilities per epoch")
    eval_batch: int = Field(1024, ge=1)


@dataclass(frozen=True)
class Settings:
    """Options after the paper / official defaults are filled in."""

    blocks: int
    norm_first: bool
    fusion_layer_norm: bool
    train_heads: bool
    bce_official: bool
    mmd_estimator: str
    delta_official: bool
    gamma: float
    beta_strict: bool
    min_distill: int
    fine_start: float
    low_set: str


def resolve(cfg: UFAMAConfig, dataset: str | None) -> Settings:
    """Fill unset options with the paper's reading, or the released code's if ``official``."""
    off = cfg.official

    def pick(value, paper, official):
        return value if value is not None else (official if off else paper)

    return Settings(
        blocks=pick(cfg.blocks, 3, 1 if dataset == "seed" else 3),
        norm_first=pick(cfg.norm_first, True, False),
        fusion_layer_norm=pick(cfg.fusion_layer_norm, True, False),
        train_heads=pick(cfg.train_heads, True, False),
        bce_official=pick(cfg.bce_form, "paper", "official") == "official",
        mmd_estimator=pick(cfg.mmd_estimator, "quadratic", "linear"),
        delta_official=pick(cfg.delta_schedule, "constant", "official") == "official",
        gamma=pick(cfg.gamma, 0.1, 1e-5),
        beta_strict=pick(cfg.beta_strict, False, True),
        min_distill=pick(cfg.min_distill, 1, 3),
        fine_start=pick(cfg.fine_start, 0.1, 0.0),
        low_set=pick(cfg.low_set, "complement", "bottom"),
    )


# --------------------------------------------------------------------------- network

class ModalityEncoder(nn.Module):
    """Tokens ``(B, P, F)`` -> per-token Linear -> transformer blocks (Eq. 3) ->
    ``(tokens (B, P, d), vector (B, d))``."""

    def __init__(self, n_tokens: int, token_dim: int, d_model: int, heads: int, ffn_dim: int,
                 blocks: int, dropout: float, norm_first: bool):
        super().__init__()
        self.embed = nn.Linear(token_dim, d_model)
        # each block is constructed (and drawn) on its own; nn.TransformerEncoder would
        # deep-copy one layer, so every block would start from the same weights
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, heads, ffn_dim, dropout, batch_first=True,
                                       norm_first=norm_first) for _ in range(blocks))
        self.down = nn.Linear(n_tokens * d_model, d_model)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.embed(x)
        for block in self.blocks:
            tokens = block(tokens)
        return tokens, self.down(tokens.flatten(1))


class CrossModalFusion(nn.Module):
    """ICAF (Eq. 4-5): ``(tokens_a (B, Pa, d), tokens_b (B, Pb, d))`` -> fused ``(B, 2 d_f)``."""

    def __init__(self, n_a: int, n_b: int, d_model: int, d_fuse: int, heads: int,
                 layer_norm: bool):
        super().__init__()
        self.norm_a = nn.LayerNorm(d_model) if layer_norm else nn.Identity()
        self.norm_b = nn.LayerNorm(d_model) if layer_norm else nn.Identity()
        self.proj_a = nn.Linear(d_model, d_fuse)
        self.proj_b = nn.Linear(d_model, d_fuse)
        self.attn_a = nn.MultiheadAttention(d_fuse, heads, batch_first=True)   # a queries b
        self.attn_b = nn.MultiheadAttention(d_fuse, heads, batch_first=True)   # b queries a
        self.down_a = nn.Linear(n_a * d_fuse, d_fuse)
        self.down_b = nn.Linear(n_b * d_fuse, d_fuse)

    def forward(self, za: torch.Tensor, zb: torch.Tensor) -> torch.Tensor:
        a = self.proj_a(self.norm_a(za))                                       # Eq. 4, FC(LN(Z))
        b = self.proj_b(self.norm_b(zb))
        a_fused = a + self.attn_a(a, b, b, need_weights=False)[0]              # Z_{b -> a}
        b_fused = b + self.attn_b(b, a, a, need_weights=False)[0]              # Z_{a -> b}
        return torch.cat([self.down_a(a_fused.flatten(1)),                     # Eq. 5
                          self.down_b(b_fused.flatten(1))], dim=1)


def _head(d_in: int, hidden: int, n_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, n_classes))


@dataclass
class Outputs:
    """Features and logits of a batch: ``z_*`` ``(B, d)``, ``logits`` (EEG, eye, fusion)."""

    z_eeg: torch.Tensor
    z_eye: torch.Tensor
    z_fused: torch.Tensor
    logits: tuple[torch.Tensor, torch.Tensor, torch.Tensor]

    def part(self, rows: slice) -> Outputs:
        return Outputs(self.z_eeg[rows], self.z_eye[rows], self.z_fused[rows],
                       tuple(t[rows] for t in self.logits))

    @property
    def features(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.z_eeg, self.z_eye, self.z_fused


class UFAMANet(nn.Module):
    """Cross-modal feature fusion network: two encoders, ICAF and three heads."""

    def __init__(self, eeg_shape: tuple[int, int], eye_shape: tuple[int, int], n_classes: int,
                 cfg: UFAMAConfig, settings: Settings):
        super().__init__()
        d = cfg.d_model
        common = dict(d_model=d, heads=cfg.heads, ffn_dim=cfg.ffn_dim, blocks=settings.blocks,
                      dropout=cfg.encoder_dropout, norm_first=settings.norm_first)
        self.eeg_encoder = ModalityEncoder(*eeg_shape, **common)
        self.eye_encoder = ModalityEncoder(*eye_shape, **common)
        self.fusion = CrossModalFusion(eeg_shape[0], eye_shape[0], d, cfg.fusion_dim, cfg.heads,
                                       settings.fusion_layer_norm)
        self.eeg_head = _head(d, cfg.head_hidden, n_classes, cfg.head_dropout)
        self.eye_head = _head(d, cfg.head_hidden, n_classes, cfg.head_dropout)
        self.fusion_head = _head(2 * cfg.fusion_dim, cfg.fusion_head_hidden, n_classes,
                                 cfg.head_dropout)

    def heads(self) -> list[nn.Module]:
        return [self.eeg_head, self.eye_head, self.fusion_head]

    def forward(self, eeg: torch.Tensor, eye: torch.Tensor) -> Outputs:
        """eeg ``(B, 62, 5)``, eye ``(B, P, 1)``."""
        tok_eeg, z_eeg = self.eeg_encoder(eeg)
        tok_eye, z_eye = self.eye_encoder(eye)
        z_fused = self.fusion(tok_eeg, tok_eye)
        return Outputs(z_eeg, z_eye, z_fused, (self.eeg_head(z_eeg), self.eye_head(z_eye),
                                               self.fusion_head(z_fused)))


# --------------------------------------------------------------------------- losses

@dataclass
class Screening:
    """Eq. 11 on a target batch of ``B``: per-sample masks ``(B,)`` and pseudo-labels."""

    pseudo_eeg: torch.Tensor
    pseudo_eye: torch.Tensor
    consistent: torch.Tensor       # both high, same pseudo-label (-> Eq. 12)
    conflicting: torch.Tensor      # both high, different pseudo-labels (dropped)
    eeg_teaches: torch.Tensor      # only EEG high: EEG teaches eye (Eq. 13)
    eye_teaches: torch.Tensor      # only eye high: eye teaches EEG
    gate: torch.Tensor             # confidence at the alpha position (scalar)


def screen(prob_eeg: torch.Tensor, prob_eye: torch.Tensor, alpha: float = 0.5,
           low_set: str = "complement") -> Screening:
    """Rank the ``2B`` (sample, modality) confidences; keep the top ``ceil(alpha 2B)`` (Eq. 11).

    A sample is a distillation candidate when one modality is high and the other is low.
    ``low_set="complement"``: low = not high. ``"bottom"`` (the released code): low = the
    ``2B - k`` smallest by ``topk(largest=False)``; with tied confidences that set can overlap
    the top set (a modality both high and low) and leave others in neither.
    """
    conf_eeg, pseudo_eeg = prob_eeg.max(1)
    conf_eye, pseudo_eye = prob_eye.max(1)
    conf = torch.cat([conf_eeg, conf_eye])
    k = max(1, math.ceil(alpha * conf.numel()))
    top = torch.topk(conf, k)
    high = torch.zeros_like(conf, dtype=torch.bool).index_fill_(0, top.indices, True)
    if low_set == "complement":
        low = ~high
    elif low_set == "bottom":
        bottom = torch.topk(conf, conf.numel() - k, largest=False).indices
        low = torch.zeros_like(high).index_fill_(0, bottom, True)
    else:
        raise ValueError(f"low_set must be 'complement' or 'bottom', got {low_set!r}")
    n = prob_eeg.shape[0]
    high_eeg, high_eye, low_eeg, low_eye = high[:n], high[n:], low[:n], low[n:]
    agree = pseudo_eeg == pseudo_eye
    return Screening(pseudo_eeg, pseudo_eye, high_eeg & high_eye & agree,
                     high_eeg & high_eye & ~agree, high_eeg & ~high_eye & low_eye,
                     high_eye & ~high_eeg & low_eeg, top.values[-1])


def theta_schedule(l_cls: torch.Tensor) -> torch.Tensor:
    """Eq. 15: 0.5 if L_cls <= 0.1, 0.2 if 0.1 < L_cls < 0.2, else 0.1 (no sync); the values
    in ``l_cls``'s dtype (a float32 0.1 would be off by 1.5e-9 in a float64 loss)."""
    half, fifth, tenth = (l_cls.new_tensor(v) for v in (0.5, 0.2, 0.1))
    return torch.where(l_cls <= 0.1, half, torch.where(l_cls < 0.2, fifth, tenth))


def official_delta(epoch: int) -> float:
    """The released code's MMD weight (0-based epochs): 1, then 2/(1+e^-10) - 1.5, then
    ``exp(-0.6 e)``, then 0."""
    if epoch <= 10:
        return 1.0
    if epoch <= 40:
        return 2.0 / (1.0 + math.exp(-10.0)) - 1.5
    if epoch <= 85:
        return math.exp(-0.6 * epoch)
    return 0.0


def masked_ce(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean CE over the rows where ``mask`` is True; 0 when none (no host sync)."""
    ce = F.cross_entropy(logits, labels, reduction="none")
    weight = mask.to(ce.dtype)
    return (ce * weight).sum() / weight.sum().clamp_min(1.0)


def _weighted(values: list[torch.Tensor]) -> torch.Tensor:
    return sum(w * v for w, v in zip(BRANCH_WEIGHTS, values, strict=True))


def uf_ama_loss(src: Outputs, tgt: Outputs | None, y: torch.Tensor, cfg: UFAMAConfig,
                settings: Settings, epoch: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 14 for one step; returns the total and its detached parts (tensors, no sync)."""
    model = cfg.model
    l_cls = _weighted([F.cross_entropy(lg, y) for lg in src.logits])
    total = l_cls
    zero = l_cls.detach() * 0.0
    parts = {"cls": l_cls.detach(), "bce": zero, "mmd": zero, "cnst": zero, "dstl": zero,
             "theta": zero, "consistent": zero, "gate_open": zero}
    if model >= 2:                                                        # Eq. 6-8
        if settings.bce_official:
            values = [affinity_bce(torch.softmax(lg, 1), y, rescale=False, include_diagonal=True,
                                   eta=1e-3, clamp=0.0) for lg in src.logits]
        else:
            values = [affinity_bce(z, y) for z in src.features]
        l_bce = _weighted(values)
        total = total + l_bce
        parts["bce"] = l_bce.detach()
    if model < 3 or tgt is None:
        return total, parts
    delta = cfg.delta * (official_delta(epoch) if settings.delta_official else 1.0)
    l_mmd = _weighted([mk_mmd(zs, zt, cfg.kernel_num, cfg.kernel_mul, settings.mmd_estimator)
                       for zs, zt in zip(src.features, tgt.features, strict=True)])
    total = total + delta * l_mmd                                         # Eq. 9-10
    parts["mmd"] = l_mmd.detach()
    if model < 4 or epoch < settings.fine_start * cfg.epochs:
        return total, parts
    logit_eeg, logit_eye, logit_fused = tgt.logits
    theta = theta_schedule(l_cls.detach())                                # Eq. 15
    if model == 4:                                                        # no screening
        pseudo_fused = logit_fused.detach().argmax(1)
        l_cnst = masked_ce(logit_fused, pseudo_fused, torch.ones_like(pseudo_fused, dtype=bool))
        total = total + theta * l_cnst
        parts.update(cnst=l_cnst.detach(), theta=theta,
                     consistent=zero + logit_fused.shape[0])
        return total, parts
    scr = screen(torch.softmax(logit_eeg.detach(), 1), torch.softmax(logit_eye.detach(), 1),
                 cfg.alpha, settings.low_set)
    l_cnst = masked_ce(logit_fused, scr.pseudo_eeg, scr.consistent)      # Eq. 12
    total = total + theta * l_cnst
    parts.update(cnst=l_cnst.detach(), theta=theta, consistent=scr.consistent.sum().to(zero))
    if model < 6:
        return total, parts
    gate = (scr.gate > cfg.beta) if settings.beta_strict else (scr.gate >= cfg.beta)
    pseudo_fused = logit_fused.detach().argmax(1)
    terms = []
    for teacher_mask, teacher_label, student_logits in (
            (scr.eeg_teaches, scr.pseudo_eeg, logit_eye),                 # EEG teaches eye
            (scr.eye_teaches, scr.pseudo_eye, logit_eeg)):                # eye teaches EEG
        keep = teacher_mask & (pseudo_fused == teacher_label)
        enough = (teacher_mask.sum() >= settings.min_distill).to(l_cls.dtype)
        terms.append(enough * masked_ce(student_logits, teacher_label, keep))   # Eq. 13
    l_dstl = gate.to(l_cls.dtype) * 0.5 * (terms[0] + terms[1])
    total = total + settings.gamma * l_dstl
    parts.update(dstl=l_dstl.detach(), gate_open=gate.to(zero))
    return total, parts


def build_optimiser(net: UFAMANet, cfg: UFAMAConfig, settings: Settings) -> torch.optim.Adam:
    """Adam over the trainable parameters; without ``train_heads`` the classifier heads are
    frozen first (they keep their initial weights; gradients still pass through them)."""
    if not settings.train_heads:
        for head in net.heads():
            head.requires_grad_(False)
    params = [p for p in net.parameters() if p.requires_grad]
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


# --------------------------------------------------------------------------- normalisation

class _Normalizer:
    """Per-feature z-scoring: source statistics, or per domain (subject / subject-session)."""

    def __init__(self, mode: str):
        self.mode = mode
        self.stats: dict[object, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}

    def _keys(self, meta: pd.DataFrame) -> np.ndarray:
        if self.mode == "subject":
            return meta["subject"].to_numpy()
        return (meta["subject"].astype(str) + "/" + meta["session"].astype(str)).to_numpy()

    def fit(self, source: dict[str, torch.Tensor], parts: list[tuple[pd.DataFrame,
                                                                      dict[str, torch.Tensor]]]):
        """source: the labelled source tensors; parts: (meta, tensors) usable without labels."""
        if self.mode == "source":
            self.stats[None] = {k: standardize_fit(v) for k, v in source.items()}
            return
        if self.mode == "none":
            return
        keys = np.concatenate([self._keys(meta) for meta, _ in parts])
        pooled = {k: torch.cat([t[k] for _, t in parts]) for k in source}
        self.stats.update(self._group_stats(keys, pooled))

    def _group_stats(self, keys: np.ndarray, tensors: dict[str, torch.Tensor]) -> dict:
        out = {}
        for key in np.unique(keys):
            rows = torch.as_tensor(np.flatnonzero(keys == key))
            out[key] = {k: standardize_fit(v[rows]) for k, v in tensors.items()}
        return out

    def transform(self, meta: pd.DataFrame, tensors: dict[str, torch.Tensor]
                  ) -> dict[str, torch.Tensor]:
        if self.mode == "none":
            return tensors
        if self.mode == "source":
            return {k: (v - self.stats[None][k][0]) / self.stats[None][k][1]
                    for k, v in tensors.items()}
        keys = self._keys(meta)
        missing = [key for key in np.unique(keys) if key not in self.stats]
        if missing:   # a domain first seen at prediction time: its own statistics, no labels
            rows = np.isin(keys, missing)
            self.stats.update(self._group_stats(keys[rows], {k: v[torch.as_tensor(
                np.flatnonzero(rows))] for k, v in tensors.items()}))
        out = {k: v.clone() for k, v in tensors.items()}
        for key in np.unique(keys):
            rows = torch.as_tensor(np.flatnonzero(keys == key))
            for k in out:
                mean, std = self.stats[key][k]
                out[k][rows] = (tensors[k][rows] - mean) / std
        return out


# --------------------------------------------------------------------------- method

class _Best:
    """The best epoch so far on the validation part (higher balanced accuracy or lower loss;
    ties within 1e-4 go to the other score) and a copy of its weights."""

    def __init__(self):
        self.score: tuple[float, float] = (math.inf, math.inf)
        self.state: dict | None = None
        self.epoch = -1

    def offer(self, logs: dict[str, float], select_on: str, net: nn.Module, epoch: int) -> bool:
        score = (-logs["val_balanced_accuracy"], logs["val_loss"])
        if select_on == "loss":
            score = score[::-1]
        better = score[0] < self.score[0] - 1e-4 or (
            abs(score[0] - self.score[0]) <= 1e-4 and score[1] < self.score[1])
        if better:
            self.score, self.epoch = score, epoch
            self.state = copy.deepcopy(net.state_dict())
        return better


@register_method
class UFAMA(Method):
    name = "uf_ama"
    summary = ("UF-AMA: EEG DE 62x5 + eye features, transformer encoders, cross-attention "
               "fusion, affinity BCE, MK-MMD, confidence screening, consistency and cross-modal "
               "distillation; transductive (uses the target subject/session unlabelled)")
    Config = UFAMAConfig
    presets = {
        # What a user gets. The paper's network and optimiser (3 blocks, d_model 64, Adam 5e-4,
        # 32 + 32 windows per step) with: per subject-session z-scoring (transductive, no
        # labels; see "Normalisation" in the module docstring), at most 60 epochs, the epoch
        # of lowest fusion-head loss on the source validation part, early stopping after 8
        # epochs without improvement (counted from the fine-grained stage on). CPU budget
        # (1 thread, synthetic SEED-IV with 8 subjects, about 290 target windows in LOSO and
        # 770 in cross_session): 60-180 s per LOSO fold (13-32 epochs run), 165-250 s per
        # cross_session fold; it grows linearly with the target part (an epoch is one pass).
        "default": {"normalize": "subject_session", "epochs": 60, "select": "val",
                    "select_on": "loss", "patience": 8},
        "paper": {},
        "fast": {"epochs": 8, "d_model": 32, "ffn_dim": 64, "blocks": 1, "fusion_dim": 32,
                 "head_hidden": 16, "fusion_head_hidden": 32, "lr": 1e-3},
    }
    transductive = True
    data_presets = {"seed": "uf_ama", "seed_iv": "uf_ama", "*": "uf_ama"}
    protocols = ("loso", "cross_session")
    demo = {"dataset": "seed_iv", "protocol": "loso", "labels": "native", "options": {}}

    # ------------------------------------------------------------------ data
    @staticmethod
    def _modality_names(split: Split) -> tuple[str, str]:
        names = list(split.modalities)
        others = [n for n in names if n != "eeg"]
        if "eeg" not in names or len(others) != 1:
            raise ConfigError("modalities", f"uf_ama needs 'eeg' and one second modality (eye); "
                                            f"got {', '.join(names) or 'none'}")
        return "eeg", others[0]

    def _raw(self, split: Split) -> dict[str, torch.Tensor]:
        eeg = split.windows.tensor(self.names_[0]).float()
        eye = split.windows.tensor(self.names_[1]).float()
        if eeg.ndim != 3:
            raise ConfigError("data", f"uf_ama needs EEG as (channel, band) tokens per window; "
                                      f"got {tuple(eeg.shape[1:])} (use the uf_ama data preset)")
        return {"eeg": eeg, "eye": eye.reshape(len(eye), -1, 1) if eye.ndim == 2 else eye}

    def _inputs(self, split: Split) -> dict[str, torch.Tensor]:
        tensors = self.normalizer_.transform(split.windows.meta, self._raw(split))
        return {k: v.to(self.device).contiguous() for k, v in tensors.items()}

    # ------------------------------------------------------------------ training
    def fit(self, train: Split, unlabeled: Split | None = None,
            val: Split | None = None) -> Method:
        cfg = self.config
        self.names_ = self._modality_names(train)
        self.settings_ = resolve(cfg, train.windows.description.get("dataset"))
        needs_target = cfg.model >= 3
        if needs_target and (unlabeled is None or len(unlabeled) == 0):
            raise ConfigError("uf_ama", f"model {cfg.model} needs the unlabelled target part "
                                        "(transductive protocols loso / cross_session)")
        generator = seed_everything(self.seed)
        source_raw = self._raw(train)
        parts = [(s.windows.meta, self._raw(s)) for s in (train, val, unlabeled)
                 if s is not None and len(s)] if cfg.normalize.startswith("subject") else []
        self.normalizer_ = _Normalizer(cfg.normalize)
        self.normalizer_.fit(source_raw, parts)
        xs = self._inputs(train)
        ys = torch.as_tensor(train.y, dtype=torch.long, device=self.device)
        xt = self._inputs(unlabeled) if unlabeled is not None and len(unlabeled) else None
        self.net_ = UFAMANet(tuple(xs["eeg"].shape[1:]), tuple(xs["eye"].shape[1:]),
                             self.n_classes, cfg, self.settings_).to(self.device)
        optimiser = build_optimiser(self.net_, cfg, self.settings_)
        val_inputs = self._inputs(val) if cfg.select == "val" and val is not None and len(val) \
            else None
        self.history_: list[dict[str, float]] = []
        epoch_probs, best, waited = [], _Best(), 0
        # early stopping never ends training before the fine-grained stage has started
        stage_two = math.ceil(self.settings_.fine_start * cfg.epochs) if cfg.model >= 4 else 0
        for epoch in range(cfg.epochs):
            logs = self._epoch(xs, ys, xt, needs_target, optimiser, generator, epoch)
            if val_inputs is not None:
                logs.update(self._val_scores(val_inputs, val.y))
                if best.offer(logs, cfg.select_on, self.net_, epoch):
                    waited = 0
                elif epoch >= stage_two:
                    waited += 1
            if cfg.report_oracle and xt is not None:
                epoch_probs.append(self._probs(xt)[0].cpu().numpy())
            self.history_.append(logs)
            self.report_epoch(epoch, cfg.epochs, **logs)
            if cfg.patience is not None and waited >= cfg.patience:
                break
        self.stopped_epoch_ = epoch
        if best.state is not None:
            self.net_.load_state_dict(best.state)
        self.selected_epoch_ = best.epoch if best.state is not None else epoch
        self.epoch_probs_ = np.stack(epoch_probs) if epoch_probs else None
        self.target_keys_ = unlabeled.windows.meta[WINDOW_KEYS] if epoch_probs else None
        return self

    def _epoch(self, xs: dict[str, torch.Tensor], ys: torch.Tensor,
               xt: dict[str, torch.Tensor] | None, use_target: bool,
               optimiser: torch.optim.Optimizer, generator: torch.Generator,
               epoch: int) -> dict[str, float]:
        """One pass over the smaller domain: ``B`` source + ``B`` target windows per step.

        Models 1-2 forward only the source windows, with the same number of steps (so the
        ablations see the same source data).
        """
        cfg = self.config
        self.net_.train()
        n_s = len(ys)
        n_t = n_s if xt is None else len(xt["eeg"])
        b = min(cfg.batch_size, n_s, n_t)
        steps = max(1, min(n_s, n_t) // b)
        src_order = torch.randperm(n_s, generator=generator).to(self.device)
        tgt_order = torch.randperm(n_t, generator=generator).to(self.device)
        sums: dict[str, torch.Tensor] = {}
        for step in range(steps):
            rows = slice(step * b, (step + 1) * b)
            parts = self._step(xs, ys, xt if use_target else None, src_order[rows],
                               tgt_order[rows], optimiser, epoch)
            for key, value in parts.items():
                sums[key] = sums[key] + value if key in sums else value
        totals = torch.stack(list(sums.values())).tolist() if sums else []   # one host sync
        return {key: value / steps for key, value in zip(sums, totals, strict=True)}

    def _step(self, xs: dict[str, torch.Tensor], ys: torch.Tensor,
              xt: dict[str, torch.Tensor] | None, si: torch.Tensor, ti: torch.Tensor,
              optimiser: torch.optim.Optimizer, epoch: int) -> dict[str, torch.Tensor]:
        """One optimisation step on source rows ``si`` (and target rows ``ti`` unless ``xt``
        is None): source and target stacked into one forward; returns the detached parts."""
        net, b = self.net_, len(si)
        if xt is None:
            src, tgt = net(xs["eeg"][si], xs["eye"][si]), None
        else:
            out = net(torch.cat([xs["eeg"][si], xt["eeg"][ti]]),
                      torch.cat([xs["eye"][si], xt["eye"][ti]]))
            src, tgt = out.part(slice(0, b)), out.part(slice(b, 2 * b))
        loss, parts = uf_ama_loss(src, tgt, ys[si], self.config, self.settings_, epoch)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        parts["loss"] = loss.detach()
        return parts

    def _val_scores(self, inputs: dict[str, torch.Tensor], y: np.ndarray) -> dict[str, float]:
        """Fusion-head accuracy, balanced accuracy and cross-entropy on the validation part."""
        probs = self._probs(inputs)[0].cpu().double().numpy()
        pred = probs.argmax(1)
        nll = -np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)).mean()
        return {"val_acc": float((pred == y).mean()),
                "val_balanced_accuracy": float(balanced_accuracy_score(y, pred)),
                "val_loss": float(nll)}

    @torch.no_grad()
    def _probs(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Fusion-head probabilities ``(n, C)`` and fused features ``(n, 2 d_f)``, eval mode."""
        self.net_.eval()
        probs, feats = [], []
        for start in range(0, len(inputs["eeg"]), self.config.eval_batch):
            rows = slice(start, start + self.config.eval_batch)
            out = self.net_(inputs["eeg"][rows], inputs["eye"][rows])
            probs.append(torch.softmax(full_precision(out.logits[2]), 1))
            feats.append(full_precision(out.z_fused))
        return torch.cat(probs), torch.cat(feats)

    # ------------------------------------------------------------------ prediction
    def predict(self, test: Split) -> Predictions:
        probs, feats = self._probs(self._inputs(test))
        extras = {"selected_epoch": float(self.selected_epoch_ + 1),
                  "epochs_run": float(self.stopped_epoch_ + 1)}
        return Predictions(probs.cpu().double().numpy(), embeddings=feats.cpu().numpy(),
                           epoch_probs=self._aligned_epoch_probs(test.windows.meta),
                           extras=extras)

    def _aligned_epoch_probs(self, meta: pd.DataFrame) -> np.ndarray | None:
        """The per-epoch target probabilities in the test part's row order (None if the test
        windows are not the target windows seen in ``fit``)."""
        if self.epoch_probs_ is None:
            return None
        index = pd.MultiIndex.from_frame(self.target_keys_)
        rows = index.get_indexer(pd.MultiIndex.from_frame(meta[WINDOW_KEYS]))
        if (rows < 0).any():
            return None
        return self.epoch_probs_[:, rows]
