"""Do the paper methods learn? Each one against ``logreg`` and ``mlp`` on the same inputs and folds.

For every case below (a paper method under a protocol its paper was designed for) this runs the
method with its ``default`` hyper-parameter preset and the two baselines, for every seed, on a
synthetic copy written by ``affectlab synth`` (release nuisances on, ``--subjects`` subjects,
``--difficulty``, trials of ``--seconds``: by default each dataset's shortened length, which leaves
a self-supervised stage a fraction of the windows the releases' 60 s trials give). Method and
baselines get the same folds: the same protocol with the same seed over the same window grid. The
baselines read what ``affectlab.methods.baseline_inputs`` says: the method's own data preset when
it is made of features (UF-AMA, M2S, DHCM-CACL); for methods on raw windows or series (ME-MHACL,
CLMER) the EEG differential entropy and peripheral statistics (``default`` preset; plus the AU
means for CLMER, whose inputs include the face) of the same recordings, on the same window grid.

Writes ``benchmarks/results/learning.json`` (every fold of every seed) and ``learning.md`` (mean
± std over seeds of the per-seed mean balanced accuracy, and the per-seed values). A cross-modal
case has no same-input baseline (the classifier is trained on one modality and tested on
another); its chance level is given instead.

For a method with a self-supervised stage the same folds also get a linear probe
(:func:`affectlab.probe.linear_probe`): a logistic regression on the frozen features after
pre-training alone against the same architecture at its random initialisation (seeds
``--probe-seeds``; not for cross-modal cases).

    python benchmarks/learning.py                          # every case, 3 seeds, 8 subjects
    python benchmarks/learning.py --methods uf_ama --seeds 0 --max-folds 2    # a quick look
    python benchmarks/learning.py --methods dhcm_cacl --seconds 30 --out X.json  # longer trials
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from affectlab.datasets import synth
from affectlab.methods import METHODS
from affectlab.probe import linear_probe
from affectlab.run import load_config, plan_run, run_experiment


@dataclass(frozen=True)
class Case:
    """One method under one protocol, and what its baselines read."""

    method: str
    dataset: str
    protocol: str
    labels: str
    protocol_options: dict = field(default_factory=dict)
    baselines: bool = True

    @property
    def name(self) -> str:
        extra = "".join(f"-{v[0]}" for k, v in self.protocol_options.items()
                        if k == "directions").replace("->", "2")
        return f"{self.method}-{self.dataset}-{self.protocol}{extra}-{self.labels}"


CASES = [
    Case("uf_ama", "seed_iv", "loso", "native"),
    Case("uf_ama", "seed_iv", "cross_session", "native"),
    Case("m2s", "seed_iv", "subject_dependent", "native"),
    Case("m2s", "seed_iv", "cross_modal", "native",
         {"modalities": ["eeg", "eye"], "directions": ["eeg->eye"]}, baselines=False),
    Case("me_mhacl", "deap", "subject_kfold", "binary_arousal"),
    Case("clmer", "deap", "subject_dependent", "binary_valence"),
    Case("clmer", "deap", "loso", "binary_valence"),
    Case("dhcm_cacl", "deap", "subject_dependent", "binary_valence"),
    Case("dhcm_cacl", "deap", "loso", "binary_valence"),
]
BASELINES = ("logreg", "mlp")


def case_config(case: Case, method: str, root: Path, args, seed: int):
    """The run config of ``method`` in ``case`` (a baseline reads the case's baseline inputs)."""
    from affectlab.methods import baseline_inputs

    own = method == case.method
    preset, data_options = (None, {}) if own else baseline_inputs(case.method, case.dataset)
    return load_config({"method": method, "dataset": case.dataset, "root": str(root),
                       "protocol": case.protocol, "labels": {"scheme": case.labels},
                       "preset": preset, "seed": seed, "max_folds": args.max_folds,
                       "cache_dir": str(args.data / "windowsets"),
                       "options": {"protocol": dict(case.protocol_options),
                                   "data": data_options}})


def run_one(case: Case, method: str, root: Path, args, seed: int) -> dict:
    """One run through the runner; returns the per-fold balanced accuracy and wall time."""
    cfg = case_config(case, method, root, args, seed)
    start = time.perf_counter()
    summary, _ = run_experiment(cfg, out=args.data / "runs" / case.name / f"{method}-{seed}",
                                overwrite=True)
    folds = summary["metrics"]["balanced_accuracy"]["per_fold"]
    return {"seed": seed, "per_fold": [round(v, 4) for v in folds],
            "mean": round(float(np.mean(folds)), 4), "n_windows": summary["n_windows"],
            "dropped_subjects": summary["dropped"]["subjects"],
            "chance": round(1 / len(summary["classes"]), 4),
            "seconds": round(time.perf_counter() - start, 1)}


def probe_one(case: Case, root: Path, args, seed: int) -> dict:
    """Linear probe of the case's method: pre-trained vs random-init frozen features."""
    start = time.perf_counter()
    result = linear_probe(plan_run(case_config(case, case.method, root, args, seed)),
                          max_folds=args.max_folds)
    return {"seed": seed, **result, "seconds": round(time.perf_counter() - start, 1)}


def aggregate(runs: list[dict]) -> dict:
    means = [r["mean"] for r in runs]
    return {"mean": round(float(np.mean(means)), 4), "std": round(float(np.std(means)), 4),
            "seed_means": means, "runs": runs}


def markdown(report: dict) -> str:
    length = report.get("seconds")
    trials = "each dataset's shortened trials" if length is None else f"{length:g} s trials"
    lines = [f"Synthetic data (`affectlab synth`, {report['subjects']} subjects, {trials}, "
             f"difficulty `{report['difficulty']}`, release nuisances on); balanced accuracy, "
             f"mean ± std over seeds {report['seeds']} of the mean over folds; `default` "
             "presets.", "",
             "| case | method | logreg | mlp | chance | per-seed (method) |",
             "|---|---|---|---|---|---|"]
    for entry in report["results"]:
        cells = []
        for name in (entry["method"], *BASELINES):
            agg = entry.get(name)
            cells.append(f"{agg['mean']:.3f} ± {agg['std']:.3f}" if agg else "—")
        chance = entry[entry["method"]]["runs"][0]["chance"]
        seeds = ", ".join(f"{v:.3f}" for v in entry[entry["method"]]["seed_means"])
        lines.append(f"| {entry['case']} | " + " | ".join(cells) + f" | {chance:.2f} | {seeds} |")
    probes = [e for e in report["results"] if e.get("probe")]
    if probes:
        lines += ["", "Linear probe of the self-supervised stage (logistic regression on frozen "
                  "features, same folds; seeds " + ", ".join(map(str, report["probe_seeds"]))
                  + "):", "", "| case | pre-trained | random init | gain |", "|---|---|---|---|"]
        for entry in probes:
            arms = {arm: np.mean([p[arm]["mean"] for p in entry["probe"]])
                    for arm in ("pretrained", "random_init")}
            lines.append(f"| {entry['case']} | {arms['pretrained']:.3f} | "
                         f"{arms['random_init']:.3f} | "
                         f"{arms['pretrained'] - arms['random_init']:+.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="all", help="comma-separated paper methods")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--difficulty", default="default", help="easy | default | hard")
    parser.add_argument("--seconds", type=float, default=None,
                        help="stimulus seconds per trial (default: each dataset's shortened "
                             "length; the releases' trials are about 60 s)")
    parser.add_argument("--probe-seeds", default="0",
                        help="seeds of the linear probe ('' for none)")
    parser.add_argument("--max-folds", type=int, default=None,
                        help="only the first N folds of each protocol (quicker, noisier)")
    parser.add_argument("--data", type=Path, default=Path(".affectlab_cache/bench-learning"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" /
                        "learning.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    probe_seeds = [int(s) for s in args.probe_seeds.split(",") if s.strip()]
    cases = [c for c in CASES if args.methods == "all" or c.method in args.methods.split(",")]
    length = "" if args.seconds is None else f"-{args.seconds:g}s"
    folder = args.data / f"data-{args.subjects}-{args.difficulty}{length}"
    needed = sorted({c.dataset for c in cases} - {p.name for p in folder.glob("*")})
    if needed:
        synth(folder, needed, n_subjects=args.subjects, seed=0, difficulty=args.difficulty,
              seconds=args.seconds)
    results = []
    for case in cases:
        entry = {"case": case.name, "method": case.method, "dataset": case.dataset,
                 "protocol": case.protocol, "labels": case.labels,
                 "protocol_options": case.protocol_options}
        for method in (case.method, *(BASELINES if case.baselines else ())):
            entry[method] = aggregate([run_one(case, method, folder / case.dataset, args, s)
                                       for s in seeds])
            print(f"{case.name:55s} {method:10s} {entry[method]['mean']:.3f} ± "
                  f"{entry[method]['std']:.3f}", flush=True)
        if METHODS.get(case.method).self_supervised and case.baselines and probe_seeds:
            entry["probe"] = [probe_one(case, folder / case.dataset, args, s)
                              for s in probe_seeds]
            print(f"{case.name:55s} probe      " + ", ".join(
                f"{p['pretrained']['mean']:.3f} vs {p['random_init']['mean']:.3f}"
                for p in entry["probe"]), flush=True)
        results.append(entry)
        write(report_of(args, seeds, probe_seeds, results, complete=False), args.out)
    report = report_of(args, seeds, probe_seeds, results, complete=True)
    write(report, args.out)
    print(markdown(report))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


def report_of(args, seeds: list[int], probe_seeds: list[int], results: list[dict],
              complete: bool) -> dict:
    """The JSON report; ``complete`` is False while cases are still to come."""
    return {"benchmark": "learning", "complete": complete, "subjects": args.subjects,
            "difficulty": args.difficulty, "seconds": args.seconds, "seeds": seeds,
            "probe_seeds": probe_seeds,
            "max_folds": args.max_folds, "method_preset": "default",
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(), "results": results}


def write(report: dict, out: Path) -> None:
    """Write the JSON and the Markdown table (after every case: a stopped run keeps its
    finished cases)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))

if __name__ == "__main__":
    main()
