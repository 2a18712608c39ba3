"""ME-MHACL: group meiosis contrastive learning on raw multimodal electrophysiology.

Pre-training (Algorithm 1): the group sampler draws P stimulus clips and 2Q subjects per
mini-batch; meiosis (Eq. 1-3) pairs the 2Q windows of each clip, swaps their first c samples and
separates the children into two homologous groups; the ResNet-18-1D base encoder ``f`` maps every
window to 512-d (Eq. 4); the group projector ``g`` (MLP 1024 -> 2048 -> 4096, 8-head attention
across the members of a group, max-pool over the members; Eq. 5-8) gives one vector per group;
NT-Xent over the 2P groups with tau = 0.1 (Eq. 9-12) trains ``f`` and ``g``. Fine-tuning: the
pre-trained ``f`` plus a classifier 512 -> 256 -> 128 -> C (Sec. III-F, Table I), cross-entropy,
Adam 1e-3; ``pretrain=false`` gives the paper's fully-supervised variant.

Input: the ``me_mhacl`` data preset's raw 1 s windows (DEAP 128 Hz, MAHNOB-HCI 256 Hz) with the
baseline template subtracted. The modalities in ``modalities`` (default EEG + GSR + Resp + Temp;
the paper's ablations: ``[eeg]``, ``[eeg, gsr]``, ``[eeg, resp, temp]``, ``[eeg, gsr, resp,
temp]``, ``[eeg, eog, gsr, resp, temp]``) are stacked along the channel axis -> ``(C, M)``.

Predictions are per window (the method is window-level). ``embeddings`` are the 512-d encoder
outputs.

References
----------
Y. Guo, T. Zhang, W. Huang, "Emotion recognition based on multi-modal electrophysiology multi-head
attention contrastive learning" (ME-MHACL). Parent method and code: H. Kan et al., "Self-supervised
group meiosis contrastive learning for EEG-based emotion recognition" (SGMC), arXiv:2208.00877,
github.com/kanhaoning/Self-supervised-group-meiosis-contrastive-learning-for-EEG-based-emotion-
recognition.

Interpretation
--------------
* Stimulus clip (Sec. III-B): one (stimulus, window) pair, i.e. the same second of the same video
  for every subject (meta columns ``stimulus`` and ``window``). A sampler "subject" is one
  recording (subject, session). Clips of the pre-training data that fewer than 2Q recordings
  have are skipped (their windows are still used for fine-tuning); the counts are returned in
  ``Predictions.extras`` (``pretrain_clips``, ``pretrain_clips_skipped``,
  ``pretrain_windows_skipped``). With too few subjects (e.g. one training subject) pre-training
  is skipped altogether and ``pretrain_clips`` is 0.
* Subject choice (Algorithm 1 line 4): one random order of the recordings per mini-batch, shared
  by its P clips; each clip takes the first 2Q recordings in that order that have the clip. When
  every recording has every clip this is exactly "2Q subjects per mini-batch"; otherwise it is
  the nearest generalisation. Member k is paired with member k + Q (Sec. III-C, as in SGMC).
* Eq. 1: ``A~ = [b_1..b_c, a_{c+1}..a_M]``, ``B~ = [a_1..a_c, b_{c+1}..b_M]`` with A = member k,
  B = member k + Q; group A holds the A~ children, group B the B~ children. One split point
  ``c`` per iteration, uniform in ``{2, ..., M - 2}`` (``1 < c < M - 1``), shared by all pairs.
* Eq. 4 writes the tilde (meiosis) only on the EEG group. ``meiosis_on="all"`` (default) crosses
  over every stacked channel (Sec. III-C speaks of "ME signals"); ``"eeg"`` crosses over only
  the EEG rows, the other modalities of a child stay its own recording's.
* Projector (Eq. 5-8): Eq. 8 applies ``l`` to the attention output, but the text and Fig. 5 put
  the attention *after* the third layer of ``l``. ``attention_position="after_mlp"`` (default,
  Fig. 5 and the issue): ``l`` on each member -> 8-head self-attention across the Q members of
  a group (no positional encoding, no residual; Eq. 5-7) -> max over members. ``"before_mlp"``
  (Eq. 8 literally): attention on the 512-d encoder outputs, then ``l``, then max. Layers of
  ``l``: Linear -> BN -> ReLU -> Dropout(0.5) for the first two, a plain Linear for the third
  (the text gives ReLU to the first two layers only). Batch norm runs over all 2PQ members.
* Classifier (Table I): Linear 512->256, BN, ReLU, Linear 256->128, BN, ReLU, Dropout(0.5),
  Linear 128->C. The paper says "dropout 0.5" without a position; it sits where SGMC has its
  only dropout.
* Eq. 12 is the mean of the 2P anchor losses (``losses.contrastive.nt_xent``).
* Normalisation (not in the paper): the stacked channels have wildly different units (GSR in
  the thousands, temperature in hundredths), so ``normalize="channel"`` (config default)
  standardises every channel with mean / std of the labelled training windows.
  ``"recording"`` (the ``default`` preset) standardises every channel of a recording (one
  subject-session) with the mean / std of that recording's own windows in the part being
  processed, the test part included: no labels, but test-part statistics, so the run summary
  declares it transductive. It removes the per-subject signal gain (0.6-1.6x on synthetic DEAP,
  several times the arousal effect), which the ResNet otherwise memorises. ``"spatial"`` is
  SGMC's DEAP preprocessing (:func:`spatial_zscore`): every time sample z-scored across the
  channels of its window, no fitted statistics. ``"none"``.
* Pre-training data: the training windows plus the unlabelled non-test windows the runner may
  pass (``use_unlabeled``; e.g. the unlabelled trials of ``label_ratio``). Labels are never read.
  The paper picks the pre-training epoch by test accuracy after fine-tuning; here the last
  pre-training epoch is used. Fine-tuning keeps the epoch with the best validation score when a
  validation part is given (``select_on``: the lowest loss, or the highest balanced accuracy;
  ties go to the lower loss; optionally stopping after ``patience`` epochs), else the last.
* ``batch_size`` is the fine-tuning batch; the pre-training batch is 2PQ windows. Fine-tuning
  uses full batches only (a partial last batch is dropped each epoch); ``official`` keeps it.
* Channels (Table III): DEAP tensors have 36 channels, but the text's modalities (EEG 32, GSR,
  Resp, Temp) give 35. The paper's DEAP description lists two respiration signals ("respiration
  rate" and "respiration belt pneumotachograph") where DEAP records a respiration belt and a
  plethysmograph, so the ``paper`` preset on DEAP reads the 36th channel as the plethysmograph
  (``modalities=[eeg, gsr, resp, ppg, temp]``); the ``default`` preset keeps the text's 35.
  On MAHNOB-HCI Table III also says 36, while the text gives MAHNOB-HCI one GSR channel fewer
  than DEAP; ``paper_mahnob`` keeps the text's four modalities with one GSR electrode (35).
* Labels (Sec. IV-A-1): a rating "greater than 5" is high, i.e. ``> 5`` (the runner's
  default); ``official`` makes the runner use SGMC's ``>= 5`` unless ``labels.inclusive`` is
  given (:meth:`MEMHACL.label_options`).

``official`` (SGMC's released DEAP code)
----------------------------------------
* Meiosis crosses over along the **channel** axis with ``c`` uniform in ``{1, ..., 126}`` (a
  range meant for 128 time samples): with 32-36 channels about 3/4 of the iterations leave the
  parents unchanged. SGMC's first group holds the children that keep member k's first ``c``
  rows, i.e. our B group: the groups are swapped so the arrays match SGMC's.
* Projector ``l`` is linear: Linear -> BN -> Dropout -> Linear -> BN -> Dropout -> Linear, no
  ReLU, and the dropout stays active in eval mode.
* Encoder kernels of the released ``ResNet_model.py`` (:func:`affectlab.nn.resnet1d.sgmc_blocks`).
* Loss = ``mean(l_A + l_B)``, twice Eq. 12.
* Classifier with 4 outputs whatever the task (SGMC's ``ResNet(num_classes=4)`` is never
  changed): cross-entropy over the 4 logits; predictions are the softmax over the task's
  classes only (renormalised), so an unused logit never wins.
* Fine-tuning keeps the partial last batch, as SGMC's ``DataLoader`` (208 windows per epoch on
  MAHNOB-HCI at batch 256); a last batch of a single window is still left out (batch norm
  cannot train on one sample; SGMC would fail there).
* Labels: rating ``>= 5`` is high (SGMC's ``Data_process``), through
  :meth:`MEMHACL.label_options`.
The attention layer is not in SGMC's code and stays governed by ``attention``. The preset
``sgmc_official`` also sets SGMC's preprocessing and schedule (EEG only, ``normalize="spatial"``,
dropout 0.2, no attention, fine-tuning 10 epochs at batch 512). SGMC's segmentation is the
same as affectlab's (all 60 stimulus seconds once, each minus the mean baseline second; checked
by running its ``segment_signal_without_transition``); its arousal-only label and its
test-curve read-out are not copied. ``benchmarks/equivalence/sgmc.py`` compares this reading
with the released code component by component (meiosis, loss, encoder, heads, pooling, one
Adam step, ``feature_normalize``, shapes; README).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from sklearn.metrics import balanced_accuracy_score
from torch import nn

from affectlab.data import WindowSet, recording_rows
from affectlab.errors import ConfigError
from affectlab.losses.contrastive import nt_xent
from affectlab.methods.base import Method, MethodConfig, Predictions, Split, register_method
from affectlab.nn.resnet1d import ResNet1D, paper_blocks, sgmc_blocks
from affectlab.training import (
    draw_int,
    full_precision,
    minibatches,
    seed_everything,
    to_device,
)

log = logging.getLogger("affectlab.methods.me_mhacl")

OFFICIAL_SPLIT_RANGE = (1, 126)     # SGMC DEAP: random.randint(1, 128 - 2), inclusive
OFFICIAL_OUTPUTS = 4                # SGMC: ResNet(num_classes=4), never changed
PAPER_DEAP_MODALITIES = ["eeg", "gsr", "resp", "ppg", "temp"]   # Table III: 36 channels


# --------------------------------------------------------------------------- group sampler

class GroupSampler:
    """ME group sampler (Sec. III-B; Algorithm 1 lines 3-5).

    ``table[clip, member]`` is the position of the window of recording ``member`` for clip
    ``clip`` (or -1). Clips held by fewer than ``2Q`` recordings are dropped.
    """

    def __init__(self, meta: pd.DataFrame, P: int, Q: int):
        missing = {"stimulus", "window", "subject", "session"} - set(meta.columns)
        if missing:
            raise ConfigError("me_mhacl", f"the group sampler needs meta columns {sorted(missing)}")
        self.P, self.Q = P, Q
        clip = meta.groupby(["stimulus", "window"], sort=True).ngroup().to_numpy()
        member = meta.groupby(["subject", "session"], sort=True).ngroup().to_numpy()
        table = np.full((clip.max() + 1, member.max() + 1), -1, np.int64)
        table[clip, member] = np.arange(len(meta))
        enough = (table >= 0).sum(axis=1) >= 2 * Q
        self.table = torch.from_numpy(table[enough])
        self.n_clips = int(enough.sum())
        self.n_clips_skipped = int((~enough).sum())
        self.n_windows_skipped = len(meta) - int((self.table >= 0).sum())

    def batch_sizes(self) -> list[int]:
        """Clips per mini-batch of an epoch: full batches of P, plus the rest if it has >= 2."""
        sizes = [self.P] * (self.n_clips // self.P)
        if self.n_clips % self.P >= 2:
            sizes.append(self.n_clips % self.P)
        return sizes

    def epoch(self, generator: torch.Generator) -> list[torch.Tensor]:
        """One epoch: index tensors ``(p, 2Q)`` of window positions, each clip drawn once.

        Row i of a batch is one clip; its members are ordered so that k pairs with k + Q.
        """
        order = torch.randperm(self.n_clips, generator=generator)
        out: list[torch.Tensor] = []
        start = 0
        for size, count in _runs(self.batch_sizes()):
            clips = order[start:start + size * count].view(count, size)
            start += size * count
            rows = self.table[clips]                                   # (count, size, members)
            keys = torch.rand(count, 1, rows.shape[-1], generator=generator).expand_as(rows)
            keys = torch.where(rows >= 0, keys, torch.full_like(keys, 2.0))
            chosen = keys.argsort(dim=-1)[..., :2 * self.Q]
            out.extend(rows.gather(-1, chosen).unbind(0))
        return out


def _runs(sizes: list[int]) -> list[tuple[int, int]]:
    """Run-length encoding of a list: [(value, count), ...]."""
    runs: list[tuple[int, int]] = []
    for size in sizes:
        if runs and runs[-1][0] == size:
            runs[-1] = (size, runs[-1][1] + 1)
        else:
            runs.append((size, 1))
    return runs


# --------------------------------------------------------------------------- meiosis

def crossover_mask(n_channels: int, n_samples: int, c: int, axis: Literal["time", "channel"],
                   rows: torch.Tensor | None = None,
                   device: torch.device | None = None) -> torch.Tensor:
    """``(C, M)`` bool: True where Eq. 1 takes the partner's value.

    axis "time": the first ``c`` samples (Eq. 1); "channel": the first ``c`` channels (SGMC's
    DEAP code). rows: optional ``(C,)`` bool, the channels that take part (others never swap).
    """
    if axis == "time":
        mask = (torch.arange(n_samples, device=device) < c).expand(n_channels, n_samples)
    else:
        mask = (torch.arange(n_channels, device=device) < c)[:, None].expand(n_channels,
                                                                             n_samples)
    return mask if rows is None else mask & rows.to(mask.device)[:, None]


def meiosis(groups: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 1-3 for a mini-batch: ``(P, 2Q, C, M)`` -> groups A and B, each ``(P, Q, C, M)``.

    Member k is paired with member k + Q (A = k, B = k + Q in Eq. 1); group A receives
    ``A~ = [b_1..b_c, a_{c+1}..]`` and group B ``B~ = [a_1..a_c, b_{c+1}..]``, so every sample
    of every parent lands exactly once in one of the two groups.
    """
    q = groups.shape[1] // 2
    first, second = groups[:, :q], groups[:, q:]
    return torch.where(mask, second, first), torch.where(mask, first, second)


def draw_split(n: int, generator: torch.Generator, official: bool = False) -> int:
    """The iteration's split point: uniform in ``{2, ..., n - 2}`` (``1 < c < M - 1``), or
    SGMC's ``{1, ..., 126}`` when ``official``."""
    low, high = OFFICIAL_SPLIT_RANGE if official else (2, n - 2)
    if high < low:
        raise ConfigError("me_mhacl", f"windows of {n} samples are too short for meiosis")
    return draw_int(low, high, generator)


# --------------------------------------------------------------------------- normalisation

def spatial_zscore(x: torch.Tensor) -> torch.Tensor:
    """SGMC's DEAP normalisation: each time sample of ``(n, C, M)`` z-scored across its ``C``
    channels with the population std. As in SGMC's ``feature_normalize``, exact zeros are left
    at zero and do not enter the mean or std (they occur where a quantised recording equals the
    baseline template)."""
    nonzero = x != 0
    count = nonzero.sum(dim=1, keepdim=True).clamp_min(1)
    mean = torch.where(nonzero, x, 0).sum(dim=1, keepdim=True) / count
    centred = torch.where(nonzero, x - mean, 0)
    std = (centred.square().sum(dim=1, keepdim=True) / count).sqrt().clamp_min(1e-6)
    return centred / std


def recording_zscore(x: torch.Tensor, meta: pd.DataFrame) -> torch.Tensor:
    """Every channel of ``(n, C, M)`` z-scored with the mean / std over the samples of all
    windows of its recording (one ``(subject, session)`` of ``meta``) in this part. Uses no
    labels, but at prediction the test part's own windows: transductive."""
    out = torch.empty_like(x)
    for rows in recording_rows(meta):
        rows = torch.as_tensor(rows)
        mean, std = channel_stats(x[rows])
        out[rows] = (x[rows] - mean) / std
    return out


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of ``(n, C, M)`` over windows and samples, ``(1, C, 1)``."""
    return x.mean(dim=(0, 2), keepdim=True), x.std(dim=(0, 2), keepdim=True).clamp_min(1e-6)


# --------------------------------------------------------------------------- projector

class AlwaysDropout(nn.Module):
    """Dropout that stays active in eval mode (SGMC's ``F.dropout`` without ``training``)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, training=True)


def basic_projector(d_in: int, dims: list[int], dropout: float,
                    official: bool = False) -> nn.Sequential:
    """``l``: Linear -> BN -> ReLU -> Dropout per hidden layer, plain Linear last (Sec. III-E).

    official: SGMC's linear projector (no ReLU, dropout active in eval mode).
    """
    layers: list[nn.Module] = []
    for i, width in enumerate(dims):
        layers.append(nn.Linear(d_in, width))
        if i < len(dims) - 1:
            layers.append(nn.BatchNorm1d(width))
            if not official:
                layers.append(nn.ReLU(inplace=True))
            layers.append(AlwaysDropout(dropout) if official else nn.Dropout(dropout))
        d_in = width
    return nn.Sequential(*layers)


class GroupProjector(nn.Module):
    """Multi-head attention group projector ``g`` (Eq. 5-8): ``(G, Q, D)`` -> ``(G, H)``.

    position "after_mlp": ``l`` on every member, attention across the members, max over members;
    "before_mlp": attention on the encoder outputs, then ``l``, then max. Without attention it is
    SGMC's projector (``l`` then max). Invariant to the order of a group's members.
    """

    def __init__(self, d_in: int, dims: list[int], dropout: float, attention: bool = True,
                 heads: int = 8, position: Literal["after_mlp", "before_mlp"] = "after_mlp",
                 official: bool = False):
        super().__init__()
        self.mlp = basic_projector(d_in, dims, dropout, official)
        self.position = position
        width = dims[-1] if position == "after_mlp" else d_in
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True) if attention \
            else None
        self.out_dim = dims[-1]

    def attend(self, z: torch.Tensor) -> torch.Tensor:
        """Eq. 5-7: self-attention across the members of each group, ``(G, Q, d)``."""
        if self.attention is None:
            return z
        return self.attention(z, z, z, need_weights=False)[0]

    def project(self, h: torch.Tensor) -> torch.Tensor:
        """``l`` on every member of ``(G, Q, D)`` (batch norm over all G*Q members)."""
        return self.mlp(h.flatten(0, 1)).unflatten(0, h.shape[:2])

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.position == "after_mlp":
            z = self.attend(self.project(h))
        else:
            z = self.project(self.attend(h))
        return z.amax(dim=1)                                              # Eq. 8


def classifier_head(d_in: int, dims: list[int], n_classes: int, dropout: float) -> nn.Sequential:
    """Table I: Linear -> BN -> ReLU per hidden layer, dropout before the output layer."""
    layers: list[nn.Module] = []
    for width in dims:
        layers += [nn.Linear(d_in, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
        d_in = width
    return nn.Sequential(*layers, nn.Dropout(dropout), nn.Linear(d_in, n_classes))


# --------------------------------------------------------------------------- method

class MEMHACLConfig(MethodConfig):
    modalities: list[str] = Field(default_factory=lambda: ["eeg", "gsr", "resp", "temp"],
                                  description="modalities stacked on the channel axis")
    official: bool = Field(False, description="SGMC code's behaviour (see module docstring)")
    pretrain: bool = Field(True, description="false: the fully-supervised variant")
    pretrain_epochs: int = Field(4000, ge=1)
    P: int = Field(8, ge=2, description="stimulus clips per pre-training mini-batch")
    Q: int = Field(2, ge=1, description="subjects per group (2Q per clip)")
    pretrain_lr: float = Field(1e-4, gt=0)
    temperature: float = Field(0.1, gt=0)
    meiosis_on: Literal["all", "eeg"] = "all"
    use_unlabeled: bool = Field(True, description="pre-train also on unlabelled non-test data")
    base_width: int = Field(64, ge=1, description="encoder maps of stage 1 (x8 = embedding)")
    projector_dims: list[int] = Field(default_factory=lambda: [1024, 2048, 4096])
    projector_dropout: float = Field(0.5, ge=0, lt=1)
    attention: bool = True
    attention_heads: int = Field(8, ge=1)
    attention_position: Literal["after_mlp", "before_mlp"] = "after_mlp"
    classifier_dims: list[int] = Field(default_factory=lambda: [256, 128])
    classifier_dropout: float = Field(0.5, ge=0, lt=1)
    normalize: Literal["channel", "recording", "spatial", "none"] = Field(
        "channel", description="channel: mean / std of the training windows; recording: "
        "mean / std of each recording's own windows in every part (transductive at test); "
        "spatial: SGMC's per-sample z-score across channels")
    finetune_epochs: int = Field(20, ge=1)
    batch_size: int = Field(2048, ge=2, description="fine-tuning batch")
    lr: float = Field(1e-3, gt=0, description="fine-tuning learning rate")
    select_on: Literal["loss", "balanced_accuracy"] = Field(
        "loss", description="validation score that picks the fine-tuning epoch")
    patience: int | None = Field(None, ge=1, description="early stopping on the validation "
                                                          "score (select_on)")
    eval_batch_size: int = Field(1024, ge=1)

    @model_validator(mode="after")
    def _check(self) -> MEMHACLConfig:
        if not self.modalities:
            raise ValueError("modalities must not be empty")
        if not self.projector_dims:
            raise ValueError("projector_dims must not be empty")
        if self.meiosis_on == "eeg" and "eeg" not in self.modalities:
            raise ValueError("meiosis_on='eeg' needs 'eeg' in modalities")
        if self.attention:
            width = self.projector_dims[-1] if self.attention_position == "after_mlp" \
                else 8 * self.base_width
            if width % self.attention_heads:
                raise ValueError(f"attention width {width} is not divisible by "
                                 f"attention_heads={self.attention_heads}")
        return self


@register_method
class MEMHACL(Method):
    name = "me_mhacl"
    summary = ("group meiosis contrastive pre-training of a ResNet-18-1D on raw EEG + GSR + "
               "Resp + Temp windows, multi-head attention group projector, fine-tuning")
    Config = MEMHACLConfig
    presets = {
        # default: the fast encoder and pre-training with a longer fine-tuning that stops on
        # the validation score, and every recording standardised on its own windows
        # (transductive, declared in the run summary). With training statistics the ResNet
        # memorises the training subjects' gains (training accuracy 0.94-1.00, test at
        # chance); per-recording statistics remove the subject gain that dwarfs the effect.
        "default": {"pretrain_epochs": 20, "P": 8, "Q": 1, "base_width": 8,
                    "pretrain_lr": 1e-3, "projector_dims": [64, 64, 128],
                    "finetune_epochs": 40, "patience": 8, "batch_size": 32,
                    "select_on": "balanced_accuracy", "normalize": "recording"},
        "paper": {"modalities": PAPER_DEAP_MODALITIES},
        "paper_mahnob": {"P": 4, "Q": 8, "pretrain_epochs": 475, "batch_size": 256,
                         "modalities": ["eeg", "gsr", "resp", "temp"]},
        "sgmc_official": {"official": True, "attention": False, "projector_dropout": 0.2,
                          "classifier_dropout": 0.2, "modalities": ["eeg"],
                          "normalize": "spatial",
                          "finetune_epochs": 10, "batch_size": 512},
        # fast: a narrow encoder, but enough pre-training for the contrastive loss to fall well
        # below chance (2 epochs left it at log(2P - 1)). Q = 1 so that two training subjects
        # suffice; on synthetic DEAP arousal this pre-training adds 3-4 points of balanced
        # accuracy over the fully-supervised variant (benchmarks/me_mhacl_learning.py).
        "fast": {"pretrain_epochs": 20, "P": 8, "Q": 1, "base_width": 8, "pretrain_lr": 1e-3,
                 "projector_dims": [64, 64, 128], "finetune_epochs": 10, "batch_size": 32,
                 "select_on": "balanced_accuracy"},
    }
    # Table III: ``paper`` on MAHNOB-HCI means the paper's MAHNOB-HCI column.
    dataset_presets = {("paper", "mahnob"): "paper_mahnob"}
    data_presets = {"deap": "me_mhacl", "mahnob": "me_mhacl"}
    protocols = ("random_window", "subject_kfold", "loso", "stimulus_kfold", "label_ratio")
    # Arousal: its synthetic effect spans every EEG band and the peripheral channels; the
    # valence effect (gamma, frontal alpha asymmetry) is too narrow for a CNN on raw 1 s
    # windows of 3 synthetic subjects (README, "Learning on synthetic data").
    baseline_inputs = {"preset": "default", "options": {"window_s": 1.0}}
    self_supervised = True
    # the demo's 3 synthetic subjects leave 2 training subjects per fold, both needed for the
    # 2Q-subject clips of pre-training: validate on their trials
    demo = {"dataset": "deap", "protocol": "subject_kfold", "labels": "binary_arousal",
            "options": {"protocol": {"val_by": "trial"}},
            "protocol_options": {"random_window": {"unit": "clip"}}}

    config: MEMHACLConfig

    # ------------------------------------------------------------------ data
    @classmethod
    def used_modalities(cls, config: dict, names: Sequence[str]) -> list[str]:
        return [name for name in config["modalities"] if name in names]

    def _stack(self, windows: WindowSet, allow_missing: bool = False) -> torch.Tensor:
        """The configured modalities stacked on the channel axis: ``(n, C, M)`` float32.

        A window holding NaN (a missing modality) is an error unless ``allow_missing``."""
        parts = []
        for name in self.config.modalities:
            shape = windows.shape(name)
            if len(shape) != 2:
                raise ConfigError("method.modalities", f"'{name}' has per-window shape {shape}; "
                                  "me_mhacl needs raw windows (channels, samples): use the "
                                  "me_mhacl data preset")
            parts.append(windows.tensor(name))
        lengths = {p.shape[-1] for p in parts}
        if len(lengths) != 1:
            raise ConfigError("method.modalities", f"modalities have different window lengths "
                              f"{sorted(lengths)}; they must share one sampling rate")
        x = torch.cat(parts, dim=1).float()
        if not allow_missing and not torch.isfinite(x).all():
            raise ConfigError("method.modalities", "windows hold NaN (missing modality); drop "
                              "them or choose other modalities")
        return x

    @classmethod
    def uses_test_statistics(cls, config: dict) -> bool:
        return config.get("normalize") == "recording"

    @classmethod
    def label_options(cls, config: dict) -> dict:
        """``official``: SGMC's ``rating >= 5`` is high (``labels.inclusive``)."""
        return {"inclusive": True} if config.get("official") else {}

    @property
    def n_outputs(self) -> int:
        """Classifier outputs: the task's classes, or SGMC's fixed 4 under ``official``."""
        return max(OFFICIAL_OUTPUTS, self.n_classes) if self.config.official else self.n_classes

    def _normalize(self, x: torch.Tensor, meta: pd.DataFrame) -> torch.Tensor:
        """Normalise stacked windows ``(n, C, M)``; ``meta``: their rows (recording keys)."""
        if self.config.normalize == "recording":
            return recording_zscore(x, meta)
        if self.config.normalize == "channel":
            return (x - self.mean_) / self.std_
        if self.config.normalize == "spatial":
            return spatial_zscore(x)
        return x

    def _check_split(self, split: Split) -> None:
        unknown = [m for m in self.config.modalities if m not in split.modalities]
        if unknown:
            raise ConfigError("method.modalities", f"{unknown} not usable in this fold; "
                              f"available: {', '.join(split.modalities)}")

    # ------------------------------------------------------------------ model
    def build(self, widths: dict[str, int]) -> None:
        """Create ``f``, ``g`` and the classifier for modalities of ``widths`` channels each."""
        cfg = self.config
        self.widths_ = {name: widths[name] for name in cfg.modalities}
        self.rows_ = self._meiosis_rows()
        blocks = (sgmc_blocks if cfg.official else paper_blocks)(cfg.base_width)
        self.encoder_ = ResNet1D(cfg.base_width, blocks).to(self.device)
        self.projector_ = GroupProjector(
            self.encoder_.out_dim, cfg.projector_dims, cfg.projector_dropout, cfg.attention,
            cfg.attention_heads, cfg.attention_position, cfg.official).to(self.device)
        self.classifier_ = classifier_head(self.encoder_.out_dim, cfg.classifier_dims,
                                           self.n_outputs, cfg.classifier_dropout).to(self.device)

    def _meiosis_rows(self) -> torch.Tensor | None:
        """Channels that take part in meiosis (``meiosis_on="eeg"``: the EEG rows only)."""
        if self.config.meiosis_on == "all":
            return None
        return torch.cat([torch.full((width,), name == "eeg")
                          for name, width in self.widths_.items()]).to(self.device)

    def augment(self, x: torch.Tensor, idx: torch.Tensor, c: int) -> torch.Tensor:
        """Sampled windows -> the 2P meiosis groups ``(2P, Q, C, M)`` (A groups first)."""
        groups = x[idx]                                                   # (P, 2Q, C, M)
        axis = "channel" if self.config.official else "time"
        mask = crossover_mask(groups.shape[-2], groups.shape[-1], c, axis, self.rows_,
                              groups.device)
        a, b = meiosis(groups, mask)
        if self.config.official:
            a, b = b, a          # SGMC's first group keeps member k's first c rows
        return torch.cat([a, b])

    def group_loss(self, groups: torch.Tensor) -> torch.Tensor:
        """Eq. 4-12 for the 2P groups ``(2P, Q, C, M)``."""
        n_groups, q = groups.shape[:2]
        h = self.encoder_(groups.flatten(0, 1)).unflatten(0, (n_groups, q))   # Eq. 4
        return self.contrastive_loss(self.projector_(h))                      # Eq. 5-8

    def contrastive_loss(self, z: torch.Tensor) -> torch.Tensor:
        """Eq. 9-12 over the group vectors ``(2P, H)`` (A groups first); ``official``: the sum
        of the two directions (SGMC), twice the mean."""
        p = len(z) // 2
        loss = nt_xent(z[:p], z[p:], self.config.temperature)
        return 2 * loss if self.config.official else loss

    def pretrain_optimiser(self) -> torch.optim.Adam:
        """Adam over ``f`` and ``g`` at ``pretrain_lr``."""
        return _adam([*self.encoder_.parameters(), *self.projector_.parameters()],
                     self.config.pretrain_lr)

    def pretrain_step(self, x: torch.Tensor, idx: torch.Tensor, c: int,
                      optimiser: torch.optim.Optimizer) -> torch.Tensor:
        """One pre-training iteration on the windows ``x[idx]`` with split point ``c``
        (Algorithm 1 lines 6-11); returns the detached loss."""
        loss = self.group_loss(self.augment(x, idx, c))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        return loss.detach()

    # ------------------------------------------------------------------ training
    def fit(self, train: Split, unlabeled: Split | None = None,
            val: Split | None = None) -> MEMHACL:
        x, generator = self._setup(train)
        if self.config.pretrain:
            self._pretrain(x, train.windows.meta, unlabeled, generator)
        del self.projector_                               # Algorithm 1: throw away g
        self._finetune(x, train.y, val, generator)
        return self

    def _setup(self, train: Split) -> tuple[torch.Tensor, torch.Generator]:
        """Seed, fit the channel statistics on the training windows, build ``f``, ``g`` and the
        classifier; return the normalised training windows and the training generator."""
        cfg = self.config
        generator = seed_everything(self.seed)
        self._check_split(train)
        x = self._stack(train.windows)
        mean, std = channel_stats(x)
        self.mean_, self.std_ = mean[0], std[0]
        x = self._normalize(x, train.windows.meta).to(self.device)
        self.build({name: train.windows.shape(name)[0] for name in cfg.modalities})
        self.extras_: dict[str, float] = {}
        return x, generator

    def pretext_features(self, train: Split, unlabeled: Split | None, parts: Sequence[Split],
                         pretrain: bool = True) -> list[np.ndarray]:
        """Per window, the frozen base encoder ``f``'s output (Eq. 4, the input of the
        fine-tuning classifier): ``(n, 8 * base_width)`` (512 at the paper's width).

        Inputs: the configured modalities stacked on the channel axis and normalised as in
        ``fit`` (``normalize="channel"``: mean / std of the training windows). ``pretrain``:
        ``f`` after the group meiosis contrastive stage alone (Algorithm 1, as ``fit`` runs it)
        on the training windows (labels unused) plus, with ``use_unlabeled``, the unlabelled
        part; the config's ``pretrain`` switch is not read here. Without ``pretrain`` the same
        modules (same seed) keep their random initialisation (batch norm at its initial
        statistics). Eval mode, batches of ``eval_batch_size``. A window of a part holding NaN
        is a NaN row; NaN in the training windows is an error, as in ``fit``.
        """
        x, generator = self._setup(train)
        if pretrain:
            self._pretrain(x, train.windows.meta, unlabeled, generator)
        del self.projector_
        out = []
        for part in parts:
            self._check_split(part)
            raw = self._stack(part.windows, allow_missing=True)
            complete = torch.isfinite(raw.flatten(1)).all(dim=1)
            feats = np.full((len(part), self.encoder_.out_dim), np.nan)
            if complete.any():
                rows = part.windows.meta.iloc[complete.numpy()]
                h = self._encode(self._normalize(raw[complete], rows).to(self.device))
                feats[complete.numpy()] = h.cpu().numpy()
            out.append(feats)
        return out

    def _pretrain_data(self, x: torch.Tensor, meta: pd.DataFrame,
                       unlabeled: Split | None) -> tuple[torch.Tensor, pd.DataFrame]:
        """Training windows plus, if allowed, the unlabelled non-test windows."""
        if not (self.config.use_unlabeled and unlabeled is not None and len(unlabeled)):
            return x, meta
        if any(m not in unlabeled.windows.names for m in self.config.modalities):
            return x, meta
        extra = self._normalize(self._stack(unlabeled.windows),
                                unlabeled.windows.meta).to(self.device)
        return torch.cat([x, extra]), pd.concat([meta, unlabeled.windows.meta],
                                                ignore_index=True)

    def _pretrain(self, x: torch.Tensor, meta: pd.DataFrame, unlabeled: Split | None,
                  generator: torch.Generator) -> None:
        cfg = self.config
        x, meta = self._pretrain_data(x, meta, unlabeled)
        sampler = GroupSampler(meta, cfg.P, cfg.Q)
        self.extras_.update(pretrain_clips=float(sampler.n_clips),
                            pretrain_clips_skipped=float(sampler.n_clips_skipped),
                            pretrain_windows_skipped=float(sampler.n_windows_skipped))
        if sampler.n_clips_skipped:
            log.info("me_mhacl: %d clips (%d windows) have fewer than 2Q=%d subjects and are "
                     "left out of pre-training", sampler.n_clips_skipped,
                     sampler.n_windows_skipped, 2 * cfg.Q)
        if not sampler.batch_sizes():
            log.warning("me_mhacl: no stimulus clip has 2Q=%d subjects; pre-training skipped",
                        2 * cfg.Q)
            return
        optimiser = self.pretrain_optimiser()
        n_epochs = cfg.pretrain_epochs + cfg.finetune_epochs
        self.encoder_.train()
        self.projector_.train()
        for epoch in range(cfg.pretrain_epochs):
            total = torch.zeros((), device=self.device)
            batches = to_device(sampler.epoch(generator), self.device)   # one copy per epoch
            for idx in batches:
                c = draw_split(x.shape[-1], generator, cfg.official)
                total += self.pretrain_step(x, idx, c, optimiser)
            mean_loss = float(total) / len(batches)
            self.report_epoch(epoch, n_epochs, pretrain_loss=mean_loss)
        self.extras_["pretrain_loss"] = mean_loss

    def _finetune(self, x: torch.Tensor, y: np.ndarray, val: Split | None,
                  generator: torch.Generator) -> None:
        cfg = self.config
        model = nn.Sequential(self.encoder_, self.classifier_)
        optimiser = _adam(list(model.parameters()), cfg.lr)
        y_t = torch.as_tensor(y, dtype=torch.long, device=self.device)
        x_val = y_val = None
        if val is not None and len(val):
            self._check_split(val)
            x_val = self._normalize(self._stack(val.windows), val.windows.meta).to(self.device)
            y_val = torch.as_tensor(val.y, dtype=torch.long, device=self.device)
        best, best_state, best_epoch, waited = (np.inf, np.inf), None, -1, 0
        offset = cfg.pretrain_epochs if cfg.pretrain else 0
        for epoch in range(cfg.finetune_epochs):
            model.train()
            for idx in self._finetune_batches(len(x), generator):
                loss = F.cross_entropy(model(x[idx]), y_t[idx])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
            if x_val is None:
                self.report_epoch(offset + epoch, offset + cfg.finetune_epochs)
                continue
            score = self._val_score(x_val, y_val)
            self.report_epoch(offset + epoch, offset + cfg.finetune_epochs, val_loss=score[1],
                              val_balanced_accuracy=-score[0])
            if cfg.select_on == "loss":
                score = score[::-1]
            if score[0] < best[0] - 1e-4 or (abs(score[0] - best[0]) <= 1e-4
                                              and score[1] < best[1]):
                best, best_epoch, waited = score, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                waited += 1
                if cfg.patience is not None and waited >= cfg.patience:
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
            self.extras_["finetune_best_epoch"] = float(best_epoch)

    def _finetune_batches(self, n: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        """One epoch of fine-tuning batches: full batches only, or (``official``) also the
        partial last one, as SGMC's loader; never a batch of one window (batch norm)."""
        for idx in minibatches(n, self.config.batch_size, generator,
                               drop_last=not self.config.official, device=self.device):
            if len(idx) > 1:
                yield idx

    def _val_score(self, x_val: torch.Tensor, y_val: torch.Tensor) -> tuple[float, float]:
        """(-balanced accuracy, cross-entropy) on the validation part; lower is better."""
        logits = self._logits(x_val)
        y_true = y_val.cpu().numpy()
        predicted = logits[:, :self.n_classes].argmax(dim=1).cpu().numpy()
        accuracy = balanced_accuracy_score(y_true, predicted)
        return -float(accuracy), float(F.cross_entropy(logits, y_val))

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder outputs ``(n, out_dim)`` in eval mode, in batches."""
        self.encoder_.eval()
        step = self.config.eval_batch_size
        return torch.cat([self.encoder_(x[start:start + step])
                          for start in range(0, len(x), step)])

    @torch.no_grad()
    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, embeddings) in eval mode, in batches."""
        embeddings = self._encode(x)
        self.classifier_.eval()
        step = self.config.eval_batch_size
        logits = torch.cat([self.classifier_(embeddings[start:start + step])
                            for start in range(0, len(embeddings), step)])
        return logits, embeddings

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)[0]

    def predict(self, test: Split) -> Predictions:
        x = self._normalize(self._stack(test.windows), test.windows.meta).to(self.device)
        logits, embeddings = self._forward(x)
        probs = torch.softmax(full_precision(logits[:, :self.n_classes]), dim=1)  # official: 4
        return Predictions(probs.cpu().numpy(), embeddings=full_precision(embeddings).cpu().numpy(),
                           extras=dict(self.extras_))


def _adam(params: list[nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam; the fused kernel where the device has one (same update, one pass over memory)."""
    fused = params[0].device.type in ("cpu", "cuda")
    return torch.optim.Adam(params, lr=lr, fused=fused or None)
