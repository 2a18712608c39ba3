"""M2S (Multi-to-Single): cross-modal emotion recognition through contrastive pre-training.

References
----------
Liu, Cai, Lu, Zheng. "Multi-to-Single: Reducing Multimodal Dependency in Emotion Recognition
Through Contrastive Learning", AAAI 2025; released code ``Arcee-LYK/Multi-to-Single`` on
GitHub (its ``M2S_demo_code``).
CLUB: Cheng et al., ICML 2020. CPC: van den Oord et al., 2018. CLIP: Radford et al., 2021.

What is implemented
-------------------
Input: sequences of ``T`` consecutive windows of one trial (``WindowSet.sequence_index``) of
every modality, each standardised with statistics of the training part only.

* Emotion-related (ER) encoder per modality. Electrode modalities ``(channels, bands)`` (EEG DE;
  PPS 48 = 8 x 6 and ECG 10 = 2 x 5 through ``sts_shapes``) use post-LN transformer blocks at
  width ``channels * bands`` whose attention is the STS attention (Eq. 4-7): electrode tokens of
  frame ``t`` query keys / values computed from the mean of frames ``t``, ``t-1`` and ``1``;
  then ``Linear(C*F -> d_model)``. Feature-vector modalities (EYE) use ``Linear(P -> d_model)``
  and standard post-LN transformer layers attending over the ``T`` frames.
* Emotion-independent (EI) encoder: ``Linear + ReLU`` per frame.
* CLUB (Eq. 1, :mod:`affectlab.losses.club`) between ER and EI features, with its own
  variational network and optimiser, trained ``club_steps`` times per batch on detached
  features before the encoders' step.
* Decoder ``D_X(z, z')``: ``Linear(d -> d)`` on the ER features, concatenated with the EI
  features, ``Linear(2d -> input)``; reconstruction MSE (Eq. 2).
* Multi-to-multi CPC (Eq. 8-13, :mod:`affectlab.losses.cpc`): 2-layer LSTM per modality, the
  concatenated contexts at step ``M`` predict the next ``N`` ER embeddings of every modality.
* InfoNCE between the pooled projections (Eq. 3): mean over time, ``Linear(d -> proj_dim)``,
  symmetric cross-entropy over the batch (mean over modality pairs when there are more than 2).
* Total loss (Eq. 14): ``w_club L_CLUB + w_recon L_Recon + w_nce L_Contra + w_cpc L_CPC``.
* Fine-tuning: the chosen modality's ER encoder and projection are frozen; a two-layer MLP
  (``Linear -> ReLU -> BatchNorm -> Linear``, as released) is trained on that modality's
  training labels. ``predict`` embeds the test Split's modality with *its own* frozen encoder
  and projection and applies the classifier: EEG -> EYE transfer in ``cross_modal`` folds.
  Each modality's classifier input is centred on that modality's own mean over the paired
  training sequences (``center``; see Interpretation).
* Early stopping (``patience``, ``ft_patience``; the ``default`` preset): pre-training keeps the
  epoch with the lowest Eq. 14 (without the CLUB estimate) on the validation part's paired
  windows (no labels); fine-tuning keeps the epoch with the best validation balanced accuracy
  and stops ``ft_patience`` epochs after it.
* ``model="clip_pair"``: the CLIP-style baseline of the paper (same ER encoders and
  projections, InfoNCE only; no EI encoders, decoders or CLUB), optionally with M2M CPC
  (``loss_cpc``; off by default for this model, on for ``m2s``).

Predictions are per window: a window's class probabilities are the mean over the test
sequences (stride 1) that contain it. A run of consecutive windows shorter than ``T`` (a short
trial) is predicted from one sequence padded by repeating its last window.

Interpretation (paper silent or ambiguous)
------------------------------------------
* Loss weights of Eq. 14 are unstated: the released values are the defaults (CLUB 0.3 per
  modality, reconstruction 0.1, InfoNCE 1, CPC 1).
* Eq. 5-6 average ``x_t, x_{t-1}, x_1`` *before* the bias-free projections (identical to the
  released code, which averages after). For the first frame ``x_{t-1}`` is the frame itself.
  ``attention="plain"`` is standard multi-head attention over the electrode tokens of each frame
  (keys and values from ``x_t`` only); ``"none"`` removes the attention sub-layer. The flag
  acts on electrode modalities (Fig. 3 is EEG only); EYE keeps its attention over time.
* T, M, N are unstated: ``seq_len=5``, ``cpc_steps=2`` and, when ``cpc_observed`` is None, ``M``
  drawn per batch from ``2..T-N`` (the released code); a fixed ``M`` is an option.
* Eq. 12 normalises over the candidate futures ``z_j`` for one prediction (the default); the
  released code normalises over the predictions (``official``).
* The InfoNCE temperature is unstated: fixed ``temperature`` (0.07) unless ``official``.
* Sequences never cross a trial (the released loader lets a sequence run into the next trial
  when both have the same label). A sequence's label is its trial's label.
* Fine-tuning input is the L2-normalised projection (the space InfoNCE aligns, so EEG- and
  EYE-projections are comparable); the released code feeds the raw projection (``official``).
* That projection is centred per modality (``center``, on unless ``official``). InfoNCE aligns
  the *pairs* but leaves the two modalities' embeddings offset from each other (the "modality
  gap" of contrastive models, Liang et al., NeurIPS 2022, arXiv:2203.02053): on synthetic
  SEED-IV (``fast`` preset) the EEG and EYE training means lie 0.43 apart on the unit sphere,
  against a mean distance of 0.83 between the two embeddings of one sequence. A classifier
  fitted on EEG embeddings (its BatchNorm statistics too) then meets EYE embeddings shifted by
  that offset. Subtracting from each modality its own mean over the paired training sequences
  (no labels, no test windows) removes the offset; for the training modality it is a constant
  shift the classifier's first layer absorbs. The paper is silent. Measured gain in
  cross-modal EEG -> EYE: +0.01 to +0.03 balanced accuracy (README) -- a correction, not the
  main cause of the weak cross-modal results, which was an unconverged training budget.
* No model selection on test data. The released code keeps the best of 200 epochs x 9
  (lr, weight decay) settings scored on the test trials, and picks pre-training checkpoints the
  same way; here pre-training runs a fixed number of epochs, and the fine-tuning epoch is chosen
  on ``val`` (balanced accuracy, ties to the lower validation loss; ``ft_select="loss"``: the
  loss) when a validation part is given, else the last epoch is used. With ``patience`` the
  pre-training epoch is chosen on the validation part's paired windows without labels (Eq. 14
  less the CLUB term, whose value follows the CLUB network's fit as much as the encoders').
  The oracle figure is available with ``report_oracle``.
* Pre-training uses every modality of the training windows and of the unlabelled part (paired
  data, no labels); the runner passes no test windows to a non-transductive method. A window
  missing a modality (non-finite, e.g. SEED-IV's NaN eye windows) removes the sequences that
  hold it from pre-training and from the centring means; the standardisation statistics use
  the finite windows; fine-tuning on the other modality keeps it. ``predict`` refuses a test
  window without the test modality (the runner drops such windows: M2S reads every modality,
  so ``used_modalities`` stays the default, all). Batches
  drop the last incomplete batch of an epoch (no tiny contrastive batches); ``epochs=0`` gives
  the "without pre-training" baseline (random frozen encoder + trained classifier).
* Encoder passes per step (``club_forwards``). The released step re-runs the whole model for
  each of the ``club_steps`` CLUB updates and once more for Eq. 14: four passes, each with its
  own dropout masks. ``shared`` (default unless ``official``) reuses one encoder pass for the
  CLUB updates and Eq. 14; it gives the released loss and gradients only at ``dropout=0``
  (with dropout the CLUB network is fitted on the masks Eq. 14 then uses). ``separate``
  (``official``) runs a fresh encoder pass without autograd per CLUB update, then one for
  Eq. 14: the released computation.
* The CLUB network has its own Adam (``club_lr``, default: ``lr``; the released code uses the
  same lr and weight decay as the model). When it lags behind the encoders, the encoders exploit
  it and the estimate drifts far from zero (observed with one update per batch at lr 1e-3), so
  the ``fast`` preset gives it a larger lr.

Official switch (``official=True``; the released code's behaviour)
------------------------------------------------------------------
CPC same-modal terms weighted 0.1 and normalised over predictions; learnable CLIP logit scale
(init ``log(1/0.07)``, no clamp); ``ReLU`` after the projection; raw (not normalised)
projections into the classifier; frozen encoder left in train mode during fine-tuning (dropout
active); a fresh encoder pass per CLUB update (``club_forwards=separate``). With dropout off,
one pre-training and one fine-tuning step equal the released code's to float64 round-off (the
equivalence harness in ``benchmarks/equivalence``). Not reproduced: float64 CPC, identically
initialised encoder layers, the random streams (the split point ``M`` and the CLUB
permutations come from the method's own generator, so a seed does not give the released
dropout masks), the test-set selection.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from itertools import combinations
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from sklearn.metrics import balanced_accuracy_score
from torch import nn

from affectlab.data import WindowSet
from affectlab.errors import AffectlabError, ConfigError
from affectlab.losses.club import CLUBNet
from affectlab.losses.contrastive import info_nce
from affectlab.losses.cpc import M2MCPC
from affectlab.methods.base import Method, MethodConfig, Predictions, Split, register_method
from affectlab.training import (
    StepValues,
    draw_int,
    full_precision,
    minibatches,
    seed_everything,
    standardize_fit,
    to_device,
)

# --------------------------------------------------------------------------- configuration


class M2SConfig(MethodConfig):
    model: Literal["m2s", "clip_pair"] = Field(
        "m2s", description="m2s, or the CLIP-style baseline clip_pair (InfoNCE [+ CPC])")
    modality: str | None = Field(
        None, description="modality to fine-tune on when the training part allows several "
                          "(default: eeg, else the first)")
    seq_len: int = Field(5, ge=1, description="T: consecutive windows per sequence")
    seq_stride: int = Field(1, ge=1, description="stride between training sequences")
    cpc_steps: int = Field(2, ge=1, description="N: CPC prediction steps")
    cpc_observed: int | None = Field(
        None, ge=1, description="M: CPC observed length (None: drawn from 2..T-N per batch)")
    d_model: int = Field(128, ge=1, description="ER / EI embedding size")
    n_layers: int = Field(4, ge=1, description="transformer blocks per ER encoder")
    n_heads: int = Field(4, ge=1)
    head_dim: int = Field(64, ge=1, description="STS attention size per head")
    ffn_dim: int = Field(1024, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    proj_dim: int = Field(32, ge=1, description="InfoNCE projection size")
    cpc_hidden: int = Field(64, ge=1, description="LSTM hidden size D'")
    cpc_layers: int = Field(2, ge=1)
    club_hidden: int = Field(64, ge=2)
    club_steps: int = Field(3, ge=0, description="CLUB network updates per batch")
    club_lr: float | None = Field(None, gt=0, description="CLUB optimiser lr (None: lr)")
    club_negatives: Literal["shuffle", "all"] = Field(
        "shuffle", description="CLUB negatives: one random pairing (released) or all pairs")
    club_forwards: Literal["shared", "separate"] | None = Field(
        None, description="encoder passes of a step: one shared by the CLUB updates and "
                          "Eq. 14 (shared), or a fresh pass per CLUB update (separate, the "
                          "released code; new dropout masks each); None: separate if "
                          "official, else shared")
    attention: Literal["sts", "plain", "none"] = "sts"
    sts_shapes: dict[str, tuple[int, int]] = Field(
        default_factory=lambda: {"pps": (8, 6), "ecg": (2, 5)},
        description="flat modalities read as (channels, features) electrode grids")
    loss_club: bool = True
    loss_recon: bool = True
    loss_nce: bool = True
    loss_cpc: bool | None = Field(None, description="None: on for m2s, off for clip_pair")
    w_club: float = Field(0.3, ge=0, description="alpha' of Eq. 14 (per modality)")
    w_recon: float = Field(0.1, ge=0, description="beta' of Eq. 14")
    w_nce: float = Field(1.0, ge=0, description="gamma' of Eq. 14")
    w_cpc: float = Field(1.0, ge=0, description="lambda' of Eq. 14")
    cpc_same_weight: float | None = Field(
        None, ge=0, description="weight of the A2A CPC terms (None: 1, or 0.1 if official)")
    temperature: float = Field(0.07, gt=0, description="InfoNCE temperature (not official)")
    official: bool = Field(False, description="reproduce the released code's choices")
    center: bool | None = Field(
        None, description="centre each modality's classifier input on that modality's own "
                          "training mean (removes the modality gap; None: on unless official)")
    epochs: int = Field(200, ge=0, description="pre-training epochs (at most, with patience)")
    patience: int | None = Field(
        None, ge=1, description="pre-training: stop after this many epochs without a lower "
                                "validation loss and keep the best epoch (None: no stopping)")
    batch_size: int = Field(512, ge=2)
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    ft_epochs: int = Field(200, ge=1, description="fine-tuning epochs (at most)")
    ft_patience: int | None = Field(
        None, ge=1, description="fine-tuning: stop after this many epochs without a better "
                                "validation score (None: run all epochs)")
    ft_batch_size: int = Field(512, ge=2)
    ft_lr: float = Field(1e-3, gt=0)
    ft_weight_decay: float = Field(1e-4, ge=0)
    ft_hidden: int = Field(128, ge=1, description="classifier hidden size")
    ft_select: Literal["balanced_accuracy", "loss"] = Field(
        "balanced_accuracy", description="validation criterion of the fine-tuning epoch: "
                                         "balanced accuracy (ties: lower loss) or loss")
    report_oracle: bool = Field(False, description="keep per-epoch test probabilities")

    @model_validator(mode="after")
    def _check_lengths(self) -> M2SConfig:
        if self.use_cpc and self.seq_len < self.cpc_steps + 1:
            raise ValueError(f"CPC needs seq_len >= cpc_steps + 1 ({self.cpc_steps + 1})")
        if self.use_cpc and self.cpc_observed is not None \
                and self.cpc_observed + self.cpc_steps > self.seq_len:
            raise ValueError("cpc_observed + cpc_steps must be <= seq_len (M + N <= T)")
        return self

    @property
    def use_cpc(self) -> bool:
        return self.model == "m2s" if self.loss_cpc is None else self.loss_cpc

    @property
    def use_center(self) -> bool:
        return not self.official if self.center is None else self.center

    @property
    def use_club(self) -> bool:
        return self.model == "m2s" and self.loss_club

    @property
    def club_forward_mode(self) -> str:
        if self.club_forwards is not None:
            return self.club_forwards
        return "separate" if self.official else "shared"

    @property
    def use_recon(self) -> bool:
        return self.model == "m2s" and self.loss_recon

    @property
    def same_modal_weight(self) -> float:
        if self.cpc_same_weight is not None:
            return self.cpc_same_weight
        return 0.1 if self.official else 1.0


# --------------------------------------------------------------------------- encoders


def temporal_sparse_mean(x: torch.Tensor) -> torch.Tensor:
    """Eq. 5-6 input: ``(x_t + x_{t-1} + x_1) / 3`` along axis 1 (``x_{t-1} = x_1`` at t=1).

    x: ``(B, T, ...)`` -> same shape.
    """
    previous = torch.cat([x[:, :1], x[:, :-1]], dim=1)
    return (x + previous + x[:, :1]) / 3


class STSAttention(nn.Module):
    """Spatial and temporal-sparse attention over electrode tokens (Eq. 4-7).

    Each frame's ``C`` electrode tokens (``F`` band values each) query keys and values projected
    from the temporal-sparse mean (``temporal=True``) or from the frame itself (plain). The
    projections have no bias; scale ``1 / sqrt(head_dim)``.
    x: ``(B, T, C, F)`` -> ``(B, T, C, F)``.
    """

    def __init__(self, n_features: int, n_heads: int, head_dim: int, temporal: bool = True):
        super().__init__()
        self.n_heads, self.head_dim, self.temporal = n_heads, head_dim, temporal
        inner = n_heads * head_dim
        self.query = nn.Linear(n_features, inner, bias=False)
        self.key = nn.Linear(n_features, inner, bias=False)
        self.value = nn.Linear(n_features, inner, bias=False)
        self.out = nn.Linear(inner, n_features)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, channels, _ = x.shape
        return x.reshape(batch * steps, channels, self.n_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, channels, _ = x.shape
        context = temporal_sparse_mean(x) if self.temporal else x
        q = self._heads(self.query(x))                                # Eq. 4
        k = self._heads(self.key(context))                            # Eq. 5
        v = self._heads(self.value(context))                          # Eq. 6
        out = F.scaled_dot_product_attention(q, k, v)                 # Eq. 7
        out = out.transpose(1, 2).reshape(batch, steps, channels, -1)
        return self.out(out)


class ElectrodeBlock(nn.Module):
    """Post-LN block at width ``C * F``: ``x = LN(x + Att(x)); x = LN(x + FFN(x))``.

    attention: ``sts`` | ``plain`` | ``none`` (no attention sub-layer).
    x: ``(B, T, C*F)`` -> same.
    """

    def __init__(self, channels: int, features: int, n_heads: int, head_dim: int,
                 ffn_dim: int, dropout: float, attention: str):
        super().__init__()
        width = channels * features
        self.channels, self.features = channels, features
        self.attention = None if attention == "none" else STSAttention(
            features, n_heads, head_dim, temporal=attention == "sts")
        self.norm1 = nn.LayerNorm(width)
        self.norm2 = nn.LayerNorm(width)
        self.ffn = nn.Sequential(nn.Linear(width, ffn_dim), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(ffn_dim, width))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.attention is not None:
            grid = x.reshape(*x.shape[:2], self.channels, self.features)
            x = self.norm1(x + self.drop(self.attention(grid).reshape(x.shape)))
        return self.norm2(x + self.drop(self.ffn(x)))


class ElectrodeEncoder(nn.Module):
    """ER encoder of an electrode modality: blocks at width ``C*F``, then ``Linear(C*F -> d)``.

    x: ``(B, T, C, F)`` -> ``(B, T, d)``.
    """

    def __init__(self, channels: int, features: int, cfg: M2SConfig):
        super().__init__()
        self.blocks = nn.ModuleList(
            ElectrodeBlock(channels, features, cfg.n_heads, cfg.head_dim, cfg.ffn_dim,
                           cfg.dropout, cfg.attention) for _ in range(cfg.n_layers))
        self.out = nn.Linear(channels * features, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2)
        for block in self.blocks:
            x = block(x)
        return self.out(x)


class VectorEncoder(nn.Module):
    """ER encoder of a feature-vector modality: ``Linear(P -> d)`` + post-LN transformer layers
    attending over the ``T`` frames. x: ``(B, T, P)`` -> ``(B, T, d)``."""

    def __init__(self, n_features: int, cfg: M2SConfig):
        super().__init__()
        self.embed = nn.Linear(n_features, cfg.d_model)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.ffn_dim, cfg.dropout,
                                       batch_first=True) for _ in range(cfg.n_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x.flatten(2))
        for layer in self.layers:
            x = layer(x)
        return x


class Decoder(nn.Module):
    """``D_X(z, z')`` of Eq. 2: ``Linear(d -> d)`` on ER, concatenated with EI, ``Linear(2d ->
    input)``. z, z': ``(B, T, d)`` -> ``(B, T, input)``."""

    def __init__(self, d_model: int, n_out: int):
        super().__init__()
        self.er = nn.Linear(d_model, d_model)
        self.out = nn.Linear(2 * d_model, n_out)

    def forward(self, z: torch.Tensor, z_ei: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat([self.er(z), z_ei], dim=-1))


class Classifier(nn.Sequential):
    """Two-layer MLP of the fine-tuning stage: ``Linear -> ReLU -> BatchNorm1d -> Linear``."""

    def __init__(self, n_in: int, hidden: int, n_classes: int):
        super().__init__(nn.Linear(n_in, hidden), nn.ReLU(), nn.BatchNorm1d(hidden),
                         nn.Linear(hidden, n_classes))


class M2SNet(nn.Module):
    """All pre-trained parts for the modalities ``shapes`` (name -> per-window input shape:
    ``(C, F)`` for electrode modalities, ``(P,)`` otherwise). CLUB networks live outside (own
    optimiser)."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], cfg: M2SConfig):
        super().__init__()
        self.cfg, self.names = cfg, list(shapes)
        sizes = {name: math.prod(shape) for name, shape in shapes.items()}
        self.er = nn.ModuleDict({
            name: ElectrodeEncoder(*shape, cfg) if len(shape) == 2
            else VectorEncoder(sizes[name], cfg) for name, shape in shapes.items()})
        self.proj = nn.ModuleDict({name: nn.Linear(cfg.d_model, cfg.proj_dim)
                                   for name in shapes})
        if cfg.model == "m2s":
            self.ei = nn.ModuleDict({name: nn.Sequential(nn.Linear(sizes[name], cfg.d_model),
                                                         nn.ReLU()) for name in shapes})
            self.dec = nn.ModuleDict({name: Decoder(cfg.d_model, sizes[name])
                                      for name in shapes})
        if cfg.use_cpc:
            self.cpc = M2MCPC(len(shapes), cfg.d_model, cfg.cpc_hidden, cfg.cpc_layers,
                              cfg.cpc_steps)
        if cfg.official:
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def embed(self, name: str, z: torch.Tensor) -> torch.Tensor:
        """Pooled projection (Eq. 3): mean over time, Linear (+ReLU if official) -> ``(B, P)``."""
        out = self.proj[name](z.mean(dim=1))
        return F.relu(out) if self.cfg.official else out

    def features(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Classifier input: the pooled projection, L2-normalised unless ``official``."""
        out = self.embed(name, self.er[name](x))
        return out if self.cfg.official else F.normalize(out, dim=-1)

    def active_losses(self) -> list[str]:
        """The terms of Eq. 14 this configuration computes."""
        cfg = self.cfg
        flags = {"club": cfg.use_club, "recon": cfg.use_recon,
                 "nce": cfg.loss_nce and len(self.names) > 1, "cpc": cfg.use_cpc}
        return [key for key, on in flags.items() if on]

    def temperature(self) -> float | torch.Tensor:
        return 1 / self.logit_scale.exp() if self.cfg.official else self.cfg.temperature

    def encode(self, batch: dict[str, torch.Tensor]) -> tuple[dict, dict]:
        """ER features ``z`` and (m2s) EI features ``z'``, each ``(B, T, d)`` per modality."""
        z = {name: self.er[name](x) for name, x in batch.items()}
        z_ei = {name: self.ei[name](x.flatten(2)) for name, x in batch.items()} \
            if self.cfg.model == "m2s" else {}
        return z, z_ei

    def losses(self, batch: dict[str, torch.Tensor], z: dict, z_ei: dict,
               clubs: nn.ModuleDict | None, observed: int,
               perms: dict[str, torch.Tensor] | None = None,
               skip: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
        """The terms of Eq. 14 that are switched on (unweighted), less those in ``skip``."""
        cfg, out = self.cfg, {}
        active = [key for key in self.active_losses() if key not in skip]
        if "club" in active:                                          # Eq. 1
            out["club"] = sum(clubs[name].mi_upper_bound(
                z[name], z_ei[name], cfg.club_negatives, None if perms is None else perms[name])
                for name in self.names)
        if "recon" in active:                                         # Eq. 2
            out["recon"] = sum(F.mse_loss(self.dec[name](z[name], z_ei[name]),
                                          batch[name].flatten(2)) for name in self.names)
        if "nce" in active:                                           # Eq. 3
            pooled = {name: self.embed(name, z[name]) for name in self.names}
            pairs = list(combinations(self.names, 2))
            out["nce"] = sum(info_nce(pooled[a], pooled[b], self.temperature())
                             for a, b in pairs) / len(pairs)
        if "cpc" in active:                                           # Eq. 8-13
            terms = self.cpc([z[name] for name in self.names], observed,
                             "predictions" if cfg.official else "targets")
            weights = torch.ones_like(terms)
            weights.diagonal().fill_(cfg.same_modal_weight)
            out["cpc"] = (weights * terms).sum()
        return out

    def total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """Eq. 14."""
        weight = {"club": self.cfg.w_club, "recon": self.cfg.w_recon, "nce": self.cfg.w_nce,
                  "cpc": self.cfg.w_cpc}
        return sum(weight[key] * value for key, value in terms.items())


def fit_club(clubs: nn.ModuleDict, optimizer: torch.optim.Optimizer,
             pairs: dict[str, tuple[torch.Tensor, torch.Tensor]], steps: int) -> float:
    """``steps`` updates of the CLUB networks on detached ``(z, z')`` pairs; last NLL."""
    return float(club_updates(clubs, optimizer, pairs, steps))


def club_updates(clubs: nn.ModuleDict, optimizer: torch.optim.Optimizer,
                 pairs: dict[str, tuple[torch.Tensor, torch.Tensor]],
                 steps: int) -> torch.Tensor:
    """:func:`fit_club`, the last NLL as a detached tensor (no host sync)."""
    loss = torch.zeros(())
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = sum(clubs[name].learning_loss(z, z_ei) for name, (z, z_ei) in pairs.items())
        loss.backward()
        optimizer.step()
    return loss.detach()


def pretrain_optimizers(net: M2SNet, clubs: nn.ModuleDict | None, steps: int
                        ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler,
                                   torch.optim.Optimizer | None]:
    """Adam for the network with a cosine schedule over ``steps`` steps, and Adam for the CLUB
    networks (``club_lr``, default ``lr``; not scheduled, as released)."""
    cfg = net.cfg
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                 foreach=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, steps))
    club_optimizer = torch.optim.Adam(clubs.parameters(), lr=cfg.club_lr or cfg.lr,
                                      weight_decay=cfg.weight_decay, foreach=True) \
        if clubs is not None else None
    return optimizer, scheduler, club_optimizer


def pretrain_step(net: M2SNet, clubs: nn.ModuleDict | None, optimizer: torch.optim.Optimizer,
                  club_optimizer: torch.optim.Optimizer | None, batch: dict[str, torch.Tensor],
                  observed: int, perms: dict[str, torch.Tensor] | None = None
                  ) -> dict[str, float]:
    """:func:`pretrain_terms`, the logged values read as floats."""
    terms = pretrain_terms(net, clubs, optimizer, club_optimizer, batch, observed, perms)
    return {key: float(value) for key, value in terms.items()}


def pretrain_terms(net: M2SNet, clubs: nn.ModuleDict | None, optimizer: torch.optim.Optimizer,
                   club_optimizer: torch.optim.Optimizer | None, batch: dict[str, torch.Tensor],
                   observed: int, perms: dict[str, torch.Tensor] | None = None
                   ) -> dict[str, torch.Tensor]:
    """One pre-training step (Algorithm 1): ``club_steps`` CLUB updates on detached features,
    then one step on Eq. 14.

    ``club_forwards="shared"``: one encoder pass serves the CLUB updates and Eq. 14. Exact
    for the released step only without dropout: the released code re-runs the whole model
    for each CLUB update, so each update (and Eq. 14) sees new dropout masks.
    ``"separate"``: a fresh encoder pass (no autograd) per CLUB update, then one for Eq. 14,
    as released: four passes per step with the defaults, each with its own dropout masks (the
    released extra passes also run the decoders and CPC, whose outputs it discards).
    Returns the total, its terms and the last CLUB NLL as detached tensors (no host sync).
    """
    net.train()
    cfg, logs = net.cfg, {}
    fit = cfg.use_club and cfg.club_steps > 0
    if fit and cfg.club_forward_mode == "separate":
        for _ in range(cfg.club_steps):
            with torch.no_grad():
                z, z_ei = net.encode(batch)
            logs["club_nll"] = club_updates(clubs, club_optimizer, {
                name: (z[name], z_ei[name]) for name in net.names}, 1)
        z, z_ei = net.encode(batch)
    else:
        z, z_ei = net.encode(batch)
        if fit:
            logs["club_nll"] = club_updates(clubs, club_optimizer, {
                name: (z[name].detach(), z_ei[name].detach()) for name in net.names},
                cfg.club_steps)
    terms = net.losses(batch, z, z_ei, clubs, observed, perms)
    loss = net.total(terms)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    values = {"loss": loss, **terms}
    return {**{k: v.detach() for k, v in values.items()}, **logs}


def finetune_optimizer(classifier: nn.Module, cfg: M2SConfig, steps: int
                       ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """Adam for the fine-tuning classifier (``ft_lr``, ``ft_weight_decay``), cosine schedule
    over ``steps`` steps."""
    optimizer = torch.optim.Adam(classifier.parameters(), lr=cfg.ft_lr,
                                 weight_decay=cfg.ft_weight_decay)
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, steps))


def finetune_step(classifier: nn.Module, optimizer: torch.optim.Optimizer,
                  features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One fine-tuning step on frozen features: cross-entropy, optimiser step; detached loss."""
    loss = F.cross_entropy(classifier(features), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


# --------------------------------------------------------------------------- data helpers


def window_shapes(windows: WindowSet, names: list[str],
                  sts_shapes: dict[str, tuple[int, int]]) -> dict[str, tuple[int, ...]]:
    """Per-window input shape: 2-D modalities stay ``(C, F)``; a flat one listed in
    ``sts_shapes`` with a matching size becomes that grid; anything else is flattened."""
    out = {}
    for name in names:
        shape = windows.shape(name)
        size = math.prod(shape)
        grid = sts_shapes.get(name)
        if len(shape) == 2:
            out[name] = tuple(shape)
        elif grid is not None and math.prod(grid) == size:
            out[name] = tuple(grid)
        else:
            out[name] = (size,)
    return out


def cover_index(windows: WindowSet, length: int) -> np.ndarray:
    """Sequences ``(n_seq, length)`` (stride 1) covering every window of ``windows``.

    Runs of consecutive windows shorter than ``length`` give one sequence padded with their
    last window.
    """
    idx = windows.sequence_index(length, 1)
    covered = np.zeros(len(windows), bool)
    covered[idx.ravel()] = True
    if covered.all():
        return idx
    meta = windows.meta
    order = np.lexsort((meta["window"].to_numpy(), meta["trial"].to_numpy(),
                        meta["session"].to_numpy(), meta["subject"].to_numpy()))
    keys = meta[["subject", "session", "trial"]].to_numpy()[order]
    breaks = np.r_[True, (keys[1:] != keys[:-1]).any(axis=1)
                   | (np.diff(meta["window"].to_numpy()[order]) != 1)]
    run_id = np.cumsum(breaks) - 1
    run_of = np.empty(len(windows), np.int64)
    run_of[order] = run_id
    padded = []
    for run in np.unique(run_of[~covered]):
        members = order[run_id == run]
        padded.append(members[np.minimum(np.arange(length), len(members) - 1)])
    return np.concatenate([idx.reshape(-1, length), np.stack(padded)])


class _Inputs:
    """Standardised modality tensors on the device, statistics from the training part."""

    def __init__(self, train: WindowSet, names: list[str], shapes: dict[str, tuple[int, ...]],
                 device: torch.device):
        self.shapes, self.device, self.stats = shapes, device, {}
        for name in names:
            flat = train.tensor(name).reshape(len(train), -1)
            finite = torch.isfinite(flat).all(dim=1)
            self.stats[name] = standardize_fit(flat[finite])

    def tensor(self, windows: WindowSet, name: str) -> torch.Tensor:
        """``(n, *shape)`` standardised, on the device."""
        mean, std = self.stats[name]
        flat = (windows.tensor(name).reshape(len(windows), -1) - mean) / std
        return flat.reshape(len(windows), *self.shapes[name]).to(self.device)


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` ``(B, T)`` of ``x`` ``(n, ...)`` -> ``(B, T, ...)``."""
    return x[idx.reshape(-1)].reshape(*idx.shape, *x.shape[1:])


# --------------------------------------------------------------------------- the method


@register_method
class M2S(Method):
    name = "m2s"
    Config = M2SConfig
    summary = "Multi-to-Single: STS-attention encoders, CLUB, M2M CPC and InfoNCE pre-training " \
              "on paired modalities; a frozen single-modality encoder + MLP (cross-modal)"
    protocols = ("subject_dependent", "cross_modal", "loso", "subject_kfold", "cross_session",
                 "stimulus_kfold", "label_ratio", "random_window")
    data_presets = {"*": "m2s"}
    self_supervised = True
    #: ``default``: a small encoder (d 64, one block, proj 64, T = 3, N = 1) trained to
    #: convergence at a few subjects' data sizes: pre-training up to 300 epochs with early
    #: stopping on the validation part's paired windows (patience 30), fine-tuning up to 300
    #: epochs with early stopping on validation balanced accuracy (patience 50). CPU budget per
    #: fold, one thread (measured, SEED-IV subject-session folds): 5 s mean / 9 s max on the
    #: synthetic default (16 s trials), 14 s / 21 s on 48 s trials; budget 30 s per fold at
    #: these sizes. An epoch costs in proportion to the training sequences (longer real
    #: trials cost more per epoch; not measured on real recordings).
    presets = {
        "default": {"seq_len": 3, "cpc_steps": 1, "d_model": 64, "n_layers": 1, "n_heads": 2,
                    "head_dim": 8, "ffn_dim": 64, "proj_dim": 64, "cpc_hidden": 32,
                    "club_hidden": 32, "club_steps": 2, "club_lr": 5e-3, "epochs": 300,
                    "patience": 30, "batch_size": 32, "lr": 1e-3, "ft_epochs": 300,
                    "ft_patience": 50, "ft_batch_size": 16, "ft_hidden": 64},
        "paper": {},
        "fast": {"seq_len": 3, "cpc_steps": 1, "d_model": 32, "n_layers": 1, "n_heads": 2,
                 "head_dim": 8, "ffn_dim": 64, "proj_dim": 16, "cpc_hidden": 16,
                 "club_hidden": 16, "club_steps": 2, "club_lr": 5e-3, "epochs": 40,
                 "batch_size": 16, "lr": 1e-3, "ft_epochs": 60, "ft_batch_size": 64,
                 "ft_hidden": 32},
    }
    demo = {"dataset": "seed_iv", "protocol": "cross_modal", "labels": "native",
            "options": {"protocol": {"modalities": ["eeg", "eye"],
                                     "directions": ["eeg->eye"], "per_session": False}}}
    config: M2SConfig

    # ------------------------------------------------------------------ fit
    def fit(self, train: Split, unlabeled: Split | None = None,
            val: Split | None = None) -> M2S:
        cfg = self.config
        self.modality_ = self._finetune_modality(train)
        data, seq = self._setup(train, unlabeled)
        held_out = self._paired([val.windows]) if cfg.patience is not None and val is not None \
            and len(val) and set(self.net_.names) <= set(val.windows.names) else None
        self.pretrain_logs_ = self._pretrain(data, seq, held_out)
        self.centers_ = self._centers(data, seq)
        self._finetune(train, val)
        return self

    def _setup(self, train: Split, unlabeled: Split | None
               ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Seed; build the input standardisation (training statistics), the network and the
        CLUB networks for every modality of the training windows; return the paired
        pre-training data (training windows + the unlabelled part; see :meth:`_paired`)."""
        cfg = self.config
        self._generator = seed_everything(self.seed)
        names = list(train.windows.names)
        self.shapes_ = window_shapes(train.windows, names, cfg.sts_shapes)
        self.inputs_ = _Inputs(train.windows, names, self.shapes_, self.device)
        self.net_ = M2SNet(self.shapes_, cfg).to(self.device)
        self.clubs_ = nn.ModuleDict({name: CLUBNet(cfg.d_model, cfg.d_model, cfg.club_hidden)
                                     for name in names}).to(self.device) \
            if cfg.use_club else None
        parts = [train.windows] + ([unlabeled.windows] if unlabeled is not None and
                                   len(unlabeled) else [])
        data, seq = self._paired(parts)
        if len(seq) == 0:
            raise ConfigError("method.seq_len", f"no run of {cfg.seq_len} consecutive windows "
                              f"with every modality ({', '.join(names)}) in the training part")
        return data, seq

    def pretext_features(self, train: Split, unlabeled: Split | None, parts: Sequence[Split],
                         pretrain: bool = True) -> list[np.ndarray]:
        """Per window, the frozen classifier input of every modality the training part allows
        (``train.modalities``), concatenated in the order of the training windows' modalities:
        ``(n, proj_dim * n_modalities)``.

        Each modality's feature is what the fine-tuning classifier reads: the pooled projection
        of the ER encoder (L2-normalised unless ``official``), centred on that modality's mean
        over the paired pre-training sequences when ``center`` is on, per sequence of
        ``seq_len`` windows (:func:`cover_index`) and averaged onto the windows as ``predict``
        does. Inputs are standardised with the training windows' statistics.

        ``pretrain``: the network after the pre-training stage alone (Eq. 14, no labels) on the
        paired sequences of ``train`` and ``unlabeled``, exactly as ``fit`` runs it; no
        validation part is given, so ``patience`` stops nothing and all ``epochs`` run.
        Without ``pretrain`` the same network (same seed) keeps its random initialisation
        (the centres are then those of the random encoder, as ``fit`` with ``epochs=0``).
        A window is a NaN row when every sequence covering it holds a window lacking one of
        the modalities (non-finite); each part must hold every feature modality.
        """
        data, seq = self._setup(train, unlabeled)
        if pretrain:
            self.pretrain_logs_ = self._pretrain(data, seq)
        self.centers_ = self._centers(data, seq)
        names = [name for name in self.net_.names if name in train.modalities]
        out = []
        for part in parts:
            missing = [name for name in names if name not in part.windows.names]
            if missing:
                raise ConfigError("protocol.modalities", f"the part lacks {', '.join(missing)}"
                                  f" (features of {', '.join(names)})")
            idx = cover_index(part.windows, self.config.seq_len)
            feats = []
            for name in names:
                x = part.windows.tensor(name).reshape(len(part), -1)
                usable = torch.isfinite(x).all(dim=1).numpy()[idx].all(axis=1)
                window_feats = torch.full((len(part), self.config.proj_dim), float("nan"))
                if usable.any():
                    seq_feats = self._embed_sequences(part.windows, name, idx[usable])
                    window_feats = self._to_windows(seq_feats, idx[usable], len(part)).cpu()
                feats.append(window_feats.numpy().astype(np.float64))
            out.append(np.concatenate(feats, axis=1))
        return out

    def _finetune_modality(self, train: Split) -> str:
        allowed = tuple(train.modalities)
        if self.config.modality is not None:
            if self.config.modality not in allowed:
                raise ConfigError("method.modality", f"'{self.config.modality}' is not usable "
                                  f"for training in this fold; allowed: {', '.join(allowed)}")
            return self.config.modality
        return "eeg" if "eeg" in allowed else allowed[0]

    def _sequences(self, windows: WindowSet) -> np.ndarray:
        idx = windows.sequence_index(self.config.seq_len, self.config.seq_stride)
        if len(idx) == 0:
            raise ConfigError("method.seq_len", f"no run of {self.config.seq_len} consecutive "
                              "windows inside a trial; lower seq_len")
        return idx

    def _paired(self, parts: list[WindowSet]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Standardised tensors of every modality of ``parts`` (concatenated) and the sequences
        ``(n_seq, T)`` into them whose windows hold every modality (finite values)."""
        tensors, seqs, offset = {name: [] for name in self.net_.names}, [], 0
        for windows in parts:
            for name in self.net_.names:
                tensors[name].append(self.inputs_.tensor(windows, name))
            idx = windows.sequence_index(self.config.seq_len, self.config.seq_stride)
            seqs.append(idx.reshape(-1, self.config.seq_len) + offset)
            offset += len(windows)
        data = {name: torch.cat(chunks) for name, chunks in tensors.items()}
        finite = torch.stack([torch.isfinite(x.flatten(1)).all(1) for x in data.values()]).all(0)
        seq = torch.as_tensor(np.concatenate(seqs), dtype=torch.long, device=self.device)
        return data, seq[finite[seq].all(dim=1)]

    def _pretrain(self, data: dict[str, torch.Tensor], seq: torch.Tensor,
                  held_out: tuple[dict[str, torch.Tensor], torch.Tensor] | None = None
                  ) -> dict[str, float]:
        """Pre-training (Algorithm 1) on the paired sequences ``seq`` of ``data`` (no labels).

        ``held_out``: paired sequences of the validation part (no labels); with ``patience``
        the epoch with the lowest loss on them is kept (early stopping).
        """
        cfg, net = self.config, self.net_
        if cfg.epochs and not net.active_losses():
            raise ConfigError("method", "no pre-training loss is switched on for modalities "
                              f"{', '.join(net.names)}; enable one or set epochs=0")
        per_epoch = len(seq) // cfg.batch_size if len(seq) >= cfg.batch_size else 1
        optimizer, scheduler, club_optimizer = pretrain_optimizers(
            net, self.clubs_, cfg.epochs * per_epoch)
        logs: dict[str, float] = {}
        total_epochs = cfg.epochs + cfg.ft_epochs
        watch = held_out is not None and len(held_out[1]) >= 2
        best: tuple[float, dict, int] | None = None
        self.pretrain_epochs_ = cfg.epochs
        for epoch in range(cfg.epochs):
            steps = StepValues()
            batches = list(minibatches(len(seq), cfg.batch_size, self._generator,
                                       drop_last=True, device=self.device))
            for rows, (observed, perms) in zip(batches, self._draws(batches), strict=True):
                idx = seq[rows]
                batch = {name: _gather(x, idx) for name, x in data.items()}
                steps.add(**pretrain_terms(net, self.clubs_, optimizer, club_optimizer, batch,
                                           observed, perms))
                scheduler.step()
            logs = {f"pretrain_{k}": sum(v) / max(len(batches), 1)
                    for k, v in steps.read().items()}
            if watch:
                logs["pretrain_val_loss"] = self._held_out_loss(*held_out)
                if best is None or logs["pretrain_val_loss"] < best[0]:
                    best = (logs["pretrain_val_loss"], copy.deepcopy(net.state_dict()), epoch)
            self.report_epoch(epoch, total_epochs, **logs)
            if best is not None and epoch - best[2] >= cfg.patience:
                self.pretrain_epochs_ = epoch + 1
                break
        if best is not None:
            net.load_state_dict(best[1])
            logs.update(pretrain_val_loss=best[0], pretrain_selected_epoch=float(best[2]))
        logs.update(n_pretrain_sequences=float(len(seq)),
                    pretrain_epochs_run=float(self.pretrain_epochs_))
        return logs

    @torch.no_grad()
    def _held_out_loss(self, data: dict[str, torch.Tensor], seq: torch.Tensor) -> float:
        """Eq. 14 without the CLUB term on held-out paired sequences (eval mode; batches of
        ``batch_size``; CPC averaged over every allowed ``M``). The CLUB estimate is left out:
        its value follows the CLUB network's fit as much as the encoders'."""
        cfg, net = self.config, self.net_
        net.eval()
        if not cfg.use_cpc:
            observed = [0]
        elif cfg.cpc_observed is not None:
            observed = [cfg.cpc_observed]
        else:
            high = cfg.seq_len - cfg.cpc_steps
            observed = list(range(min(2, high), high + 1))
        starts = list(range(0, len(seq), cfg.batch_size))
        if len(starts) > 1 and len(seq) - starts[-1] < 2:
            starts.pop()                                  # no batch of one sequence
        losses, sizes = StepValues(), []
        for i, start in enumerate(starts):
            stop = starts[i + 1] if i + 1 < len(starts) else len(seq)
            idx = seq[start:stop]
            batch = {name: _gather(x, idx) for name, x in data.items()}
            z, z_ei = net.encode(batch)
            for m in observed:
                terms = net.losses(batch, z, z_ei, self.clubs_, m, skip=("club",))
                losses.add(loss=net.total(terms))
                sizes.append(len(idx))
        return losses.weighted_sum("loss", sizes) / max(sum(sizes), 1)

    @torch.no_grad()
    def _centers(self, data: dict[str, torch.Tensor], seq: torch.Tensor
                 ) -> dict[str, torch.Tensor] | None:
        """Mean classifier input per modality over the paired pre-training sequences (no
        labels). Subtracting its own mean from each modality removes the offset between the
        modalities' embeddings (the modality gap) that InfoNCE leaves, so a classifier fitted
        on one modality meets the other modality's embeddings where its own were."""
        if not self.config.use_center:
            return None
        self.net_.eval()
        out = {}
        for name in self.net_.names:
            feats = [self.net_.features(name, _gather(data[name], seq[start:start + 1024]))
                     for start in range(0, len(seq), 1024)]
            out[name] = torch.cat(feats).mean(dim=0)
        return out

    def _features(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Classifier input of sequences ``x`` of modality ``name``: the frozen features,
        centred on the modality's own training mean when ``center`` is on."""
        out = self.net_.features(name, x)
        return out - self.centers_[name] if self.centers_ is not None else out

    def _observed(self) -> int:
        """``M`` for this batch: fixed, or drawn from ``2..T-N`` like the released code."""
        cfg = self.config
        if not cfg.use_cpc:
            return 0
        if cfg.cpc_observed is not None:
            return cfg.cpc_observed
        high = cfg.seq_len - cfg.cpc_steps
        return draw_int(min(2, high), high, self._generator)

    def _perms(self, size: int) -> dict[str, torch.Tensor] | None:
        """CLUB's shuffled pairings for a batch of ``size`` (on the host), or None."""
        if not self.config.use_club or self.config.club_negatives != "shuffle":
            return None
        return {name: torch.randperm(size, generator=self._generator)
                for name in self.net_.names}

    def _draws(self, batches: list[torch.Tensor]
               ) -> list[tuple[int, dict[str, torch.Tensor] | None]]:
        """``M`` and the CLUB pairings of each batch of an epoch, drawn in the order the steps
        used to draw them; the pairings moved to the device in one copy."""
        draws = [(self._observed(), self._perms(len(rows))) for rows in batches]
        host = [perm for _, perms in draws for perm in (perms or {}).values()]
        moved = iter(to_device(host, self.device))
        return [(observed, None if perms is None else {name: next(moved) for name in perms})
                for observed, perms in draws]

    # ------------------------------------------------------------------ fine-tuning
    def _freeze(self) -> None:
        """Freeze the whole pre-trained network (only the classifier is trained)."""
        for param in self.net_.parameters():
            param.requires_grad_(False)

    @torch.no_grad()
    def _embed_sequences(self, windows: WindowSet, name: str, idx: np.ndarray) -> torch.Tensor:
        """Frozen-encoder features ``(n_seq, proj_dim)`` of ``name`` for sequences ``idx``."""
        self.net_.eval()
        x = self.inputs_.tensor(windows, name)
        idx_t = torch.as_tensor(idx, device=self.device)
        out = [self._features(name, _gather(x, idx_t[start:start + 1024]))
               for start in range(0, len(idx_t), 1024)]
        return torch.cat(out)

    def _finetune(self, train: Split, val: Split | None) -> None:
        cfg, name = self.config, self.modality_
        self._freeze()
        idx = self._sequences(train.windows)
        y = torch.as_tensor(train.y[idx[:, 0]], dtype=torch.long, device=self.device)
        official = cfg.official
        feats = None if official else self._embed_sequences(train.windows, name, idx)
        x_train = self.inputs_.tensor(train.windows, name) if official else None
        idx_t = torch.as_tensor(idx, device=self.device)
        self.classifier_ = Classifier(cfg.proj_dim, cfg.ft_hidden, self.n_classes).to(
            self.device)
        optimizer, scheduler = finetune_optimizer(
            self.classifier_, cfg, cfg.ft_epochs * math.ceil(len(idx) / cfg.ft_batch_size))
        val_data = self._val_data(val)
        best, self.epoch_states_, loss = None, [], torch.tensor(float("nan"))
        for epoch in range(cfg.ft_epochs):
            self.classifier_.train()
            for rows in minibatches(len(idx), cfg.ft_batch_size, self._generator,
                                    device=self.device):
                if len(rows) < 2:
                    continue                  # BatchNorm needs two samples
                if official:                  # frozen encoder in train mode: dropout active
                    self.net_.train()
                    with torch.no_grad():
                        batch = self._features(name, _gather(x_train, idx_t[rows]))
                else:
                    batch = feats[rows]
                loss = finetune_step(self.classifier_, optimizer, batch, y[rows])
                scheduler.step()
            state = copy.deepcopy(self.classifier_.state_dict())
            if cfg.report_oracle:
                self.epoch_states_.append(state)
            logs = {"ft_loss": float(loss.detach())}
            if val_data is not None:
                accuracy, val_loss = self._val_score(val_data)
                logs.update(val_balanced_accuracy=accuracy, val_loss=val_loss)
                score = (-val_loss, accuracy) if cfg.ft_select == "loss" else \
                    (accuracy, -val_loss)
                if best is None or score > best[0]:
                    best = (score, state, epoch)
            self.report_epoch(cfg.epochs + epoch, cfg.epochs + cfg.ft_epochs, **logs)
            if best is not None and cfg.ft_patience is not None \
                    and epoch - best[2] >= cfg.ft_patience:
                break
        if best is not None:
            self.classifier_.load_state_dict(best[1])
            self.selected_epoch_ = best[2]
        else:
            self.selected_epoch_ = cfg.ft_epochs - 1

    def _val_data(self, val: Split | None):
        if val is None or val.y is None or len(val) == 0 or self.modality_ not in \
                val.windows.names:
            return None
        idx = cover_index(val.windows, self.config.seq_len)
        feats = self._embed_sequences(val.windows, self.modality_, idx)
        return feats, idx, val.y, len(val)

    def _to_windows(self, values: torch.Tensor, idx: np.ndarray, n: int) -> torch.Tensor:
        """Mean of per-sequence ``values`` ``(n_seq, k)`` over the sequences covering each of
        the ``n`` windows -> ``(n, k)``."""
        values = full_precision(values)
        flat = torch.as_tensor(idx.reshape(-1), device=values.device)
        total = torch.zeros(n, values.shape[1], device=values.device).index_add_(
            0, flat, values.repeat_interleave(idx.shape[1], dim=0))
        count = torch.zeros(n, device=values.device).index_add_(
            0, flat, torch.ones(len(flat), device=values.device))
        return total / count[:, None]

    @torch.no_grad()
    def _window_probs(self, feats: torch.Tensor, idx: np.ndarray, n: int) -> torch.Tensor:
        """Classifier probabilities of the sequences, averaged onto their windows."""
        self.classifier_.eval()
        return self._to_windows(full_precision(self.classifier_(feats)).softmax(dim=-1), idx, n)

    def _val_score(self, val_data) -> tuple[float, float]:
        """Balanced accuracy and mean NLL of the classifier on the validation windows."""
        feats, idx, y, n = val_data
        probs = self._window_probs(feats, idx, n).cpu().numpy()
        loss = -np.log(probs[np.arange(n), y] + 1e-12).mean()
        return balanced_accuracy_score(y, probs.argmax(1)), float(loss)

    # ------------------------------------------------------------------ predict
    def predict(self, test: Split) -> Predictions:
        name = self.modality_ if self.modality_ in test.modalities else test.modalities[0]
        if name not in self.net_.names:
            raise ConfigError("protocol.modalities", f"'{name}' was not pre-trained (the "
                              f"training part holds {', '.join(self.net_.names)})")
        missing = int((~torch.isfinite(test.windows.tensor(name).flatten(1)).all(1)).sum())
        if missing:
            raise AffectlabError(f"m2s: {missing} test window(s) lack '{name}' (non-finite "
                                 "values); drop them before predicting (the runner does)")
        idx = cover_index(test.windows, self.config.seq_len)
        feats = self._embed_sequences(test.windows, name, idx)
        probs = self._window_probs(feats, idx, len(test))
        epoch_probs = None
        if self.config.report_oracle and self.epoch_states_:
            selected = copy.deepcopy(self.classifier_.state_dict())
            per_epoch = []
            for state in self.epoch_states_:
                self.classifier_.load_state_dict(state)
                per_epoch.append(self._window_probs(feats, idx, len(test)).cpu().numpy())
            self.classifier_.load_state_dict(selected)
            epoch_probs = np.stack(per_epoch)
        embeddings = self._to_windows(feats, idx, len(test))
        extras = {k: float(v) for k, v in self.pretrain_logs_.items()}
        extras.update(selected_epoch=float(self.selected_epoch_),
                      test_modality_is_train_modality=float(name == self.modality_))
        return Predictions(probs.cpu().numpy(), embeddings=embeddings.cpu().numpy(),
                           epoch_probs=epoch_probs, extras=extras)
