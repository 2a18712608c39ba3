"""DHCM-CACL: blocks, the affine scan, CACL / evidential losses, freezing, ablations, learning."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from affectlab.data import WindowSet
from affectlab.errors import AffectlabError
from affectlab.losses.contrastive import info_nce
from affectlab.losses.evidential import (
    dempster_combine,
    dirichlet_opinion,
    evidential_loss,
    opinion_to_dirichlet,
)
from affectlab.methods.base import Split, build_config
from affectlab.methods.dhcm_cacl import (
    DHCMCACL,
    AttentionGate,
    DiffusionLayer,
    Encoder,
    EvidentialHead,
    FineTuneModel,
    LossWeights,
    cacl_terms,
    consistency_loss,
    masked_mean,
    sample_confidence,
    segment_means,
    symmetric_infonce,
    trial_layout,
)
from affectlab.nn.ssm import (
    DynamicSSM,
    affine_scan,
    affine_scan_doubling,
    affine_scan_sequential,
    bound_spectral_norm,
)

torch.set_num_threads(1)

TINY = {"d_model": 12, "heads": 3, "d_state": 4, "ssm_hidden": 8, "segments": 2, "ffn": 16,
        "pretrain_epochs": 2, "finetune_epochs": 2, "batch_size": 4, "lr": 1e-2}


def cfg(**overrides):
    return build_config(DHCMCACL, "paper", {**TINY, **overrides})


def windows(lengths, seed=0, subject=1, nan_face=None) -> tuple[WindowSet, np.ndarray]:
    """Trials of the given lengths (windows), label = trial parity, class-shifted features;
    rows shuffled so that trial order != row order."""
    rng = np.random.default_rng(seed)
    rows = [(subject, 1, t + 1, w) for t, n in enumerate(lengths) for w in range(n)]
    meta = pd.DataFrame(rows, columns=["subject", "session", "trial", "window"])
    y = (meta["trial"].to_numpy() % 2).astype(np.int64)
    eeg = rng.normal(size=(len(meta), 32, 5)) + 0.8 * y[:, None, None]
    face = rng.normal(size=(len(meta), 17)) - 0.8 * y[:, None]
    if nan_face is not None:
        face[nan_face] = np.nan
    order = rng.permutation(len(meta))
    base = {"eeg": torch.tensor(eeg[order], dtype=torch.float32),
            "face_au": torch.tensor(face[order], dtype=torch.float32)}
    return WindowSet(base, meta.iloc[order].reset_index(drop=True)), y[order]


def split(ws, y=None):
    return Split(ws, y, ("eeg", "face_au"))


def inputs(batch=3, steps=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x_e, x_f = torch.randn(batch, steps, 160, generator=g), torch.randn(batch, steps, 17,
                                                                        generator=g)
    mask = torch.ones(batch, steps, dtype=torch.bool)
    mask[-1, steps - 2:] = False
    return x_e * mask[..., None], x_f * mask[..., None], mask


# ----------------------------------------------------------------------------- blocks

def test_block_shapes():
    torch.manual_seed(0)
    c = cfg()
    x_e, x_f, mask = inputs()
    assert DiffusionLayer(160, 3)(x_e, mask).shape == (3, 6, 160)
    assert DynamicSSM(12, 4, hidden=8)(torch.randn(3, 6, 12)).shape == (3, 6, 4)
    enc = Encoder(160, 17, c)
    f_e, f_f, gate = enc(x_e, x_f, mask)
    assert f_e.shape == f_f.shape == gate.shape == (3, 6, 12)
    aligned, g = AttentionGate(12, 3)(f_e, f_f, mask)
    assert aligned.shape == g.shape == (3, 6, 12)
    params = EvidentialHead(12, 4, 1e-2)(torch.randn(5, 12))
    assert [p.shape for p in params] == [(5, 4)] * 4
    out = FineTuneModel(enc, 2, c)(x_e, x_f, mask)
    assert out["log_probs"].shape == (3, 2) and out["uncertainty"].shape == (3,)
    assert out["aligned"].shape == (3, 6, 24) and out["u_modal"].shape == (3, 2)
    assert torch.allclose(out["log_probs"].exp().sum(1), torch.ones(3))
    means, valid = segment_means(f_e, mask, 4)
    assert means.shape == (4, 3, 12) and valid.shape == (4, 3)
    tf = Encoder(160, 17, cfg(encoder="transformer"))(x_e, x_f, mask)
    assert tf[0].shape == (3, 6, 12) and tf[2] is None


def test_evidential_parameter_ranges():
    gamma, v, alpha, beta = EvidentialHead(12, 3, 1e-2)(10 * torch.randn(50, 12))
    assert (gamma >= 0).all() and (v >= 1e-2).all() and (alpha >= 1).all() and (beta >= 0).all()


# ----------------------------------------------------------------------------- scan

@pytest.mark.parametrize("chunk", [None, 1, 3, 4, 11, 16, "doubling"])
def test_fast_scan_matches_reference(chunk):
    g = torch.Generator().manual_seed(1)
    m = bound_spectral_norm(torch.randn(2, 11, 5, 5, generator=g), 0.97).requires_grad_()
    u = torch.randn(2, 11, 5, generator=g, requires_grad=True)
    h0 = torch.randn(2, 5, generator=g)
    ref = affine_scan_sequential(m, u, h0)
    fast = affine_scan_doubling(m, u, h0) if chunk == "doubling" else \
        affine_scan(m, u, h0, chunk=chunk)
    assert torch.allclose(ref, fast, atol=1e-5)
    w = torch.randn_like(ref)
    g_ref = torch.autograd.grad((ref * w).sum(), (m, u))
    g_fast = torch.autograd.grad((fast * w).sum(), (m, u))
    for a, b in zip(g_ref, g_fast, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_ssm_scan_modes_agree():
    torch.manual_seed(0)
    fast = DynamicSSM(12, 6, hidden=8, scan="chunked")
    x = torch.randn(3, 20, 12)
    for mode in ("sequential", "doubling", "auto"):
        other = DynamicSSM(12, 6, hidden=8, scan=mode)
        other.load_state_dict(fast.state_dict())
        assert torch.allclose(fast(x), other(x), atol=1e-5)


@pytest.mark.parametrize("forget_gate", [True, False])
def test_dynamic_ssm_is_eq6_step_by_step(forget_gate):
    torch.manual_seed(0)
    layer = DynamicSSM(12, 5, hidden=8, forget_gate=forget_gate)
    x = torch.randn(2, 7, 12)
    a, x_state = layer.transition_matrices(x), layer.w_state(x)
    f = layer.forget(x) if forget_gate else torch.ones(2, 7, 5)
    h, states = torch.zeros(2, 5), []
    for t in range(7):
        ah = (a[:, t] @ h[..., None])[..., 0]
        h = f[:, t] * ah + ((1 - f[:, t]) * x_state[:, t] if forget_gate else x_state[:, t])
        states.append(h)
    assert torch.allclose(layer(x), torch.stack(states, 1), atol=1e-5)


@pytest.mark.parametrize("transition", ["dynamic", "static", "random"])
def test_transition_spectral_norm_bounded(transition):
    torch.manual_seed(0)
    ssm = DynamicSSM(12, 6, hidden=8, transition=transition, rho=0.9)
    x = 100 * torch.randn(2, 7, 12)
    norms = torch.linalg.matrix_norm(ssm.transition_matrices(x), ord=2)
    assert norms.max() <= 0.9 + 1e-5
    states = ssm(x)
    u_max = ssm.w_state(x).norm(dim=-1).max()
    assert states.norm(dim=-1).max() <= u_max / (1 - 0.9) + 1e-3     # contraction bound
    a = torch.randn(4, 8, 8) * 50
    assert torch.linalg.matrix_norm(bound_spectral_norm(a, 0.5), ord=2).max() <= 0.5 + 1e-5


def test_gates_and_confidence_in_unit_interval():
    torch.manual_seed(0)
    x_e, x_f, mask = inputs()
    enc = Encoder(160, 17, cfg())
    _, _, gate = enc(5 * x_e, 5 * x_f, mask)
    forget = enc.levels[0].ssm[0].forget(torch.randn(3, 6, 12) * 10)
    conf = sample_confidence(gate, mask)
    for t in (gate, forget, conf):
        assert ((t > 0) & (t < 1)).all()
    assert ((conf > 0.5) & (conf < 1 / (1 + math.exp(-1)))).all()   # sigmoid of a mean in (0,1)


def test_padding_does_not_change_valid_steps():
    torch.manual_seed(0)
    enc = Encoder(160, 17, cfg()).eval()
    x_e, x_f, mask = inputs(batch=1, steps=4)
    pad_e, pad_f = F.pad(x_e, (0, 0, 0, 3)), F.pad(x_f, (0, 0, 0, 3))
    pad_mask = F.pad(mask, (0, 3))
    short, padded = enc(x_e, x_f, mask), enc(pad_e, pad_f, pad_mask)
    for a, b in zip(short[:2], padded[:2], strict=True):
        assert torch.allclose(a, b[:, :4], atol=1e-5)


# ----------------------------------------------------------------------------- losses

def naive_symmetric(a, b, tau, negatives_only):
    sim = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / tau
    out = []
    for i in range(len(a)):
        total = 0.0
        for s in (sim, sim.T):
            den = [s[i, k] for k in range(len(a)) if not (negatives_only and k == i)]
            total += -(s[i, i] - torch.logsumexp(torch.stack(den), 0))
        out.append(total)
    return torch.stack(out)


@pytest.mark.parametrize("denominator", ["all", "negatives"])
def test_symmetric_infonce_against_loop(denominator):
    a, b = torch.randn(5, 8), torch.randn(5, 8)
    got = symmetric_infonce(a, b, 0.3, denominator=denominator)
    assert torch.allclose(got, naive_symmetric(a, b, 0.3, denominator == "negatives"), atol=1e-5)
    if denominator == "all":
        assert torch.allclose(got.mean() / 2, info_nce(a, b, 0.3), atol=1e-6)
    valid = torch.tensor([True, False, True, True, False])
    masked = symmetric_infonce(a, b, 0.3, valid, denominator)
    sub = symmetric_infonce(a[valid], b[valid], 0.3, denominator=denominator)
    assert torch.allclose(masked[valid], sub, atol=1e-5) and (masked[~valid] == 0).all()


def test_segment_means_by_hand():
    x = torch.arange(7.0).reshape(1, 7, 1).repeat(2, 1, 1)
    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    means, valid = segment_means(x, mask, 2)
    # length 5: t*2//5 -> [0, 0, 0, 1, 1]; length 3: t*2//3 -> [0, 0, 1]
    assert means[:, 0, 0].tolist() == [1.0, 3.5] and means[:, 1, 0].tolist() == [0.5, 2.0]
    _, valid = segment_means(x, mask, 4)
    assert valid[:, 1].tolist() == [True, True, True, False]           # 3 windows, 4 segments
    assert masked_mean(x, mask)[:, 0].tolist() == [2.0, 1.0]


def test_cacl_terms_against_loop():
    torch.manual_seed(0)
    c = cfg(segments=2, tau=0.5)
    f_e, f_f, gate = torch.randn(4, 6, 3), torch.randn(4, 6, 3), torch.rand(4, 6, 3)
    mask = torch.ones(4, 6, dtype=torch.bool)
    terms = cacl_terms(f_e, f_f, gate, mask, c)
    conf = torch.sigmoid(gate.mean(dim=(1, 2)))
    seg = sum(naive_symmetric(f_e[:, 3 * i:3 * i + 3].mean(1), f_f[:, 3 * i:3 * i + 3].mean(1),
                              0.5, False) for i in range(2))
    glob = naive_symmetric(f_e.mean(1), f_f.mean(1), 0.5, False)
    assert torch.allclose(terms["segment"], (conf * seg).mean(), atol=1e-5)          # Eq. 18
    assert torch.allclose(terms["global"], conf.mean() * glob.mean(), atol=1e-5)
    plain = cacl_terms(f_e, f_f, gate, mask, cfg(contrastive="plain", tau=0.5))
    assert set(plain) == {"global", "confidence"}
    assert torch.allclose(plain["global"], glob.mean(), atol=1e-5)


def test_consistency_loss_against_loop():
    z_p, z_f = torch.randn(4, 6), torch.randn(4, 6)
    sim = F.normalize(z_p, dim=1) @ F.normalize(z_f, dim=1).T / 0.07
    loop = torch.stack([torch.logsumexp(sim[i], 0) - sim[i, i] for i in range(4)]).mean()
    assert torch.allclose(consistency_loss(z_p, z_f, 0.07), loop, atol=1e-4)
    neg = torch.stack([torch.logsumexp(sim[i][torch.arange(4) != i], 0) - sim[i, i]
                       for i in range(4)]).mean()
    assert torch.allclose(consistency_loss(z_p, z_f, 0.07, "negatives"), neg, atol=1e-4)


def test_evidential_loss_by_hand():
    gamma, v = torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    alpha, beta = torch.tensor([[2.0, 2.0]]), torch.tensor([[1.0, 2.0]])
    # S = 3: (1 - 2/2)^2 + 1/6 + (0 - 0)^2 + 1/6; lambda * (1/1^2 + 1/2^2) = 0.1 * 1.25
    loss = evidential_loss(gamma, v, alpha, beta, torch.tensor([0]), lam=0.1, eps=0.0)
    assert loss.item() == pytest.approx(1 / 3 + 0.125)


def test_opinions_and_dempster_by_hand():
    belief, u = dirichlet_opinion(torch.tensor([[2.0, 0.0]]))
    assert torch.allclose(belief, torch.tensor([[0.5, 0.0]])) and u.item() == pytest.approx(0.5)
    assert torch.allclose(opinion_to_dirichlet(belief, u), torch.tensor([[3.0, 1.0]]))
    vac_b, vac_u = dirichlet_opinion(torch.zeros(1, 2))
    b, u2 = dempster_combine(belief, u, vac_b, vac_u)                 # vacuous: no change
    assert torch.allclose(b, belief) and torch.allclose(u2, u)
    b, uu = dempster_combine(belief, u, torch.tensor([[0.0, 0.5]]), torch.tensor([0.5]))
    # conflict 0.25: b = (0 + 0.25, 0 + 0.25) / 0.75, u = 0.25 / 0.75
    assert torch.allclose(b, torch.tensor([[1 / 3, 1 / 3]])) and uu.item() == pytest.approx(1 / 3)
    assert torch.allclose(b.sum(1) + uu, torch.ones(1))


def test_loss_weights_settle_at_inverse_loss_not_zero():
    weights = LossWeights(2)
    assert torch.allclose(weights.weights, torch.ones(2))                # Eq. 18: w = 1 at start
    opt = torch.optim.SGD(weights.parameters(), lr=0.1)
    losses = [torch.tensor(4.0), torch.tensor(0.5)]
    for _ in range(400):
        opt.zero_grad()
        weights(losses).backward()
        opt.step()
    assert torch.allclose(weights.weights, torch.tensor([0.25, 2.0]), atol=1e-2)


# ----------------------------------------------------------------------------- method

def fitted(ws, y, **overrides) -> DHCMCACL:
    method = DHCMCACL(cfg(**overrides), n_classes=2, seed=0)
    return method.fit(split(ws, y))


def test_gradients_reach_every_trainable_parameter():
    ws, y = windows([4, 5, 3, 4, 6, 4])
    method = fitted(ws, y, levels=3, freeze_levels=2)
    data = method._trials(split(ws, y), labelled=True)
    idx = torch.arange(len(data))
    loss, terms = method.finetune_loss(*data.batch(idx), data.y)
    assert set(terms) == {"ce", "evd", "contrast"}
    loss.backward()
    trainable = [(n, p) for n, p in method.model_.named_parameters() if p.requires_grad]
    assert any(n.startswith("encoder.levels.2") for n, _ in trainable)
    for name, p in trainable:
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    enc = Encoder(160, 17, cfg())
    method.loss_weights_ = LossWeights(2)
    loss, _ = method.pretrain_loss(enc, *data.batch(idx))
    loss.backward()
    for name, p in [*enc.named_parameters(), *method.loss_weights_.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_frozen_levels_unchanged_after_finetuning():
    ws, y = windows([4, 5, 3, 4, 6, 4, 5, 3])
    method = fitted(ws, y, levels=3, freeze_levels=2, finetune_epochs=3)
    ref = method.frozen_encoder_.state_dict()           # the encoder right after pre-training
    now = method.model_.encoder.state_dict()
    frozen = ("diffusion.", "proj.", "levels.0.", "levels.1.")
    assert all(torch.equal(now[k], ref[k]) for k in ref if k.startswith(frozen))
    assert not all(torch.equal(now[k], ref[k]) for k in ref if k.startswith("levels.2."))
    assert all(not p.requires_grad for p in method.frozen_encoder_.parameters())


def test_ablation_flags_change_the_computation():
    x_e, x_f, mask = inputs()

    def encode(**o):
        torch.manual_seed(0)
        return Encoder(160, 17, cfg(**o))(x_e, x_f, mask)[0]

    base = encode()
    for flags in ({"transition": "static"}, {"transition": "random"}, {"forget_gate": False},
                  {"levels": 2}, {"encoder": "transformer"}):
        other = encode(**flags)
        assert not torch.allclose(base, other, atol=1e-4), flags
    torch.manual_seed(0)
    enc = Encoder(160, 17, cfg())
    f_e, f_f, gate = enc(x_e, x_f, mask)
    assert "segment" in cacl_terms(f_e, f_f, gate, mask, cfg())
    assert "segment" not in cacl_terms(f_e, f_f, gate, mask, cfg(contrastive="plain"))
    ws, y = windows([4, 5, 3, 4, 6, 4])
    soft = fitted(ws, y, head="softmax")
    out = soft.predict(split(ws))
    assert np.allclose(out.uncertainty, 1 - out.probs.max(1))
    scratch = fitted(ws, y, pretrain=False)
    assert scratch.frozen_encoder_ is None and scratch.history_["pretrain"] == []
    assert all(p.requires_grad for p in scratch.model_.parameters())


def test_trials_broadcast_to_windows_and_variable_lengths():
    ws, y = windows([3, 6, 2, 5, 4, 4])
    layout = trial_layout(ws.meta)
    assert layout.shape == (6, 6) and (layout >= 0).sum() == len(ws)
    assert (np.diff(ws.meta["window"].to_numpy()[layout[1]]) == 1).all()
    extra, _ = windows([8, 7], seed=1, subject=2)                       # longer unlabelled trials
    method = DHCMCACL(cfg(), n_classes=2, seed=0).fit(split(ws, y), unlabeled=split(extra))
    pred = method.predict(split(ws))
    assert pred.probs.shape == (len(ws), 2) and pred.embeddings.shape == (len(ws), 24)
    assert np.allclose(pred.probs.sum(1), 1) and ((pred.uncertainty > 0) &
                                                  (pred.uncertainty <= 1)).all()
    for trial in ws.meta["trial"].unique():
        rows = np.flatnonzero(ws.meta["trial"].to_numpy() == trial)
        assert np.allclose(pred.probs[rows], pred.probs[rows[0]])
        assert np.allclose(pred.uncertainty[rows], pred.uncertainty[rows[0]])
    assert -1 <= pred.extras["fad"] <= 1 and {"uncertainty_eeg", "uncertainty_face"} <= set(
        pred.extras)


def test_nan_face_raises_clear_error():
    ws, y = windows([4, 4, 4], nan_face=[2])
    with pytest.raises(AffectlabError, match="face_au"):
        DHCMCACL(cfg(), n_classes=2).fit(split(ws, y))
    with pytest.raises(AffectlabError, match="needs modalities"):
        DHCMCACL(cfg(modalities=["eeg", "face_au"]), n_classes=2).fit(
            Split(ws.select_modalities(["eeg"]), y, ("eeg",)))


# ----------------------------------------------------------------------------- learning

def test_learns_and_uncertainty_flags_errors_subject_dependent(synthetic_root):
    from affectlab.labels import make_labels
    from affectlab.presets import prepare
    from affectlab.protocols import create_protocol

    ws, _ = prepare("deap", synthetic_root("deap", n_subjects=3, seconds=12), "dhcm_cacl", {})
    y = make_labels(ws.meta, "deap", "binary_valence").y
    keep = np.flatnonzero(ws.available("face_au"))                      # subjects with a face
    ws, y = ws.subset(keep), y[keep]
    folds = create_protocol("subject_dependent", "deap", n_splits=2).folds(ws.meta, y)
    right, uncertainty, majority = [], [], []
    for fold in folds:                                                  # by whole trials
        method = DHCMCACL(build_config(DHCMCACL, "fast"), n_classes=2, seed=0)
        method.fit(split(ws.subset(fold.train), y[fold.train]),
                   val=split(ws.subset(fold.val), y[fold.val]))
        pred = method.predict(split(ws.subset(fold.test)))
        right.append(pred.labels == y[fold.test])
        uncertainty.append(pred.uncertainty)
        majority.append(y[fold.test] == np.bincount(y[fold.train]).argmax())
    right, uncertainty = np.concatenate(right), np.concatenate(uncertainty)
    from sklearn.metrics import roc_auc_score

    assert right.mean() > np.concatenate(majority).mean() + 0.08
    assert roc_auc_score(~right, uncertainty) > 0.56
    assert uncertainty[~right].mean() > uncertainty[right].mean()


def test_pretext_features_pretrained_vs_random_init():
    """The linear probe's hook: per-window [F_eeg, F_face] of the encoder after the CACL stage
    alone (training + unlabelled trials), against the same encoder at its random
    initialisation (rebuilt here from the seed)."""
    assert DHCMCACL.self_supervised
    ws, y = windows([4, 5, 3, 4, 6, 4])
    extra, _ = windows([8, 7], seed=1, subject=2)
    test_ws, _ = windows([5, 3, 4], seed=2, subject=3)

    def features(pretrain, parts=(split(ws, y), split(test_ws))):
        method = DHCMCACL(cfg(), n_classes=2, seed=0)
        return method.pretext_features(split(ws, y), split(extra), list(parts), pretrain=pretrain)

    pretrained, random_init = features(True), features(False)
    for arm in (pretrained, random_init):
        assert [f.shape for f in arm] == [(len(ws), 24), (len(test_ws), 24)]
        assert all(np.isfinite(f).all() for f in arm)
    for again, arm in ((features(True), pretrained), (features(False), random_init)):
        assert all(np.array_equal(a, b) for a, b in zip(again, arm, strict=True))
    assert not np.allclose(pretrained[1], random_init[1], atol=1e-3)
    method = DHCMCACL(cfg(), n_classes=2, seed=0)
    method._fit_scaler([split(ws, y), split(extra)])
    data = method._trials(split(test_ws), labelled=False)
    torch.manual_seed(0)
    encoder = Encoder(160, 17, cfg()).eval()
    with torch.no_grad():
        f_e, f_f, _ = encoder(*data.batch(torch.arange(len(data))))
    steps = torch.cat([f_e, f_f], dim=-1).numpy()
    expected = np.empty_like(random_init[1])
    valid = data.pos >= 0
    expected[data.pos[valid]] = steps[valid]
    np.testing.assert_allclose(random_init[1], expected, rtol=1e-5, atol=1e-6)
    broken, _ = windows([5, 3, 4], seed=2, subject=3, nan_face=[6])
    rows = np.isnan(features(False, [split(broken)])[0]).any(axis=1)
    missing = ~torch.isfinite(broken.tensor("face_au")).all(dim=1).numpy()
    assert rows.sum() == 1 and np.array_equal(rows, missing)


# ----------------------------------------------------------------------------- issue 16

def test_paper_preset_uses_the_papers_feed_forward_width_and_k_per_dataset():
    paper = build_config(DHCMCACL, "paper")
    assert paper.ssm_hidden == 1024 and paper.segments == 18            # DEAP: 18 subjects
    enc = Encoder(160, 17, paper)
    assert enc.levels[0].ssm[0].mlp[0].out_features == 1024             # Eq. 4's MLP
    assert DHCMCACL.method_preset_for("paper", "mahnob") == "paper_mahnob"
    assert build_config(DHCMCACL, "paper_mahnob").segments == 24         # MAHNOB-HCI: 24


def test_segments_follow_the_subjects_of_the_pretraining_data():
    ws, y = windows([4, 5, 3, 4])
    other, y_other = windows([4, 4, 5], seed=1, subject=2)
    extra, _ = windows([6, 5], seed=2, subject=3)
    both = WindowSet({m: torch.cat([ws.tensor(m), other.tensor(m)]) for m in ws.names},
                     pd.concat([ws.meta, other.meta], ignore_index=True))
    method = DHCMCACL(cfg(segments="subjects"), n_classes=2, seed=0)
    method.fit(split(both, np.r_[y, y_other]), unlabeled=split(extra))
    assert method.segments_ == 3
    assert DHCMCACL(cfg(), n_classes=2).fit(split(ws, y)).segments_ == 2


def test_transformer_ablation_has_positions_and_the_dhcm_parameter_count():
    from affectlab.methods.dhcm_cacl import n_parameters

    for config in (cfg(), build_config(DHCMCACL, "paper"), build_config(DHCMCACL, "default")):
        dhcm = n_parameters(Encoder(160, 17, config))
        tf = Encoder(160, 17, config.model_copy(update={"encoder": "transformer",
                                                        "ffn": "matched"}))
        assert abs(n_parameters(tf) - dhcm) / dhcm < 0.02, (n_parameters(tf), dhcm)
    torch.manual_seed(0)
    enc = Encoder(160, 17, cfg(encoder="transformer", dropout=0.0)).eval()
    x_e, x_f, mask = inputs(batch=2, steps=5)
    mask[:] = True
    order = torch.tensor([4, 2, 0, 3, 1])

    def pooled():
        with torch.no_grad():
            a = masked_mean(enc(x_e, x_f, mask)[0], mask)
            b = masked_mean(enc(x_e[:, order], x_f[:, order], mask)[0], mask)
        return a, b

    assert not torch.allclose(*pooled(), atol=1e-4)          # positions: order matters
    enc.positional = False
    assert torch.allclose(*pooled(), atol=1e-5)              # without them it would not


def test_freezing_with_one_level_freezes_the_input_stage():
    ws, y = windows([4, 5, 3, 4, 6, 4, 5, 3])
    method = fitted(ws, y, levels=1, freeze_levels=2, finetune_epochs=3)
    assert len(method.frozen_parts_) == 2                     # diffusion, projection
    ref, now = method.frozen_encoder_.state_dict(), method.model_.encoder.state_dict()
    assert all(torch.equal(now[k], ref[k]) for k in ref if k.startswith(("diffusion.", "proj.")))
    assert not all(torch.equal(now[k], ref[k]) for k in ref if k.startswith("levels.0."))
    assert Encoder(160, 17, cfg(levels=1)).freeze(0) == []


@pytest.mark.parametrize("modality", ["eeg", "face_au"])
def test_single_modality_fits_and_predicts(modality):
    ws, y = windows([4, 5, 3, 4, 6, 4])
    alone = ws.select_modalities([modality])
    method = DHCMCACL(cfg(modalities=[modality]), n_classes=2, seed=0)
    method.fit(Split(alone, y, (modality,)), val=Split(alone, y, (modality,)))
    assert method.history_["pretrain"] == [] and method.frozen_encoder_ is None
    pred = method.predict(Split(alone, None, (modality,)))
    assert pred.probs.shape == (len(ws), 2) and np.allclose(pred.probs.sum(1), 1)
    assert pred.embeddings.shape == (len(ws), 12) and "fad" not in pred.extras
    assert set(pred.extras) == {"uncertainty_eeg" if modality == "eeg" else "uncertainty_face"}
    assert ((pred.uncertainty > 0) & (pred.uncertainty <= 1)).all()
    assert DHCMCACL.used_modalities({"modalities": [modality]}, ["eeg", "face_au"]) == [modality]
    soft = DHCMCACL(cfg(modalities=[modality], head="softmax"), n_classes=2, seed=0)
    soft.fit(Split(alone, y, (modality,)))
    assert soft.predict(Split(alone, None, (modality,))).probs.shape == (len(ws), 2)


@pytest.mark.parametrize("modality", ["eeg", "face_au"])
def test_run_with_one_modality_through_the_runner(synthetic_root, windowset_cache, tmp_path,
                                                  modality):
    """Table 3's E / F rows from the command line: ``--set modalities=[eeg]`` (the method's
    default ``modalities=None`` uses what the data hold)."""
    from affectlab.run import load_config, run_experiment

    cfg_run = load_config({
        "method": "dhcm_cacl", "dataset": "deap", "modalities": [modality],
        "root": str(synthetic_root("deap", n_subjects=3, seconds=12)),
        "protocol": "subject_kfold", "method_preset": "fast", "max_folds": 1,
        "cache_dir": str(windowset_cache),
        # the last synthetic subject has no face: 2 subjects, so validate on trials
        "options": {"protocol": {"n_splits": 3, "val_by": "trial"},
                    "method": {"pretrain_epochs": 1, "finetune_epochs": 2}}})
    summary, _ = run_experiment(cfg_run, out=tmp_path / modality)
    assert summary["n_folds"] == 1 and summary["dropped"]["modalities_used"] == [modality]
    assert "fad" not in summary.get("extras", {})
