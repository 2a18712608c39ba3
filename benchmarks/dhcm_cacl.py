"""DHCM-CACL throughput at the paper's shapes, for every form of the DynamicSSM scan (Eq. 6).

Writes ``benchmarks/results/dhcm_cacl.json``. Shapes: DEAP, one trial = 20 windows of 3 s,
EEG log-PSD 32 x 5 = 160 features, 17 AUs, batch 32 sequences, the ``paper`` preset (H = 144,
d_s = 32, L = 3 levels, 9 heads). Timed (median of ``--iters`` calls after a warm-up): one
pre-training step (Eq. 1-18: forward, backward, Adam) and one fine-tuning step (Eq. 19-29, two
levels frozen, frozen reference encoder), from identical weights and inputs, with

* ``naive_loop`` - the straightforward port: ``for t in range(T): h = A[:, t] @ h + u[:, t]``
  (indexing a step's slice makes every step's backward fill a full-size zero tensor);
* ``sequential`` - the library's step-by-step reference (``unbind``: linear backward); the
  default ``scan="auto"`` on CPU;
* ``chunked`` - the two-level chunked scan (default on accelerators);
* ``doubling`` - the log-depth Hillis-Steele scan.

All losses must agree. Also the bare scan (forward + backward) at several sequence lengths.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import platform
import statistics
import time
from pathlib import Path
from unittest import mock

import torch

from affectlab.methods.base import build_config
from affectlab.methods.dhcm_cacl import DHCMCACL, Encoder, FineTuneModel, LossWeights
from affectlab.nn import ssm

MODES = ("naive_loop", "sequential", "chunked", "doubling")


def naive_loop(m: torch.Tensor, u: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """The straightforward scan: index step ``t`` of ``m`` and ``u`` inside the loop."""
    h = torch.zeros_like(u[:, 0]) if h0 is None else h0
    out = []
    for t in range(u.shape[1]):
        h = torch.einsum("bij,bj->bi", m[:, t], h) + u[:, t]
        out.append(h)
    return torch.stack(out, dim=1)


SCANS = {"naive_loop": naive_loop, "sequential": ssm.affine_scan_sequential,
         "chunked": ssm.affine_scan, "doubling": ssm.affine_scan_doubling}


def set_scan(module: torch.nn.Module, mode: str) -> None:
    """Every DynamicSSM of ``module`` scans with ``mode`` (``naive_loop`` runs as ``sequential``
    inside :func:`scan_patch`)."""
    for layer in module.modules():
        if isinstance(layer, ssm.DynamicSSM):
            layer.scan = "sequential" if mode == "naive_loop" else mode


def scan_patch(mode: str) -> contextlib.AbstractContextManager:
    """For ``naive_loop``: swap the reference loop for :func:`naive_loop`."""
    if mode == "naive_loop":
        return mock.patch.object(ssm, "affine_scan_sequential", naive_loop)
    return contextlib.nullcontext()


def timed(step, iters: int, device: torch.device) -> float:
    """Median seconds per call of ``step`` (after one warm-up call)."""
    step()
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_training(args, device: torch.device) -> dict:
    g = torch.Generator().manual_seed(0)
    x_e = torch.randn(args.batch, args.steps, 160, generator=g).to(device)
    x_f = torch.randn(args.batch, args.steps, 17, generator=g).to(device)
    mask = torch.ones(args.batch, args.steps, dtype=torch.bool, device=device)
    y = torch.randint(0, 2, (args.batch,), generator=g).to(device)
    method = DHCMCACL(build_config(DHCMCACL, "paper"), n_classes=2, seed=0, device=device)
    torch.manual_seed(0)
    base = Encoder(160, 17, method.config).to(device)
    out: dict = {}
    losses: dict[str, dict[str, float]] = {"pretrain": {}, "finetune": {}}
    for mode in MODES:
        encoder = copy.deepcopy(base)
        set_scan(encoder, mode)
        with scan_patch(mode):
            method.loss_weights_ = LossWeights(2).to(device)
            opt = torch.optim.Adam([*encoder.parameters(), *method.loss_weights_.parameters()],
                                   lr=1e-4)
            losses["pretrain"][mode] = float(method.pretrain_loss(encoder, x_e, x_f, mask)[0])

            def pre_step(encoder=encoder, opt=opt):
                loss, _ = method.pretrain_loss(encoder, x_e, x_f, mask)
                opt.zero_grad()
                loss.backward()
                opt.step()

            pre_s = timed(pre_step, args.iters, device)
            encoder = copy.deepcopy(base)
            set_scan(encoder, mode)
            method.frozen_encoder_ = copy.deepcopy(encoder).requires_grad_(False).eval()
            encoder.freeze(2)
            torch.manual_seed(1)
            method.model_ = FineTuneModel(encoder, 2, method.config).to(device)
            losses["finetune"][mode] = float(method.finetune_loss(x_e, x_f, mask, y)[0])
            opt = torch.optim.Adam([p for p in method.model_.parameters() if p.requires_grad],
                                   lr=1e-4)

            def fine_step(opt=opt):
                loss, _ = method.finetune_loss(x_e, x_f, mask, y)
                opt.zero_grad()
                loss.backward()
                opt.step()

            fine_s = timed(fine_step, args.iters, device)
        out[mode] = {"pretrain_step_s": round(pre_s, 5),
                     "pretrain_samples_per_s": round(args.batch / pre_s, 1),
                     "finetune_step_s": round(fine_s, 5),
                     "finetune_samples_per_s": round(args.batch / fine_s, 1)}
    out["speedup_vs_naive_loop"] = {
        mode: {phase: round(out["naive_loop"][f"{phase}_step_s"] / out[mode][f"{phase}_step_s"],
                            2) for phase in ("pretrain", "finetune")} for mode in MODES[1:]}
    out["losses"] = losses
    out["losses_agree"] = all(abs(v[mode] - v["sequential"]) <= 1e-5 * max(
        1.0, abs(v["sequential"])) for v in losses.values() for mode in MODES)
    return out


def bench_scan(args, device: torch.device) -> list[dict]:
    rows = []
    for steps in args.scan_lengths:
        g = torch.Generator().manual_seed(steps)
        m = ssm.bound_spectral_norm(torch.randn(args.batch, steps, 32, 32, generator=g), 0.99)
        u = torch.randn(args.batch, steps, 32, generator=g)
        m, u = m.to(device).requires_grad_(), u.to(device).requires_grad_()
        row = {"steps": steps}
        ref = ssm.affine_scan_sequential(m, u).detach()
        for name, scan in SCANS.items():
            row[f"{name}_max_abs_diff"] = float((scan(m, u).detach() - ref).abs().max())
            row[f"{name}_fwd_bwd_s"] = round(timed(
                lambda scan=scan, m=m, u=u: scan(m, u).sum().backward(), args.iters, device), 6)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="windows per trial (DEAP: 20)")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--scan-lengths", type=int, nargs="+", default=[20, 40, 128])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" /
                        "dhcm_cacl.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    result = {
        "benchmark": "dhcm_cacl: pre-training / fine-tuning steps and the Eq. 6 scan, per scan "
                     "form (median seconds)",
        "shapes": {"batch_sequences": args.batch, "windows_per_sequence": args.steps,
                   "eeg_features": 160, "face_features": 17, "d_model": 144, "d_state": 32,
                   "levels": 3, "heads": 9},
        "training": bench_training(args, device),
        "scan_forward_backward": bench_scan(args, device),
        "iters": args.iters,
        "machine": {"platform": platform.platform(), "device": str(device),
                    "threads": args.threads, "torch": torch.__version__},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
