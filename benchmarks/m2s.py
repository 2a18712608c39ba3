"""M2S pre-training throughput: affectlab's step vs the released code's step structure.

Writes ``benchmarks/results/m2s.json``. Shapes are the paper's (SEED-IV: EEG DE 62 x 5 + EYE 31,
T = 5, batch 512, d = 128, 4 blocks, 3 CLUB updates per batch). Both steps start from the same
weights and optimiser states and see the same batch, ``M`` and CLUB permutations, with dropout
off, so they must give the same loss and the same updated weights.

"straightforward" (the structure of the released M2S code): for each of the 3 CLUB
updates the whole model forward (encoders, decoders, CPC, projections) runs again with autograd
on and its features are detached; then a fourth forward gives the loss. STS projects the keys
and values of every frame and averages the projections of frames ``t``, ``t-1`` and ``1``
afterwards, with a hand-written softmax attention; the CPC terms are computed step by step with
one matrix product per term. Kept at float32 (the released CPC runs in float64) so that both
paths compute identical math.

"fast" (:func:`affectlab.methods.m2s.pretrain_step`): one forward, reused (detached) for the
CLUB updates; STS averages the frames before the bias-free projections and uses PyTorch's fused
attention; all ``K^2 x N`` CPC terms come from one einsum.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from affectlab.losses.club import CLUBNet
from affectlab.methods.m2s import M2SConfig, M2SNet, STSAttention, fit_club, pretrain_step


def reference_sts(att: STSAttention, x: torch.Tensor) -> torch.Tensor:
    """STS as released: project every frame, then average keys / values of t, t-1 and 1."""
    batch, steps, channels, _ = x.shape
    heads, dim = att.n_heads, att.head_dim

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(batch * steps, channels, heads, dim).transpose(1, 2)

    q, k, v = att.query(x), att.key(x), att.value(x)
    if att.temporal:
        keys, values = [], []
        for f in range(steps):
            frames = [f, 0, max(f - 1, 0)]
            keys.append(sum(k[:, i] for i in frames) / 3)
            values.append(sum(v[:, i] for i in frames) / 3)
        k, v = torch.stack(keys, dim=1), torch.stack(values, dim=1)
    q, k, v = split(q), split(k), split(v)
    attn = torch.softmax(q @ k.transpose(-1, -2) * dim ** -0.5, dim=-1)
    out = (attn @ v).transpose(1, 2).reshape(batch, steps, channels, heads * dim)
    return att.out(out)


def reference_encode(net: M2SNet, batch: dict) -> tuple[dict, dict]:
    z = {}
    for name, x in batch.items():
        encoder = net.er[name]
        if hasattr(encoder, "blocks"):
            h = x.flatten(2)
            for block in encoder.blocks:
                grid = h.reshape(*h.shape[:2], block.channels, block.features)
                h = block.norm1(h + block.drop(reference_sts(block.attention, grid).reshape(
                    h.shape)))
                h = block.norm2(h + block.drop(block.ffn(h)))
            z[name] = encoder.out(h)
        else:
            z[name] = encoder(x)
    z_ei = {name: net.ei[name](x.flatten(2)) for name, x in batch.items()}
    return z, z_ei


def reference_cpc(net: M2SNet, z: list[torch.Tensor], observed: int) -> torch.Tensor:
    """Released-code loop: one ``mm`` and one log-softmax per (step, source, target)."""
    cpc, names = net.cpc, net.names
    contexts = [lstm(za[:, :observed])[0][:, observed - 1] for lstm, za in
                zip(cpc.lstms, z, strict=True)]
    total = torch.zeros(())
    for a, predictor in enumerate(cpc.predictors):
        joined = torch.cat([contexts[a], *contexts[:a], *contexts[a + 1:]], dim=-1)
        pred = predictor(joined).view(len(joined), cpc.steps, cpc.dim)
        for c in range(len(names)):
            weight = net.cfg.same_modal_weight if a == c else 1.0
            nce = torch.zeros(())
            for n in range(cpc.steps):
                scores = pred[:, n] @ z[c][:, observed + n].T
                nce = nce + torch.diag(F.log_softmax(scores, dim=1)).sum()
            total = total + weight * nce / (-1.0 * len(joined) * cpc.steps)
    return total


def reference_forward(net: M2SNet, batch: dict, observed: int) -> tuple[dict, dict, dict]:
    """The whole model forward of the released ``Multi_to_Single.forward``."""
    z, z_ei = reference_encode(net, batch)
    names = net.names
    recon = sum(F.mse_loss(net.dec[n](z[n], z_ei[n]), batch[n].flatten(2)) for n in names)
    pooled = [F.normalize(net.embed(n, z[n]), dim=-1) for n in names]
    logits = pooled[0] @ pooled[1].T / net.temperature()
    target = torch.arange(len(logits))
    nce = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    cpc = reference_cpc(net, [z[n] for n in names], observed)
    return z, z_ei, {"recon": recon, "nce": nce, "cpc": cpc}


def reference_step(net: M2SNet, clubs, optimizer, club_optimizer, batch: dict, observed: int,
                   perms: dict) -> float:
    """One step in the released structure: 3 + 1 full forwards."""
    net.train()
    for _ in range(net.cfg.club_steps):
        z, z_ei, _ = reference_forward(net, batch, observed)
        fit_club(clubs, club_optimizer, {n: (z[n].detach(), z_ei[n].detach())
                                         for n in net.names}, 1)
    z, z_ei, terms = reference_forward(net, batch, observed)
    terms["club"] = sum(clubs[n].mi_upper_bound(z[n], z_ei[n], "shuffle", perms[n])
                        for n in net.names)
    loss = net.total(terms)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def build(cfg: M2SConfig, shapes: dict, seed: int):
    torch.manual_seed(seed)
    net = M2SNet(shapes, cfg)
    clubs = torch.nn.ModuleDict({n: CLUBNet(cfg.d_model, cfg.d_model, cfg.club_hidden)
                                 for n in shapes})
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                 foreach=True)
    club_optimizer = torch.optim.Adam(clubs.parameters(), lr=cfg.lr,
                                      weight_decay=cfg.weight_decay, foreach=True)
    return net, clubs, optimizer, club_optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=1, help="timed steps per path")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" /
                        "m2s.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = M2SConfig(dropout=0.0)          # paper preset shapes; dropout off for equality
    shapes = {"eeg": (62, 5), "eye": (31,)}
    gen = torch.Generator().manual_seed(0)
    batch = {"eeg": torch.randn(args.batch, cfg.seq_len, 62, 5, generator=gen),
             "eye": torch.randn(args.batch, cfg.seq_len, 31, generator=gen)}
    perms = {n: torch.randperm(args.batch, generator=gen) for n in shapes}
    observed = 3
    fast = build(cfg, shapes, 0)
    ref = copy.deepcopy(fast)
    small = {n: x[:8] for n, x in batch.items()}           # warm-up (imports, allocator)
    for step in (pretrain_step, reference_step):
        step(*copy.deepcopy(fast), small, observed, {n: torch.randperm(8) for n in shapes})

    results = {}
    for label, (step, state) in {"straightforward": (reference_step, ref),
                                 "fast": (pretrain_step, fast)}.items():
        losses, start = [], time.perf_counter()
        for _ in range(args.steps):
            out = step(*state, batch, observed, perms)
            losses.append(out if isinstance(out, float) else out["loss"])
        seconds = time.perf_counter() - start
        results[label] = {"seconds_per_step": round(seconds / args.steps, 3),
                          "sequences_per_second": round(args.batch * args.steps / seconds, 2),
                          "losses": losses}
    grads = [(a.grad, b.grad) for a, b in zip(fast[0].parameters(), ref[0].parameters(),
                                                  strict=True)]
    grad_diff = max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))
                    for a, b in grads)
    loss_diff = max(abs(a - b) for a, b in zip(results["fast"]["losses"],
                                               results["straightforward"]["losses"], strict=True))
    report = {
        "benchmark": "M2S pre-training step (CLUB x3 + Eq. 14), SEED-IV shapes",
        "input": {"batch": args.batch, "seq_len": cfg.seq_len, "eeg": [62, 5], "eye": [31],
                  "d_model": cfg.d_model, "n_layers": cfg.n_layers, "club_steps":
                  cfg.club_steps, "observed_M": observed, "steps_timed": args.steps,
                  "threads": args.threads},
        **results,
        "speedup": round(results["straightforward"]["seconds_per_step"]
                         / results["fast"]["seconds_per_step"], 2),
        "max_loss_difference": loss_diff,
        "max_relative_gradient_difference_last_step": grad_diff,
        "results_agree": bool(loss_diff < 1e-4 * abs(results["fast"]["losses"][0])
                              and grad_diff < 1e-3),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
