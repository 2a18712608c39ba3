"""Wall time of a whole protocol: folds one after another vs concurrent folds.

Usage::

    python benchmarks/protocol_time.py                          # 4 subjects, 2 workers, CPU
    python benchmarks/protocol_time.py --subjects 15 --workers 8
    python benchmarks/protocol_time.py --device cuda --workers 4  # on a machine with a GPU

Each case runs through the public API (``affectlab.run``) on synthetic data written by
``affectlab.datasets.synth`` (what ``affectlab synth`` writes), into temporary run
directories, at the ``default`` method preset:

* ``uf_ama_loso``      UF-AMA, LOSO on synthetic SEED-IV;
* ``me_mhacl_kfold``   ME-MHACL, subject_kfold on synthetic DEAP.

Modes: ``local`` (``executor="local"``: the folds one after another in this process) and
``process`` (``executor="process", workers=N``: N spawned workers, one torch thread each).
With ``--device cuda`` also ``process_devices``: the process executor's ``devices`` /
``workers_per_device`` options (N workers sharing one GPU), when the installed executor has
them (read from ``ProcessExecutor.__init__``'s signature); otherwise that mode is skipped and
the result says so.

The WindowSet cache is built once before the modes are timed (``affectlab.load`` with the
method's data preset), so no mode pays for reading the dataset. Recorded per mode: wall
seconds of the ``affectlab.run`` call, each fold's ``seconds`` (fit + predict, from the fold's
``metrics.json``), the speed-up over ``local``, and whether every fold's test metrics and
predictions equal ``local``'s (they should: every fold is seeded by the run seed and its
index), and the load average before and after each mode (other processes on a shared machine
take cores from the concurrent folds). Writes ``benchmarks/results/protocol_time.json``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "equivalence"))
import common  # noqa: E402

CASES = {
    "uf_ama_loso": {"method": "uf_ama", "dataset": "seed_iv", "protocol": "loso"},
    "me_mhacl_kfold": {"method": "me_mhacl", "dataset": "deap", "protocol": "subject_kfold"},
}
#: metrics.json keys that measure time, not results
TIMING_KEYS = ("seconds",)


# --------------------------------------------------------------------------- pure helpers

def executor_options(init: Any) -> set[str]:
    """The keyword options a callable (an executor's ``__init__``) accepts, ``self`` left out."""
    return {name for name, p in inspect.signature(init).parameters.items()
            if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def without_timing(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """A fold's metrics without the keys that measure time (:data:`TIMING_KEYS`)."""
    return {k: v for k, v in metrics.items() if k not in TIMING_KEYS}


def differing_folds(reference: Mapping[str, Mapping[str, Any]],
                    other: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Fold names whose results (timing left out) differ between two runs, or that only one of
    them has."""
    names = sorted(set(reference) | set(other))
    return [k for k in names if k not in reference or k not in other
            or without_timing(reference[k]) != without_timing(other[k])]


def speedups(walls: Mapping[str, float], baseline: str = "local") -> dict[str, float]:
    """``walls[baseline] / walls[mode]`` for every mode."""
    return {mode: walls[baseline] / s for mode, s in walls.items() if s > 0}


# --------------------------------------------------------------------------- running

def fold_results(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Per fold directory name: its metrics.json and its predictions.csv text."""
    out = {}
    for metrics_path in sorted((run_dir / "folds").glob("*/metrics.json")):
        metrics = json.loads(metrics_path.read_text())
        predictions = metrics_path.parent / "predictions.csv"
        metrics["predictions_csv"] = predictions.read_text() if predictions.exists() else None
        out[metrics_path.parent.name] = metrics
    return out


def run_mode(case: Mapping[str, str], root: Path, out: Path, cache: Path, executor: str,
             workers: int | None, options: dict[str, Any] | None, args) -> dict[str, Any]:
    import affectlab

    config: dict[str, Any] = {"method_preset": "default", "cache_dir": str(cache),
                              "device": args.device, "seed": 0, "threads": args.threads}
    if args.max_folds:
        config["max_folds"] = args.max_folds
    load_before = os.getloadavg()
    start = time.perf_counter()
    results = affectlab.run(case["method"], case["dataset"], root, case["protocol"], out=out,
                            overwrite=True, executor=executor, workers=workers,
                            executor_options=options, **config)
    wall = time.perf_counter() - start
    folds = fold_results(results.run_dir)
    return {"wall_s": wall, "fold_seconds": {k: m["seconds"] for k, m in folds.items()},
            "sum_fold_s": sum(m["seconds"] for m in folds.values()), "folds": len(folds),
            "accuracy": {k: m["accuracy"] for k, m in folds.items()},
            "executor": executor, "workers": workers, "executor_options": options or {},
            "load_average_before": list(load_before), "load_average_after":
            list(os.getloadavg()), "_folds": folds}


def warm_cache(case: Mapping[str, str], root: Path, cache: Path) -> float:
    """Build the case's WindowSet cache (the method's data preset); seconds taken."""
    import affectlab
    from affectlab.methods.base import METHODS, create_method

    create_method(case["method"])                      # registers the built-in methods
    preset = METHODS.get(case["method"]).data_preset_for(case["dataset"])
    start = time.perf_counter()
    affectlab.load(case["dataset"], root, preset, cache_dir=cache)
    return time.perf_counter() - start


def run_case(name: str, data: Path, work: Path, args) -> dict[str, Any]:
    from affectlab.executors import ProcessExecutor

    case = CASES[name]
    root = data / case["dataset"]
    cache = work / "cache"
    result: dict[str, Any] = {**case, "method_preset": "default",
                              "cache_seconds": warm_cache(case, root, cache), "notes": []}
    modes: dict[str, tuple[str, int | None, dict | None]] = {
        "local": ("local", None, None), "process": ("process", args.workers, None)}
    if args.device.startswith("cuda"):
        accepted = executor_options(ProcessExecutor.__init__)
        if {"devices", "workers_per_device"} <= accepted:
            devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())][:1]
            modes["process_devices"] = ("process", args.workers, {
                "devices": devices, "workers_per_device": args.workers})
        else:
            result["notes"].append("process_devices skipped: ProcessExecutor has no devices / "
                                   "workers_per_device option in this version")
    runs = {}
    for mode, (executor, workers, options) in modes.items():
        runs[mode] = run_mode(case, root, work / "runs" / name / mode, cache, executor,
                              workers, options, args)
        print(f"{name} {mode}: {runs[mode]['wall_s']:.1f} s wall, {runs[mode]['folds']} folds",
              flush=True)
    reference = runs["local"].pop("_folds")
    for mode, run in runs.items():
        if mode != "local":
            folds = run.pop("_folds")
            differ = differing_folds(reference, folds)
            run["identical_to_local"] = not differ
            run["differing_folds"] = differ
    result["modes"] = runs
    result["speedup_vs_local"] = speedups({m: r["wall_s"] for m, r in runs.items()})
    result["folds"] = runs["local"]["folds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help=", ".join(CASES))
    parser.add_argument("--subjects", type=int, default=4, help="synthetic subjects per dataset")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per fold")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--max-folds", type=int, default=None,
                        help="run only the first N folds of each protocol")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for data, cache and runs (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=common.RESULTS / "protocol_time.json")
    args = parser.parse_args()
    names = [c.strip() for c in args.cases.split(",")]
    unknown = [c for c in names if c not in CASES]
    if unknown:
        parser.error(f"--cases: unknown {unknown[0]!r}; allowed: {', '.join(CASES)}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device")
    from affectlab.datasets import synth

    with tempfile.TemporaryDirectory(prefix="protocol_time_") as tmp:
        work = args.work or Path(tmp)
        data = work / "data"
        datasets = sorted({CASES[c]["dataset"] for c in names})
        start = time.perf_counter()
        synth(data, datasets, n_subjects=args.subjects, seed=0)
        print(f"synthetic {', '.join(datasets)}: {args.subjects} subjects, "
              f"{time.perf_counter() - start:.1f} s", flush=True)
        cases = {name: run_case(name, data, work, args) for name in names}
    cpus = os.cpu_count()
    note = (f"measured on {cpus} CPU core(s): with {args.workers} workers on {cpus} cores the "
            f"speed-up is bounded by {min(args.workers, cpus or 1)} (less the workers' start-up "
            f"and the other processes sharing the machine)")
    if not args.device.startswith("cuda"):
        note += "; no GPU figure was measured (run with --device cuda on a GPU machine)"
    payload = {
        "benchmark": "protocol_time: wall time of a whole protocol, local vs process executor",
        "device": args.device, "cpu_count": cpus, "threads_per_worker": args.threads,
        "workers": args.workers, "subjects": args.subjects, "max_folds": args.max_folds,
        "all_folds": args.max_folds is None, "note": note,
        "environment": {**common.environment(), "threads": args.threads},
        "cases": cases,
    }
    common.write_json(args.out, payload)
    for name, case in cases.items():
        walls = ", ".join(f"{m} {r['wall_s']:.1f} s" for m, r in case["modes"].items())
        same = all(r.get("identical_to_local", True) for r in case["modes"].values())
        print(f"{name}: {walls}; speed-up {case['speedup_vs_local']}; identical: {same}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
