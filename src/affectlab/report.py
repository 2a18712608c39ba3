"""Comparison tables (Markdown + CSV) and plots (PNG) from one or more run directories; the
HTML pages are in :mod:`affectlab.html_report`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from affectlab.errors import AffectlabError

TABLE_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "kappa", "ece", "error_auroc")


def load_summary(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise AffectlabError(f"{run_dir}: no summary.json (is this a finished run directory?)")
    return json.loads(path.read_text())


def load_predictions(run_dir: str | Path) -> pd.DataFrame:
    files = sorted((Path(run_dir) / "folds").glob("*/predictions.csv"))
    if not files:
        raise AffectlabError(f"{run_dir}: no folds/*/predictions.csv")
    return pd.concat([_with_fold(pd.read_csv(f), f.parent) for f in files], ignore_index=True)


def _with_fold(table: pd.DataFrame, fold_dir: Path) -> pd.DataFrame:
    """A fold's predictions with their ``fold`` (name) and ``fold_index`` columns, taken from
    its metrics.json where the file lacks them (older runs)."""
    if "fold" in table and "fold_index" in table:
        return table
    metrics_path = fold_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    return table.assign(fold=metrics.get("fold", fold_dir.name),
                        fold_index=metrics.get("index", int(fold_dir.name)))


def comparison_table(run_dirs: list[str | Path]) -> pd.DataFrame:
    """One row per run: identification, flags, fold count and mean ± std of each metric."""
    rows = []
    for run_dir in run_dirs:
        s = load_summary(run_dir)
        row = {"run": Path(run_dir).name, "method": s["method"], "dataset": s["dataset"],
               "protocol": s["protocol"] + (" (LEAKY)" if s["leaky"] else ""),
               "labels": s["label_scheme"], "folds": s["n_folds"]}
        for name in TABLE_METRICS:
            if name in s["metrics"]:
                m = s["metrics"][name]
                row[name] = f"{m['mean']:.3f} ± {m['std']:.3f}"
        if "oracle_best_epoch" in s:
            o = s["oracle_best_epoch"]["accuracy"]
            row["oracle_best_epoch (test-selected)"] = f"{o['mean']:.3f} ± {o['std']:.3f}"
        rows.append(row)
    return pd.DataFrame(rows)


def results_table(run_dirs: list[str | Path]) -> pd.DataFrame:
    """The machine-readable comparison: one row per run and metric, with numeric ``mean``,
    ``std`` (over folds), ``ci_low`` / ``ci_high`` (95 % bootstrap interval of the mean over
    ``ci_unit``; empty for older runs), ``chance_majority`` / ``chance_uniform``,
    ``n_folds`` and ``n_subjects``."""
    rows = []
    for run_dir in run_dirs:
        s = load_summary(run_dir)
        head = {"run": Path(run_dir).name, "method": s["method"], "dataset": s["dataset"],
                "protocol": s["protocol"], "leaky": bool(s["leaky"]),
                "labels": s["label_scheme"], "n_folds": int(s["n_folds"]),
                "n_subjects": len(s.get("per_subject") or {})}
        rows += [{**head, **_metric_row(s, name)} for name in TABLE_METRICS
                 if name in s["metrics"]]
    return pd.DataFrame(rows, columns=[*RESULT_HEAD, *RESULT_VALUES]).astype(
        {c: float for c in RESULT_VALUES if c not in ("metric", "ci_unit")})


RESULT_HEAD = ("run", "method", "dataset", "protocol", "leaky", "labels", "n_folds",
               "n_subjects")
RESULT_VALUES = ("metric", "mean", "std", "ci_low", "ci_high", "ci_unit", "chance_majority",
                 "chance_uniform")


def _metric_row(summary: dict, name: str) -> dict[str, object]:
    """One metric's numbers; ``None`` (an empty cell) for what the summary lacks."""
    m = summary["metrics"][name]
    ci = summary.get("ci", {}).get(name, {})
    chance = summary.get("chance", {}).get(name, {})
    return {"metric": name, "mean": m["mean"], "std": m["std"], "ci_low": ci.get("ci_low"),
            "ci_high": ci.get("ci_high"), "ci_unit": ci.get("unit"),
            "chance_majority": chance.get("majority"), "chance_uniform": chance.get("uniform")}


def markdown_table(table: pd.DataFrame) -> str:
    table = table.fillna("")
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "---|" * len(table.columns)
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.to_numpy()]
    return "\n".join([header, rule, *body]) + "\n"


def write_report(run_dirs: list[str | Path], out: str | Path) -> dict[str, list[Path]]:
    """Write ``comparison.md`` (readable: mean ± std), ``comparison.csv`` (numeric: one row
    per run and metric, :func:`results_table`) and per-run plots under ``out``."""
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    table = comparison_table(run_dirs)
    (out / "comparison.md").write_text(markdown_table(table))
    results_table(run_dirs).to_csv(out / "comparison.csv", index=False)
    plots = []
    for run_dir in run_dirs:
        plots += plot_run(run_dir, out / "plots")
    return {"tables": [out / "comparison.md", out / "comparison.csv"], "plots": plots}


def plot_run(run_dir: str | Path, out: Path) -> list[Path]:
    """The run's figures as PNG files (those of its report.html): row-normalised confusion
    (per direction for cross-modal runs), balanced accuracy per subject against each subject's
    chance with dropped subjects marked, training curves, and for methods that output
    uncertainty a reliability diagram and the uncertainty per trial."""
    from affectlab import figures
    from affectlab.html_report import (
        confusion_panels,
        fold_records,
        histories,
        subject_figure,
        subject_rows,
    )

    summary = load_summary(run_dir)
    predictions = load_predictions(run_dir)
    records = fold_records(Path(run_dir))
    name = Path(run_dir).name
    classes = [str(c) for c in summary.get("classes") or sorted(predictions["y_true"].unique())]
    paths = [figures.save(figures.confusion(confusion_panels(records, predictions), classes,
                                            f"{name}: confusion"),
                          out / f"{name}_confusion.png")]
    rows = subject_rows(summary, predictions)
    if rows:
        paths.append(figures.save(subject_figure(summary, rows, name),
                                  out / f"{name}_subjects.png"))
    logged = histories(records)
    curves = figures.history_curves(logged, f"{name}: training / validation") if logged \
        else None
    if curves is not None:
        paths.append(figures.save(curves, out / f"{name}_curves.png"))
    if "uncertainty" in predictions and predictions["uncertainty"].notna().any():
        rows = predictions[predictions["uncertainty"].notna()]
        if figures.prob_columns(rows):
            paths.append(figures.save(figures.reliability(rows, f"{name}: reliability"),
                                      out / f"{name}_reliability.png"))
        paths.append(figures.save(figures.trial_uncertainty(
            figures.trial_table(rows), f"{name}: uncertainty per trial"),
            out / f"{name}_uncertainty.png"))
    return paths


# --------------------------------------------------------------------------- paired comparison

COMPARE_COLUMNS = ("run_a", "run_b", "n", "unit", "mean_a", "mean_b", "mean_difference",
                   "cohens_dz", "rank_biserial", "p_wilcoxon", "p_wilcoxon_holm",
                   "p_permutation", "p_permutation_holm")


def check_comparable(summaries: dict[str, dict]) -> None:
    """Refuse (one line) runs whose dataset, protocol, label scheme or fold names differ."""
    names = list(summaries)
    first = summaries[names[0]]
    for name in names[1:]:
        other = summaries[name]
        for key in ("dataset", "protocol", "label_scheme", "fold_names"):
            if first.get(key) != other.get(key):
                what = "fold names" if key == "fold_names" else f"{key}s"
                raise AffectlabError(
                    f"cannot compare {names[0]} and {name}: their {what} differ "
                    f"({_brief(first.get(key))} vs {_brief(other.get(key))}); paired tests "
                    "need the same dataset, protocol, labels and folds")


def _brief(value: object) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def paired_values(summaries: dict[str, dict], metric: str) -> tuple[str, list[str],
                                                                    dict[str, list[float]]]:
    """The unit (subjects, else folds), its keys and each run's values in that order; the
    units must be the same in every run."""
    from affectlab.stats import unit_values

    units = {name: unit_values(s, metric) for name, s in summaries.items()}
    names = list(units)
    unit, keys = units[names[0]][0], sorted(units[names[0]][1], key=_natural)
    for name in names[1:]:
        if units[name][0] != unit or set(units[name][1]) != set(keys):
            raise AffectlabError(f"cannot compare {names[0]} and {name}: their {metric} values "
                                 f"are not on the same {unit} ({', '.join(keys)} vs "
                                 f"{', '.join(sorted(units[name][1], key=_natural))})")
    if len(keys) < 2:
        raise AffectlabError(f"cannot compare: {len(keys)} {unit} with a {metric} value; "
                             "paired tests need at least 2")
    return unit, keys, {name: [values[k] for k in keys] for name, (_, values) in units.items()}


def _natural(key: str) -> tuple[int, int | str]:
    return (0, int(key)) if key.isdigit() else (1, key)


def compare_runs(run_dirs: list[str | Path], metric: str = "balanced_accuracy") -> dict:
    """Paired tests of every pair of runs on the same dataset, protocol and folds: per-subject
    ``metric`` values, Wilcoxon signed-rank and paired permutation p (Holm-corrected across the
    pairs, each test separately), mean difference (a - b), Cohen's dz and rank-biserial."""
    from itertools import combinations

    from affectlab.stats import holm, paired_test

    if len(run_dirs) < 2:
        raise AffectlabError("compare needs at least two run directories")
    summaries = {Path(d).name: load_summary(d) for d in run_dirs}
    if len(summaries) < len(run_dirs):
        raise AffectlabError("compare: two run directories share a name; give distinct ones")
    check_comparable(summaries)
    unit, keys, values = paired_values(summaries, metric)
    pairs = [{"run_a": a, "run_b": b, "unit": unit, **paired_test(values[a], values[b])}
             for a, b in combinations(values, 2)]
    for test in ("p_wilcoxon", "p_permutation"):
        for pair, adjusted in zip(pairs, holm([p[test] for p in pairs]), strict=True):
            pair[f"{test}_holm"] = adjusted
    first = next(iter(summaries.values()))
    return {"metric": metric, "unit": unit, "units": keys, "values": values,
            "dataset": first["dataset"], "protocol": first["protocol"],
            "label_scheme": first["label_scheme"], "fold_names": first.get("fold_names"),
            "runs": {name: str(d) for name, d in zip(summaries, run_dirs, strict=True)},
            "correction": "holm", "pairs": pairs}


def compare_table(result: dict) -> pd.DataFrame:
    """The pairs of :func:`compare_runs` as a table (numeric columns)."""
    return pd.DataFrame(result["pairs"], columns=list(COMPARE_COLUMNS))


def write_comparison(run_dirs: list[str | Path], out: str | Path,
                     metric: str = "balanced_accuracy") -> dict:
    """:func:`compare_runs`, written to ``out/compare.json`` and ``out/compare.csv``."""
    result = compare_runs(run_dirs, metric)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(result, indent=1))
    compare_table(result).to_csv(out / "compare.csv", index=False)
    return result


def compare_markdown(result: dict) -> str:
    """A readable table of the pairs (p-values Holm-corrected in brackets)."""
    rows = [{"a": p["run_a"], "b": p["run_b"], "n": p["n"],
             "mean a": f"{p['mean_a']:.3f}", "mean b": f"{p['mean_b']:.3f}",
             "a - b": f"{p['mean_difference']:+.3f}",
             "dz": "n/a" if p["cohens_dz"] is None else f"{p['cohens_dz']:.2f}",
             "rank-biserial": f"{p['rank_biserial']:+.2f}",
             "p Wilcoxon (Holm)": f"{p['p_wilcoxon']:.3g} ({p['p_wilcoxon_holm']:.3g})",
             "p permutation (Holm)": f"{p['p_permutation']:.3g} "
                                     f"({p['p_permutation_holm']:.3g})"}
            for p in result["pairs"]]
    head = (f"{result['metric']} per {result['unit'].removesuffix('s')} "
            f"({len(result['units'])} {result['unit']}), {result['dataset']} "
            f"{result['protocol']} ({result['label_scheme']})\n\n")
    return head + markdown_table(pd.DataFrame(rows))
