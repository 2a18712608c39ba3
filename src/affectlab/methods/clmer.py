"""CLMER: contrastive time-series encoders per modality + pairwise cross-modal attention fusion.

References
----------
Anonymous, "CLMER: a Framework for Contrastive Learning-based Multi-modal Emotion Recognition",
preprint (no venue or year); its temporal contrast follows TS-TCC / CA-TCC (Eldele et al.,
[36]) and its fusion the cross-modal transformer of MulT (Tsai et al., [29]). No official code
is available, so there is no ``official`` switch.

Pipeline
--------
Data (data preset ``clmer``): every physiological channel resampled to 128 Hz, the fast ones
(EEG, EOG, EMG, ECG, PPG) band-passed 4-45 Hz, as ``(samples, channels)``; the face
"serialized" from the OpenFace CSVs onto a 1 s grid inside the window (frames with
``success = 0`` masked): 68 3-D landmarks ``(steps, 204)``, 17 AU intensities ``(steps, 17)``
and gaze ``(steps, 8)``. The method's modalities are
``physiology`` (all physiological channels of the Split, concatenated), ``landmarks``, ``au`` and
``gaze``; any subset can be chosen (``modalities``; Tables IV-VII). Each is z-scored per channel
with statistics of the training part (physiology first per recording with
``normalize="recording"``, the ``default`` preset).

1. Self-supervised pre-training, one encoder per modality (Sec. III-C, Fig. 2): a weak view
   (scaling + jitter) and a strong view (segment permutation + jitter) of each window go through a
   convolutional encoder (TS-TCC's three conv blocks) to a sequence ``z`` of ``T'`` steps. A
   transformer with a summary token turns ``z_1..z_t`` into ``s_t`` (t random per batch).
   ``L_sample``: NT-Xent between the projected summaries of the two views (Eq. 1-2,
   :func:`affectlab.losses.nt_xent`). ``L_temporal``: ``F_i(s_t)`` predicts ``z_{t+i}`` of the
   *other* view against the same step of the batch's other windows (Eq. 3,
   :func:`affectlab.losses.temporal.temporal_contrastive_loss`), the past and the future of
   the cut encoded apart (see Interpretation).
   ``L_sequence = lambda_1 L_sample + lambda_2 L_temporal`` (Eq. 4). Adam 3e-4, weight decay 3e-4,
   batch 64, 500 epochs (Sec. IV-C). The stage reads every window it may see without labels:
   the training part, the validation part and the protocol's unlabelled part (never the test
   part of a non-transductive protocol), z-scored with the training statistics.
2. Fusion (Sec. III-D, Fig. 3): the (frozen) encoders' sequences, a learned token-length map per
   modality to a common length ``L`` (Sec. IV-G, Tables XI-XII), a linear projection to
   ``d_model`` plus sine position codes, then ``k (k-1)`` pairwise multi-head cross-modal
   transformers (Eq. 5-7, :mod:`affectlab.nn.cross_attention`), their outputs mean-pooled over
   tokens, concatenated, and an MLP classifier. Adam 1e-3, learning rate x0.1 after 20 epochs
   without improvement (reduce-on-plateau, on the validation loss when a validation part is
   given, else on the training loss), 300 epochs, the last epoch kept (``select_best``: the
   epoch with the lowest validation loss; ``patience``: early stopping). Predictions are per
   window.

Interpretation (ambiguities and deviations)
-------------------------------------------
* Filtering: the paper band-passes "physiological signals" at 4-45 Hz (DEAP, AMIGOS). Applied
  to GSR, respiration and temperature, whose content lies below 4 Hz, that band removes the
  signal and leaves noise; the ``clmer`` preset therefore band-passes only EEG and the fast
  peripheral signals and leaves the slow ones resampled and baseline-corrected
  (``--set data.slow_bandpass=[0.05,2]`` filters them too; ``data.slow_bandpass=[4,45]`` is the
  literal reading).
* Window length: the paper gives none for DEAP; it cuts 5 s segments from AMIGOS' long videos.
  The ``clmer`` data preset uses 5 s windows (5 face steps) for every dataset
  (``--set data.window_s=...`` changes it).
* Tokens: Sec. IV-G counts tokens as *channels* (DEAP physiology 40, landmarks 3, AU 2), while
  Sec. III motivates the serialization by *temporal* alignment and the encoders output time
  sequences. Default ``tokens="time"``: a token is one time step of the encoder output (or of the
  raw series without pre-training); ``tokens="channels"`` transposes, so a token is one
  channel (raw) or one feature map (encoded) with its time course as features. Landmarks then
  give 204 coordinate tokens, not the paper's 3.
* Token-length map: a learned linear map across the token axis (a kernel-1 convolution with the
  tokens as channels), initialised as a resampling of the token axis: bin means when it
  shortens (every input token counts; a linear-interpolation start, which reads 2 of every 4
  encoded steps at 80 -> 20, left the physiology branch at chance: LOSO 0.54 against 0.74 on
  synthetic DEAP), linear interpolation when it lengthens. ``token_length="auto"`` takes the
  paper's best value for the dataset and the number of classes: on DEAP 60 (binary), 70 (4
  classes), 50 (9 classes) (Table XI); on AMIGOS 15 (binary and 4 classes; Table XII's best
  for arousal alone is 10, which the class count cannot tell from valence). Other datasets and
  class counts keep each modality's own length (``None``), which cross-attention allows.
* Eq. 2 sums ``c = 1..2N`` over pairs ``(2c-1, 2c)``, which would index 4N views; it is read as
  SimCLR's mean over the ``2N`` anchors (``nt_xent``). Temperature 0.2 (TS-TCC).
* Eq. 3, negatives: as printed, ``j in T \\ {t}`` are the other steps of the same sequence
  (``temporal_negatives="time"``). Every candidate then sits at a different position, and an
  encoder that marks positions (zero padding at the window's ends) scores the true future
  step without reading its content: on i.i.d. noise, whose future the past cannot predict,
  that reading falls from chance ln 4 = 1.39 to 0.08 on 5-step series (test suite). The
  default takes the negatives from the batch (``"batch"``, TS-TCC's code): the same future
  step of the other sequences, at the same position, so only content can separate them.
* Eq. 3, context: TS-TCC encodes each view whole and lets ``s_t`` (steps ``1..t``) predict
  steps ``t+1..t+M``. A convolutional encoder's receptive field makes the last summarised
  steps and the first targets read the same input samples, so part of the task is solved by
  copying: on i.i.d. noise batch negatives still fall from ln 32 = 3.47 to 1.2
  (``temporal_context="shared"``). The default (``"split"``) cuts every window at a random
  encoded step, augments and encodes the past and the future apart (the strong view's
  segment permutation stays inside its side), and lets the summary of one view's past predict
  the first ``M`` steps of the other view's future. The shuffled-content control (i.i.d.
  noise) then stays at chance while predictable series are learned (test suite). The paper's
  text (summary of the past predicts the future) holds in both readings.
* Eq. 3, softmax: over the candidate futures of each prediction (``temporal_softmax=
  "futures"``, the printed denominator) or, as TS-TCC's code (``LogSoftmax`` along the
  predictions axis), over the batch's predictions for each true future (``"predictions"``).
  The two cross-view losses are averaged (``temporal_views="mean"``) or summed as TS-TCC's
  code does (``"sum"``). TS-TCC's code also L2-normalises every encoded step before its
  temporal module (``temporal_normalize=True``; off by default: Eq. 3 names no
  normalisation). One linear ``F_i`` per step ahead (TS-TCC's ``W_k``; Eq. 3 writes a
  single ``F``); ``sim`` is the dot product. Steps ahead ``M = min(pred_steps, T' // 2)``; the
  cut is drawn once per batch.
* Measured effect of the pre-training (synthetic DEAP, 8 subjects, 8 s trials, physiology only,
  LOSO, the first 4 folds, seed = fold index). Linear probe of frozen time-mean encoder features
  (:mod:`affectlab.probe`): with training-part z-scores and per-channel weak scaling the
  pre-trained features score 0.596 against 0.563 at random initialisation, inside the spread.
  With ``normalize="recording"`` and ``weak_scaling="window"`` (below; the ``default`` preset)
  they score 0.635 against 0.514, higher in every fold. Fine-tuned through the fusion
  (``default`` preset, ``encoder="finetune"``), pre-training does not help on these copies
  (one 5 s window per 8 s trial, about 280 training windows): 0.540 pre-trained against 0.644
  without (``pretrain=False``, same architecture); 0.545 against 0.672 with the earlier
  choices; both arms overfit within a few epochs and the validation part picks a lucky
  epoch. On 30 s trials (6 windows per trial, 1200 training windows, validation on 2 whole
  training subjects), same setting, the first 7 LOSO folds: 0.736, 0.816, 0.761, 0.688,
  0.732, 0.582, 0.725 pre-trained (mean 0.720) against 0.581, 0.620, 0.848, 0.708, 0.788,
  0.500, 0.746 without (mean 0.684): ahead on average and in 3 of the 7 folds, not yet a
  consistent gain. Fine-tuning the encoders at a tenth of the fusion's learning rate
  (``encoder_lr=1e-4``, with or without ``frozen_epochs=10``) brought the pre-trained arm to
  chance (0.503 on the first of those folds).
* Fine-tuning recipe (not in the paper, which freezes the encoders): with
  ``encoder="finetune"``, ``frozen_epochs`` trains the fusion on frozen encoders (weights and
  BatchNorm statistics) before every parameter is trained, and ``encoder_lr`` gives the
  encoders their own learning rate: linear probing then fine-tuning (Kumar et al., ICLR 2022,
  arXiv:2202.10054), which keeps a randomly initialised head from overwriting pre-trained
  features in the first epochs. Off by default (0, ``None``).
* Eq. 4 weights: not given; TS-TCC's 0.7 (sample / contextual) and 1.0 (temporal).
* Augmentations: not specified beyond their kind; weak = scaling by ``N(1, weak_scale)`` +
  Gaussian jitter ``weak_jitter``; strong = permutation of up to ``max_segments`` random
  segments of the time axis + jitter ``strong_jitter`` (inputs are z-scored, so the jitter is
  in standard deviations). The scale factor is drawn per window and shared by its channels
  (``weak_scaling="window"``, default), as TS-TCC's code shares its factor over channels (it
  draws one per time step from ``N(2, 1.1)``; that reading is not reproduced).
  ``weak_scaling="channel"`` draws one per (window, channel): it teaches the encoder to ignore
  the channels' relative amplitude, which is where band-power effects such as a frontal alpha
  asymmetry live (a 20 % scale noise is larger than the emotional effects on synthetic DEAP).
* Normalisation: the paper names none. Every modality is z-scored per channel with the
  training part's statistics. ``normalize="recording"`` (the ``default`` preset) first
  z-scores the physiological channels over each recording (subject-session) itself: a
  subject's amplitude level (electrode impedance, gain) identifies the subject, and the
  contrastive task, which must tell windows apart, otherwise learns that cue first; it says
  nothing about a new subject's emotion. The test part's recordings use their own statistics
  (no labels, but transductive; the run summary says so).
* Landmarks: OpenFace's 3-D landmarks are camera coordinates in mm, dominated by the head's
  position; the paper names no normalisation. By default each step's centroid of the 68 points
  is subtracted per axis (``center_landmarks``), so the series describe facial geometry and its
  movement. That geometry is mostly the person's face: under LOSO on synthetic DEAP a logistic
  regression on window-mean landmarks is at chance (0.53), and 0.92 once each recording's mean
  face is subtracted. So, also by default, every recording (subject-session) has its own mean
  face removed (``landmark_reference="recording"``; the mean over that recording's windows in
  the part being processed, the test part included: no labels, but transductive, and the run
  summary says so; ``"none"`` turns it off). Then every modality is z-scored per channel on the
  training part.
* "Fusion w/o CL" (``pretrain=False``): the fusion module reads the z-scored series directly
  (no encoder), as the paper's ablation rows describe. With ``pretrain=True`` the encoders are
  frozen feature extractors (``encoder="finetune"`` trains them with the fusion;
  ``pretrain=False, encoder="finetune"`` trains randomly initialised encoders with the fusion,
  which isolates the effect of the pre-training).
* Both views go through the encoder in one batch (BatchNorm statistics over both; TS-TCC runs
  two passes).
* A single modality has no pair: it gets one self-attention transformer (the paper trains "a
  10-layer transformer" for its single-modality rows; the depth here is ``n_layers``).
* Transformer sizes, dropout and the classifier are not given: MulT's (d 40, 5 heads, 4 layers,
  feed-forward 4d, dropout 0.1); encoder TS-TCC's (32, 64, 128 channels, kernel 8, max-pool 2,
  dropout 0.35); summary transformer 64 wide, 4 layers, 4 heads, with sine position codes
  (TS-TCC's has none). Token embeddings are scaled by ``sqrt(d)`` before the position codes
  (MulT); dropout acts on residual branches, not on attention weights. For a face series (1 s
  steps, ``T < 64``) the encoder uses kernel 3 and no pooling, so its ``T'`` equals the steps.
* Model selection: the paper trains a fixed number of epochs and so does the default; the
  validation part (never the test part) drives the learning-rate plateau and, when asked,
  best-epoch selection and early stopping. Windows lacking a chosen modality are left out of
  training; at prediction a missing modality is filled with the training mean (0 after
  z-scoring) and counted in ``Predictions.extras["n_windows_imputed"]``.
* Presets: ``paper`` has the values above. ``fast`` (seconds on a CPU) shrinks every network,
  pre-trains 4 epochs, trains the fusion 30 epochs at token length 20 and fine-tunes the encoders
  (``encoder="finetune"``): encoders pre-trained that briefly are poor frozen features on small
  synthetic sets (trial-wise within-subject valence on synthetic DEAP: about 0.5 frozen vs 0.75
  fine-tuned).
* Labels: on AMIGOS the paper gives each video the quadrant AMIGOS chose it for
  (``--labels video_quadrant``: the quadrant of the video's mean rating over the participants,
  as the release has no such table); ``quadrant`` uses each viewer's own ratings.
* The raw-frame ablation (Table VIII-X: 32x32 downsampled frames, MobileViT features) is not
  possible: the datasets' face videos are not read, only OpenFace CSVs.
* The paper's "multi-class average accuracy" (Eq. 8-9) is the mean of one-vs-rest accuracies;
  the runner reports it as ``ovr_accuracy`` (:func:`affectlab.evaluation.ovr_accuracy`) next to
  plain accuracy, with ``ovr_accuracy_chance`` beside it: the score of the best constant
  prediction, which is high for many classes (0.80 for 9 balanced classes). Its split is
  ``random_window`` 70/15/15 (leaky); ``subject_dependent`` and ``loso`` are the leak-free
  protocols.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from affectlab.data import recording_rows
from affectlab.errors import ConfigError
from affectlab.losses.contrastive import nt_xent
from affectlab.losses.temporal import sequence_loss, temporal_contrastive_loss
from affectlab.methods.base import Method, MethodConfig, Predictions, Split, register_method
from affectlab.nn.cross_attention import (
    PairwiseCrossModalAttention,
    TokenLengthMap,
    sinusoidal_positions,
)
from affectlab.training import (
    StepValues,
    draw_int,
    full_precision,
    minibatches,
    seed_everything,
    standardize_fit,
)

#: method modality -> WindowSet modality (``physiology`` = every other modality of the Split)
FACE_GROUPS = {"landmarks": "face_landmarks", "au": "face_au", "gaze": "gaze"}
#: best token lengths per (dataset, number of classes): Table XI (DEAP: 60 binary, 70 for the
#: 4 valence-arousal classes, 50 for 9) and Table XII (AMIGOS short videos: 15 for valence and
#: for 4 classes; arousal's best, 10, is not told apart from valence by the class count)
AUTO_TOKEN_LENGTH = {("deap", 2): 60, ("deap", 4): 70, ("deap", 9): 50,
                     ("amigos", 2): 15, ("amigos", 4): 15}
INFERENCE_CHUNK = 512


# --------------------------------------------------------------------------- face serialization

def face_step_counts(valid: np.ndarray, frame_times: np.ndarray, starts: np.ndarray,
                     step_s: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Frames per step of the serialization grid: ``(valid counts, invalid counts)``.

    valid: ``(n_frames,)`` OpenFace frame validity (``success == 1`` and confident);
    frame_times: ``(n_frames,)`` seconds; starts: ``(n_steps,)`` step start times. A step with
    no valid frame is NaN in :func:`affectlab.features.masked_window_mean`.
    """
    valid = np.asarray(valid, bool)
    inside = (frame_times[None, :] >= starts[:, None]) & (
        frame_times[None, :] < starts[:, None] + step_s)
    return (inside & valid).sum(axis=1), (inside & ~valid).sum(axis=1)


def landmarks_from_recording_mean(x: torch.Tensor, meta: pd.DataFrame) -> torch.Tensor:
    """Subtract from every window's landmark series its recording's mean face.

    x: ``(n, steps, 204)``; meta: the windows' rows (``subject``, ``session``). The mean runs
    over every finite step of the recording's windows in this part: the subject's facial
    geometry, which identifies a person and says nothing about the emotion, is removed and the
    expression (the deviation from that face) is kept. Uses no labels, but at prediction the
    test part's own windows (transductive).
    """
    out = x.clone()
    for rows in recording_rows(meta):
        rows = torch.as_tensor(rows)
        steps = x[rows].reshape(-1, x.shape[-1])
        finite = torch.isfinite(steps).all(dim=1)
        if finite.any():
            out[rows] = x[rows] - steps[finite].mean(dim=0)
    return out


def standardize_per_recording(x: torch.Tensor, meta: pd.DataFrame) -> torch.Tensor:
    """z-score every channel of ``x`` ``(n, steps, C)`` over its recording's finite samples.

    meta: the windows' rows (``subject``, ``session``). Removes each recording's gain and offset
    (a subject's amplitude level identifies the subject and says nothing about a new subject's
    emotion); NaN stays NaN. Uses no labels, but at prediction the test part's own windows
    (transductive).
    """
    out = x.clone()
    for rows in recording_rows(meta):
        rows = torch.as_tensor(rows)
        values = x[rows].reshape(-1, x.shape[-1])
        mean = values.nanmean(dim=0)
        std = (values - mean).square().nanmean(dim=0).sqrt().nan_to_num(1.0).clamp_min(1e-6)
        out[rows] = (x[rows] - mean.nan_to_num(0.0)) / std
    return out


def center_landmarks(x: torch.Tensor) -> torch.Tensor:
    """Subtract each step's centroid of the 68 points per axis (removes head translation).

    x: ``(n, steps, 204)`` with OpenFace's ``X_0..X_67, Y_0.., Z_0..`` column order.
    """
    points = x.reshape(*x.shape[:-1], 3, x.shape[-1] // 3)
    return (points - points.mean(dim=-1, keepdim=True)).reshape(x.shape)


# --------------------------------------------------------------------------- augmentations

def weak_augment(x: torch.Tensor, scale: float, jitter: float,
                 generator: torch.Generator | None = None,
                 per_channel: bool = True) -> torch.Tensor:
    """Scaling by ``N(1, scale)`` per (window, channel) (``per_channel``) or per window, one
    factor shared by its channels, + Gaussian jitter; x ``(B, T, C)``."""
    factor = 1.0 + scale * torch.randn(x.shape[0], 1, x.shape[2] if per_channel else 1,
                                       generator=generator, device=x.device)
    noise = torch.randn(x.shape, generator=generator, device=x.device)
    return x * factor + jitter * noise


def permute_segments(x: torch.Tensor, max_segments: int,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Cut each window's time axis into 1..max_segments random segments and shuffle them.

    x: ``(B, T, C)``. Vectorised: random split points give a segment id per step, a random
    rank per segment orders the segments, a stable sort by ``(rank, step)`` gives the gather
    index. Inside a segment the order of the steps is kept.
    """
    batch, length, _ = x.shape
    segments = max(1, min(max_segments, length))
    device = x.device
    n_seg = torch.randint(1, segments + 1, (batch, 1), generator=generator, device=device)
    cut_rank = torch.rand(batch, length - 1, generator=generator, device=device).argsort(1) \
        .argsort(1)
    is_cut = cut_rank < (n_seg - 1)                      # n_seg - 1 distinct split points
    seg_id = torch.cat([torch.zeros(batch, 1, dtype=torch.long, device=device),
                        is_cut.long().cumsum(1)], dim=1)                        # (B, T)
    seg_rank = torch.rand(batch, segments, generator=generator, device=device).argsort(1) \
        .argsort(1)
    key = seg_rank.gather(1, seg_id) * length + torch.arange(length, device=device)
    order = key.argsort(dim=1)
    return x.gather(1, order[:, :, None].expand_as(x))


def strong_augment(x: torch.Tensor, max_segments: int, jitter: float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Segment permutation + Gaussian jitter; x ``(B, T, C)``."""
    permuted = permute_segments(x, max_segments, generator)
    return permuted + jitter * torch.randn(x.shape, generator=generator, device=x.device)


# --------------------------------------------------------------------------- encoders

class ConvEncoder(nn.Module):
    """TS-TCC's encoder: conv blocks (conv, BatchNorm, ReLU, max-pool) over time.

    ``(B, T, C) -> (B, T', channels[-1])``; padding ``kernel // 2`` as TS-TCC (an even kernel
    adds one step per block), then ``ceil(T / pool)`` per block.
    """

    def __init__(self, n_in: int, channels: list[int], kernel: int, pool: int, dropout: float):
        super().__init__()
        self.kernel, self.pool, self.n_blocks = kernel, pool, len(channels)
        layers: list[nn.Module] = []
        for k, width in enumerate(channels):
            layers += [nn.Conv1d(n_in, width, kernel, padding=kernel // 2, bias=False),
                       nn.BatchNorm1d(width), nn.ReLU()]
            if pool > 1:
                layers.append(nn.MaxPool1d(pool, ceil_mode=True))
            if k == 0:
                layers.append(nn.Dropout(dropout))
            n_in = width
        self.net = nn.Sequential(*layers)

    @property
    def stride(self) -> int:
        """Input samples per encoded step."""
        return self.pool ** self.n_blocks

    def output_length(self, length: int) -> int:
        """``T'`` of an input of ``length`` steps."""
        for _ in range(self.n_blocks):
            length = length + 2 * (self.kernel // 2) - self.kernel + 1
            length = -(-length // self.pool)
        return length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.transpose(1, 2)).transpose(1, 2)


class Summarizer(nn.Module):
    """``s_t`` from ``z_1..z_t``: linear embedding, summary token, transformer (TS-TCC)."""

    def __init__(self, d_in: int, dim: int, n_layers: int, n_heads: int):
        super().__init__()
        self.embed = nn.Linear(d_in, dim)
        self.token = nn.Parameter(torch.randn(1, 1, dim))
        layer = nn.TransformerEncoderLayer(dim, n_heads, dim_feedforward=2 * dim, dropout=0.1,
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z ``(B, t, d_in)`` -> ``(B, dim)``."""
        dim = self.token.shape[-1]
        h = math.sqrt(dim) * self.embed(z) + sinusoidal_positions(z.shape[1], dim, z.device)
        h = torch.cat([self.token.expand(len(z), -1, -1), h], dim=1)
        return self.transformer(h)[:, 0]


def encoder_geometry(length: int, kernel: int) -> tuple[int, int]:
    """(kernel, pool) for a series of ``length`` steps: pooled for signals, not for 1 s faces."""
    return (kernel, 2) if length >= 64 else (3, 1)


class SequenceContrast(nn.Module):
    """One modality's self-supervised model: encoder, summarizer, ``F_i``, projection head.

    A pre-training step cuts every window at an encoded step ``cut`` (drawn per batch by
    :meth:`draw_cut`): the summary ``s`` reads the steps before the cut, ``F_i(s)`` predicts the
    ``M`` steps after it. ``temporal_context`` says how the two sides are encoded:

    ``"split"``   the past and the future are cut apart *before* augmentation and encoding,
                  so no input sample reaches both the summary and a target (and the strong
                  view's segment permutation stays inside its own side).
    ``"shared"``  TS-TCC: each view is augmented and encoded whole; the encoder's receptive
                  field lets the summary's last steps and the first targets read the same
                  input samples, so part of Eq. 3 can be solved by copying rather than
                  predicting.
    """

    def __init__(self, length: int, n_channels: int, cfg: CLMERConfig):
        super().__init__()
        kernel, pool = encoder_geometry(length, cfg.kernel_size)
        self.encoder = ConvEncoder(n_channels, cfg.encoder_channels, kernel, pool,
                                   cfg.encoder_dropout)
        self.length = length
        self.out_length = self.encoder.output_length(length)
        if self.out_length < 2:
            raise ConfigError("data.window_s", f"a modality of {length} steps leaves "
                              f"{self.out_length} encoded step(s); the temporal contrast needs 2")
        d_z, d_s = cfg.encoder_channels[-1], cfg.summary_dim
        self.steps = max(1, min(cfg.pred_steps, self.out_length // 2))
        self.cuts = self._cut_range(cfg.temporal_context)
        self.summarizer = Summarizer(d_z, d_s, cfg.summary_layers, cfg.summary_heads)
        self.predictor = nn.Linear(d_s, self.steps * d_z)          # F_1 .. F_M stacked
        self.projector = nn.Sequential(nn.Linear(d_s, d_s // 2), nn.BatchNorm1d(d_s // 2),
                                       nn.ReLU(), nn.Linear(d_s // 2, d_s // 4))
        self.cfg = cfg

    def _cut_range(self, context: str) -> tuple[int, int]:
        """Smallest and largest cut (encoded steps before it) that leave ``M`` targets."""
        if context == "shared":
            return 1, self.out_length - self.steps
        stride = self.encoder.stride
        largest = max((k for k in range(1, self.length // stride + 1)
                       if self.encoder.output_length(self.length - k * stride) >= self.steps),
                      default=0)
        if largest < 1:
            raise ConfigError("data.window_s", f"a modality of {self.length} steps cannot be "
                              f"cut into a past and {self.steps} future encoded step(s); use a "
                              "longer window or method.temporal_context='shared'")
        return 1, largest

    def draw_cut(self, generator: torch.Generator | None = None) -> int:
        """A random cut in ``[cuts[0], cuts[1]]``."""
        return draw_int(*self.cuts, generator)

    def loss(self, x: torch.Tensor, cut: int,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """L_sequence (Eq. 4) of a batch ``(B, T, C)`` cut after encoded step ``cut``."""
        cfg = self.cfg
        if cfg.temporal_context == "split":
            at = cut * self.encoder.stride
            past, future = x[:, :at], x[:, at:]
            views = [self._weak(past, generator),
                     strong_augment(past, cfg.max_segments, cfg.strong_jitter, generator),
                     self._weak(future, generator),
                     strong_augment(future, cfg.max_segments, cfg.strong_jitter, generator)]
            return self.split_views_loss(*views)
        weak = self._weak(x, generator)
        strong = strong_augment(x, cfg.max_segments, cfg.strong_jitter, generator)
        return self.views_loss(weak, strong, cut - 1)

    def _weak(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        cfg = self.cfg
        return weak_augment(x, cfg.weak_scale, cfg.weak_jitter, generator,
                            per_channel=cfg.weak_scaling == "channel")

    def views_loss(self, weak: torch.Tensor, strong: torch.Tensor,
                   t: int) -> tuple[torch.Tensor, dict]:
        """``"shared"`` context: a weak and a strong view ``(B, T, C)`` encoded whole (one
        encoder pass for both); ``t`` = last summarised encoded step."""
        z = self._encode_steps(torch.cat([weak, strong]))                # (2B, T', d)
        z_weak, z_strong = z.chunk(2)
        return self._losses(z[:, :t + 1], z_strong, z_weak, t)

    def split_views_loss(self, weak_past: torch.Tensor, strong_past: torch.Tensor,
                         weak_future: torch.Tensor,
                         strong_future: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """``"split"`` context: the views of the past and of the future, encoded apart."""
        context = self._encode_steps(torch.cat([weak_past, strong_past]))  # (2B, T_p, d)
        future_weak, future_strong = self._encode_steps(
            torch.cat([weak_future, strong_future])).chunk(2)
        # the targets are the first M steps after the cut: index them as steps t+1.. of a
        # sequence whose step t is a placeholder (never a candidate with batch negatives)
        pad = future_weak[:, :1]
        return self._losses(context, torch.cat([pad, future_strong], 1),
                            torch.cat([pad, future_weak], 1), 0)

    def _encode_steps(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder sequence, L2-normalised per step when ``temporal_normalize`` (TS-TCC)."""
        z = self.encoder(x)
        return F.normalize(z, dim=-1) if self.cfg.temporal_normalize else z

    def _losses(self, context: torch.Tensor, target_for_weak: torch.Tensor,
                target_for_strong: torch.Tensor, t: int) -> tuple[torch.Tensor, dict]:
        """Eq. 1-4 from the encoded context of both views ``(2B, t', d)`` (weak first) and the
        target sequences each view's summary predicts (the other view's, cross-view)."""
        cfg = self.cfg
        summary = self.summarizer(context)                               # s_t, (2B, d_s)
        pred = self.predictor(summary).view(len(summary), self.steps, context.shape[-1])
        pred_weak, pred_strong = pred.chunk(2)
        temporal = (                                                     # Eq. 3, cross-view
            temporal_contrastive_loss(pred_weak, target_for_weak, t, cfg.temporal_negatives,
                                      cfg.temporal_softmax)
            + temporal_contrastive_loss(pred_strong, target_for_strong, t,
                                        cfg.temporal_negatives, cfg.temporal_softmax))
        if cfg.temporal_views == "mean":
            temporal = 0.5 * temporal
        proj_weak, proj_strong = self.projector(summary).chunk(2)
        sample = nt_xent(proj_weak, proj_strong, cfg.temperature)        # Eq. 1-2
        total = sequence_loss(sample, temporal, cfg.lambda_sample, cfg.lambda_temporal)
        return total, {"sample": sample.detach(), "temporal": temporal.detach()}


# --------------------------------------------------------------------------- fusion

class FusionNet(nn.Module):
    """Token-length maps, projections, pairwise cross-modal attention, classifier.

    Input: one ``(B, T_m, f_m)`` time-major sequence per modality (encoded or raw).
    """

    def __init__(self, shapes: list[tuple[int, int]], token_length: int | None,
                 tokens: Literal["time", "channels"], cfg: CLMERConfig, n_classes: int):
        super().__init__()
        self.channel_tokens = tokens == "channels"
        self.scale = math.sqrt(cfg.d_model)           # MulT's embedding scale before positions
        self.maps, self.projections = nn.ModuleList(), nn.ModuleList()
        for length, n_feat in shapes:
            n_tok, f = (n_feat, length) if self.channel_tokens else (length, n_feat)
            self.maps.append(TokenLengthMap(n_tok, token_length) if token_length
                             else nn.Identity())
            self.projections.append(nn.Linear(f, cfg.d_model))
            self.register_buffer(f"positions{len(self.maps) - 1}", sinusoidal_positions(
                token_length or n_tok, cfg.d_model), persistent=False)
        self.attention = PairwiseCrossModalAttention(len(shapes), cfg.d_model, cfg.n_heads,
                                                     cfg.n_layers, cfg.ffn_mult, cfg.dropout)
        width = self.attention.n_directions * cfg.d_model
        self.head = nn.Sequential(nn.Linear(width, cfg.d_model), nn.ReLU(),
                                  nn.Dropout(cfg.dropout), nn.Linear(cfg.d_model, n_classes))

    def embed(self, xs: list[torch.Tensor]) -> torch.Tensor:
        """``(B, D * d_model)``: the pooled outputs of all directions, concatenated."""
        tokens = []
        for k, x in enumerate(xs):
            x = x.transpose(1, 2) if self.channel_tokens else x
            tokens.append(self.scale * self.projections[k](self.maps[k](x))
                          + getattr(self, f"positions{k}"))
        return self.attention(tokens).flatten(1)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return self.head(self.embed(xs))


# --------------------------------------------------------------------------- the method

class CLMERConfig(MethodConfig):
    modalities: list[Literal["physiology", "landmarks", "au", "gaze"]] = Field(
        default_factory=lambda: ["physiology", "landmarks", "au"],
        description="method modalities (ablation: any non-empty subset)")
    pretrain: bool = Field(True, description="contrastive pre-training of per-modality encoders "
                           "(False: the fusion reads the z-scored series, 'Fusion w/o CL')")
    encoder: Literal["auto", "frozen", "finetune", "none"] = Field(
        "auto", description="how the fusion reads a modality: through its encoder kept frozen "
        "or trained with the fusion, or the z-scored series directly ('none'); 'auto': frozen "
        "with pre-training, none without (the paper's 'Fusion w/o CL')")
    token_length: int | Literal["auto"] | None = Field(
        "auto", description="common token length of the learned map; None: keep each "
        "modality's own; 'auto': the paper's best for the dataset and class count (DEAP 60 / "
        "70 / 50 for 2 / 4 / 9 classes, AMIGOS 15), else None")
    tokens: Literal["time", "channels"] = Field("time", description="what a token is")
    center_landmarks: bool = Field(True, description="subtract each step's landmark centroid "
                                   "(head translation) before z-scoring")
    landmark_reference: Literal["recording", "none"] = Field(
        "recording", description="subtract each recording's mean face from its landmark "
        "series (removes identity; transductive at test) or not")
    # encoder and self-supervision
    encoder_channels: list[int] = Field(default_factory=lambda: [32, 64, 128], min_length=1)
    kernel_size: int = Field(8, ge=1, description="encoder kernel for signals (faces: 3)")
    encoder_dropout: float = Field(0.35, ge=0, lt=1)
    summary_dim: int = Field(64, ge=4)
    summary_layers: int = Field(4, ge=1)
    summary_heads: int = Field(4, ge=1)
    pred_steps: int = Field(4, ge=1, description="future steps M predicted in Eq. 3")
    temporal_negatives: Literal["time", "batch"] = Field(
        "batch", description="Eq. 3 negatives: the same future step of the batch's other "
        "sequences ('batch', TS-TCC's code) or the other steps of the same sequence ('time', "
        "Eq. 3 as printed; solvable by position)")
    temporal_context: Literal["split", "shared"] = Field(
        "split", description="encode the past and the future of the cut apart ('split': no "
        "input sample reaches both) or each view whole ('shared', TS-TCC)")
    temporal_softmax: Literal["futures", "predictions"] = Field(
        "futures", description="Eq. 3 softmax over the candidate futures of a prediction "
        "('futures') or over the batch's predictions for a future ('predictions', TS-TCC's "
        "code); 'predictions' needs batch negatives")
    temporal_normalize: bool = Field(
        False, description="L2-normalise every encoded step before the summary and the "
        "temporal contrast, as TS-TCC's code does")
    temporal_views: Literal["mean", "sum"] = Field(
        "mean", description="mean of the two cross-view temporal losses, or their sum "
        "(TS-TCC's code)")
    temperature: float = Field(0.2, gt=0, description="NT-Xent temperature (Eq. 1)")
    lambda_sample: float = Field(0.7, ge=0, description="lambda_1 of Eq. 4")
    lambda_temporal: float = Field(1.0, ge=0, description="lambda_2 of Eq. 4")
    normalize: Literal["train", "recording"] = Field(
        "train", description="z-score the physiological channels with the training part's "
        "statistics only ('train'), or first over each recording (subject-session) itself "
        "('recording': removes a subject's gain; transductive at test)")
    weak_scale: float = Field(0.2, ge=0)
    weak_scaling: Literal["channel", "window"] = Field(
        "window", description="weak view: one scale factor per (window, channel), or per "
        "window shared by its channels (leaves the channels' relative amplitude intact)")
    weak_jitter: float = Field(0.1, ge=0)
    strong_jitter: float = Field(0.8, ge=0)
    max_segments: int = Field(8, ge=1)
    pretrain_epochs: int = Field(500, ge=0)
    pretrain_lr: float = Field(3e-4, gt=0)
    pretrain_weight_decay: float = Field(3e-4, ge=0)
    batch_size: int = Field(64, ge=2)
    # fusion
    d_model: int = Field(40, ge=1)
    n_heads: int = Field(5, ge=1)
    n_layers: int = Field(4, ge=1)
    ffn_mult: int = Field(4, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    epochs: int = Field(300, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    plateau_patience: int = Field(20, ge=0, description="epochs without improvement before the "
                                  "learning rate is reduced")
    plateau_factor: float = Field(0.1, gt=0, lt=1)
    frozen_epochs: int = Field(0, ge=0, description="with encoder='finetune': train the "
                               "fusion this many epochs on frozen encoders first, then all "
                               "parameters (linear probing then fine-tuning)")
    encoder_lr: float | None = Field(None, gt=0, description="with encoder='finetune': the "
                                     "encoders' learning rate (None: lr)")
    select_best: bool = Field(False, description="keep the epoch with the lowest validation "
                              "loss (default: the last epoch, as the paper's fixed epochs)")
    patience: int | None = Field(None, ge=1, description="stop after this many epochs without "
                                 "a lower validation loss (None: train all epochs)")

    @model_validator(mode="after")
    def _check(self) -> CLMERConfig:
        if not self.modalities or len(set(self.modalities)) != len(self.modalities):
            raise ValueError("modalities must be a non-empty list without repeats")
        if self.d_model % self.n_heads or self.summary_dim % self.summary_heads:
            raise ValueError("d_model / summary_dim must be divisible by n_heads / summary_heads")
        if self.pretrain and self.encoder == "none":
            raise ValueError("encoder='none' discards the pre-trained encoders; use "
                             "pretrain=False")
        if self.temporal_softmax == "predictions" and self.temporal_negatives != "batch":
            raise ValueError("temporal_softmax='predictions' needs temporal_negatives='batch'")
        if self.temporal_negatives == "time" and self.temporal_context == "split":
            raise ValueError("temporal_negatives='time' scores the steps of one encoded "
                             "sequence: use temporal_context='shared'")
        if isinstance(self.token_length, int) and self.token_length < 1:
            raise ValueError("token_length must be >= 1, 'auto' or None")
        return self


@register_method
class CLMER(Method):
    name = "clmer"
    Config = CLMERConfig
    summary = ("CLMER: contrastive time-series encoders per modality (physiology, serialized "
               "face landmarks / AUs) + pairwise cross-modal attention fusion")
    presets = {
        # default: the paper's pipeline at a width a CPU trains (about two minutes per fold on
        # 8 synthetic subjects, one thread); encoders fine-tuned with the fusion (briefly
        # pre-trained encoders are poor frozen features); the best validation epoch is kept
        # and training stops when the validation loss has not fallen for 20 epochs;
        # physiology z-scored per recording (see Interpretation: Normalisation).
        "default": {"encoder_channels": [32, 64, 64], "summary_dim": 32, "summary_layers": 2,
                    "normalize": "recording", "pretrain_epochs": 40, "d_model": 32,
                    "n_heads": 4, "n_layers": 2, "ffn_mult": 2, "token_length": 20,
                    "encoder": "finetune", "epochs": 100, "plateau_patience": 10,
                    "select_best": True, "patience": 20},
        "paper": {},
        "fast": {"encoder_channels": [16, 32, 32], "summary_dim": 32, "summary_layers": 1,
                 "pretrain_epochs": 4, "d_model": 32, "n_heads": 4, "n_layers": 1,
                 "ffn_mult": 2, "token_length": 20, "encoder": "finetune", "epochs": 30,
                 "plateau_patience": 10},
    }
    data_presets = {"*": "clmer"}
    self_supervised = True
    baseline_inputs = {"preset": "all", "options": {"window_s": 5.0, "stride_s": 5.0}}
    protocols = ("subject_dependent", "loso", "subject_kfold", "random_window")
    demo = {"dataset": "deap", "protocol": "subject_dependent", "labels": "binary_valence",
            "options": {}}

    # ------------------------------------------------------------------ inputs
    @classmethod
    def uses_test_statistics(cls, config: dict) -> bool:
        modalities = config.get("modalities", [])
        return ("landmarks" in modalities and config.get("landmark_reference") == "recording") \
            or ("physiology" in modalities and config.get("normalize") == "recording")

    @classmethod
    def used_modalities(cls, config: dict, names: Sequence[str]) -> list[str]:
        face = set(FACE_GROUPS.values())
        used = []
        for group in config["modalities"]:
            used += [n for n in names if n not in face] if group == "physiology" \
                else [FACE_GROUPS[group]] if FACE_GROUPS[group] in names else []
        return list(dict.fromkeys(used))

    def _group_modalities(self, split: Split) -> list[list[str]]:
        """WindowSet modalities of each chosen method modality, in config order."""
        face = set(FACE_GROUPS.values())
        out = []
        for group in self.config.modalities:
            names = [n for n in split.modalities if n not in face] if group == "physiology" \
                else [FACE_GROUPS[group]] if FACE_GROUPS[group] in split.modalities else []
            if not names:
                raise ConfigError("method.modalities", f"'{group}' needs modalities the data "
                                  f"does not have (available: {', '.join(split.modalities)})")
            for name in names:
                if len(split.windows.shape(name)) != 2:
                    raise ConfigError("preset", f"CLMER needs series (steps, channels); "
                                      f"'{name}' is {split.windows.shape(name)}: use the "
                                      "'clmer' data preset")
            out.append(names)
        return out

    def _raw(self, split: Split) -> list[torch.Tensor]:
        """``(n, T, C)`` float32 per method modality (physiology concatenated over channels)."""
        out = []
        for group, names in zip(self.config.modalities, self.groups_, strict=True):
            x = torch.cat([split.windows.tensor(n) for n in names], dim=2)
            if group == "landmarks" and self.config.center_landmarks:
                x = center_landmarks(x)
            if group == "landmarks" and self.config.landmark_reference == "recording":
                x = landmarks_from_recording_mean(x, split.windows.meta)
            if group == "physiology" and self.config.normalize == "recording":
                x = standardize_per_recording(x, split.windows.meta)
            out.append(x)
        return out

    def _standardized(self, split: Split) -> tuple[list[torch.Tensor], np.ndarray]:
        """z-scored inputs on the device (missing values -> 0) and the complete-window mask."""
        raw = self._raw(split)
        complete = np.ones(len(split), bool)
        out = []
        for x, (mean, std) in zip(raw, self.stats_, strict=True):
            complete &= torch.isfinite(x).flatten(1).all(1).numpy()
            out.append(torch.nan_to_num((x - mean) / std).to(self.device))
        return out, complete

    # ------------------------------------------------------------------ training
    def fit(self, train: Split, unlabeled: Split | None = None,
            val: Split | None = None) -> Method:
        generator, xs, y = self._training_inputs(train)
        unlabeled_z, val_z = self._standardized_part(unlabeled), self._standardized_part(val)
        self.encoders_ = self._encoders(self._pretext_pool(xs, [unlabeled_z, val_z]),
                                        generator)
        self.fusion_ = self._build_fusion(xs, train).to(self.device)
        val_data = None if val_z is None else (
            val_z[0], torch.as_tensor(val.y, dtype=torch.long, device=self.device))
        self._train_fusion(xs, y, val_data, generator)
        return self

    def _standardized_part(self, split: Split | None,
                           ) -> tuple[list[torch.Tensor], np.ndarray] | None:
        """:meth:`_standardized` of a part, or None when there is none (or it is empty)."""
        return None if split is None or not len(split) else self._standardized(split)

    def _training_inputs(self, train: Split) -> tuple[torch.Generator, list[torch.Tensor],
                                                       torch.Tensor | None]:
        """Seed and fit the statistics (``stats_``); return the host generator, the z-scored
        training windows that have every chosen modality and their labels."""
        generator = seed_everything(self.seed)
        self.device_generator_ = torch.Generator(device=self.device).manual_seed(self.seed)
        self.groups_ = self._group_modalities(train)
        raw = self._raw(train)
        keep = np.flatnonzero(np.all([torch.isfinite(x).flatten(1).all(1).numpy()
                                      for x in raw], axis=0))
        if len(keep) < 2:
            raise ConfigError("method.modalities", "fewer than 2 training windows have every "
                              "chosen modality")
        self.stats_ = [standardize_fit(x[keep].reshape(-1, x.shape[2])) for x in raw]
        xs = [((x[keep] - m) / s).to(self.device) for x, (m, s) in zip(raw, self.stats_,
                                                                         strict=True)]
        y = None if train.y is None else torch.as_tensor(train.y[keep], dtype=torch.long,
                                                         device=self.device)
        return generator, xs, y

    def _pretext_pool(self, xs: list[torch.Tensor],
                      extra: Sequence[tuple[list[torch.Tensor], np.ndarray] | None],
                      ) -> list[torch.Tensor]:
        """The windows the contrastive stage reads: the training windows ``xs`` and every
        window of the ``extra`` parts (unlabeled, validation, as :meth:`_standardized_part`
        gives them; never the test part) that has each chosen modality; labels are not
        used."""
        pool = [[x] for x in xs]
        for part in extra:
            if part is None:
                continue
            zs, complete = part
            keep = torch.as_tensor(np.flatnonzero(complete), device=self.device)
            for group, z in zip(pool, zs, strict=True):
                group.append(z[keep])
        return [torch.cat(group) for group in pool]

    def pretext_features(self, train: Split, unlabeled: Split | None, parts: Sequence[Split],
                         pretrain: bool = True) -> list[np.ndarray]:
        """Per window, the time-mean of every chosen modality's frozen encoder output,
        concatenated in config order: ``(n, sum of encoder widths)``.

        ``pretrain``: the encoders after the contrastive stage (Eq. 1-4) on the training
        windows; else the same encoders at their random initialisation. Inputs are z-scored
        with training statistics; a window lacking a chosen modality is a NaN row.
        """
        generator, xs, _ = self._training_inputs(train)
        self.encoders_ = self._contrast_encoders(
            self._pretext_pool(xs, [self._standardized_part(unlabeled)]), generator,
            pretrain).eval()
        out = []
        for part in parts:
            xs, complete = self._standardized(part)
            feats = torch.cat([f.mean(1) for f in self._encoded(xs)], dim=1) \
                .cpu().numpy().astype(np.float64)
            feats[~complete] = np.nan
            out.append(feats)
        return out

    @property
    def encoder_mode(self) -> str:
        """``frozen``, ``finetune`` or ``none`` (``auto`` resolved)."""
        mode = self.config.encoder
        if mode == "auto":
            return "frozen" if self.config.pretrain else "none"
        return mode

    def _encoders(self, xs: list[torch.Tensor],
                  generator: torch.Generator) -> nn.ModuleList | None:
        """The fusion's encoders (``None`` when it reads the series directly)."""
        if self.encoder_mode == "none":
            return None
        encoders = self._contrast_encoders(xs, generator, self.config.pretrain)
        encoders.requires_grad_(self.encoder_mode == "finetune")
        return encoders.eval()

    def _contrast_encoders(self, xs: list[torch.Tensor], generator: torch.Generator,
                           pretrain: bool) -> nn.ModuleList:
        """Per-modality encoders, contrastively pre-trained when ``pretrain`` (else random)."""
        models = nn.ModuleList(SequenceContrast(x.shape[1], x.shape[2], self.config)
                               for x in xs).to(self.device)
        if pretrain:
            self._pretrain(models, xs, generator)
        return nn.ModuleList(model.encoder for model in models)

    def _pretrain(self, models: nn.ModuleList, xs: list[torch.Tensor],
                  generator: torch.Generator) -> None:
        """Stage 1: per-modality contrastive pre-training (Eq. 1-4).

        The modalities' losses are independent (own parameters), so one Adam over their sum
        trains them exactly as separate runs over the same batches would.
        """
        cfg = self.config
        optimiser = torch.optim.Adam(models.parameters(), lr=cfg.pretrain_lr,
                                     betas=(0.9, 0.99), weight_decay=cfg.pretrain_weight_decay)
        n, total_epochs = len(xs[0]), cfg.pretrain_epochs + cfg.epochs
        self.pretrain_loss_ = float("nan")
        for epoch in range(cfg.pretrain_epochs):
            models.train()
            losses = StepValues()
            for idx in minibatches(n, min(cfg.batch_size, n), generator, drop_last=True,
                                   device=self.device):
                loss = torch.zeros((), device=self.device)
                for model, x in zip(models, xs, strict=True):
                    cut = model.draw_cut(generator)
                    loss = loss + model.loss(x[idx], cut, self.device_generator_)[0]
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                losses.add(loss=loss)
            self.pretrain_loss_ = float(np.mean(losses.read().get("loss", [])))
            self.report_epoch(epoch, total_epochs, pretrain_loss=self.pretrain_loss_)

    def _build_fusion(self, xs: list[torch.Tensor], train: Split) -> FusionNet:
        cfg = self.config
        with torch.no_grad():
            shapes = [tuple(f.shape[1:]) for f in self._encode([x[:2] for x in xs])]
        token_length = cfg.token_length
        if token_length == "auto":
            token_length = AUTO_TOKEN_LENGTH.get(
                (train.windows.description.get("dataset"), self.n_classes))
        self.token_length_ = token_length
        return FusionNet(shapes, token_length, cfg.tokens, cfg, self.n_classes)

    def _encode(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Encoder sequences (or the inputs themselves without pre-training)."""
        if self.encoders_ is None:
            return xs
        return [encoder(x) for encoder, x in zip(self.encoders_, xs, strict=True)]

    @property
    def _trainable_encoders(self) -> bool:
        return self.encoder_mode == "finetune"

    def _fusion_inputs(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """What the fusion stage indexes: frozen-encoder features computed once, in chunks
        (or the z-scored inputs when there is no encoder or it is trained with the fusion)."""
        if self.encoders_ is None or self._trainable_encoders:
            return xs
        return self._encoded(xs)

    @torch.no_grad()
    def _encoded(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Encoder sequences of whole parts, in chunks, without gradients."""
        chunks = [self._encode([x[i:i + INFERENCE_CHUNK] for x in xs])
                  for i in range(0, len(xs[0]), INFERENCE_CHUNK)]
        return [torch.cat(parts) for parts in zip(*chunks, strict=True)]

    def _forward(self, inputs: list[torch.Tensor], embed: bool = False) -> torch.Tensor:
        inputs = self._encode(inputs) if self._trainable_encoders else inputs
        return self.fusion_.embed(inputs) if embed else self.fusion_(inputs)

    def _train_fusion(self, xs: list[torch.Tensor], y: torch.Tensor,
                      val: tuple[list[torch.Tensor], torch.Tensor] | None,
                      generator: torch.Generator) -> None:
        """Stage 2: fusion + classifier; reduce-on-plateau and best-state on validation loss
        (``val``: the z-scored validation inputs and their labels)."""
        cfg = self.config
        groups = [{"params": list(self.fusion_.parameters())}]
        if self._trainable_encoders:
            groups.append({"params": list(self.encoders_.parameters()),
                           "lr": cfg.encoder_lr or cfg.lr})
        feats = self._fusion_inputs(xs)
        optimiser = torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimiser, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience)
        val_data = None if val is None else (self._fusion_inputs(val[0]), val[1])
        offset = cfg.pretrain_epochs if cfg.pretrain else 0
        best, best_state, waited = np.inf, None, 0
        self._frozen_encoders = False
        for epoch in range(cfg.epochs):
            if self._trainable_encoders and cfg.frozen_epochs:
                self._frozen_encoders = epoch < cfg.frozen_epochs
                self.encoders_.requires_grad_(not self._frozen_encoders)
                waited = 0 if epoch == cfg.frozen_epochs else waited
            self._set_train(True)
            losses, sizes = StepValues(), []
            for idx in minibatches(len(y), cfg.batch_size, generator, device=self.device):
                loss = F.cross_entropy(self._forward([f[idx] for f in feats]), y[idx])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                losses.add(loss=loss)
                sizes.append(len(idx))
            train_loss = float(np.sum(losses.weighted("loss", sizes)) / len(y))
            monitor = train_loss if val_data is None else float(
                F.cross_entropy(self._logits(val_data[0]), val_data[1]))
            scheduler.step(monitor)
            self.report_epoch(offset + epoch, offset + cfg.epochs, train_loss=train_loss,
                              monitor_loss=monitor)
            if val_data is None:
                continue
            if monitor < best - 1e-5:
                best, waited = monitor, 0
                if cfg.select_best:
                    best_state = copy.deepcopy(self._state())
            else:
                waited += 1
                if cfg.patience is not None and waited >= cfg.patience \
                        and not self._frozen_encoders:
                    break
        if best_state is not None:
            self._load_state(best_state)
        self._frozen_encoders = False
        self._set_train(False)

    def _set_train(self, mode: bool) -> None:
        self.fusion_.train(mode)
        if self.encoders_ is not None:
            self.encoders_.train(mode and self._trainable_encoders
                                 and not self._frozen_encoders)

    def _state(self) -> dict:
        state = {"fusion": self.fusion_.state_dict()}
        if self._trainable_encoders:
            state["encoders"] = self.encoders_.state_dict()
        return state

    def _load_state(self, state: dict) -> None:
        self.fusion_.load_state_dict(state["fusion"])
        if "encoders" in state:
            self.encoders_.load_state_dict(state["encoders"])

    @torch.no_grad()
    def _logits(self, inputs: list[torch.Tensor], embed: bool = False) -> torch.Tensor:
        """Logits (or embeddings) of whole parts, in chunks, in eval mode."""
        self._set_train(False)
        return torch.cat([self._forward([f[i:i + INFERENCE_CHUNK] for f in inputs], embed)
                          for i in range(0, len(inputs[0]), INFERENCE_CHUNK)])

    # ------------------------------------------------------------------ prediction
    def predict(self, test: Split) -> Predictions:
        xs, complete = self._standardized(test)
        feats = self._fusion_inputs(xs)
        probs = torch.softmax(full_precision(self._logits(feats)), dim=1).cpu().numpy()
        extras = {"token_length": float(self.token_length_ or 0)}
        if self.config.pretrain:
            extras["pretrain_loss"] = self.pretrain_loss_
        if not complete.all():
            extras["n_windows_imputed"] = float((~complete).sum())
        embeddings = full_precision(self._logits(feats, embed=True)).cpu().numpy()
        return Predictions(probs, embeddings=embeddings,
                           extras=extras)
