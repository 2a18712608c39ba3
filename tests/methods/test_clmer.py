"""CLMER: face serialization, augmentations, losses against naive loops, pairwise cross-modal
attention, gradients / freezing, ablation flags, and learning on synthetic DEAP."""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from affectlab import features as feat
from affectlab import presets
from affectlab.data import WindowSet
from affectlab.datasets import openface
from affectlab.datasets.base import Recording
from affectlab.errors import ConfigError
from affectlab.evaluation import fold_metrics, ovr_accuracy, ovr_accuracy_chance
from affectlab.labels import make_labels
from affectlab.losses.contrastive import nt_xent
from affectlab.losses.temporal import sequence_loss, temporal_contrastive_loss
from affectlab.methods import clmer as clmer_module
from affectlab.methods.base import Split, build_config, create_method
from affectlab.methods.clmer import (
    CLMER,
    CLMERConfig,
    ConvEncoder,
    FusionNet,
    SequenceContrast,
    Summarizer,
    center_landmarks,
    face_step_counts,
    permute_segments,
    strong_augment,
    weak_augment,
)
from affectlab.nn.cross_attention import PairwiseCrossModalAttention, TokenLengthMap, directions
from affectlab.protocols import create_protocol

torch.set_num_threads(1)

TINY = {"encoder_channels": [8, 8], "summary_dim": 8, "summary_layers": 1, "summary_heads": 2,
        "pretrain_epochs": 1, "d_model": 8, "n_heads": 2, "n_layers": 1, "ffn_mult": 1,
        "epochs": 2, "batch_size": 8, "token_length": 6}


# --------------------------------------------------------------------------- helpers

def tiny_windowset(n: int = 24, seed: int = 0, effect: float = 0.0) -> tuple[WindowSet,
                                                                             np.ndarray]:
    """Physiology (eeg 3 ch + gsr) 128 samples, landmarks / AU / gaze 5 steps; a label effect."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    shift = effect * (2 * y - 1)[:, None, None]
    mods = {"eeg": rng.normal(size=(n, 128, 3)) * (1 + 0.5 * shift),
            "gsr": rng.normal(size=(n, 128, 1)),
            "face_landmarks": rng.normal(size=(n, 5, 204)) + shift,
            "face_au": rng.normal(size=(n, 5, 17)) + shift,
            "gaze": rng.normal(size=(n, 5, 8))}
    meta = pd.DataFrame({"subject": 1, "session": 1, "trial": np.arange(n), "window": 0,
                         "onset_s": 0.0, "valence": 3.0 + 4 * y, "arousal": 5.0})
    tensors = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in mods.items()}
    return WindowSet(tensors, meta, {"dataset": "deap"}), y


def split_of(ws: WindowSet, y: np.ndarray | None, idx: np.ndarray | None = None) -> Split:
    if idx is not None:
        ws, y = ws.subset(idx), None if y is None else y[idx]
    return Split(ws, y, tuple(ws.names))


def fitted(options: dict | None = None, n: int = 24) -> tuple[CLMER, WindowSet, np.ndarray]:
    ws, y = tiny_windowset(n)
    method = create_method("clmer", {**TINY, **(options or {})}, n_classes=2, seed=0,
                           preset="fast")
    method.fit(split_of(ws, y))
    return method, ws, y


# --------------------------------------------------------------------------- face serialization

def _openface_csv(path, fps: float = 25.0, seconds: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A literal OpenFace CSV with only the AU block: AU01_r of frame i is i / 10."""
    n = int(fps * seconds)
    success = np.ones(n, int)
    success[10:15] = 0                         # a short tracking failure inside second 0
    success[50:75] = 0                         # second 2: no valid frame at all
    header = ["frame", "face_id", "timestamp", "confidence", "success", *openface.AU_INTENSITY]
    rows = []
    for i in range(n):
        au = [f"{i / 10:.2f}"] + ["0.50"] * 16
        rows.append([str(i + 1), "0", f"{i / fps:.3f}", "0.98" if success[i] else "0.05",
                     str(success[i]), *au])
    path.write_text("\n".join(", ".join(r) for r in [header, *rows]) + "\n")
    return np.arange(n) / 10, success.astype(bool)


def test_face_serialization_of_a_hand_made_openface_csv(tmp_path):
    values, success = _openface_csv(tmp_path / "s01_trial01.csv")
    streams = openface.read_csv(tmp_path / "s01_trial01.csv")
    assert set(streams) == {"face_au"}            # only the AU block was written
    au = streams["face_au"]
    assert au.sfreq == 25.0 and au.data.shape == (17, 75)
    np.testing.assert_array_equal(au.valid, success)
    times = np.arange(au.n_times) / au.sfreq
    starts = np.array([0.0, 1.0, 2.0])
    means, ok = feat.masked_window_mean(au.data, au.valid, times, starts, 1.0)
    valid_0 = [i for i in range(25) if success[i]]
    assert means[0, 0] == pytest.approx(np.mean(values[valid_0]))      # failures masked
    assert means[1, 0] == pytest.approx(np.mean(values[25:50]))
    assert ok.tolist() == [True, True, False] and np.isnan(means[2]).all()
    valid_counts, invalid_counts = face_step_counts(au.valid, times, starts, 1.0)
    assert valid_counts.tolist() == [20, 25, 0] and invalid_counts.tolist() == [5, 0, 25]
    # through the data preset: a step without a valid frame takes the nearest valid step,
    # a window without any valid frame is NaN (-> avail flag False)
    rec = Recording("deap", 1, 1, 1, "video01", streams={"face_au": au})
    opts = presets.resolve_options(presets.get_preset("clmer"), "deap", {"window_s": 3.0})
    series = presets._compute(rec, {"form": "face_series", "source": "face_au"},
                              presets._Grid(np.array([0.0]), 3.0), opts)
    assert series.shape == (1, 3, 17)
    np.testing.assert_allclose(series[0, :, 0], [means[0, 0], means[1, 0], means[1, 0]])
    empty = presets._compute(rec, {"form": "face_series", "source": "face_au"},
                             presets._Grid(np.array([2.0]), 1.0), {**opts, "window_s": 1.0})
    assert np.isnan(empty).all()


def test_center_landmarks_removes_head_translation():
    x = torch.randn(2, 5, 204)
    moved = x + torch.tensor([1.0] * 68 + [-2.0] * 68 + [30.0] * 68)
    torch.testing.assert_close(center_landmarks(moved), center_landmarks(x))
    assert center_landmarks(x).reshape(2, 5, 3, 68).mean(-1).abs().max() < 1e-5


# --------------------------------------------------------------------------- augmentations

def test_landmarks_from_recording_mean_removes_each_recordings_face():
    gen = torch.Generator().manual_seed(0)
    faces = torch.randn(2, 1, 204, generator=gen) * 10           # two people's geometry
    expression = torch.randn(6, 5, 204, generator=gen)
    x = expression + faces[[0, 0, 0, 1, 1, 1]]
    x[1, 2] = float("nan")                                         # an untracked step
    meta = pd.DataFrame({"subject": [1, 1, 1, 2, 2, 2], "session": 1})
    out = clmer_module.landmarks_from_recording_mean(x, meta)
    for rows in ([0, 1, 2], [3, 4, 5]):
        steps = out[rows].reshape(-1, 204)
        steps = steps[torch.isfinite(steps).all(1)]
        torch.testing.assert_close(steps.mean(0), torch.zeros(204), atol=1e-5, rtol=0)
    assert torch.isnan(out[1, 2]).all()
    # the same expression on two faces gives the same series once each face is removed
    same = torch.cat([expression[:3], expression[:3]]) + faces[[0, 0, 0, 1, 1, 1]]
    out = clmer_module.landmarks_from_recording_mean(same, meta)
    torch.testing.assert_close(out[:3], out[3:])
    assert CLMER.uses_test_statistics(build_config(CLMER, "default").model_dump())
    assert not CLMER.uses_test_statistics(build_config(
        CLMER, "default", {"modalities": ["physiology", "au"], "normalize": "train"})
        .model_dump())


def test_standardize_per_recording_removes_each_recordings_gain():
    gen = torch.Generator().manual_seed(0)
    signal = torch.randn(6, 50, 3, generator=gen)
    gains = torch.tensor([[0.5, 1.0, 2.0], [3.0, 0.2, 1.0]])[[0, 0, 0, 1, 1, 1]][:, None, :]
    x = signal * gains + 4.0
    x[1, 7, 2] = float("nan")                                      # an invalid sample
    meta = pd.DataFrame({"subject": [1, 1, 1, 2, 2, 2], "session": 1})
    out = clmer_module.standardize_per_recording(x, meta)
    for rows in ([0, 1, 2], [3, 4, 5]):
        values = out[rows].reshape(-1, 3)
        torch.testing.assert_close(values.nanmean(0), torch.zeros(3), atol=1e-5, rtol=0)
        std = (values - values.nanmean(0)).square().nanmean(0).sqrt()
        torch.testing.assert_close(std, torch.ones(3), atol=1e-5, rtol=0)
    assert torch.isnan(out[1, 7, 2]) and torch.isfinite(out).sum() == out.numel() - 1
    # the same signal at two gains gives the same standardised series
    same = torch.cat([signal[:3] * 0.5, signal[:3] * 3.0])
    out = clmer_module.standardize_per_recording(same, meta)
    torch.testing.assert_close(out[:3], out[3:], atol=1e-5, rtol=1e-5)
    no_face = {"modalities": ["physiology", "au"]}
    assert CLMER.uses_test_statistics({**no_face, "normalize": "recording"})
    assert not CLMER.uses_test_statistics({**no_face, "normalize": "train"})


def test_weak_scaling_per_window_keeps_the_channels_ratios():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 40, 3) + 1.0
    shared = weak_augment(x, 0.3, 0.0, gen, per_channel=False)
    ratio = shared / x                                             # one factor per window
    torch.testing.assert_close(ratio, ratio[:, :1, :1].expand_as(ratio))
    assert ratio[:, 0, 0].std() > 0.1
    separate = weak_augment(x, 0.3, 0.0, gen) / x
    assert (separate[:, 0, 0] - separate[:, 0, 1]).abs().max() > 0.05


def test_augmentations_keep_shape_and_permutation_keeps_values():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 40, 3)
    assert weak_augment(x, 0.2, 0.1, gen).shape == x.shape
    assert strong_augment(x, 5, 0.8, gen).shape == x.shape
    torch.testing.assert_close(weak_augment(x, 0.0, 0.0, gen), x)
    torch.testing.assert_close(permute_segments(x, 1, gen), x)
    permuted = permute_segments(x, 5, gen)
    torch.testing.assert_close(permuted.sort(dim=1).values, x.sort(dim=1).values)
    assert not torch.equal(permuted, x)


def test_permutation_moves_whole_segments():
    gen = torch.Generator().manual_seed(1)
    steps = torch.arange(50.0)[None, :, None].expand(200, 50, 1)
    order = permute_segments(steps, 4, gen)[..., 0].long()
    runs = 1 + (order[:, 1:] != order[:, :-1] + 1).sum(1)   # increasing runs = segments
    assert runs.max() <= 4 and (runs > 1).any()
    assert (order.sort(1).values == torch.arange(50)).all()


# --------------------------------------------------------------------------- losses

def naive_temporal(pred, z, t, negatives):
    """Eq. 3 written with loops (dot-product sim)."""
    batch, steps, _ = pred.shape
    total = 0.0
    for b in range(batch):
        for i in range(steps):
            target = t + 1 + i
            if negatives == "time":
                denom = [j for j in range(z.shape[1]) if j != t]
                scores = {j: float(pred[b, i] @ z[b, j]) for j in denom}
            else:
                scores = {c: float(pred[b, i] @ z[c, target]) for c in range(batch)}
            positive = scores[target] if negatives == "time" else scores[b]
            total -= positive - math.log(sum(math.exp(s) for s in scores.values()))
    return total / (batch * steps)


@pytest.mark.parametrize("negatives", ["time", "batch"])
def test_temporal_loss_matches_naive_loop(negatives):
    gen = torch.Generator().manual_seed(2)
    pred, z = torch.randn(4, 3, 5, generator=gen), torch.randn(4, 7, 5, generator=gen)
    for t in (0, 2, 3):
        fast = temporal_contrastive_loss(pred, z, t, negatives)
        assert float(fast) == pytest.approx(naive_temporal(pred, z, t, negatives), rel=1e-5)
    with pytest.raises(ValueError):
        temporal_contrastive_loss(pred, z, 4, negatives)    # t + M reaches past the end


def test_temporal_loss_hand_checkable_case():
    z = torch.eye(3)[None]                              # steps are orthonormal
    pred = (10 * torch.eye(3)[2])[None, None]           # predicts step 2 from t = 1
    # candidates j in {0, 2}: scores 0 and 10 -> loss log(1 + e^-10)
    loss = temporal_contrastive_loss(pred, z, 1, "time")
    assert float(loss) == pytest.approx(math.log1p(math.exp(-10)), abs=1e-7)


def test_tstcc_softmax_over_predictions_matches_naive_loop():
    """TS-TCC's code: for every true future, a softmax over the batch's predictions."""
    gen = torch.Generator().manual_seed(4)
    pred, z = torch.randn(4, 2, 5, generator=gen), torch.randn(4, 6, 5, generator=gen)
    t, total = 1, 0.0
    for i in range(2):
        future = z[:, t + 1 + i]
        scores = future @ pred[:, i].T                      # (future b, prediction c)
        total -= torch.diag(torch.log_softmax(scores, dim=1)).sum()
    expected = float(total) / (4 * 2)
    assert float(temporal_contrastive_loss(pred, z, t, "batch", "predictions")) == \
        pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError):
        temporal_contrastive_loss(pred, z, t, "time", "predictions")


def _structured(kind: str, n: int, gen: torch.Generator) -> torch.Tensor:
    """``(n, 5, 3)``: i.i.d. noise (the future independent of the past) or noisy sines of a
    random frequency and phase per channel (the future predictable from the past)."""
    if kind == "noise":
        return torch.randn(n, 5, 3, generator=gen)
    freq = 0.02 + 0.2 * torch.rand(n, 1, 3, generator=gen)
    phase = 6.28 * torch.rand(n, 1, 3, generator=gen)
    return torch.sin(6.28 * freq * torch.arange(5)[None, :, None] + phase) \
        + 0.3 * torch.randn(n, 5, 3, generator=gen)


def _temporal_loss_after_training(kind: str, negatives: str, context: str) -> tuple[float,
                                                                                     float]:
    """Train Eq. 3 alone on one kind of 5-step series; held-out loss and its chance level."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    cfg = CLMERConfig(encoder_channels=[16, 16], summary_dim=16, summary_layers=1,
                      summary_heads=2, pred_steps=2, lambda_sample=0.0, max_segments=1,
                      strong_jitter=0.1, temporal_negatives=negatives, temporal_context=context)
    model = SequenceContrast(5, 3, cfg)
    data = _structured(kind, 512, gen)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(400):
        idx = torch.randint(0, 512, (32,), generator=gen)
        loss, _ = model.loss(data[idx], model.draw_cut(gen), gen)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    fresh = _structured(kind, 256, gen)
    with torch.no_grad():
        losses = [model.loss(fresh[i:i + 32], cut, gen)[1]["temporal"]
                  for i in range(0, 256, 32) for cut in range(model.cuts[0], model.cuts[1] + 1)]
    chance = math.log(32) if negatives == "batch" else math.log(model.out_length - 1)
    return float(np.mean(losses)), chance


def test_default_temporal_contrast_needs_content_the_shuffled_control_stays_at_chance():
    """Eq. 3 in the default reading (batch negatives, past and future encoded apart): on series
    whose future is independent of their past it cannot beat chance (neither position nor
    shared input samples give the answer away); on predictable series it learns."""
    noise, chance = _temporal_loss_after_training("noise", "batch", "split")
    assert noise == pytest.approx(chance, abs=0.05)
    sine, chance = _temporal_loss_after_training("sine", "batch", "split")
    assert sine < chance - 0.3


@pytest.mark.parametrize("negatives", ["time", "batch"])
def test_whole_window_readings_beat_chance_without_content(negatives):
    """The control catches the leaks of the other readings: negatives from the same sequence
    (position) and views encoded whole (receptive fields shared by summary and targets)."""
    noise, chance = _temporal_loss_after_training("noise", negatives, "shared")
    assert noise < chance - 0.3


def test_split_context_cuts_past_and_future_apart():
    cfg = CLMERConfig(**TINY)
    model = SequenceContrast(128, 4, cfg)
    stride = model.encoder.stride
    assert stride == 4 and model.cuts[0] == 1
    largest = model.cuts[1]
    assert model.encoder.output_length(128 - largest * stride) >= model.steps
    assert model.encoder.output_length(128 - (largest + 1) * stride) < model.steps
    eye = ConvEncoder(3, [4, 4, 4], 8, 2, 0.0).eval()
    for length in (9, 64, 100, 640):
        assert eye(torch.zeros(1, length, 3)).shape[1] == eye.output_length(length)
    face = SequenceContrast(5, 17, cfg)
    assert face.cuts == (1, 5 - face.steps)
    for cut in range(face.cuts[0], face.cuts[1] + 1):
        loss, parts = face.loss(torch.randn(6, 5, 17), cut)
        assert torch.isfinite(loss) and set(parts) == {"sample", "temporal"}
    with pytest.raises(ConfigError):
        build_config(CLMER, "fast", {"temporal_negatives": "time"})      # needs 'shared'
    with pytest.raises(ConfigError):
        build_config(CLMER, "fast", {"temporal_softmax": "predictions",
                                     "temporal_negatives": "time",
                                     "temporal_context": "shared"})


def test_sample_loss_is_eq_1_2_and_eq_4_weights():
    gen = torch.Generator().manual_seed(3)
    a, b = torch.randn(5, 4, generator=gen), torch.randn(5, 4, generator=gen)
    views = F.normalize(torch.cat([a, b]), dim=1)
    sim = views @ views.T / 0.2
    n, total = 5, 0.0
    for i in range(2 * n):                              # Eq. 1 per anchor, Eq. 2 mean
        positive = (i + n) % (2 * n)
        denom = sum(math.exp(float(sim[i, c])) for c in range(2 * n) if c != i)
        total -= float(sim[i, positive]) - math.log(denom)
    assert float(nt_xent(a, b, 0.2)) == pytest.approx(total / (2 * n), rel=1e-5)
    assert float(sequence_loss(torch.tensor(2.0), torch.tensor(3.0), 0.7, 1.0)) == \
        pytest.approx(4.4)


def test_ovr_accuracy_is_the_mean_one_vs_rest_accuracy():
    y_true, y_pred = np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1])
    # class 0: 3/4 right, class 1: 2/4, class 2: 3/4
    assert ovr_accuracy(y_true, y_pred, 3) == pytest.approx((0.75 + 0.5 + 0.75) / 3)


def test_ovr_accuracy_chance_is_the_best_constant_prediction():
    balanced = np.repeat(np.arange(9), 10)
    assert ovr_accuracy_chance(balanced, 9) == pytest.approx((7 + 2 / 9) / 9)   # 0.80
    skewed = np.array([0, 0, 0, 1])
    assert ovr_accuracy_chance(skewed, 2) == pytest.approx(0.75)
    metrics = fold_metrics(balanced, np.eye(9)[balanced], 9)
    assert metrics["ovr_accuracy"] == 1.0 and metrics["ovr_accuracy_chance"] < 0.81


# --------------------------------------------------------------------------- cross attention

@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_number_of_cross_modal_blocks_is_k_times_k_minus_1(k):
    block = PairwiseCrossModalAttention(k, 8, 2, n_layers=2)
    expected = max(1, k * (k - 1))
    assert block.n_directions == len(directions(k)) == expected
    assert block.layers[0].w_q.shape == (expected, 8, 8)
    if k > 1:
        assert set(block.directions) == set(itertools.permutations(range(k), 2))
    out = block([torch.randn(3, 4, 8) for _ in range(k)])
    assert out.shape == (3, expected, 8)


@pytest.mark.parametrize("lengths", [(6, 6, 6), (9, 2, 5)])
def test_vectorised_attention_equals_per_direction_per_head_loop(lengths):
    torch.manual_seed(0)
    block = PairwiseCrossModalAttention(3, 12, 3, n_layers=2, dropout=0.1).eval()
    tokens = [torch.randn(4, n, 12) for n in lengths]
    torch.testing.assert_close(block(tokens), block.forward_per_direction(tokens),
                               rtol=1e-4, atol=1e-5)


def test_queries_come_from_alpha_and_keys_from_beta():
    torch.manual_seed(0)
    block = PairwiseCrossModalAttention(3, 8, 2).eval()
    tokens = [torch.randn(2, 4, 8) for _ in range(3)]
    base = block(tokens)
    changed = [tokens[0], tokens[1] + torch.randn(2, 4, 8), tokens[2]]
    moved = (block(changed) - base).abs().amax(dim=(0, 2))
    for d, (alpha, beta) in enumerate(block.directions):
        assert (moved[d] > 1e-6) == (1 in (alpha, beta))


def test_token_length_map_starts_as_interpolation():
    layer = TokenLengthMap(5, 9)
    x = torch.arange(5.0)[None, :, None].repeat(2, 1, 3)
    out = layer(x)
    assert out.shape == (2, 9, 3)
    torch.testing.assert_close(out[0, :, 0], torch.linspace(0, 4, 9))


def test_shortening_token_length_map_starts_as_bin_means():
    """Every input token counts: 8 tokens to 2 start as the means of tokens 0-3 and 4-7."""
    layer = TokenLengthMap(8, 2)
    x = torch.arange(8.0)[None, :, None]
    torch.testing.assert_close(layer(x)[0, :, 0], torch.tensor([1.5, 5.5]))
    torch.testing.assert_close(layer.weight.sum(1), torch.ones(2))


# --------------------------------------------------------------------------- blocks

def test_temporal_normalize_makes_the_pretext_loss_blind_to_feature_scale():
    x = torch.randn(8, 128, 4, generator=torch.Generator().manual_seed(0))

    def losses(normalize: bool) -> list[float]:
        torch.manual_seed(0)
        cfg = CLMERConfig(**{**TINY, "encoder_dropout": 0.0, "temporal_normalize": normalize})
        model = SequenceContrast(128, 4, cfg).eval()          # no dropout draws
        last_norm = [m for m in model.encoder.net if isinstance(m, torch.nn.BatchNorm1d)][-1]
        out = [model.loss(x, 3, torch.Generator().manual_seed(1))[0].item()]
        with torch.no_grad():       # ReLU and max-pool are positively homogeneous: z -> 3 z
            last_norm.weight.mul_(3.0)
            last_norm.bias.mul_(3.0)
        out.append(model.loss(x, 3, torch.Generator().manual_seed(1))[0].item())
        return out

    normalized, plain = losses(True), losses(False)
    assert normalized[0] == pytest.approx(normalized[1], rel=1e-4)
    assert abs(plain[0] - plain[1]) > 1e-3


def test_block_shapes():
    cfg = CLMERConfig(**TINY)
    assert ConvEncoder(4, [8, 16], 8, 2, 0.0)(torch.randn(3, 128, 4)).shape[2] == 16
    assert ConvEncoder(17, [8, 16], 3, 1, 0.0)(torch.randn(3, 5, 17)).shape == (3, 5, 16)
    assert Summarizer(16, 8, 1, 2)(torch.randn(3, 4, 16)).shape == (3, 8)
    model = SequenceContrast(128, 4, cfg)
    assert model.out_length >= 16 and model.steps == min(cfg.pred_steps, model.out_length // 2)
    loss, parts = model.loss(torch.randn(6, 128, 4), cut=3)
    assert loss.ndim == 0 and torch.isfinite(loss) and set(parts) == {"sample", "temporal"}
    net = FusionNet([(17, 8), (5, 8), (5, 8)], 6, "time", cfg, n_classes=4)
    xs = [torch.randn(3, 17, 8), torch.randn(3, 5, 8), torch.randn(3, 5, 8)]
    assert net(xs).shape == (3, 4) and net.embed(xs).shape == (3, 6 * cfg.d_model)
    channels = FusionNet([(17, 8), (5, 8)], None, "channels", cfg, n_classes=2)
    assert channels(xs[:2]).shape == (3, 2)
    with pytest.raises(ConfigError):
        SequenceContrast(1, 4, cfg)                       # one step: nothing to predict


def test_gradients_reach_every_trainable_parameter():
    cfg = CLMERConfig(**TINY)
    model = SequenceContrast(64, 3, cfg)
    model.loss(torch.randn(6, 64, 3), cut=2)[0].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing
    net = FusionNet([(16, 8), (5, 8)], 6, "time", cfg, n_classes=3)
    F.cross_entropy(net([torch.randn(4, 16, 8), torch.randn(4, 5, 8)]),
                    torch.tensor([0, 1, 2, 0])).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing


def _encoder_snapshots(method: CLMER) -> dict:
    """Encoder states before and after the fusion stage (wraps ``_train_fusion``)."""
    states, original = {}, method._train_fusion

    def wrapped(*args, **kwargs):
        states["before"] = copy.deepcopy(method.encoders_.state_dict())
        original(*args, **kwargs)
        states["after"] = method.encoders_.state_dict()

    method._train_fusion = wrapped
    return states


@pytest.mark.parametrize("mode, changes", [("frozen", False), ("finetune", True)])
def test_frozen_encoders_stay_frozen(mode, changes):
    ws, y = tiny_windowset()
    method = create_method("clmer", {**TINY, "encoder": mode}, n_classes=2, seed=0,
                           preset="paper")
    states = _encoder_snapshots(method)
    method.fit(split_of(ws, y))
    same = all(torch.equal(states["before"][k], states["after"][k]) for k in states["before"])
    assert same != changes
    assert all(p.requires_grad == changes for p in method.encoders_.parameters())


def test_pretraining_reads_the_unlabelled_and_validation_windows_but_no_label():
    ws, y = tiny_windowset(32)
    ws.base["face_au"][30] = float("nan")                   # an unlabelled window without AUs
    method = create_method("clmer", {**TINY, "modalities": ["physiology", "au"]},
                           n_classes=2, seed=0, preset="fast")
    seen = []
    method._pretrain = lambda models, xs, generator: seen.append([len(x) for x in xs])
    method.fit(split_of(ws, y, np.arange(16)), unlabeled=split_of(ws, None, np.arange(24, 32)),
               val=split_of(ws, y, np.arange(16, 24)))
    assert seen == [[16 + 8 + 7, 16 + 8 + 7]]               # train + val + complete unlabelled


def test_frozen_epochs_train_the_fusion_alone_first():
    """Encoders stay untouched (weights and BatchNorm statistics) while frozen; the first
    trained epoch moves them; ``encoder_lr`` is the encoders' own learning rate."""
    ws, y = tiny_windowset()
    seen = []

    def run(options: dict) -> CLMER:
        method = create_method("clmer", {**TINY, "encoder": "finetune", "epochs": 3,
                                         **options}, n_classes=2, seed=0, preset="paper")
        states = _encoder_snapshots(method)
        seen.append(states)
        return method.fit(split_of(ws, y))

    def moved(states: dict) -> bool:
        return not all(torch.equal(states["before"][k], states["after"][k])
                       for k in states["before"])

    def largest_step(states: dict) -> float:
        return max(float((states["after"][k].float() - states["before"][k].float()).abs().max())
                   for k in states["before"] if k.endswith("weight"))

    run({"frozen_epochs": 3})
    run({"frozen_epochs": 2})
    slow = run({"frozen_epochs": 2, "encoder_lr": 1e-7})
    assert not moved(seen[0]) and moved(seen[1])
    assert largest_step(seen[2]) < 1e-5 < largest_step(seen[1])
    assert all(p.requires_grad for p in slow.encoders_.parameters())
    assert not slow._frozen_encoders and not slow.encoders_.training


# --------------------------------------------------------------------------- method

def test_config_validation_and_presets():
    for preset in ("default", "paper", "fast"):
        assert build_config(CLMER, preset)
    paper = build_config(CLMER, "paper")
    assert (paper.pretrain_lr, paper.pretrain_weight_decay, paper.batch_size, paper.lr) == \
        (3e-4, 3e-4, 64, 1e-3)
    with pytest.raises(ConfigError):
        build_config(CLMER, "fast", {"d_model": 10, "n_heads": 4})
    with pytest.raises(ConfigError):
        build_config(CLMER, "fast", {"pretrain": True, "encoder": "none"})
    with pytest.raises(ConfigError):
        build_config(CLMER, "fast", {"modalities": []})


def test_pretext_features_pretrained_vs_random_init():
    ws, y = tiny_windowset(24, effect=1.0)
    options = {**TINY, "modalities": ["physiology", "au"], "pretrain_epochs": 2}

    def features(pretrain: bool) -> list[np.ndarray]:
        method = create_method("clmer", options, n_classes=2, seed=0, preset="fast")
        return method.pretext_features(split_of(ws, y, np.arange(16)), None,
                                       [split_of(ws, y, np.arange(16)),
                                        split_of(ws, None, np.arange(16, 24))], pretrain)

    assert CLMER.self_supervised
    pretrained, again, random_init = features(True), features(True), features(False)
    width = 2 * TINY["encoder_channels"][-1]                # two modalities, time-mean each
    assert [f.shape for f in pretrained] == [(16, width), (8, width)]
    assert all(np.isfinite(f).all() for f in pretrained)
    assert all(np.array_equal(a, b) for a, b in zip(pretrained, again, strict=True))
    assert not np.allclose(pretrained[0], random_init[0])
    ws.base["face_au"][20] = float("nan")                   # a window without its AUs
    assert np.isnan(features(True)[1][4]).all() and np.isfinite(features(True)[1][:4]).all()


def test_fit_predict_shapes_and_determinism():
    method, ws, y = fitted()
    pred = method.predict(split_of(ws, None))
    assert pred.probs.shape == (len(ws), 2)
    np.testing.assert_allclose(pred.probs.sum(1), 1.0, atol=1e-6)
    assert pred.embeddings.shape == (len(ws), 6 * TINY["d_model"])
    assert method.fusion_.attention.n_directions == 6
    again, _, _ = fitted()
    np.testing.assert_allclose(again.predict(split_of(ws, None)).probs, pred.probs, atol=1e-6)


def test_ablation_flags_change_the_computation():
    ws, y = tiny_windowset()
    test = split_of(ws, None)
    full, _, _ = fitted()
    probs = full.predict(test).probs
    dual, _, _ = fitted({"modalities": ["physiology", "au"]})
    assert dual.fusion_.attention.n_directions == 2
    assert dual.groups_ == [["eeg", "gsr"], ["face_au"]]
    single, _, _ = fitted({"modalities": ["landmarks"]})
    assert single.fusion_.attention.n_directions == 1
    raw, _, _ = fitted({"pretrain": False, "encoder": "none"})
    assert raw.encoders_ is None
    assert raw.fusion_.projections[0].in_features == 4        # eeg 3 + gsr 1 channels
    longer, _, _ = fitted({"token_length": 11})
    assert longer.fusion_.maps[0].weight.shape[0] == 11
    native, _, _ = fitted({"token_length": None})
    assert isinstance(native.fusion_.maps[0], torch.nn.Identity)
    auto, _, _ = fitted({"token_length": "auto"})
    assert auto.token_length_ == 60                            # DEAP, Table XI
    for n_classes, expected in ((4, 70), (9, 50), (3, None)):     # Table XI by class count
        method = create_method("clmer", {**TINY, "token_length": "auto"}, n_classes=n_classes,
                               preset="paper")
        method.fit(split_of(ws, np.arange(len(ws)) % n_classes))
        assert method.token_length_ == expected
    for other in (dual, single, raw, longer, native):
        assert not np.allclose(other.predict(test).probs, probs)


def test_missing_modality_is_an_error_and_missing_windows_are_imputed():
    ws, y = tiny_windowset()
    no_face = ws.select_modalities(["eeg", "gsr"])
    method = create_method("clmer", TINY, n_classes=2, preset="paper")
    with pytest.raises(ConfigError, match="landmarks"):
        method.fit(split_of(no_face, y))
    holes = {k: v.clone() for k, v in ws.base.items()}
    holes["face_au"][:3] = float("nan")
    holed = WindowSet(holes, ws.meta, ws.description)
    method.fit(split_of(holed, y))                     # the 3 incomplete windows are left out
    pred = method.predict(split_of(holed, None))
    assert np.isfinite(pred.probs).all() and pred.extras["n_windows_imputed"] == 3


def test_learns_the_synthetic_effect_subject_dependent(synthetic_root):
    """fast preset, trial-disjoint folds inside subject 1 of synthetic DEAP, binary valence."""
    ws, _ = presets.prepare("deap", synthetic_root("deap", n_subjects=2, seconds=30), "clmer",
                            use_cache=False, options={"subjects": [1]})
    labels = make_labels(ws.meta, "deap", "binary_valence")
    folds = create_protocol("subject_dependent", "deap", n_splits=2).folds(ws.meta, labels.y)
    correct = total = 0
    for fold in folds:
        assert not set(ws.meta.trial[fold.test]) & set(ws.meta.trial[fold.train])
        method = create_method("clmer", None, n_classes=2, seed=0, preset="fast")
        method.fit(split_of(ws, labels.y, fold.train), val=split_of(ws, labels.y, fold.val))
        pred = method.predict(split_of(ws, None, fold.test))
        correct += int((pred.labels == labels.y[fold.test]).sum())
        total += len(fold.test)
    majority = np.bincount(labels.y).max() / len(labels.y)
    assert correct / total > majority + 0.1
