"""ME-MHACL's ``official`` reading against SGMC's released code, component by component.

    python benchmarks/equivalence/sgmc.py --official PATH   # a checkout of SGMC's repository

SGMC (Kan et al., "Self-supervised group meiosis contrastive learning for EEG-based emotion
recognition") is ME-MHACL's parent code. Its model file (``ResNet_model.py``) is imported as it
is; its scripts (``SSL_training(DEAP).py``, ``Data_process(DEAP).py``) load data and train at
import, so only their functions are defined (:func:`sgmc_helpers.script_functions`). Stand-ins,
for CUDA-only parts only: ``device = 'cpu'`` in the script's globals, ``Tensor.to('cuda')`` on
the CPU, and in the float64 run ``torch.float`` as float64 (the training loop hard-codes it).

The same weights go into both models through an explicit state-dict mapping
(:func:`sgmc_helpers.sgmc_key_map`; complete and shape-checked). Nine components are compared
in float64 (relative tolerance 1e-9) and float32, on identical inputs and random draws (subject
order and split point from one ``random.Random``; dropout masks from the same torch seed):
meiosis, NT-Xent loss, encoder, projector, classifier, group pooling, one full training step
(SGMC's own ``_train`` on one batch against :meth:`MEMHACL.pretrain_step`, Adam),
``feature_normalize``, feature-map shapes. Then one training step is timed, interleaved (one
step of each implementation in turn), one thread, CPU seconds (``time.process_time``), at the
paper's shapes: SGMC, affectlab ``sgmc_official`` and affectlab ``paper``.

Writes ``benchmarks/results/equivalence_sgmc.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import platform
import random
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import (  # noqa: E402
    DTYPES,
    TOLERANCE,
    format_table,
    git_commit,
    import_released,
    interleaved_timing,
    rel_error,
    timing_summary,
    within,
    write_json,
)
from sgmc_helpers import (  # noqa: E402
    TorchFloatAs,
    cuda_device_as_cpu,
    function_statements,
    group_rows,
    map_to_affectlab,
    output_shapes,
    script_functions,
    sgmc_draws,
    sgmc_key_map,
)

from affectlab.methods.base import create_method  # noqa: E402
from affectlab.methods.me_mhacl import MEMHACL, draw_split, spatial_zscore  # noqa: E402

OUT = HERE.parent / "results" / "equivalence_sgmc.json"
SUBJECTS = 32                 # SGMC's DEAP meiosis hard-codes 16 pairs: 32 subjects per clip
P, Q, TAU, LR = 8, 2, 0.1, 1e-4
CHANNELS, SAMPLES = 32, 128   # SGMC's DEAP input: 32 EEG channels x 1 s at 128 Hz
POOLING_LINES = ("torch.reshape(out", "torch.max(out")
#: timing shapes (ME-MHACL Table III): clips P, subjects Q, channels, samples per window
TIMING_SHAPES = {"deap": (8, 2, 36, 128), "mahnob": (4, 8, 36, 256)}
PAPER_PRESETS = {"deap": "paper", "mahnob": "paper_mahnob"}


# --------------------------------------------------------------------------- loading

def load_sgmc(root: Path) -> SimpleNamespace:
    """SGMC's ``ResNet`` class and the functions of its DEAP scripts."""
    modules, _ = import_released(root, ["ResNet_model"])
    ssl = {"np": np, "torch": torch, "F": F, "nn": nn, "random": random.Random(0),
           "device": "cpu", "criterion": nn.CrossEntropyLoss()}
    script_functions(root / "SSL_training(DEAP).py", ["Meiosis", "constrast_loss", "_train"], ssl)
    prep = {"np": np}
    script_functions(root / "Data_process(DEAP).py", ["feature_normalize", "norm_dataset"], prep)
    pooling = function_statements(root / "SSL_training(DEAP).py", "_train", POOLING_LINES)
    return SimpleNamespace(ResNet=modules["ResNet_model"].ResNet, ssl=ssl, prep=prep,
                           pooling=pooling, commit=git_commit(root))


def models(sgmc: SimpleNamespace, dtype: torch.dtype, channels: int = CHANNELS,
           seed: int = 0) -> tuple[nn.Module, MEMHACL, nn.ModuleDict]:
    """SGMC's ResNet (seeded init) and affectlab's ``sgmc_official`` method holding the same
    weights; the third value is affectlab's modules under the mapping's key prefixes."""
    torch.manual_seed(seed)
    theirs = sgmc.ResNet().to(dtype)
    method = create_method("me_mhacl", {"modalities": ["eeg"]}, n_classes=2,
                           preset="sgmc_official")
    method.build({"eeg": channels})
    ours = nn.ModuleDict({"encoder": method.encoder_, "projector": method.projector_,
                          "classifier": method.classifier_}).to(dtype)
    pairs = sgmc_key_map()
    mapped = map_to_affectlab(theirs.state_dict(), pairs)
    if set(mapped) != set(ours.state_dict()) or len(pairs) != len(theirs.state_dict()):
        raise ValueError("the SGMC -> affectlab key map does not cover both state dicts")
    ours.load_state_dict(mapped, strict=True)
    return theirs, method, ours


def headless(model: nn.Module) -> nn.Module:
    """A copy of SGMC's ResNet whose backbone is the identity, so that its own ``forward``
    runs only the heads on a 512-d input (``relu`` stays: it is also a head layer; inputs are
    non-negative, as real embeddings after ReLU and average pooling are)."""
    model = copy.deepcopy(model)
    for name in ("conv1", "bn1", "maxpool", "layer1", "layer2", "layer3", "layer4",
                 "avgpool"):
        setattr(model, name, nn.Identity())
    return model


def seeded(seed: int, fn: Callable[[], Any]) -> Any:
    torch.manual_seed(seed)
    return fn()


def quiet(fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn`` with its prints and NumPy warnings swallowed (SGMC's functions print
    progress; ``feature_normalize`` takes the mean of an empty slice for an all-zero sample)."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), \
            np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args)


# --------------------------------------------------------------------------- components

def compare_meiosis(sgmc: SimpleNamespace, method: MEMHACL, dtype: torch.dtype,
                    iterations: int = 300) -> dict[str, Any]:
    """SGMC's ``Meiosis`` children of the two groups (positions 0..Q-1 and 16..16+Q-1, the
    ones ``_train`` keeps) against ``MEMHACL.augment`` for the same subject order and split."""
    rng, data_rng = random.Random(1), np.random.default_rng(1)
    signal = data_rng.standard_normal((P, SUBJECTS, 1, CHANNELS, SAMPLES))
    rows = torch.as_tensor(signal.reshape(P * SUBJECTS, CHANNELS, SAMPLES), dtype=dtype)
    worst, unchanged = 0.0, 0
    for _ in range(iterations):
        perm, split = sgmc_draws(rng, SUBJECTS)
        children = [sgmc.ssl["Meiosis"](signal[i], Q, perm, split) for i in range(P)]
        half = SUBJECTS // 2
        theirs = np.concatenate([np.stack([c[:Q] for c in children]),
                                 np.stack([c[half:half + Q] for c in children])])[:, :, 0]
        ours = method.augment(rows, group_rows(perm, Q, SUBJECTS, P), split)
        worst = max(worst, rel_error(ours, torch.as_tensor(theirs, dtype=dtype)))
        unchanged += split >= CHANNELS
    return {"error": worst, "iterations": iterations, "no_op_iterations": unchanged}


def compare_loss(sgmc: SimpleNamespace, method: MEMHACL, dtype: torch.dtype) -> dict[str, Any]:
    """SGMC's ``constrast_loss`` against ``MEMHACL.contrastive_loss`` on the same 2P vectors."""
    z = torch.randn(2 * P, 4096, dtype=dtype, generator=torch.Generator().manual_seed(2))
    with cuda_device_as_cpu():
        theirs = sgmc.ssl["constrast_loss"](z, sgmc.ssl["criterion"], TAU)[0]
    ours = method.contrastive_loss(z)
    return {"error": rel_error(ours, theirs), "loss": float(theirs)}


def compare_encoder(theirs: nn.Module, ours: nn.ModuleDict, dtype: torch.dtype
                    ) -> dict[str, Any]:
    """Embeddings of 2PQ windows in train mode (batch statistics, running stats updated) and
    then in eval mode (the updated running stats)."""
    x = torch.randn(2 * P * Q, CHANNELS, SAMPLES, dtype=dtype,
                    generator=torch.Generator().manual_seed(3))
    errors = {}
    for mode in ("train", "eval"):
        theirs.train(mode == "train")
        ours.train(mode == "train")
        errors[mode] = rel_error(ours["encoder"](x), theirs(x[:, None], "embedding"))
    return {"error": max(errors.values()), "by_mode": errors}


def embeddings(n: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """Non-negative 512-d inputs of the heads (real embeddings are means of ReLU maps)."""
    return torch.randn(n, 512, dtype=dtype, generator=torch.Generator().manual_seed(seed)).abs()


def compare_head(theirs: nn.Module, ours: nn.Module, mode_name: str, dtype: torch.dtype,
                 seed: int) -> dict[str, Any]:
    """One of SGMC's heads (its own ``forward`` with the backbone removed) against affectlab's
    module, train and eval mode, the same dropout masks (same torch seed)."""
    head, h = headless(theirs), embeddings(2 * P * Q, dtype, seed)
    errors = {}
    for mode in ("train", "eval"):
        head.train(mode == "train")
        ours.train(mode == "train")
        expected = seeded(seed, lambda: head(h, mode_name))
        errors[mode] = rel_error(seeded(seed, lambda: ours(h)), expected)
    return {"error": max(errors.values()), "by_mode": errors}


def compare_pooling(sgmc: SimpleNamespace, theirs: nn.Module, method: MEMHACL,
                    dtype: torch.dtype) -> dict[str, Any]:
    """SGMC's projector plus its two pooling lines of ``_train`` (reshape to ``(-1, Q, D)``,
    max over the members) against ``GroupProjector`` (no attention) on ``(2P, Q, 512)``."""
    head, h = headless(theirs).train(), embeddings(2 * P * Q, dtype, 5)
    method.projector_.train()

    def released() -> torch.Tensor:
        scope = {"torch": torch, "Q": Q, "out": head(h, "contrast")}
        exec(sgmc.pooling, scope)                                     # noqa: S102
        return scope["out"]

    expected = seeded(6, released)
    ours = seeded(6, lambda: method.projector_(h.view(2 * P, Q, 512)))
    return {"error": rel_error(ours, expected), "released_lines": sgmc.pooling.splitlines()}


def compare_training_step(sgmc: SimpleNamespace, dtype: torch.dtype) -> dict[str, Any]:
    """SGMC's ``_train`` on one batch of ``(P, 32, 1, C, M)`` with ``Adam(lr=1e-4)`` against
    ``MEMHACL.pretrain_step`` with affectlab's optimiser, from the same weights and draws:
    the loss and every parameter and batch-norm buffer after the step."""
    theirs, method, ours = models(sgmc, dtype)
    data = torch.randn(P, SUBJECTS, 1, CHANNELS, SAMPLES, dtype=dtype,
                       generator=torch.Generator().manual_seed(7))
    labels = torch.zeros(P, SUBJECTS, dtype=torch.long)
    scope = dict(sgmc.ssl, random=random.Random(8), torch=TorchFloatAs(dtype))
    train = rebind(sgmc.ssl["_train"], scope)
    optimizer = torch.optim.Adam(theirs.parameters(), LR)
    torch.manual_seed(9)
    with cuda_device_as_cpu():        # a copy: _train writes the children into its batch
        _, losses = quiet(train, theirs, [(data.clone(), labels)], optimizer, 1, Q, TAU)
    perm, split = sgmc_draws(random.Random(8), SUBJECTS)
    rows = data.reshape(P * SUBJECTS, CHANNELS, SAMPLES)
    method.encoder_.train()
    method.projector_.train()
    torch.manual_seed(9)
    loss = method.pretrain_step(rows, group_rows(perm, Q, SUBJECTS, P), split,
                                method.pretrain_optimiser())
    after = map_to_affectlab(theirs.state_dict(), sgmc_key_map())
    now = dict(ours.state_dict())
    leaves = sorted(((rel_error(now[k], after[k]), k) for k in now), reverse=True)
    return {"error": max(rel_error(float(loss), losses[0]), leaves[0][0]),
            "loss_error": rel_error(float(loss), losses[0]), "state_error": leaves[0][0],
            "worst_leaves": [{"key": k, "error": e} for e, k in leaves[:3]],
            "loss": losses[0], "split": split}


def rebind(fn: Callable, scope: dict[str, Any]) -> Callable:
    """``fn`` with the globals ``scope`` (the names it looks up: ``random``, ``torch``, ...)."""
    return type(fn)(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__)


def compare_feature_normalize(sgmc: SimpleNamespace, dtype: torch.dtype) -> dict[str, Any]:
    """SGMC's ``norm_dataset`` (``feature_normalize`` on every time sample across its 32
    channels) against ``spatial_zscore`` on windows with exact zeros."""
    rng = np.random.default_rng(10)
    windows = rng.standard_normal((4, SAMPLES, CHANNELS)) * 20 + 3
    windows[rng.random(windows.shape) < 0.05] = 0.0
    windows[0, 5] = 0.0                                      # a time sample of zeros only
    theirs = np.stack([quiet(sgmc.prep["norm_dataset"], w.astype(DTYPE_NP[dtype]).copy())
                       for w in windows])
    ours = spatial_zscore(torch.as_tensor(windows, dtype=dtype).transpose(1, 2))
    return {"error": rel_error(ours.transpose(1, 2), torch.as_tensor(theirs, dtype=dtype))}


DTYPE_NP = {torch.float64: np.float64, torch.float32: np.float32}
SGMC_STAGES = ["maxpool", *[f"layer{s}.{i}" for s in range(1, 5) for i in range(2)],
               "avgpool"]
OUR_STAGES = ["stem", *[f"blocks.{k}" for k in range(8)]]


def compare_shapes(sgmc: SimpleNamespace, dtype: torch.dtype) -> dict[str, Any]:
    """Output shape of the stem and of every residual block, for SGMC's DEAP input and the
    ME-MHACL shapes (36 channels at 128 and 256 Hz); 0 if all equal, else inf."""
    found, error = {}, 0.0
    for channels, samples in ((CHANNELS, SAMPLES), (36, 128), (36, 256)):
        theirs, method, _ = models(sgmc, dtype, channels)
        theirs.eval()
        method.encoder_.eval()
        x = torch.zeros(2, channels, samples, dtype=dtype)
        a = output_shapes(theirs, SGMC_STAGES, x[:, None], "embedding")
        b = output_shapes(method.encoder_, OUR_STAGES, x)
        a = [s for s in a[:-1]] + [a[-1][:2]]                  # avgpool (N, 512, 1, 1)
        b = b + [(2, method.encoder_.out_dim)]
        found[f"{channels}x{samples}"] = {"sgmc": a, "affectlab": b}
        error = max(error, rel_error([list(s) for s in b], [list(s) for s in a]))
    return {"error": error, "shapes": found}


def run_components(sgmc: SimpleNamespace, dtype_name: str) -> dict[str, dict[str, Any]]:
    dtype = DTYPES[dtype_name]
    theirs, method, ours = models(sgmc, dtype)
    return {
        "meiosis": compare_meiosis(sgmc, method, dtype),
        "nt_xent": compare_loss(sgmc, method, dtype),
        "encoder": compare_encoder(theirs, ours, dtype),
        "projector": compare_head(theirs, method.projector_.mlp, "contrast", dtype, 4),
        "classifier": compare_head(theirs, ours["classifier"], "classifier", dtype, 11),
        "group_pooling": compare_pooling(sgmc, theirs, method, dtype),
        "training_step": compare_training_step(sgmc, dtype),
        "feature_normalize": compare_feature_normalize(sgmc, dtype),
        "feature_map_shapes": compare_shapes(sgmc, dtype),
    }


# --------------------------------------------------------------------------- timing

def timed_steps(sgmc: SimpleNamespace, dataset: str) -> dict[str, Callable[[], object]]:
    """One pre-training step of each implementation at ``dataset``'s Table III shapes, float32;
    every call draws a new subject order and split point."""
    clips, q, channels, samples = TIMING_SHAPES[dataset]
    data = torch.randn(clips, SUBJECTS, 1, channels, samples,
                       generator=torch.Generator().manual_seed(12))
    rows = data.clone().reshape(clips * SUBJECTS, channels, samples)   # _train writes into data
    torch.manual_seed(0)
    theirs = sgmc.ResNet()
    optimizer = torch.optim.Adam(theirs.parameters(), LR)
    scope = dict(sgmc.ssl, random=random.Random(13), torch=torch)
    train = rebind(sgmc.ssl["_train"], scope)
    labels = torch.zeros(clips, SUBJECTS, dtype=torch.long)

    def released() -> object:
        with cuda_device_as_cpu():
            return quiet(train, theirs, [(data, labels)], optimizer, 1, q, TAU)

    steps: dict[str, Callable[[], object]] = {"sgmc": released}
    draws = random.Random(14)
    for name, preset in (("affectlab_official", "sgmc_official"),
                         ("affectlab_paper", PAPER_PRESETS[dataset])):
        method = create_method("me_mhacl", {"modalities": ["eeg"], "P": clips, "Q": q},
                               n_classes=2, preset=preset)
        method.build({"eeg": channels})
        method.encoder_.train()
        method.projector_.train()
        steps[name] = affectlab_step(method, rows, clips, q, draws)
    return steps


def affectlab_step(method: MEMHACL, rows: torch.Tensor, clips: int, q: int,
                   draws: random.Random) -> Callable[[], object]:
    optimiser = method.pretrain_optimiser()
    generator = torch.Generator().manual_seed(15)

    def step() -> object:
        perm = draws.sample(range(SUBJECTS), SUBJECTS)
        c = draw_split(rows.shape[-1], generator, method.config.official)
        return method.pretrain_step(rows, group_rows(perm, q, SUBJECTS, clips), c, optimiser)

    return step


def run_timing(sgmc: SimpleNamespace, repeats: int) -> dict[str, Any]:
    torch.set_num_threads(1)
    out = {}
    for dataset, (clips, q, channels, samples) in TIMING_SHAPES.items():
        times = interleaved_timing(timed_steps(sgmc, dataset), repeats=repeats)
        summary = timing_summary(times)
        out[dataset] = {"P": clips, "Q": q, "windows_per_step": 2 * clips * q,
                        "window": [channels, samples], "cpu_seconds": summary,
                        "raw": times,
                        "speedup_official": summary["sgmc"]["median"]
                        / summary["affectlab_official"]["median"]}
        print(f"timing {dataset}: " + ", ".join(f"{k} {v['median']:.3f} s" for k, v in
                                                summary.items()), flush=True)
    return out


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="checkout of SGMC")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per implementation")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--commit", help="the checkout's commit, recorded in the JSON "
                                         "(default: read with git; unknown for an archive)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sgmc = load_sgmc(args.official.resolve())
    results = {name: run_components(sgmc, name) for name in DTYPES}
    rows = [{"component": c, "errors": {d: results[d][c]["error"] for d in DTYPES}}
            for c in results["float64"]]
    print(format_table(rows), flush=True)
    matched = sum(within(r["errors"]["float64"], "float64") for r in rows)
    payload = {
        "released": {"repository": "kanhaoning/Self-supervised-group-meiosis-contrastive-"
                                   "learning-for-EEG-based-emotion-recognition",
                     "commit": args.commit or sgmc.commit},
        "affectlab_reading": "me_mhacl sgmc_official (official=true, attention off)",
        "tolerance": TOLERANCE, "error_measure": "max |ours - theirs| / max scale per leaf",
        "matched_float64": f"{matched}/{len(rows)}",
        "matched_float32": f"{sum(within(r['errors']['float32'], 'float32') for r in rows)}"
                           f"/{len(rows)}",
        "components": results, "table": rows,
        "stand_ins": ["device='cpu' in the script globals", "Tensor.to('cuda') -> CPU",
                      "torch.float -> float64 in the float64 run"],
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "processor": platform.processor() or platform.machine(), "threads": 1},
    }
    if not args.no_timing:
        payload["timing"] = run_timing(sgmc, args.repeats)
    write_json(args.out, payload)
    print(f"{matched}/{len(rows)} components match in float64; wrote {args.out}")
    return payload


if __name__ == "__main__":
    main()
