"""UF-AMA training throughput: affectlab's step vs a straightforward per-batch implementation.

Writes ``benchmarks/results/uf_ama.json``. Paper shapes: 32 source + 32 target windows per step,
EEG 62 x 5 DE tokens, eye 31 features (SEED-IV), 3 encoder blocks, d_model 64, fusion 2 x 128.
Two settings, each timed for both implementations on the same CPU thread:

``paper``     quadratic MK-MMD (Eq. 10), paper BCE, staged fine-grained terms active.
``official``  the released code's choices (linear MK-MMD, softmax BCE, frozen heads).

The straightforward implementation has the same math and the released code's structure:
separate source and target forwards, MK-MMD as Python sums over sample pairs (``paper``: the
double sums of Eq. 10; ``official``: the released loop over ``i``), screening with per-sample
Python bookkeeping and ``.item()`` calls, and the fusion network and heads re-run on each
selected subset. affectlab's step stacks source and target into one forward, computes MK-MMD
from one kernel matrix (or ``O(B d)`` pair distances), screens with masks and indexes the
batch's single forward. Before timing, both are checked to give the same loss on the same
inputs (dropout off, distillation gate forced open with ``beta = 0`` so every term is compared).
Timing: the two steps alternate (one step each, repeated), so the load of a shared CPU hits both
alike; the median seconds per step gives windows per second (64 windows per step).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from affectlab.data import WindowSet
from affectlab.methods.base import Split, build_config
from affectlab.methods.uf_ama import (
    BRANCH_WEIGHTS,
    UFAMA,
    UFAMANet,
    official_delta,
    resolve,
    uf_ama_loss,
)

B, N_EYE, N_CLASSES = 32, 31, 4


# --------------------------------------------------------------------------- naive reference

def naive_kernel_matrix_bandwidth(s: torch.Tensor, t: torch.Tensor, cfg) -> torch.Tensor:
    """The released code's bandwidth: from the full pooled distance matrix (expand)."""
    pooled = torch.cat([s, t])
    n = len(pooled)
    dist = ((pooled.unsqueeze(0) - pooled.unsqueeze(1)) ** 2).sum(2) + 1e-5
    return dist.detach().sum() / (n * n - n) / cfg.kernel_mul ** (cfg.kernel_num // 2)


def naive_k(a: torch.Tensor, b: torch.Tensor, base: torch.Tensor, cfg) -> torch.Tensor:
    d = ((a - b) ** 2).sum() + 1e-5
    return sum(torch.exp(-d / (base * cfg.kernel_mul ** u)) for u in range(cfg.kernel_num))


def naive_mmd(s: torch.Tensor, t: torch.Tensor, cfg, estimator: str) -> torch.Tensor:
    base = naive_kernel_matrix_bandwidth(s, t, cfg)
    n = len(s)
    if estimator == "linear":
        loss = 0
        for i in range(n):
            j = (i + 1) % n
            loss = loss + naive_k(s[i], s[j], base, cfg) + naive_k(t[i], t[j], base, cfg)
            loss = loss - naive_k(s[i], t[j], base, cfg) - naive_k(s[j], t[i], base, cfg)
        return loss / n
    ss = sum(naive_k(s[i], s[j], base, cfg) for i in range(n) for j in range(n)) / n ** 2
    tt = sum(naive_k(t[i], t[j], base, cfg) for i in range(n) for j in range(n)) / n ** 2
    st = sum(naive_k(s[i], t[j], base, cfg) for i in range(n) for j in range(n)) / n ** 2
    return ss + tt - 2 * st


def naive_bce(x: torch.Tensor, y: torch.Tensor, official: bool) -> torch.Tensor:
    if official:
        p = torch.softmax(x, 1)
        sim = F.normalize(p, dim=1) @ F.normalize(p, dim=1).T
        same = (y[:, None] == y[None, :]).float()
        return (-(same * torch.log(sim + 1e-3)) - (1 - same) * torch.log(1 - sim + 1e-3)).mean()
    n = len(x)
    sim = ((F.normalize(x, dim=1) @ F.normalize(x, dim=1).T + 1) / 2).clamp(1e-6, 1 - 1e-6)
    same = (y[:, None] == y[None, :]).float()
    nll = -(same * torch.log(sim)) - (1 - same) * torch.log(1 - sim)
    return (nll.sum() - nll.diagonal().sum()) / (n * (n - 1))


def naive_loss(net: UFAMANet, xs: dict, y: torch.Tensor, xt: dict, cfg, st,
               epoch: int) -> torch.Tensor:
    """Same math as :func:`uf_ama_loss` with the released code's structure (model 6)."""
    tok_se, z_se = net.eeg_encoder(xs["eeg"])
    tok_sy, z_sy = net.eye_encoder(xs["eye"])
    tok_te, z_te = net.eeg_encoder(xt["eeg"])
    tok_ty, z_ty = net.eye_encoder(xt["eye"])
    f_s, f_t = net.fusion(tok_se, tok_sy), net.fusion(tok_te, tok_ty)
    logits_s = [net.eeg_head(z_se), net.eye_head(z_sy), net.fusion_head(f_s)]
    lt_eeg, lt_eye = net.eeg_head(z_te), net.eye_head(z_ty)
    l_cls = sum(w * F.cross_entropy(lg, y)
                for w, lg in zip(BRANCH_WEIGHTS, logits_s, strict=True))
    feats = [z_se, z_sy, f_s]
    bce_in = logits_s if st.bce_official else feats
    l_bce = sum(w * naive_bce(x, y, st.bce_official)
                for w, x in zip(BRANCH_WEIGHTS, bce_in, strict=True))
    l_mmd = sum(w * naive_mmd(a, b, cfg, st.mmd_estimator)
                for w, a, b in zip(BRANCH_WEIGHTS, feats, [z_te, z_ty, f_t], strict=True))
    delta = cfg.delta * (official_delta(epoch) if st.delta_official else 1.0)
    total = l_cls + l_bce + delta * l_mmd
    if epoch < st.fine_start * cfg.epochs:
        return total
    # screening, per sample (released code's bookkeeping)
    p_eeg, p_eye = torch.softmax(lt_eeg, 1), torch.softmax(lt_eye, 1)
    conf_eeg, pl_eeg = p_eeg.max(1)
    conf_eye, pl_eye = p_eye.max(1)
    conf = torch.cat([conf_eeg, conf_eye]).detach()
    k = int(np.ceil(cfg.alpha * len(conf)))
    top = torch.topk(conf, k)
    high = {(int(i) % B, int(i) // B) for i in top.indices}       # (sample, modality)
    consistent, eeg_teach, eye_teach = [], [], []
    for i in range(B):
        in_eeg, in_eye = (i, 0) in high, (i, 1) in high
        if in_eeg and in_eye:
            if pl_eeg[i].item() == pl_eye[i].item():
                consistent.append(i)
        elif in_eeg:
            eeg_teach.append(i)
        elif in_eye:
            eye_teach.append(i)
    l_l = l_cls.item()
    theta = 0.5 if l_l <= 0.1 else (0.2 if l_l < 0.2 else 0.1)
    if consistent:
        idx = torch.tensor(consistent)
        logits = net.fusion_head(net.fusion(tok_te[idx], tok_ty[idx]))
        total = total + theta * F.cross_entropy(logits, pl_eeg[idx])
    gate = top.values[-1].item()
    if (gate > cfg.beta) if st.beta_strict else (gate >= cfg.beta):
        terms = []
        for members, labels, student in ((eeg_teach, pl_eeg, lambda r: net.eye_head(z_ty[r])),
                                         (eye_teach, pl_eye, lambda r: net.eeg_head(z_te[r]))):
            if len(members) < st.min_distill:
                terms.append(0.0)
                continue
            idx = torch.tensor(members)
            fused_pl = net.fusion_head(net.fusion(tok_te[idx], tok_ty[idx])).argmax(1)
            keep = idx[fused_pl == labels[idx]]
            terms.append(F.cross_entropy(student(keep), labels[keep]) if len(keep) else 0.0)
        total = total + st.gamma * 0.5 * (terms[0] + terms[1])
    return total


# --------------------------------------------------------------------------- setup

def windows(n: int, seed: int) -> WindowSet:
    g = torch.Generator().manual_seed(seed)
    meta = pd.DataFrame({"subject": seed, "session": 1, "trial": np.arange(n) // 8 + 1,
                         "window": np.arange(n) % 8, "native_label": np.arange(n) % N_CLASSES})
    return WindowSet({"eeg": torch.randn(n, 62, 5, generator=g),
                      "eye": torch.randn(n, N_EYE, generator=g)}, meta, {"dataset": "seed_iv"})


def settings_for(mode: str, **extra):
    overrides = {"official": mode == "official", **extra}
    cfg = build_config(UFAMA, "paper", overrides)
    return cfg, resolve(cfg, "seed_iv")


def check_same_loss(mode: str, alpha: float) -> dict:
    """Both losses on one batch; ``alpha = 1`` makes every agreeing sample consistent (Eq. 12
    exercised), ``alpha = 0.5`` with ``beta = 0`` exercises the distillation sets (Eq. 13)."""
    cfg, st = settings_for(mode, encoder_dropout=0.0, head_dropout=0.0, beta=0.0, alpha=alpha)
    torch.manual_seed(0)
    net = UFAMANet((62, 5), (N_EYE, 1), N_CLASSES, cfg, st)
    with torch.no_grad():        # heads leaning to class 0: agreeing pseudo-labels exist
        for head in net.heads():
            head[-1].bias[0] += 1.0
    g = torch.Generator().manual_seed(1)
    xs = {"eeg": torch.randn(B, 62, 5, generator=g), "eye": torch.randn(B, N_EYE, 1, generator=g)}
    xt = {"eeg": torch.randn(B, 62, 5, generator=g) + 0.3,
          "eye": torch.randn(B, N_EYE, 1, generator=g)}
    y = torch.arange(B) % N_CLASSES
    epoch = 100 if mode == "paper" else 5
    out = net(torch.cat([xs["eeg"], xt["eeg"]]), torch.cat([xs["eye"], xt["eye"]]))
    fast, parts = uf_ama_loss(out.part(slice(0, B)), out.part(slice(B, 2 * B)), y, cfg, st, epoch)
    naive = naive_loss(net, xs, y, xt, cfg, st, epoch)
    fast, naive = float(fast.detach()), float(naive.detach())
    return {"alpha": alpha, "fast": fast, "naive": naive, "abs_diff": abs(fast - naive),
            **{k: float(parts[k]) for k in ("consistent", "cnst", "dstl", "gate_open")}}


def fast_stepper(mode: str, n_steps: int):
    """affectlab's step (``UFAMA._step``, as ``fit`` runs it) on pre-drawn batches."""
    over = {"official": mode == "official", "epochs": 1, "fine_start": 0.0}
    n = n_steps * B
    train = Split(windows(n, 1), np.arange(n) % N_CLASSES, ("eeg", "eye"))
    target = Split(windows(n, 2), None, ("eeg", "eye"))
    m = UFAMA(build_config(UFAMA, "paper", over), n_classes=N_CLASSES, seed=0)
    m.fit(Split(train.windows.subset(np.arange(B)), train.y[:B], train.modalities),
          unlabeled=Split(target.windows.subset(np.arange(B)), None, target.modalities))
    xs, xt = m._inputs(train), m._inputs(target)
    ys = torch.as_tensor(train.y)
    opt = torch.optim.Adam([p for p in m.net_.parameters() if p.requires_grad], lr=1e-3)
    m.net_.train()
    order = torch.arange(n)

    def step(k: int) -> None:
        rows = order[k * B:(k + 1) * B]
        m._step(xs, ys, xt, rows, rows, opt, epoch=5)
    return step


def naive_stepper(mode: str, n_steps: int):
    """The straightforward step (separate forwards, Python-loop MMD and screening)."""
    cfg, st = settings_for(mode, fine_start=0.0)
    torch.manual_seed(0)
    net = UFAMANet((62, 5), (N_EYE, 1), N_CLASSES, cfg, st)
    if not st.train_heads:
        for head in net.heads():
            head.requires_grad_(False)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=cfg.lr)
    src, tgt = windows(n_steps * B, 1), windows(n_steps * B, 2)
    eeg_s, eye_s = src.tensor("eeg"), src.tensor("eye").unsqueeze(-1)
    eeg_t, eye_t = tgt.tensor("eeg"), tgt.tensor("eye").unsqueeze(-1)
    y = torch.tensor(src.meta["native_label"].to_numpy())
    net.train()

    def step(k: int) -> None:
        rows = slice(k * B, (k + 1) * B)
        loss = naive_loss(net, {"eeg": eeg_s[rows], "eye": eye_s[rows]}, y[rows],
                          {"eeg": eeg_t[rows], "eye": eye_t[rows]}, cfg, st, epoch=5)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def interleaved_step_times(mode: str, n_steps: int) -> tuple[list[float], list[float]]:
    """Seconds per step of both implementations, alternating step by step (a shared CPU's
    load then hits both alike); one warm-up step each, not timed."""
    fast, naive = fast_stepper(mode, n_steps + 1), naive_stepper(mode, n_steps + 1)
    fast(0)
    naive(0)
    times: tuple[list[float], list[float]] = ([], [])
    for k in range(1, n_steps + 1):
        for fn, out in ((fast, times[0]), (naive, times[1])):
            start = time.perf_counter()
            fn(k)
            out.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, nargs=2, default=[5, 15], metavar=("PAPER",
                        "OFFICIAL"), help="timed steps per implementation and setting")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" /
                        "uf_ama.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = {"benchmark": "uf_ama training step", "batch": f"{B} source + {B} target",
              "shapes": {"eeg": [62, 5], "eye": [N_EYE], "blocks": 3, "d_model": 64,
                         "fused": 256, "classes": N_CLASSES},
              "unit": "training windows (source + target) per second", "torch": torch.__version__,
              "threads": 1, "timing": "median seconds per step, the two implementations "
              "alternating step by step", "machine": platform.machine(),
              "python": platform.python_version(),
              "settings": {}}
    for mode, n_steps in zip(("paper", "official"), args.steps, strict=True):
        checks = [check_same_loss(mode, alpha) for alpha in (1.0, 0.5)]
        for check in checks:
            assert check["abs_diff"] < 1e-4 * max(1.0, abs(check["fast"])), check
        fast_t, naive_t = interleaved_step_times(mode, n_steps)
        fast_rate, naive_rate = 2 * B / np.median(fast_t), 2 * B / np.median(naive_t)
        result["settings"][mode] = {
            "same_loss_check": checks,
            "affectlab": {"steps": n_steps, "median_step_s": round(float(np.median(fast_t)), 4),
                          "samples_per_s": round(float(fast_rate), 1)},
            "straightforward": {"steps": n_steps,
                                "median_step_s": round(float(np.median(naive_t)), 4),
                                "samples_per_s": round(float(naive_rate), 1)},
            "speedup": round(float(fast_rate / naive_rate), 2)}
        print(mode, json.dumps(result["settings"][mode]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
