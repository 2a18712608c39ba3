"""UF-AMA: losses against naive loops, screening, schedules, ablations, honesty, learning."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from affectlab.data import WindowSet
from affectlab.datasets.seed_iv import LABELS
from affectlab.losses.affinity import affinity_bce
from affectlab.losses.mmd import bandwidths, mk_mmd
from affectlab.methods.base import Split, build_config
from affectlab.methods.uf_ama import (
    UFAMA,
    Outputs,
    UFAMANet,
    official_delta,
    resolve,
    screen,
    theta_schedule,
    uf_ama_loss,
)

torch.set_num_threads(1)
SMALL = {"epochs": 2, "d_model": 8, "ffn_dim": 16, "blocks": 1, "fusion_dim": 8,
         "head_hidden": 8, "fusion_head_hidden": 8, "batch_size": 16}


# --------------------------------------------------------------------------- helpers

def shifted_seed_iv(n_subjects: int = 3, windows: int = 4, shift: float = 2.0,
                    signal: float = 0.5, seed: int = 0, n_eye: int = 31) -> WindowSet:
    """SEED-IV-shaped windows (EEG 62x5 DE, eye 31) of session 1's 24 clips: a class pattern
    shared by all subjects plus, as in the synthetic writer, a per-subject DE offset (global +
    per band) and eye offset (global + pupil features)."""
    rng = np.random.default_rng(seed)
    classes = np.array(LABELS[1])
    pat_eeg, pat_eye = rng.normal(size=(4, 62, 5)), rng.normal(size=(4, n_eye))
    eeg, eye, rows = [], [], []
    for s in range(1, n_subjects + 1):
        off_eeg = shift * (rng.normal() + rng.normal(size=(1, 5)))
        off_eye = shift * rng.normal() + np.r_[shift * rng.normal(size=2), np.zeros(n_eye - 2)]
        for t, c in enumerate(classes, 1):
            for w in range(windows):
                eeg.append(signal * pat_eeg[c] + off_eeg + rng.normal(size=(62, 5)))
                eye.append(signal * pat_eye[c] + off_eye + rng.normal(size=n_eye))
                rows.append({"subject": s, "session": 1, "trial": t, "window": w,
                             "native_label": int(c), "valence": float(c), "arousal": 1.0})
    base = {"eeg": torch.tensor(np.array(eeg), dtype=torch.float32),
            "eye": torch.tensor(np.array(eye), dtype=torch.float32)}
    return WindowSet(base, pd.DataFrame(rows), {"dataset": "seed_iv"})


def loso_split(ws: WindowSet, subject: int) -> tuple[Split, Split, np.ndarray]:
    """(labelled source, unlabelled target, target labels) with ``subject`` as target."""
    y = ws.meta["native_label"].to_numpy()
    src = np.flatnonzero(ws.meta["subject"] != subject)
    tgt = np.flatnonzero(ws.meta["subject"] == subject)
    return (Split(ws.subset(src), y[src], ("eeg", "eye")),
            Split(ws.subset(tgt), None, ("eeg", "eye")), y[tgt])


def method(overrides: dict | None = None, preset: str = "fast", seed: int = 0) -> UFAMA:
    return UFAMA(build_config(UFAMA, preset, overrides), n_classes=4, seed=seed)


def naive_kernel(a: torch.Tensor, b: torch.Tensor, bws: torch.Tensor) -> float:
    d = float(((a - b) ** 2).sum()) + 1e-5
    return sum(math.exp(-d / float(bw)) for bw in bws)


def naive_bandwidths(pooled: torch.Tensor) -> list[float]:
    n = len(pooled)
    total = sum(float(((pooled[i] - pooled[j]) ** 2).sum()) + 1e-5
                for i in range(n) for j in range(n))
    base = total / (n * n - n) / 4.0
    return [base * 2 ** u for u in range(5)]


def probs_with(conf: list[float], labels: list[int], n_classes: int = 4) -> torch.Tensor:
    """Rows with probability ``conf`` on ``labels`` and the rest spread evenly."""
    rows = []
    for c, k in zip(conf, labels, strict=True):
        row = np.full(n_classes, (1 - c) / (n_classes - 1))
        row[k] = c
        rows.append(row)
    return torch.tensor(np.array(rows), dtype=torch.float32)


# --------------------------------------------------------------------------- MK-MMD

def test_mmd_quadratic_matches_double_sum():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(7, 5, generator=g), torch.randn(9, 5, generator=g) + 0.3
    bws = naive_bandwidths(torch.cat([s, t]))
    assert np.allclose(bandwidths(torch.cat([s, t])).numpy(), bws, rtol=1e-5)
    ss = sum(naive_kernel(a, b, bws) for a in s for b in s) / 49
    tt = sum(naive_kernel(a, b, bws) for a in t for b in t) / 81
    st = sum(naive_kernel(a, b, bws) for a in s for b in t) / 63
    assert float(mk_mmd(s, t)) == pytest.approx(ss + tt - 2 * st, rel=1e-4, abs=1e-6)


def test_mmd_linear_matches_pair_loop():
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g) + 0.5
    bws = naive_bandwidths(torch.cat([s, t]))
    total = 0.0
    for i in range(6):
        j = (i + 1) % 6
        total += naive_kernel(s[i], s[j], bws) + naive_kernel(t[i], t[j], bws)
        total -= naive_kernel(s[i], t[j], bws) + naive_kernel(s[j], t[i], bws)
    assert float(mk_mmd(s, t, estimator="linear")) == pytest.approx(total / 6, rel=1e-4)


def test_mmd_official_reference_values_and_zero():
    torch.manual_seed(0)
    s, t = torch.randn(32, 64), torch.randn(32, 64) + 0.5
    assert float(mk_mmd(s, t, estimator="linear")) == pytest.approx(0.24436, abs=1e-5)
    assert float(mk_mmd(s, t)) == pytest.approx(0.43877, abs=1e-5)
    for estimator in ("quadratic", "linear"):
        assert float(mk_mmd(s, s.clone(), estimator=estimator)) == pytest.approx(0.0, abs=1e-6)


def test_mmd_gradient_and_detached_bandwidth():
    s = torch.randn(8, 3, requires_grad=True)
    t = (torch.randn(8, 3) + 1.0).requires_grad_(True)
    mk_mmd(s, t).backward()
    assert s.grad.abs().sum() > 0 and t.grad.abs().sum() > 0
    assert not bandwidths(torch.cat([s, t])).requires_grad
    with pytest.raises(ValueError):
        mk_mmd(s, t[:5], estimator="linear")


# --------------------------------------------------------------------------- affinity BCE

def test_affinity_bce_hand_case():
    x = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 0, 1])
    # S = (cos + 1) / 2: pairs (0,1) S = 1 (clamped, Y = 1); (0,2), (1,2) S = 0.5, Y = 0
    expected = (2 * -math.log(1 - 1e-6) + 4 * math.log(2)) / 6
    assert float(affinity_bce(x, y)) == pytest.approx(expected, rel=1e-5)


def test_affinity_bce_official_matches_loop():
    g = torch.Generator().manual_seed(3)
    p = torch.softmax(torch.randn(5, 3, generator=g), 1)
    y = torch.tensor([0, 1, 0, 2, 1])
    total = 0.0
    for i in range(5):
        for j in range(5):
            s = float(F.cosine_similarity(p[i], p[j], dim=0))
            same = float(y[i] == y[j])
            total -= same * math.log(s + 1e-3) + (1 - same) * math.log(1 - s + 1e-3)
    value = affinity_bce(p, y, rescale=False, include_diagonal=True, eta=1e-3, clamp=0.0)
    assert float(value) == pytest.approx(total / 25, rel=1e-4)


# --------------------------------------------------------------------------- screening

def test_screening_hand_built_batch():
    # sample: 0 consistent, 1 conflicting, 2 only EEG high, 3 only eye high, 4-5 both low
    p_eeg = probs_with([0.99, 0.97, 0.95, 0.30, 0.40, 0.35], [0, 1, 2, 0, 1, 2])
    p_eye = probs_with([0.98, 0.96, 0.20, 0.94, 0.45, 0.50], [0, 2, 1, 3, 1, 0])
    scr = screen(p_eeg, p_eye, alpha=0.5)            # top ceil(0.5 * 12) = 6 of 12
    assert scr.consistent.tolist() == [True, False, False, False, False, False]
    assert scr.conflicting.tolist() == [False, True, False, False, False, False]
    assert scr.eeg_teaches.tolist() == [False, False, True, False, False, False]
    assert scr.eye_teaches.tolist() == [False, False, False, True, False, False]
    assert float(scr.gate) == pytest.approx(0.94)
    assert scr.pseudo_eeg.tolist() == [0, 1, 2, 0, 1, 2]
    wider = screen(p_eeg, p_eye, alpha=0.75)          # 9 of 12: sample 4 becomes consistent
    assert wider.consistent.tolist()[4] is True


def test_screening_low_set_on_tied_confidences():
    """All confidences equal: ``complement`` makes every non-high modality low; ``bottom`` (the
    released ``topk(largest=False)``) picks its own tie order, which can overlap the top set."""
    uniform = torch.full((4, 3), 1 / 3)
    comp = screen(uniform, uniform, 0.5, "complement")
    bottom = screen(uniform, uniform, 0.5, "bottom")
    conf = torch.full((8,), 1 / 3)
    high = set(torch.topk(conf, 4).indices.tolist())
    low = set(torch.topk(conf, 4, largest=False).indices.tolist())

    def candidates(low_of):
        eeg = [i in high and i + 4 not in high and low_of(i + 4) for i in range(4)]
        eye = [i + 4 in high and i not in high and low_of(i) for i in range(4)]
        return eeg, eye

    assert (comp.eeg_teaches.tolist(), comp.eye_teaches.tolist()) == \
        candidates(lambda j: j not in high)
    assert (bottom.eeg_teaches.tolist(), bottom.eye_teaches.tolist()) == \
        candidates(lambda j: j in low)
    assert int((comp.eeg_teaches | comp.eye_teaches).sum()) \
        + 2 * int((comp.consistent | comp.conflicting).sum()) == 4        # k = 4 high entries
    if high & low:                           # torch's tie order on CPU: the same 4 indices
        assert not torch.equal(comp.eye_teaches | comp.eeg_teaches,
                               bottom.eye_teaches | bottom.eeg_teaches)
    with pytest.raises(ValueError, match="low_set"):
        screen(uniform, uniform, 0.5, "middle")
    assert resolve(build_config(UFAMA, "paper", {"official": True}), "seed").low_set == "bottom"
    assert resolve(build_config(UFAMA, "paper", {}), "seed").low_set == "complement"


def test_screening_low_set_same_without_ties():
    g = torch.Generator().manual_seed(5)
    p_eeg = torch.softmax(torch.randn(16, 4, generator=g), 1)
    p_eye = torch.softmax(torch.randn(16, 4, generator=g), 1)
    comp, bottom = screen(p_eeg, p_eye), screen(p_eeg, p_eye, low_set="bottom")
    for field in ("consistent", "conflicting", "eeg_teaches", "eye_teaches"):
        assert torch.equal(getattr(comp, field), getattr(bottom, field))
    assert int(comp.eeg_teaches.sum() + comp.eye_teaches.sum()) > 0


def test_theta_and_delta_schedules():
    values = [float(theta_schedule(torch.tensor(v))) for v in (0.05, 0.1, 0.15, 0.2, 0.7)]
    assert values == pytest.approx([0.5, 0.5, 0.2, 0.1, 0.1])
    exact = [theta_schedule(torch.tensor(v, dtype=torch.float64)) for v in (0.05, 0.15, 0.7)]
    assert [t.dtype for t in exact] == [torch.float64] * 3
    assert [float(t) for t in exact] == [0.5, 0.2, 0.1]            # not float32's 0.1
    assert official_delta(0) == 1.0 and official_delta(10) == 1.0
    assert official_delta(11) == pytest.approx(0.49991, abs=1e-5)
    assert official_delta(40) == pytest.approx(0.49991, abs=1e-5)
    assert official_delta(41) == pytest.approx(math.exp(-0.6 * 41))
    assert official_delta(86) == 0.0


def test_distillation_gate_selection_and_value():
    cfg = build_config(UFAMA, "paper", {"fine_start": 0.0})
    settings = resolve(cfg, "seed_iv")
    p_eeg = probs_with([0.99, 0.97, 0.95, 0.30, 0.40, 0.35], [0, 1, 2, 0, 1, 2])
    p_eye = probs_with([0.98, 0.96, 0.20, 0.94, 0.45, 0.50], [0, 2, 1, 3, 1, 0])
    fused = probs_with([0.9] * 6, [0, 0, 2, 0, 0, 0])   # agrees with EEG on 2, not eye on 3
    logits = (p_eeg.log(), p_eye.log(), fused.log())
    z = torch.zeros(6, 4)
    tgt = Outputs(z, z, z, logits)
    src = Outputs(torch.randn(6, 4), torch.randn(6, 4), torch.randn(6, 4), logits)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    _, parts = uf_ama_loss(src, tgt, y, cfg, settings, epoch=0)
    expected = 0.5 * float(F.cross_entropy(p_eye.log()[2:3], torch.tensor([2])))
    assert float(parts["gate_open"]) == 1.0                 # 6th confidence 0.94 >= 0.9
    assert float(parts["dstl"]) == pytest.approx(expected, rel=1e-5)
    assert float(parts["consistent"]) == 1.0
    assert float(parts["cnst"]) == pytest.approx(float(F.cross_entropy(fused.log()[:1],
                                                                       torch.tensor([0]))))
    closed = build_config(UFAMA, "paper", {"fine_start": 0.0, "beta": 0.95})
    _, parts = uf_ama_loss(src, tgt, y, closed, resolve(closed, "seed_iv"), epoch=0)
    assert float(parts["gate_open"]) == 0.0 and float(parts["dstl"]) == 0.0


# --------------------------------------------------------------------------- network, ablations

@pytest.mark.parametrize("n_eye,dataset", [(31, "seed_iv"), (33, "seed")])
def test_network_shapes(n_eye, dataset):
    cfg = build_config(UFAMA, "paper", {})
    net = UFAMANet((62, 5), (n_eye, 1), 4, cfg, resolve(cfg, dataset))
    tokens, vector = net.eeg_encoder(torch.randn(3, 62, 5))
    assert tokens.shape == (3, 62, 64) and vector.shape == (3, 64)
    assert len(net.eeg_encoder.blocks) == 3 and net.eeg_encoder.blocks[0].norm_first
    out = net(torch.randn(3, 62, 5), torch.randn(3, n_eye, 1))
    assert out.z_eeg.shape == (3, 64) and out.z_eye.shape == (3, 64)
    assert out.z_fused.shape == (3, 256)
    assert [lg.shape for lg in out.logits] == [(3, 4)] * 3
    official = build_config(UFAMA, "paper", {"official": True})
    settings = resolve(official, dataset)
    assert settings.blocks == (1 if dataset == "seed" else 3) and not settings.norm_first
    assert (settings.mmd_estimator, settings.gamma, settings.beta_strict) == ("linear", 1e-5,
                                                                              True)


@pytest.mark.parametrize("preset,options,dataset", [
    ("paper", {}, "seed_iv"), ("paper", {"official": True}, "seed_iv"),
    ("fast", {"blocks": 2}, "seed"), ("default", {}, "seed")])
def test_blocks_start_from_independent_draws(preset, options, dataset):
    """Each block has its own initial weights (nn.TransformerEncoder would deep-copy one)."""
    cfg = build_config(UFAMA, preset, options)
    torch.manual_seed(0)
    net = UFAMANet((62, 5), (33, 1), 3, cfg, resolve(cfg, dataset))
    for encoder in (net.eeg_encoder, net.eye_encoder):
        blocks = list(encoder.blocks)
        assert len(blocks) >= 2
        for name in ("self_attn.in_proj_weight", "self_attn.out_proj.weight", "linear1.weight",
                     "linear2.weight"):
            first = blocks[0].get_parameter(name)
            assert all(not torch.equal(first, b.get_parameter(name)) for b in blocks[1:]), name


def _batch_outputs(model: int, seed: int = 0, **extra):
    cfg = build_config(UFAMA, "fast", {"model": model, "fine_start": 0.0, **extra})
    settings = resolve(cfg, "seed_iv")
    torch.manual_seed(seed)
    net = UFAMANet((62, 5), (31, 1), 4, cfg, settings)
    out = net(torch.randn(16, 62, 5), torch.randn(16, 31, 1))
    y = torch.arange(8) % 4
    return net, cfg, settings, out, y


def test_ablation_models_change_the_loss():
    totals, parts_by_model = [], {}
    for model in range(1, 7):
        net, cfg, settings, out, y = _batch_outputs(model)
        torch.manual_seed(1)
        total, parts = uf_ama_loss(out.part(slice(0, 8)), out.part(slice(8, 16)), y, cfg,
                                   settings, epoch=0)
        totals.append(float(total.detach()))
        parts_by_model[model] = {k: float(v) for k, v in parts.items()}
    assert parts_by_model[1]["bce"] == 0 and parts_by_model[1]["mmd"] == 0
    assert parts_by_model[2]["bce"] > 0 and parts_by_model[2]["mmd"] == 0
    assert parts_by_model[3]["mmd"] > 0 and parts_by_model[3]["cnst"] == 0
    assert parts_by_model[4]["cnst"] > 0 and parts_by_model[4]["consistent"] == 8
    assert parts_by_model[5]["consistent"] <= 8
    assert len(set(totals[:4])) == 4                    # models 1-4 each add a term
    assert totals[4] != totals[3]                       # screening changes Eq. 12's set


def test_gradients_reach_every_parameter():
    net, cfg, settings, out, y = _batch_outputs(6)
    total, _ = uf_ama_loss(out.part(slice(0, 8)), out.part(slice(8, 16)), y, cfg, settings, 0)
    total.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_official_heads_stay_frozen_encoders_train():
    ws = shifted_seed_iv(n_subjects=2, windows=1)
    train, target, _ = loso_split(ws, 2)
    m = method({**SMALL, "official": True, "epochs": 1}, preset="paper")
    m.fit(train, unlabeled=target)
    torch.manual_seed(m.seed)
    fresh = UFAMANet((62, 5), (31, 1), 4, m.config, m.settings_)
    fresh_state = fresh.state_dict()
    for name, value in m.net_.state_dict().items():
        if name.split(".")[0].endswith("_head"):
            assert torch.equal(value, fresh_state[name]), name
    assert not torch.equal(m.net_.state_dict()["eeg_encoder.down.weight"],
                           fresh_state["eeg_encoder.down.weight"])
    assert all(not p.requires_grad for h in m.net_.heads() for p in h.parameters())


# --------------------------------------------------------------------------- honesty

def test_target_labels_never_reach_training():
    ws = shifted_seed_iv(n_subjects=2, windows=2)
    train, target, _ = loso_split(ws, 2)
    meta = target.windows.meta.copy()
    rng = np.random.default_rng(0)
    for column in ("native_label", "valence", "arousal"):
        meta[column] = rng.permutation(meta[column].to_numpy())
    shuffled = Split(WindowSet(target.windows.base, meta, target.windows.description,
                               target.windows.index), None, target.modalities)
    histories = []
    for tgt in (target, shuffled):
        m = method({**SMALL, "epochs": 3, "fine_start": 0.0})
        m.fit(train, unlabeled=tgt)
        histories.append(m.history_)
    assert histories[0] == histories[1]
    assert histories[0][-1]["mmd"] > 0


def test_report_oracle_epoch_probs_align_with_test_rows():
    ws = shifted_seed_iv(n_subjects=2, windows=1)
    train, target, _ = loso_split(ws, 1)
    m = method({**SMALL, "epochs": 3, "report_oracle": True})
    m.fit(train, unlabeled=target)
    order = np.arange(len(target))[::-1].copy()
    test = Split(target.windows.subset(order), None, target.modalities)
    pred = m.predict(test)
    assert pred.epoch_probs.shape == (3, len(test), 4)
    assert np.allclose(pred.epoch_probs[-1], pred.probs, atol=1e-5)
    other = Split(train.windows.subset(np.arange(5)), None, train.modalities)
    assert m.predict(other).epoch_probs is None
    plain = method({**SMALL, "epochs": 1})
    assert plain.fit(train, unlabeled=target).predict(test).epoch_probs is None


def test_validation_selection_and_subject_normalisation():
    ws = shifted_seed_iv(n_subjects=3, windows=1)
    y = ws.meta["native_label"].to_numpy()
    src, val_rows = np.flatnonzero(ws.meta["subject"] == 1), np.flatnonzero(
        ws.meta["subject"] == 2)
    tgt = np.flatnonzero(ws.meta["subject"] == 3)
    train = Split(ws.subset(src), y[src], ("eeg", "eye"))
    val = Split(ws.subset(val_rows), y[val_rows], ("eeg", "eye"))
    target = Split(ws.subset(tgt), None, ("eeg", "eye"))
    m = method({**SMALL, "epochs": 3, "select": "val", "normalize": "subject"})
    m.fit(train, unlabeled=target, val=val)
    assert {"val_acc", "val_balanced_accuracy", "val_loss"} <= set(m.history_[0])
    best = max(range(3), key=lambda e: (round(m.history_[e]["val_balanced_accuracy"], 4),
                                        -m.history_[e]["val_loss"], -e))
    assert m.selected_epoch_ == best
    on_loss = method({**SMALL, "epochs": 3, "select": "val", "select_on": "loss"})
    on_loss.fit(train, unlabeled=target, val=val)
    assert on_loss.selected_epoch_ == int(np.argmin([h["val_loss"] for h in on_loss.history_]))
    inputs = m._inputs(target)
    assert inputs["eeg"].mean(0).abs().max() < 1e-4          # target z-scored on its own
    assert inputs["eye"].std(0).sub(1).abs().max() < 1e-3


def test_subject_session_normalisation_keeps_sessions_apart():
    ws = shifted_seed_iv(n_subjects=2, windows=1)
    meta = ws.meta.copy()
    meta.loc[meta["trial"] > 12, "session"] = 2       # two "sessions" per subject
    base = {k: v.clone() for k, v in ws.base.items()}
    rows = torch.as_tensor(np.flatnonzero(meta["session"] == 2))
    base["eeg"][rows] += 5.0                           # a session drift on top
    ws = WindowSet(base, meta, ws.description)
    y = meta["native_label"].to_numpy()
    src, tgt = np.flatnonzero(meta["session"] == 1), np.flatnonzero(meta["session"] == 2)
    train = Split(ws.subset(src), y[src], ("eeg", "eye"))
    target = Split(ws.subset(tgt), None, ("eeg", "eye"))
    m = method({**SMALL, "epochs": 1, "normalize": "subject_session"})
    m.fit(train, unlabeled=target)
    inputs = m._inputs(target)
    for subject in (1, 2):                             # each target subject-session on its own
        part = torch.as_tensor(np.flatnonzero(target.windows.meta["subject"] == subject))
        assert inputs["eeg"][part].mean(0).abs().max() < 1e-4
    assert set(m.normalizer_.stats) == {"1/1", "1/2", "2/1", "2/2"}


def _loso_mean(ws: WindowSet, overrides: dict, subjects=(1, 2)) -> float:
    accuracies = []
    for subject in subjects:
        train, target, y_target = loso_split(ws, subject)
        m = method(overrides).fit(train, unlabeled=target)
        accuracies.append(float((m.predict(target).labels == y_target).mean()))
    return float(np.mean(accuracies))


def test_subject_normalisation_removes_the_offset_source_statistics_leave():
    """The cause of the fast / paper presets' slow start under LOSO: with the source training
    statistics every subject keeps its own DE / eye offset, which the network (and MK-MMD) must
    learn away; z-scoring every subject-session with its own (unlabelled) statistics removes it
    at the input, so a few epochs reach what the class pattern allows."""
    ws = shifted_seed_iv(n_subjects=3, windows=2, shift=4.0, signal=0.5, seed=0)
    common = {"model": 1, "epochs": 6}
    source = _loso_mean(ws, {**common, "normalize": "source"})
    own = _loso_mean(ws, {**common, "normalize": "subject_session"})
    assert own > 0.9 and own > source + 0.3, (own, source)


def test_default_preset_is_what_a_user_gets():
    assert set(UFAMA.presets) >= {"default", "paper", "fast"}
    cfg = build_config(UFAMA)                                   # no preset named: default
    assert (cfg.normalize, cfg.select, cfg.select_on) == ("subject_session", "val", "loss")
    assert cfg.patience is not None and cfg.epochs > cfg.patience
    paper = build_config(UFAMA, "paper")
    for name in ("d_model", "heads", "ffn_dim", "blocks", "lr", "batch_size", "model"):
        assert getattr(cfg, name) == getattr(paper, name), name   # the paper's network
    assert paper.normalize == "source" and paper.select == "last" and paper.patience is None


@pytest.mark.parametrize("model,stops_after", [(6, 5), (3, 1)])
def test_early_stopping_waits_for_the_fine_grained_stage(model, stops_after):
    """lr ~ 0: the validation scores never improve after the first epoch, so training stops
    ``patience`` (1) epochs after the fine-grained stage starts (epoch 5 of 20 here), or after
    epoch 1 for a model without that stage; the first epoch's weights are kept."""
    ws = shifted_seed_iv(n_subjects=3, windows=1)
    y = ws.meta["native_label"].to_numpy()
    parts = [np.flatnonzero(ws.meta["subject"] == s) for s in (1, 2, 3)]
    train, val = (Split(ws.subset(p), y[p], ("eeg", "eye")) for p in parts[:2])
    target = Split(ws.subset(parts[2]), None, ("eeg", "eye"))
    m = method({**SMALL, "model": model, "epochs": 20, "fine_start": 0.25, "lr": 1e-12,
                "select": "val", "patience": 1})
    pred = m.fit(train, unlabeled=target, val=val).predict(target)
    assert len(m.history_) == stops_after + 1 and m.selected_epoch_ == 0
    assert pred.extras["epochs_run"] == stops_after + 1 and pred.extras["selected_epoch"] == 1


def test_requires_target_for_alignment_models():
    ws = shifted_seed_iv(n_subjects=2, windows=1)
    train, _, _ = loso_split(ws, 2)
    with pytest.raises(Exception, match="unlabelled target"):
        method({**SMALL, "model": 3}).fit(train)
    method({**SMALL, "model": 2, "epochs": 1}).fit(train)        # source-only models need none


# --------------------------------------------------------------------------- learning

def _loso_accuracy(ws: WindowSet, model: int) -> float:
    accuracies = []
    for subject in sorted(ws.meta["subject"].unique()):
        train, target, y_target = loso_split(ws, subject)
        m = method({"model": model}).fit(train, unlabeled=target)
        accuracies.append(float((m.predict(target).labels == y_target).mean()))
    return float(np.mean(accuracies))


def test_full_uf_ama_beats_source_only_under_subject_shift():
    ws = shifted_seed_iv(n_subjects=3, windows=4, shift=2.0, signal=0.5, seed=0)
    full, source_only = _loso_accuracy(ws, 6), _loso_accuracy(ws, 1)
    assert full > 0.6 and full > source_only + 0.1, (full, source_only)


@pytest.mark.slow
def test_synthetic_seed_iv_loso_through_runner(synthetic_root, tmp_path):
    from affectlab.run import load_config, run_experiment

    root = synthetic_root("seed_iv", n_subjects=3, seconds=8)
    accuracy = {}
    for model in (1, 6):
        cfg = load_config({"method": "uf_ama", "dataset": "seed_iv", "root": str(root),
                           "protocol": "loso", "labels": {"scheme": "native"},
                           "method_preset": "fast", "report_oracle": True,
                           "cache_dir": str(tmp_path / "cache"),
                           "options": {"method": {"model": model}, "protocol": {}, "data": {}}})
        summary, _ = run_experiment(cfg, out=tmp_path / f"model{model}")
        assert summary["n_folds"] == 3 and summary["transductive"] is True
        assert "oracle_best_epoch" in summary
        accuracy[model] = summary["metrics"]["accuracy"]["mean"]
    assert accuracy[6] > accuracy[1] + 0.1, accuracy
