"""ME-MHACL pre-training throughput: affectlab's step vs a straightforward (SGMC-structured) one.

Paper shapes (DEAP, Table III): P = 8 clips x 2Q = 4 subjects per mini-batch (32 windows), 35
stacked channels (EEG 32 + GSR + Resp + Temp) x 128 samples, ResNet-18-1D at width 64, projector
512 -> 1024 -> 2048 -> 4096 with 8-head attention. Only the data size is reduced (``--clips``).

* affectlab: :class:`~affectlab.methods.me_mhacl.GroupSampler` draws a whole epoch of index tensors
  at once, meiosis is one ``torch.where`` on the gathered ``(P, 2Q, C, M)`` block, the encoder and
  the projector run on the whole mini-batch (attention batched over the 2P groups), fused Adam.
* straightforward: the parent code's structure (SGMC ``SSL_training(DEAP).py``) with the paper's
  math: a ``(clips, subjects, 1, C, M)`` NumPy array, a Python subject permutation per batch,
  meiosis per clip with a Python loop over all subject pairs, groups packed with Python lists and
  converted to a tensor every batch, the attention + max-pool of the projector in a loop over the
  groups (the paper's per-group description), default ``torch.optim.Adam``.

Both give the same loss on the same mini-batch (checked). Writes
``benchmarks/results/me_mhacl.json``.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import platform
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from affectlab.losses.contrastive import nt_xent
from affectlab.methods.base import create_method
from affectlab.methods.me_mhacl import (
    MEMHACL,
    PAPER_DEAP_MODALITIES,
    GroupSampler,
    draw_split,
)

#: the paper preset's DEAP channels (Table III: 32 EEG + 4 peripheral = 36)
WIDTHS = {name: 32 if name == "eeg" else 1 for name in PAPER_DEAP_MODALITIES}


def naive_meiosis(signal: np.ndarray, q: int, perm: list[int], split: int) -> np.ndarray:
    """SGMC's loop over all pairs (perm[i], perm[i + Q]) with Eq. 1 along time.

    signal: ``(subjects, 1, C, M)``; returns the children, ``A~`` of every pair then ``B~``.
    """
    half = signal.shape[0] // 2
    first, second = [], []
    for i in range(half):
        a, b = signal[perm[i]], signal[perm[i + q]]
        first.append(np.concatenate([b[..., :split], a[..., split:]], axis=-1))
        second.append(np.concatenate([a[..., :split], b[..., split:]], axis=-1))
    return np.array(first + second)


class Straightforward:
    """One pre-training step in the parent code's structure (see the module docstring)."""

    def __init__(self, method: MEMHACL, data5: np.ndarray, P: int, Q: int, tau: float):
        self.encoder = copy.deepcopy(method.encoder_)
        self.projector = copy.deepcopy(method.projector_)
        self.data5, self.P, self.Q, self.tau = data5, P, Q, tau
        params = [*self.encoder.parameters(), *self.projector.parameters()]
        self.optimiser = torch.optim.Adam(params, lr=method.config.pretrain_lr)

    def batch(self, clips: list[int], perm: list[int], split: int) -> torch.Tensor:
        x = self.data5[clips].copy()                                   # (P, subjects, 1, C, M)
        half = x.shape[1] // 2
        children = [naive_meiosis(x[i], self.Q, perm, split) for i in range(len(clips))]
        groups_a = [children[i][:self.Q] for i in range(len(clips))]
        groups_b = [children[i][half:half + self.Q] for i in range(len(clips))]
        groups = np.concatenate(groups_a + groups_b)
        return torch.tensor(groups, dtype=torch.float32).reshape(-1, *x.shape[-2:])

    def loss(self, windows: torch.Tensor) -> torch.Tensor:
        n_groups = windows.shape[0] // self.Q
        h = self.encoder(windows)
        z = self.projector.mlp(h).reshape(n_groups, self.Q, -1)
        pooled = []
        for g in range(n_groups):
            member = z[g:g + 1]
            if self.projector.attention is not None:
                member = self.projector.attention(member, member, member, need_weights=False)[0]
            pooled.append(member.amax(dim=1))
        pooled = torch.cat(pooled)
        p = n_groups // 2
        return nt_xent(pooled[:p], pooled[p:], self.tau)

    def step(self, clips: list[int], perm: list[int], split: int) -> float:
        loss = self.loss(self.batch(clips, perm, split))
        self.optimiser.zero_grad()
        loss.backward()
        self.optimiser.step()
        return float(loss.detach())


def make_data(n_clips: int, n_subjects: int, n_samples: int,
              seed: int) -> tuple[np.ndarray, torch.Tensor, pd.DataFrame]:
    """Random windows as SGMC's 5-D array and as affectlab's ``(windows, C, M)`` + meta."""
    rng = np.random.default_rng(seed)
    n_channels = sum(WIDTHS.values())
    data5 = rng.standard_normal((n_clips, n_subjects, 1, n_channels, n_samples),
                                dtype=np.float32)
    flat = torch.from_numpy(np.ascontiguousarray(data5[:, :, 0].reshape(-1, n_channels,
                                                                          n_samples)))
    clip, subject = np.divmod(np.arange(n_clips * n_subjects), n_subjects)
    meta = pd.DataFrame({"subject": subject, "session": 1, "stimulus": clip // 60,
                         "window": clip % 60})
    return data5, flat, meta


def timed(fn, n: int) -> float:
    """Seconds per call, after one warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--subjects", type=int, default=32)
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" /
                        "me_mhacl.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    method = create_method("me_mhacl", {}, seed=0, preset="paper")
    cfg = method.config
    P, Q = cfg.P, cfg.Q
    method.build(WIDTHS)
    data5, flat, meta = make_data(args.clips, args.subjects, args.samples, seed=0)
    naive = Straightforward(method, data5, P, Q, cfg.temperature)
    sampler = GroupSampler(meta, P, Q)
    gen = torch.Generator().manual_seed(0)
    table = sampler.table.numpy()

    # same mini-batch, same weights, same dropout draws -> same loss
    clips, perm, split = list(range(P)), random.Random(0).sample(range(args.subjects),
                                                                 args.subjects), 50
    idx = torch.from_numpy(table[clips][:, perm[:2 * Q]])
    with torch.no_grad():
        torch.manual_seed(1)
        loss_fast = float(method.group_loss(method.augment(flat, idx, split)))
        torch.manual_seed(1)
        loss_naive = float(naive.loss(naive.batch(clips, perm, split)))

    # sampling + meiosis alone, per mini-batch
    def fast_data() -> None:
        for batch in sampler.epoch(gen):
            method.augment(flat, batch, draw_split(args.samples, gen))

    py = random.Random(0)

    def naive_data() -> None:
        order = py.sample(range(args.clips), args.clips)
        for start in range(0, args.clips - P + 1, P):
            naive.batch(order[start:start + P], py.sample(range(args.subjects), args.subjects),
                        py.randint(2, args.samples - 2))

    n_batches = len(sampler.batch_sizes())
    fast_data_s = timed(fast_data, 3) / n_batches
    naive_data_s = timed(naive_data, 3) / n_batches

    # whole pre-training steps
    optimiser = torch.optim.Adam([*method.encoder_.parameters(),
                                  *method.projector_.parameters()], lr=cfg.pretrain_lr,
                                 fused=True)
    batches = itertools.cycle(sampler.epoch(gen))

    def fast_step() -> None:
        loss = method.group_loss(method.augment(flat, next(batches),
                                                draw_split(args.samples, gen)))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    def naive_step() -> None:
        naive.step(py.sample(range(args.clips), P), py.sample(range(args.subjects),
                                                               args.subjects),
                   py.randint(2, args.samples - 2))

    fast_s = timed(fast_step, args.steps)
    naive_s = timed(naive_step, args.steps)
    n_params = sum(p.numel() for p in optimiser.param_groups[0]["params"])
    result = {
        "benchmark": "ME-MHACL pre-training step (sampler, meiosis, encoder, group projector, "
                     "NT-Xent, Adam)",
        "shapes": {"P": P, "Q": Q, "windows_per_step": 2 * P * Q, "groups_per_step": 2 * P,
                   "channels": sum(WIDTHS.values()), "samples": args.samples,
                   "subjects": args.subjects, "clips": args.clips, "encoder_width": 64,
                   "projector": cfg.projector_dims, "attention_heads": cfg.attention_heads,
                   "parameters": n_params},
        "affectlab": {"seconds_per_step": round(fast_s, 4),
                      "groups_per_second": round(2 * P / fast_s, 2),
                      "windows_per_second": round(2 * P * Q / fast_s, 2),
                      "sampling_meiosis_ms_per_batch": round(1e3 * fast_data_s, 3)},
        "straightforward": {"seconds_per_step": round(naive_s, 4),
                            "groups_per_second": round(2 * P / naive_s, 2),
                            "windows_per_second": round(2 * P * Q / naive_s, 2),
                            "sampling_meiosis_ms_per_batch": round(1e3 * naive_data_s, 3)},
        "speedup": round(naive_s / fast_s, 2),
        "sampling_meiosis_speedup": round(naive_data_s / fast_data_s, 1),
        "same_loss": {"affectlab": loss_fast, "straightforward": loss_naive,
                      "agree": bool(np.isclose(loss_fast, loss_naive, rtol=1e-4, atol=1e-5))},
        "steps_timed": args.steps, "threads": args.threads, "device": "cpu",
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "python": platform.python_version(), "torch": torch.__version__},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
