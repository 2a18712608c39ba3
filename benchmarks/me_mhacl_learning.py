"""ME-MHACL learning on synthetic DEAP: does the raw-window CNN find the planted effects?

For each data scale (subjects x seconds per trial) this writes a synthetic DEAP copy with
``affectlab synth``, then runs under ``subject_kfold`` (at most 4 folds), for binary arousal and
binary valence and for every seed:

* ``me_mhacl``: the ``fast`` preset (group meiosis pre-training, then fine-tuning);
* ``me_mhacl_supervised``: the same with ``pretrain=false`` (the paper's fully-supervised
  variant), on the same folds;
* ``logreg_eeg_de``: logistic regression on the default preset's EEG differential entropy, a
  hand-made band-power reference.

The planted arousal effect changes the power of every EEG band and the skin conductance,
respiration and temperature; the valence effect is a change of gamma power and frontal alpha
asymmetry of about 15 % per unit of latent valence, smaller than the per-subject and per-trial
spectral jitter (``affectlab.datasets.synthetic``). Writes
``benchmarks/results/me_mhacl_learning.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from affectlab.datasets import synth
from affectlab.run import load_config, run_experiment

# name -> (registered method, method options, modalities)
VARIANTS = {
    "me_mhacl": ("me_mhacl", {}, None),
    "me_mhacl_supervised": ("me_mhacl", {"pretrain": False}, None),
    "logreg_eeg_de": ("logreg", {}, ["eeg"]),
    # modality ablations (--variants): EEG alone, the peripheral channels alone
    "me_mhacl_eeg": ("me_mhacl", {"modalities": ["eeg"]}, None),
    "me_mhacl_peripheral": ("me_mhacl", {"modalities": ["gsr", "resp", "temp"]}, None),
}
DEFAULT_VARIANTS = "me_mhacl,me_mhacl_supervised,logreg_eeg_de"


def run(variant: str, root: Path, cache: Path, out: Path, labels: str, n_splits: int,
        seed: int) -> dict:
    """One run through the runner: balanced accuracy per fold, pre-training loss, wall time."""
    method, options, modalities = VARIANTS[variant]
    cfg = load_config({"method": method, "dataset": "deap", "root": str(root),
                       "modalities": modalities, "protocol": "subject_kfold",
                       "labels": {"scheme": labels}, "method_preset": "fast", "seed": seed,
                       "cache_dir": str(cache),
                       "options": {"method": options, "protocol": {"n_splits": n_splits}}})
    start = time.perf_counter()
    summary, _ = run_experiment(cfg, out=out, overwrite=True)
    result = {"seed": seed,
              "per_fold": [round(v, 4) for v in summary["metrics"]["balanced_accuracy"]
                           ["per_fold"]],
              "seconds": round(time.perf_counter() - start, 1)}
    if "pretrain_loss" in summary.get("extras", {}):
        result["pretrain_loss"] = round(summary["extras"]["pretrain_loss"]["mean"], 4)
    return result


def aggregate(runs: list[dict]) -> dict:
    """Mean / std over every fold of every seed, and the per-seed means."""
    folds = np.concatenate([r["per_fold"] for r in runs])
    return {"balanced_accuracy_mean": round(float(folds.mean()), 4),
            "balanced_accuracy_std": round(float(folds.std()), 4),
            "folds_above_chance": f"{int((folds > 0.5).sum())}/{folds.size}",
            "seed_means": [round(float(np.mean(r["per_fold"])), 4) for r in runs],
            "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", default="3x8,8x8",
                        help="comma-separated SUBJECTSxSECONDS data scales")
    parser.add_argument("--labels", default="binary_arousal,binary_valence")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS,
                        help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--data", type=Path, default=Path(".affectlab_cache/bench-data"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" /
                        "me_mhacl_learning.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    results = []
    for scale in args.scales.split(","):
        n_subjects, seconds = (int(v) for v in scale.split("x"))
        folder = args.data / f"deap-{scale}"
        if not (folder / "manifest.json").exists():
            synth(folder, ["deap"], n_subjects=n_subjects, seed=0, seconds=seconds)
        root, cache = folder / "deap", args.data / "windowsets"
        n_splits = min(n_subjects, 4)
        for labels in args.labels.split(","):
            entry = {"subjects": n_subjects, "seconds_per_trial": seconds, "labels": labels,
                     "folds": n_splits}
            for variant in args.variants.split(","):
                runs = [run(variant, root, cache, args.data / "runs" / variant, labels,
                            n_splits, seed) for seed in seeds]
                entry[variant] = aggregate(runs)
            print(json.dumps(entry), flush=True)
            results.append(entry)
    report = {"benchmark": "me_mhacl_learning", "dataset": "synthetic deap",
              "protocol": "subject_kfold", "method_preset": "fast", "chance": 0.5,
              "seeds": seeds, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "machine": platform.processor() or platform.machine(), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
