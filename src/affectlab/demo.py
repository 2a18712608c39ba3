"""The demo: synthetic data -> every registered method (fast preset) -> comparison report."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from affectlab.datasets import synth
from affectlab.methods import METHODS
from affectlab.report import write_report
from affectlab.run import load_config, run_experiment


def run_demo(out: Path, data: Path, methods: Sequence[str] | None = None, n_subjects: int = 3,
             echo: Callable[[str], None] = print) -> Path:
    """Run the demo; return the path of the comparison table (Markdown)."""
    names = list(methods) if methods else [name for name, _ in METHODS.items()]
    plans = {name: METHODS.get(name).demo for name in names}
    needed = sorted({p["dataset"] for p in plans.values()})
    missing = [d for d in needed if not (data / d).exists()]
    if missing:
        echo(f"writing synthetic {', '.join(missing)} to {data}")
        synth(data, missing, n_subjects=n_subjects, seed=0)
    run_dirs = []
    for name, demo in plans.items():
        start = time.perf_counter()
        cfg = load_config({"method": name, "dataset": demo["dataset"],
                           "root": str(data / demo["dataset"]), "protocol": demo["protocol"],
                           "labels": {"scheme": demo["labels"]}, "method_preset": "fast",
                           "cache_dir": str(data.parent / "windowsets"),
                           "options": demo.get("options", {})})
        summary, run_dir = run_experiment(cfg, out=out / name, progress=True)
        acc = summary["metrics"]["balanced_accuracy"]
        echo(f"{name:12s} {demo['dataset']:8s} {demo['protocol']:18s} balanced accuracy "
             f"{acc['mean']:.3f} ± {acc['std']:.3f}  ({time.perf_counter() - start:.0f} s)")
        run_dirs.append(run_dir)
    write_report(run_dirs, out / "report")
    return out / "report" / "comparison.md"
