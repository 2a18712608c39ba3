"""Comparison tables (Markdown + CSV) and plots (PNG) from one or more run directories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


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


def markdown_table(table: pd.DataFrame) -> str:
    table = table.fillna("")
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "---|" * len(table.columns)
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.to_numpy()]
    return "\n".join([header, rule, *body]) + "\n"


def write_report(run_dirs: list[str | Path], out: str | Path) -> dict[str, list[Path]]:
    """Write ``comparison.md``, ``comparison.csv`` and per-run plots under ``out``."""
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    table = comparison_table(run_dirs)
    (out / "comparison.md").write_text(markdown_table(table))
    table.to_csv(out / "comparison.csv", index=False)
    plots = []
    for run_dir in run_dirs:
        plots += plot_run(run_dir, out / "plots")
    return {"tables": [out / "comparison.md", out / "comparison.csv"], "plots": plots}


def plot_run(run_dir: str | Path, out: Path) -> list[Path]:
    """Confusion matrix, per-subject accuracy bars and (if present) an uncertainty histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = load_summary(run_dir)
    predictions = load_predictions(run_dir)
    name = Path(run_dir).name
    classes = summary.get("classes") or sorted(predictions["y_true"].unique())
    paths = []

    n = len(classes)
    matrix = np.zeros((n, n), int)
    np.add.at(matrix, (predictions["y_true"].to_numpy(), predictions["y_pred"].to_numpy()), 1)
    fig, ax = plt.subplots(figsize=(1.2 * n + 2, 1.2 * n + 1.5))
    ax.imshow(matrix, cmap="Blues")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center")
    ax.set(xticks=range(n), yticks=range(n), xticklabels=classes, yticklabels=classes,
           xlabel="predicted", ylabel="true", title=f"{name}\nconfusion (all test folds)")
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    paths.append(_save(fig, out / f"{name}_confusion.png"))

    subjects = summary.get("per_subject", {})
    if subjects:
        paths.append(_subject_plot(plt, summary, name, n, out))

    if "uncertainty" in predictions:
        correct = predictions["y_true"] == predictions["y_pred"]
        fig, ax = plt.subplots(figsize=(5, 3))
        bins = np.linspace(predictions["uncertainty"].min(), predictions["uncertainty"].max(), 25)
        ax.hist(predictions.loc[correct, "uncertainty"], bins=bins, alpha=0.6, label="correct")
        ax.hist(predictions.loc[~correct, "uncertainty"], bins=bins, alpha=0.6, label="wrong")
        ax.set(xlabel="uncertainty", ylabel="windows", title=f"{name}: uncertainty")
        ax.legend()
        paths.append(_save(fig, out / f"{name}_uncertainty.png"))
    return paths


def _subject_plot(plt, summary: dict, name: str, n_classes: int, out: Path) -> Path:
    """Accuracy per subject; subjects the runner dropped entirely are shown as absent."""
    subjects = summary["per_subject"]
    dropped = [str(s) for s in (summary.get("dropped") or {}).get("subjects", [])]
    keys = sorted({*subjects, *dropped}, key=lambda s: (0, int(s)) if s.isdigit() else (1, s))
    fig, ax = plt.subplots(figsize=(max(4, 0.4 * len(keys) + 2), 3))
    ax.bar(keys, [subjects[k]["accuracy"] if k in subjects else 0.0 for k in keys],
           color="tab:blue")
    for k in dropped:
        ax.text(keys.index(k), 0.02, "dropped", rotation=90, ha="center", va="bottom",
                color="tab:red", fontsize=8)
    ax.axhline(1 / n_classes, color="grey", linestyle="--", label="chance")
    title = f"{name}: per subject"
    if dropped:
        title += f" ({len(dropped)} dropped: no usable windows)"
    ax.set(xlabel="subject", ylabel="accuracy", ylim=(0, 1), title=title)
    ax.legend()
    return _save(fig, out / f"{name}_subjects.png")


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
