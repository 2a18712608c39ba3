"""CLMER training throughput at the paper's shapes: vectorised vs straightforward.

Writes ``benchmarks/results/clmer.json``. Shapes: DEAP, 5 s windows, physiology 40 channels x
640 samples (128 Hz), landmarks 5 x 204 and AUs 5 x 17 (1 s steps), batch 64, the ``paper``
preset's networks.

* Pre-training step (Eq. 1-4, all three modalities, Adam): vectorised = batched torch
  augmentations, one encoder pass for both views, Eq. 3 as one einsum / cross-entropy;
  straightforward = the released TS-TCC code's structure: per-window NumPy augmentations, one
  encoder pass per view, Eq. 3 and Eq. 1-2 with a loop over windows and steps ahead.
* Fusion step (Eq. 5-7, Adam): vectorised = frozen-encoder features computed once, all six
  directions and all heads in batched products; straightforward = features recomputed every
  batch and a Python loop over directions and heads (``forward_per_direction``).

Both paths are checked to give the same loss on the same inputs (eval mode, same views).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from affectlab.methods.base import build_config
from affectlab.methods.clmer import (
    CLMER,
    FusionNet,
    SequenceContrast,
    strong_augment,
    weak_augment,
)

SHAPES = {"physiology": (640, 40), "landmarks": (5, 204), "au": (5, 17)}
BATCH = 64
N_CLASSES = 4


# --------------------------------------------------------------------------- straightforward

def naive_augment(x: np.ndarray, cfg, rng: np.random.Generator) -> tuple[np.ndarray,
                                                                         np.ndarray]:
    """Weak and strong views window by window (TS-TCC's ``DataTransform`` structure)."""
    weak, strong = np.empty_like(x), np.empty_like(x)
    length = x.shape[1]
    for i, window in enumerate(x):
        factor = rng.normal(1.0, cfg.weak_scale, size=(1, x.shape[2]))
        weak[i] = window * factor + rng.normal(0, cfg.weak_jitter, size=window.shape)
        n_seg = rng.integers(1, min(cfg.max_segments, length) + 1)
        cuts = np.sort(rng.choice(np.arange(1, length), n_seg - 1, replace=False))
        segments = np.split(np.arange(length), cuts)
        order = np.concatenate([segments[k] for k in rng.permutation(len(segments))])
        strong[i] = window[order] + rng.normal(0, cfg.strong_jitter, size=window.shape)
    return weak, strong


def naive_views_loss(model: SequenceContrast, weak: torch.Tensor, strong: torch.Tensor,
                     t: int) -> torch.Tensor:
    """Eq. 1-4 with one encoder pass per view and loops over windows / steps / anchors."""
    cfg = model.cfg
    z_weak, z_strong = model.encoder(weak), model.encoder(strong)
    s_weak = model.summarizer(z_weak[:, :t + 1])
    s_strong = model.summarizer(z_strong[:, :t + 1])
    d_z = z_weak.shape[-1]
    temporal = 0.0
    for summary, target in ((s_weak, z_strong), (s_strong, z_weak)):
        pred = model.predictor(summary).view(len(summary), model.steps, d_z)
        terms = []
        for b in range(len(pred)):
            for i in range(model.steps):
                scores = target[b] @ pred[b, i]                      # sim(F_i(s_t), z_j)
                scores = torch.cat([scores[:t], scores[t + 1:]])       # j in T \ {t}
                terms.append(torch.logsumexp(scores, 0) - scores[t + i])  # z_{t+1+i} at t+i
        temporal = temporal + 0.5 * torch.stack(terms).mean()
    projected = model.projector(torch.cat([s_weak, s_strong]))
    views = F.normalize(projected, dim=1)
    n = len(s_weak)
    anchors = []
    for i in range(2 * n):
        sims = views @ views[i] / cfg.temperature
        others = torch.cat([sims[:i], sims[i + 1:]])
        positive = sims[(i + n) % (2 * n)]
        anchors.append(torch.logsumexp(others, 0) - positive)
    sample = torch.stack(anchors).mean()
    return cfg.lambda_sample * sample + cfg.lambda_temporal * temporal


# --------------------------------------------------------------------------- timing

def timed(step, iters: int, device: torch.device) -> float:
    """Seconds per call of ``step`` (one warm-up call)."""
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters


def pretrain_benchmark(cfg, device: torch.device, iters: int) -> dict:
    torch.manual_seed(0)
    models = torch.nn.ModuleList(SequenceContrast(length, ch, cfg)
                                 for length, ch in SHAPES.values()).to(device)
    optimiser = torch.optim.Adam(models.parameters(), lr=cfg.pretrain_lr,
                                 weight_decay=cfg.pretrain_weight_decay)
    xs = [torch.randn(BATCH, length, ch, device=device) for length, ch in SHAPES.values()]
    xs_np = [x.cpu().numpy() for x in xs]
    ts = [model.out_length // 3 for model in models]
    gen = torch.Generator(device=device).manual_seed(0)
    rng = np.random.default_rng(0)

    def vectorised() -> None:
        loss = sum(m.loss(x, t + 1, gen)[0] for m, x, t in zip(models, xs, ts, strict=True))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    def straightforward() -> None:
        loss = 0.0
        for m, x, t in zip(models, xs_np, ts, strict=True):
            weak, strong = naive_augment(x, cfg, rng)
            loss = loss + naive_views_loss(m, torch.as_tensor(weak, device=device),
                                           torch.as_tensor(strong, device=device), t)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    models.train()
    fast_s, slow_s = timed(vectorised, iters, device), timed(straightforward, iters, device)
    models.eval()
    with torch.no_grad():
        weak = [weak_augment(x, cfg.weak_scale, cfg.weak_jitter, gen) for x in xs]
        strong = [strong_augment(x, cfg.max_segments, cfg.strong_jitter, gen) for x in xs]
        same = [(float(m.views_loss(w, s, t)[0]), float(naive_views_loss(m, w, s, t)))
                for m, w, s, t in zip(models, weak, strong, ts, strict=True)]
    return {"vectorised_samples_per_s": BATCH / fast_s,
            "straightforward_samples_per_s": BATCH / slow_s, "speedup": slow_s / fast_s,
            "loss_vectorised": [a for a, _ in same], "loss_straightforward": [b for _, b in same],
            "max_abs_loss_difference": max(abs(a - b) for a, b in same)}


def fusion_benchmark(cfg, device: torch.device, iters: int) -> dict:
    torch.manual_seed(0)
    encoders = torch.nn.ModuleList(SequenceContrast(length, ch, cfg).encoder
                                   for length, ch in SHAPES.values()).to(device).eval()
    encoders.requires_grad_(False)
    xs = [torch.randn(BATCH, length, ch, device=device) for length, ch in SHAPES.values()]
    with torch.no_grad():
        feats = [enc(x) for enc, x in zip(encoders, xs, strict=True)]
    net = FusionNet([tuple(f.shape[1:]) for f in feats], 60, "time", cfg, N_CLASSES).to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    y = torch.arange(BATCH, device=device) % N_CLASSES

    def step(inputs: list[torch.Tensor]) -> torch.Tensor:
        loss = F.cross_entropy(net(inputs), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        return loss

    def recomputed() -> list[torch.Tensor]:
        with torch.no_grad():
            return [enc(x) for enc, x in zip(encoders, xs, strict=True)]

    net.train()
    fast_s = timed(lambda: step(feats), iters, device)
    vectorised_attention = net.attention.forward
    net.attention.forward = net.attention.forward_per_direction
    loop_s = timed(lambda: step(feats), iters, device)
    slow_s = timed(lambda: step(recomputed()), iters, device)
    net.eval()
    with torch.no_grad():
        loop_loss = float(F.cross_entropy(net(recomputed()), y))
        net.attention.forward = vectorised_attention
        fast_loss = float(F.cross_entropy(net(feats), y))
    return {"vectorised_samples_per_s": BATCH / fast_s,
            "per_direction_loop_samples_per_s": BATCH / loop_s,
            "straightforward_samples_per_s": BATCH / slow_s, "speedup": slow_s / fast_s,
            "token_length": 60, "feature_shapes": [list(f.shape[1:]) for f in feats],
            "loss_vectorised": fast_loss, "loss_straightforward": loop_loss,
            "max_abs_loss_difference": abs(fast_loss - loop_loss)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" /
                        "clmer.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    # the naive loop is written for Eq. 3 as printed (same-sequence negatives, views encoded
    # whole); the vectorised code is timed on that reading
    cfg = build_config(CLMER, "paper", {"temporal_negatives": "time",
                                        "temporal_context": "shared"})
    result = {
        "benchmark": "clmer", "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "batch": BATCH,
        "shapes": {k: list(v) for k, v in SHAPES.items()}, "iters": args.iters,
        "pretraining": pretrain_benchmark(cfg, device, args.iters),
        "fusion": fusion_benchmark(cfg, device, args.iters),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
