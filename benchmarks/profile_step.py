"""Where the time of one training step goes, for every method, at the papers' shapes.

Usage::

    python benchmarks/profile_step.py                      # every step, CPU, one thread
    python benchmarks/profile_step.py --methods m2s --steps 2
    python benchmarks/profile_step.py --device cuda        # on a machine with a GPU

Steps (each built as the existing benchmarks build it, ``paper`` method presets, float32,
dropout on):

==================  ==========================================================================
uf_ama              one UF-AMA step, SEED-IV, 32 source + 32 target windows (EEG 62 x 5, eye
                    31), epoch 200 (every term active); ``equivalence/uf_ama.py``'s setup
me_mhacl            one ME-MHACL pre-training step, DEAP, P = 8 clips x 2Q = 4 subjects,
                    36 channels (EEG 32, GSR, Resp, PPG, Temp: the paper preset's
                    modalities) x 128 samples, fused Adam; ``me_mhacl.py``'s step
m2s_pretrain        one M2S pre-training step, SEED, batch 512, T = 5 (3 CLUB updates + Adam
                    on Eq. 14); ``equivalence/m2s.py``'s networks and batch
dhcm_cacl_pretrain  one DHCM-CACL pre-training step, DEAP, 32 sequences x 20 windows, EEG 160
                    + 17 AUs, Adam as ``fit`` builds it; shapes of ``dhcm_cacl.py``
dhcm_cacl_finetune  one fine-tuning step (two levels frozen, frozen reference encoder)
clmer_pretrain      one CLMER pre-training step, DEAP, batch 64, all three modalities
                    (physiology 640 x 40, landmarks 5 x 204, AUs 5 x 17); shapes of
                    ``clmer.py``
clmer_finetune      one CLMER fusion step on frozen-encoder features computed once
==================  ==========================================================================

For each step, after ``--warmup`` untimed steps:

* seconds per step: ``time.process_time`` (CPU; with one thread the compute cost, waits of a
  busy machine excluded) or synchronised wall time (CUDA), median of ``--steps``;
* an operator table from ``torch.profiler`` over ``--steps`` steps: the top operators by self
  time, per step, their share of all operators' self time, and calls per step;
* FLOPs per step from ``torch.utils.flop_counter.FlopCounterMode`` (forward + backward). It
  counts matrix products, convolutions and attention only: elementwise operations,
  reductions, normalisations, activations and the optimiser's update are not counted, so the
  FLOP rate is that of the products;
* the machine's dense float32 matmul rate on the same thread(s) (median GFLOP/s of square
  ``torch.mm``; the larger of the sizes' medians is the reference), and each step's achieved
  rate as a fraction of it;
* operator calls per step (every dispatched operator, and the leaves: operators that call
  no other, about the kernels launched) and the self time in non-matmul operators.

A step whose achieved fraction is small and whose time is mostly outside matrix products, in
many small operators, is launch / overhead bound; one near the matmul rate is compute bound.
Writes ``benchmarks/results/profile_step.json``.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import itertools
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "equivalence"))
import common  # noqa: E402

#: operators whose self time is a matrix product, convolution or attention kernel
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm",
              "aten::mv", "aten::addmv", "aten::dot", "aten::matmul", "aten::linear",
              "aten::einsum", "aten::_mkldnn_rnn", "aten::mkldnn_rnn", "aten::mkldnn_rnn_layer",
              "aten::mkldnn_rnn_layer_backward")
MATMUL_PARTS = ("convolution", "conv1d", "conv2d", "_scaled_dot_product", "_flash_attention",
                "_efficient_attention", "gemm")
STEPS = ("uf_ama", "me_mhacl", "m2s_pretrain", "dhcm_cacl_pretrain", "dhcm_cacl_finetune",
         "clmer_pretrain", "clmer_finetune")
METHOD_STEPS = {"uf_ama": ["uf_ama"], "me_mhacl": ["me_mhacl"], "m2s": ["m2s_pretrain"],
                "dhcm_cacl": ["dhcm_cacl_pretrain", "dhcm_cacl_finetune"],
                "clmer": ["clmer_pretrain", "clmer_finetune"]}
MATMUL_SIZES = (1024, 2048)


# --------------------------------------------------------------------------- pure helpers

def is_matmul(name: str) -> bool:
    """Whether a profiler event is a matrix product / convolution / attention operator."""
    return name in MATMUL_OPS or (name.startswith("aten::")
                                  and any(p in name for p in MATMUL_PARTS))


def op_summary(rows: Iterable[tuple[str, float, int]], steps: int, top: int = 15
               ) -> dict[str, Any]:
    """Aggregate profiler rows ``(name, self seconds over all steps, calls over all steps)``
    (a name may repeat; its rows are summed) into per-step figures.

    Returns ``table`` (the ``top`` names by self time: ``self_s`` and ``calls`` per step,
    ``share`` of all rows' self time, ``matmul``), ``self_s`` (all rows, per step),
    ``matmul_self_s`` / ``other_self_s`` (split by :func:`is_matmul`) and ``calls`` (per
    step). Rows of profiler annotations (names without ``aten::``, e.g. ``Optimizer.step``
    or ``autograd::engine::...``) count as other: their self time is framework code between
    operators.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    totals: dict[str, list[float]] = {}
    for name, seconds, calls in rows:
        entry = totals.setdefault(name, [0.0, 0])
        entry[0] += seconds
        entry[1] += calls
    total = sum(s for s, _ in totals.values())
    ranked = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))
    table = [{"op": name, "self_s": s / steps, "share": s / total if total else 0.0,
              "calls": c / steps, "matmul": is_matmul(name)} for name, (s, c) in ranked[:top]]
    matmul = sum(s for name, (s, _) in totals.items() if is_matmul(name))
    return {"table": table, "self_s": total / steps, "matmul_self_s": matmul / steps,
            "other_self_s": (total - matmul) / steps,
            "calls": sum(c for _, c in totals.values()) / steps}


def gflops(n: int, seconds: float) -> float:
    """GFLOP/s of one ``n x n @ n x n`` product (``2 n^3`` FLOPs) taking ``seconds``."""
    return 2 * n ** 3 / seconds / 1e9


def matmul_rate(sizes: Sequence[int] = MATMUL_SIZES, repeats: int = 5,
                clock: Callable[[], float] = time.process_time, device: str = "cpu",
                sync: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Median dense float32 ``torch.mm`` GFLOP/s per size (one warm-up product each) and the
    reference rate: the largest of the medians."""
    per_size = {}
    for n in sizes:
        g = torch.Generator().manual_seed(n)
        a = torch.randn(n, n, generator=g).to(device)
        b = torch.randn(n, n, generator=g).to(device)
        torch.mm(a, b)
        sync()
        rates = []
        for _ in range(repeats):
            start = clock()
            torch.mm(a, b)
            sync()
            rates.append(gflops(n, max(clock() - start, 1e-9)))
        per_size[str(n)] = statistics.median(rates)
    return {"gflops_per_s": per_size, "reference_gflops_per_s": max(per_size.values()),
            "repeats": repeats}


def bound(fraction: float, matmul_share: float) -> str:
    """A one-word reading of a step: ``compute`` near the matmul rate (>= 0.5 of it),
    ``overhead`` when most self time is outside matrix products (> 0.5) and the rate is
    below 0.5, else ``mixed``."""
    if fraction >= 0.5:
        return "compute"
    return "overhead" if matmul_share < 0.5 else "mixed"


# --------------------------------------------------------------------------- steps

@dataclass
class Step:
    fn: Callable[[], object]
    shapes: dict[str, Any]
    parameters: int
    notes: list[str] = field(default_factory=list)


def load_benchmark(relative: str) -> Any:
    """Import a benchmark script (``me_mhacl.py``, ``equivalence/m2s.py``) as a module."""
    path = HERE / relative
    name = "bench_" + path.stem
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def n_parameters(*modules: torch.nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)


def _on(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def uf_ama_step(device: torch.device) -> Step:
    uf = load_benchmark("equivalence/uf_ama.py")
    spec = uf.DATASETS["seed_iv"]
    torch.manual_seed(0)
    method = uf.affectlab_setup(spec, "seed_iv", official=False, dropout=True)
    method.net_.to(device)
    optimiser = uf.build_optimiser(method.net_, method.config, method.settings_)
    batch = _on(uf.make_batch(spec, torch.float32, seed=3), device)
    return Step(lambda: uf.affectlab_step(method, optimiser, batch, epoch=200),
                {"source": uf.B, "target": uf.B, "eeg": [62, 5], "eye": spec["n_eye"],
                 "classes": spec["n_classes"], "blocks": method.settings_.blocks},
                n_parameters(method.net_))


def me_mhacl_step(device: torch.device) -> Step:
    from affectlab.methods.base import create_method
    from affectlab.methods.me_mhacl import GroupSampler, draw_split

    mb = load_benchmark("me_mhacl.py")
    torch.manual_seed(0)
    method = create_method("me_mhacl", {}, seed=0, preset="paper", device=device)
    cfg = method.config
    widths = {name: mb.WIDTHS.get(name, 1) for name in cfg.modalities}   # Table III: 36
    method.build(widths)
    clips, subjects, samples = 64, 32, 128
    _, _, meta = mb.make_data(clips, subjects, samples, seed=0)        # its clip / subject table
    g = torch.Generator().manual_seed(0)
    flat = torch.randn(clips * subjects, sum(widths.values()), samples, generator=g).to(device)
    sampler = GroupSampler(meta, cfg.P, cfg.Q)
    gen = torch.Generator().manual_seed(0)
    params = [*method.encoder_.parameters(), *method.projector_.parameters()]
    optimiser = torch.optim.Adam(params, lr=cfg.pretrain_lr, fused=True)
    batches = itertools.cycle(sampler.epoch(gen))

    def step() -> None:
        loss = method.group_loss(method.augment(flat, next(batches).to(device),
                                                draw_split(samples, gen)))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    return Step(step, {"P": cfg.P, "Q": cfg.Q, "windows": 2 * cfg.P * cfg.Q,
                       "modalities": widths, "channels": sum(widths.values()),
                       "samples": samples,
                       "projector": list(cfg.projector_dims),
                       "attention_heads": cfg.attention_heads},
                n_parameters(method.encoder_, method.projector_))


def m2s_pretrain_step(device: torch.device, batch_size: int = 512) -> Step:
    from affectlab.methods.m2s import pretrain_optimizers, pretrain_step

    m2s = load_benchmark("equivalence/m2s.py")
    torch.manual_seed(2)
    ours = m2s.Ours(m2s.our_config(official=False, dropout=True)).to(device)
    optimiser, scheduler, club_optimiser = pretrain_optimizers(ours.net, ours.clubs, m2s.EPOCHS)
    batch = _on(m2s.our_batch(m2s.make_batch(batch_size, torch.float32, seed=5)), device)
    perms = {n: torch.randperm(batch_size, device=device) for n in m2s.SHAPES}

    def step() -> None:
        pretrain_step(ours.net, ours.clubs, optimiser, club_optimiser, batch, 2, perms)
        scheduler.step()

    return Step(step, {"batch": batch_size, "T": m2s.T, "eeg": [m2s.CHANNELS, m2s.BANDS],
                       "eye": m2s.N_EYE, "d_model": m2s.D,
                       "club_updates": ours.cfg.club_steps},
                n_parameters(ours.net, ours.clubs),
                ["official=False (the paper preset's settings), equivalence/m2s.py's networks"])


def _dhcm_setup(device: torch.device):
    from affectlab.methods.base import build_config
    from affectlab.methods.dhcm_cacl import DHCMCACL, Encoder, LossWeights

    batch, steps = 32, 20
    g = torch.Generator().manual_seed(0)
    x_e = torch.randn(batch, steps, 160, generator=g).to(device)
    x_f = torch.randn(batch, steps, 17, generator=g).to(device)
    mask = torch.ones(batch, steps, dtype=torch.bool, device=device)
    y = torch.randint(0, 2, (batch,), generator=g).to(device)
    method = DHCMCACL(build_config(DHCMCACL, "paper"), n_classes=2, seed=0, device=device)
    torch.manual_seed(0)
    encoder = Encoder(160, 17, method.config).to(device)
    method.loss_weights_ = LossWeights(2).to(device)
    cfg = method.config
    shapes = {"sequences": batch, "windows": steps, "eeg_features": 160, "face_features": 17,
              "d_model": cfg.d_model, "d_state": cfg.d_state, "scan": cfg.scan}
    return method, encoder, (x_e, x_f, mask, y), shapes


def dhcm_cacl_pretrain_step(device: torch.device) -> Step:
    method, encoder, (x_e, x_f, mask, _), shapes = _dhcm_setup(device)
    cfg = method.config
    params = [*encoder.parameters(), *method.loss_weights_.parameters()]
    optimiser = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    encoder.train()

    def step() -> None:
        loss, _ = method.pretrain_loss(encoder, x_e, x_f, mask)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    return Step(step, shapes, n_parameters(encoder, method.loss_weights_))


def dhcm_cacl_finetune_step(device: torch.device) -> Step:
    from affectlab.methods.dhcm_cacl import FineTuneModel

    method, encoder, (x_e, x_f, mask, y), shapes = _dhcm_setup(device)
    cfg = method.config
    method.frozen_encoder_ = copy.deepcopy(encoder).requires_grad_(False).eval()
    encoder.freeze(2)
    torch.manual_seed(1)
    method.model_ = FineTuneModel(encoder, 2, cfg).to(device)
    params = [p for p in method.model_.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=cfg.finetune_lr or cfg.lr,
                                 weight_decay=cfg.weight_decay)
    method.model_.train()

    def step() -> None:
        loss, _ = method.finetune_loss(x_e, x_f, mask, y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    return Step(step, {**shapes, "frozen_levels": 2}, n_parameters(method.model_),
                ["two levels frozen, frozen reference encoder (Eq. 28)"])


def _clmer_config():
    from affectlab.methods.base import build_config
    from affectlab.methods.clmer import CLMER

    return build_config(CLMER, "paper")


def clmer_pretrain_step(device: torch.device) -> Step:
    from affectlab.methods.clmer import SequenceContrast

    cb = load_benchmark("clmer.py")
    cfg = _clmer_config()
    torch.manual_seed(0)
    models = torch.nn.ModuleList(SequenceContrast(length, ch, cfg)
                                 for length, ch in cb.SHAPES.values()).to(device)
    optimiser = torch.optim.Adam(models.parameters(), lr=cfg.pretrain_lr,
                                 weight_decay=cfg.pretrain_weight_decay)
    xs = [torch.randn(cb.BATCH, length, ch).to(device) for length, ch in cb.SHAPES.values()]
    cuts = torch.Generator().manual_seed(0)
    gen = torch.Generator(device=device).manual_seed(0)
    models.train()

    def step() -> None:
        loss = sum(m.loss(x, m.draw_cut(cuts), gen)[0] for m, x in zip(models, xs, strict=True))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    return Step(step, {"batch": cb.BATCH, **{k: list(v) for k, v in cb.SHAPES.items()},
                       "temporal_context": cfg.temporal_context}, n_parameters(models))


def clmer_finetune_step(device: torch.device) -> Step:
    import torch.nn.functional as F

    from affectlab.methods.clmer import FusionNet, SequenceContrast

    cb = load_benchmark("clmer.py")
    cfg = _clmer_config()
    torch.manual_seed(0)
    encoders = torch.nn.ModuleList(SequenceContrast(length, ch, cfg).encoder
                                   for length, ch in cb.SHAPES.values()).to(device).eval()
    xs = [torch.randn(cb.BATCH, length, ch).to(device) for length, ch in cb.SHAPES.values()]
    with torch.no_grad():
        feats = [enc(x) for enc, x in zip(encoders, xs, strict=True)]
    token_length = 60
    net = FusionNet([tuple(f.shape[1:]) for f in feats], token_length, cfg.tokens, cfg,
                    cb.N_CLASSES).to(device).train()
    optimiser = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    y = torch.arange(cb.BATCH, device=device) % cb.N_CLASSES

    def step() -> None:
        loss = F.cross_entropy(net(feats), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    return Step(step, {"batch": cb.BATCH, "token_length": token_length, "tokens": cfg.tokens,
                       "feature_shapes": [list(f.shape[1:]) for f in feats]},
                n_parameters(net), ["fusion on frozen-encoder features computed once "
                                    "(clmer.py's fusion step)"])


BUILDERS: dict[str, Callable[[torch.device], Step]] = {
    "uf_ama": uf_ama_step, "me_mhacl": me_mhacl_step, "m2s_pretrain": m2s_pretrain_step,
    "dhcm_cacl_pretrain": dhcm_cacl_pretrain_step,
    "dhcm_cacl_finetune": dhcm_cacl_finetune_step, "clmer_pretrain": clmer_pretrain_step,
    "clmer_finetune": clmer_finetune_step}


# --------------------------------------------------------------------------- measuring

def clock_for(device: torch.device) -> tuple[Callable[[], float], Callable[[], None]]:
    """CPU: process time; CUDA: wall time, with a synchronisation before each reading."""
    if device.type == "cuda":
        def sync() -> None:
            torch.cuda.synchronize(device)

        def clock() -> float:
            sync()
            return time.perf_counter()
        return clock, sync
    return time.process_time, lambda: None


@dataclass
class Profiled:
    rows: list[tuple[str, float, int]]    # (name, self seconds, calls) over every step
    wall_s: float                         # wall seconds of the profiled steps
    cpu_s: float                          # process seconds of the profiled steps
    leaves: int                           # aten operators that call no other, every step
    shapes: list[dict[str, Any]]          # the slowest matmul operators by input shapes
    kernels: int | None = None            # CUDA kernels launched, every step (CUDA only)


def profile_steps(fn: Callable[[], object], steps: int, device: torch.device,
                  top_shapes: int = 5) -> Profiled:
    """Profile ``steps`` calls of ``fn`` (input shapes recorded). Self times are the
    profiler's: CPU self time (wall clock on the operator's thread) or, on CUDA, device self
    time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    _, sync = clock_for(device)
    with profile(activities=activities, record_shapes=True) as prof:
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            fn()
        sync()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu

    def self_us(e) -> float:
        if device.type != "cuda":
            return e.self_cpu_time_total
        us = getattr(e, "self_device_time_total", None)
        return getattr(e, "self_cuda_time_total", 0) if us is None else us

    rows = [(e.key, self_us(e) / 1e6, e.count) for e in prof.key_averages()]
    by_shape = [e for e in prof.key_averages(group_by_input_shape=True) if is_matmul(e.key)]
    by_shape.sort(key=lambda e: -self_us(e))
    shapes = [{"op": e.key, "input_shapes": str(e.input_shapes),
               "profiler_self_s": self_us(e) / 1e6 / steps, "calls": e.count / steps}
              for e in by_shape[:top_shapes]]
    events = prof.events()
    leaves = sum(1 for e in events if e.name.startswith("aten::") and not e.cpu_children)
    kernels = sum(1 for e in events if e.device_type == torch.autograd.DeviceType.CUDA) \
        if device.type == "cuda" else None
    return Profiled(rows, wall, cpu, leaves, shapes, kernels)


def attention_flops(query: Sequence[int], key: Sequence[int], value: Sequence[int]) -> int:
    """FLOPs of ``softmax(q k^T) v`` for shapes ``(..., L, E)``, ``(..., S, E)``,
    ``(..., S, Ev)``: ``2 L S E + 2 L S Ev`` per leading index."""
    lead = 1
    for n in query[:-2]:
        lead *= n
    length, source = query[-2], key[-2]
    return 2 * lead * length * source * (query[-1] + value[-1])


def _cpu_attention(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return attention_flops(query, key, value)


def _cpu_attention_backward(grad_out, query, key, value, *args, out_shape=None,
                            **kwargs) -> int:
    return 2 * attention_flops(query, key, value)   # dq, dk, dv and the recomputed scores


def count_flops(fn: Callable[[], object]) -> tuple[int, dict[str, int]]:
    """FLOPs of one call (forward + backward) and the counts per operator. The CPU kernel of
    ``scaled_dot_product_attention`` (not in torch's table) is counted as its math."""
    from torch.utils.flop_counter import FlopCounterMode

    mapping = {}
    for name, count in (("_scaled_dot_product_flash_attention_for_cpu", _cpu_attention),
                        ("_scaled_dot_product_flash_attention_for_cpu_backward",
                         _cpu_attention_backward)):
        if hasattr(torch.ops.aten, name):
            mapping[getattr(torch.ops.aten, name)] = count
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        fn()
    per_op = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return int(counter.get_total_flops()), dict(sorted(per_op.items(), key=lambda kv: -kv[1]))


def measure(name: str, device: torch.device, steps: int, warmup: int, top: int,
            reference: float) -> dict[str, Any]:
    """Time, profile and count the FLOPs of one method's step (see the module docstring).

    The profiler's self times are wall clock: on a shared machine they include the time the
    process waited for a core. Per-operator seconds are therefore reported as the operator's
    share of the profiled steps' wall time times the step's (unprofiled) seconds; the raw
    profiler figures are kept as ``profiler_self_s``."""
    step = BUILDERS[name](device)
    clock, _ = clock_for(device)
    times = common.interleaved_timing({name: step.fn}, steps, warmup, clock)[name]
    seconds = statistics.median(times)
    prof = profile_steps(step.fn, steps, device)
    ops = op_summary(prof.rows, steps, top)
    wall = prof.wall_s / steps
    for row in ops["table"]:
        row["profiler_self_s"] = row["self_s"]
        row["share_of_step"] = row["self_s"] / wall
        row["self_s"] = row["share_of_step"] * seconds
    flops, flops_per_op = count_flops(step.fn)
    rate = flops / seconds / 1e9
    fraction = rate / reference
    matmul_share = ops["matmul_self_s"] / ops["self_s"] if ops["self_s"] else 0.0
    return {
        "seconds_per_step": seconds, "timing": common.timing_summary({name: times})[name],
        "gflop_per_step": flops / 1e9, "gflop_per_step_by_op": {
            k: v / 1e9 for k, v in flops_per_op.items()},
        "achieved_gflops_per_s": rate, "fraction_of_matmul_rate": fraction,
        "operator_calls_per_step": ops["calls"], "leaf_calls_per_step": prof.leaves / steps,
        "cuda_kernels_per_step": None if prof.kernels is None else prof.kernels / steps,
        "profiled_wall_s_per_step": wall, "profiled_process_s_per_step": prof.cpu_s / steps,
        "profiler_self_s_per_step": ops["self_s"],
        "in_operators_share": ops["self_s"] / wall,
        "matmul_share_of_op_time": matmul_share,
        "matmul_s_per_step": ops["matmul_self_s"] / wall * seconds,
        "non_matmul_s_per_step": ops["other_self_s"] / wall * seconds,
        "outside_operators_s_per_step": max(0.0, 1 - ops["self_s"] / wall) * seconds,
        "reading": bound(fraction, matmul_share),
        "top_ops": ops["table"], "slowest_matmul_shapes": prof.shapes,
        "shapes": step.shapes, "parameters": step.parameters, "notes": step.notes}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def format_rows(results: Mapping[str, Mapping[str, Any]]) -> str:
    header = ("step", "s/step", "GFLOP", "GFLOP/s", "of mm", "calls", "non-mm s", "top ops")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, r in results.items():
        top = ", ".join(f"{o['op'].removeprefix('aten::')} {100 * o['share']:.0f}%"
                        for o in r["top_ops"][:3])
        lines.append(f"| {name} | {r['seconds_per_step']:.4f} | {r['gflop_per_step']:.2f} | "
                     f"{r['achieved_gflops_per_s']:.1f} | "
                     f"{100 * r['fraction_of_matmul_rate']:.0f}% | "
                     f"{r['operator_calls_per_step']:.0f} | "
                     f"{r['non_matmul_s_per_step']:.4f} | {top} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=",".join(METHOD_STEPS),
                        help=f"comma-separated: {', '.join(METHOD_STEPS)} (or step names: "
                             f"{', '.join(STEPS)})")
    parser.add_argument("--steps", type=int, default=3, help="timed and profiled steps")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--top", type=int, default=15, help="operators in each table")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--out", type=Path, default=common.RESULTS / "profile_step.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device")
    torch.set_num_threads(args.threads)
    names = []
    for item in args.methods.split(","):
        item = item.strip()
        if item not in METHOD_STEPS and item not in STEPS:
            parser.error(f"--methods: unknown {item!r}")
        names += METHOD_STEPS.get(item, [item])
    clock, sync = clock_for(device)
    sizes = MATMUL_SIZES if device.type == "cpu" else (2048, 4096, 8192)
    rate = matmul_rate(sizes, clock=time.perf_counter if device.type == "cuda" else clock,
                       device=str(device), sync=sync)
    print(f"dense float32 mm: {rate['gflops_per_s']} GFLOP/s", flush=True)
    results = {}
    for name in names:
        results[name] = measure(name, device, args.steps, args.warmup, args.top,
                                rate["reference_gflops_per_s"])
        r = results[name]
        print(f"{name}: {r['seconds_per_step']:.4f} s/step, {r['gflop_per_step']:.2f} GFLOP, "
              f"{100 * r['fraction_of_matmul_rate']:.1f}% of mm", flush=True)
    print(format_rows(results))
    payload = {
        "benchmark": "profile_step: one training step per method at the papers' shapes",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
        else cpu_model(),
        "cpu_model": cpu_model(), "environment": common.environment(),
        "clock": "wall, synchronised" if device.type == "cuda" else "time.process_time",
        "cuda_tf32_matmul": torch.backends.cuda.matmul.allow_tf32 if device.type == "cuda"
        else None,
        "steps": args.steps, "warmup": args.warmup, "matmul": rate,
        "flop_counter_note": "FlopCounterMode counts matrix products, convolutions and "
                             "attention (forward + backward); elementwise ops, reductions, "
                             "normalisations, activations and the optimiser are not counted",
        "calls_note": "operator_calls_per_step: every dispatched aten operator and profiler "
                      "annotation (nested calls included); leaf_calls_per_step: aten "
                      "operators that call no other operator (about the kernels launched)",
        "seconds_note": "top_ops: share = of all operators' self time; share_of_step = "
                        "profiler self time / wall time of the profiled steps; self_s = "
                        "share_of_step x seconds_per_step (the profiler's self times are wall "
                        "clock, which on a shared machine includes waits for a core: "
                        "profiler_self_s); matmul_s / non_matmul_s / outside_operators_s per "
                        "step are split the same way (outside operators: Python and framework "
                        "code between operators)",
        "steps_profiled": results,
    }
    common.write_json(args.out, payload)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
