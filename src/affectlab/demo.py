"""The demo: synthetic data -> every paper method (fast preset, a smoke test) next to logreg on
the same inputs and folds -> comparison report."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from affectlab.datasets import synth
from affectlab.methods import METHODS, baseline_inputs, baselines
from affectlab.report import write_report
from affectlab.run import load_config, run_experiment


def run_demo(out: Path, data: Path, methods: Sequence[str] | None = None, n_subjects: int = 3,
             echo: Callable[[str], None] = print) -> Path:
    """Run the demo; return the path of the comparison table (Markdown).

    Every paper method runs with its ``fast`` preset (a smoke test: seconds per fold on tiny
    synthetic data, not a result) next to ``logreg`` on the same inputs and the same folds
    (:func:`affectlab.methods.baseline_inputs`), so the table compares like with like.
    """
    names = list(methods) if methods else [name for name, cls in METHODS.items()
                                           if cls.__module__ != baselines.__name__]
    plans = {name: METHODS.get(name).demo for name in names}
    needed = sorted({p["dataset"] for p in plans.values()})
    missing = [d for d in needed if not (data / d).exists()]
    if missing:
        echo(f"writing synthetic {', '.join(missing)} to {data} (release nuisances included)")
        synth(data, missing, n_subjects=n_subjects, seed=0)
    echo("smoke test: `fast` presets on tiny synthetic data, each method next to logreg on "
         "the same inputs and folds (not a result: see benchmarks/learning.py)")
    run_dirs = []
    baseline_protocols = METHODS.get("logreg").protocols
    for name, demo in plans.items():
        preset, data_options = baseline_inputs(name, demo["dataset"])
        runs: list[tuple[str, dict]] = [(name, {})]
        if baseline_protocols is None or demo["protocol"] in baseline_protocols:
            runs.append(("logreg", {"preset": preset, "data": data_options}))
        for method, extra in runs:
            options = {k: dict(v) for k, v in demo.get("options", {}).items()}
            if extra:           # the baseline: same protocol and folds, its own method options
                options.pop("method", None)
                options["data"] = {**options.get("data", {}), **extra["data"]}
            cfg = load_config({"method": method, "dataset": demo["dataset"],
                               "root": str(data / demo["dataset"]),
                               "protocol": demo["protocol"], "preset": extra.get("preset"),
                               "labels": {"scheme": demo["labels"]}, "method_preset": "fast",
                               "cache_dir": str(data.parent / "windowsets"),
                               "options": options})
            start = time.perf_counter()
            run_name = name if method == name else f"{name}-logreg"
            summary, run_dir = run_experiment(cfg, out=out / run_name, progress=True)
            acc = summary["metrics"]["balanced_accuracy"]
            echo(f"{run_name:16s} {demo['dataset']:8s} {demo['protocol']:18s} balanced "
                 f"accuracy {acc['mean']:.3f} ± {acc['std']:.3f}  "
                 f"({time.perf_counter() - start:.0f} s)")
            run_dirs.append(run_dir)
        if len(runs) == 1:
            echo(f"{name}: no same-input baseline under {demo['protocol']} (trained on one "
                 f"modality, tested on another); chance {1 / len(summary['classes']):.3f}")
    write_report(run_dirs, out / "report")
    return out / "report" / "comparison.md"
