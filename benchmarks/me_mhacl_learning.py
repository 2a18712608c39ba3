"""ME-MHACL learning curve on synthetic DEAP: does the raw-window CNN find the planted effect?

For each data scale (subjects x seconds per trial) this writes a synthetic DEAP copy with
``affectlab synth``, then runs, under ``subject_kfold`` and binary valence:

* ``me_mhacl`` with its ``fast`` preset, validation by whole training subjects
  (``protocol.val_by=subject``) where there are enough subjects, else by trials;
* ``logreg`` on the default preset's EEG differential entropy (the EEG the CNN sees, as hand-made
  band features), the same folds.

The planted valence effect is a change of gamma power and of frontal alpha asymmetry of about
15 % per unit of latent valence, smaller than the per-subject and per-trial spectral jitter
(``affectlab.datasets.synthetic``). Writes ``benchmarks/results/me_mhacl_learning.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from affectlab.datasets import synth
from affectlab.run import load_config, run_experiment


def run(method: str, root: Path, cache: Path, out: Path, protocol: dict,
        max_folds: int | None, modalities: list[str] | None = None) -> dict:
    """One run through the runner; balanced accuracy per fold and the wall time."""
    cfg = load_config({"method": method, "dataset": "deap", "root": str(root),
                       "modalities": modalities,
                       "protocol": "subject_kfold", "labels": {"scheme": "binary_valence"},
                       "method_preset": "fast", "cache_dir": str(cache),
                       "max_folds": max_folds, "options": {"protocol": protocol}})
    start = time.perf_counter()
    summary, _ = run_experiment(cfg, out=out, overwrite=True)
    accuracy = summary["metrics"]["balanced_accuracy"]
    return {"balanced_accuracy_mean": round(accuracy["mean"], 4),
            "balanced_accuracy_std": round(accuracy["std"], 4),
            "per_fold": [round(v, 4) for v in accuracy["per_fold"]],
            "n_windows": summary["n_windows"], "protocol_options": protocol,
            "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", default="3x8,10x20",
                        help="comma-separated SUBJECTSxSECONDS data scales")
    parser.add_argument("--max-folds", type=int, default=None)
    parser.add_argument("--data", type=Path, default=Path(".affectlab_cache/bench-data"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" /
                        "me_mhacl_learning.json")
    args = parser.parse_args()
    results = []
    for scale in args.scales.split(","):
        n_subjects, seconds = (int(v) for v in scale.split("x"))
        folder = args.data / f"deap-{scale}"
        if not (folder / "manifest.json").exists():
            synth(folder, ["deap"], n_subjects=n_subjects, seed=0, seconds=seconds)
        root, cache = folder / "deap", args.data / "windowsets"
        val_by = {"val_by": "subject"} if n_subjects >= 5 else {}
        entry = {"subjects": n_subjects, "seconds_per_trial": seconds,
                 "me_mhacl": run("me_mhacl", root, cache, args.data / "runs" / "me_mhacl",
                                 val_by, args.max_folds),
                 "logreg_eeg_de": run("logreg", root, cache, args.data / "runs" / "logreg",
                                      val_by, args.max_folds, ["eeg"])}
        print(json.dumps(entry))
        results.append(entry)
    report = {"benchmark": "me_mhacl_learning", "dataset": "synthetic deap",
              "protocol": "subject_kfold", "labels": "binary_valence", "chance": 0.5,
              "torch": torch.__version__, "threads": torch.get_num_threads(),
              "machine": platform.processor() or platform.machine(), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
