"""The figures of the run and comparison reports (matplotlib, Agg backend). Each function
takes a run's tables and returns a matplotlib ``Figure``; :func:`png` encodes one for an HTML
page, :func:`save` writes it to a file."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TRIAL_COLUMNS = ("fold_index", "subject", "session", "trial")
MISSED = "#c0392b"
HIT = "#2e86c1"


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(fig: Any, dpi: int = 96) -> str:
    """The figure as base64 PNG text (for a ``data:image/png;base64,`` URL); closes it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def save(fig: Any, path: Path, dpi: int = 90) -> Path:
    """Write the figure as a PNG file; closes it."""
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    return path


def natural(key: object) -> tuple[int, int | str]:
    """Sort key: numeric names in numeric order, before the others."""
    text = str(key)
    return (0, int(text)) if text.isdigit() else (1, text)


# --------------------------------------------------------------------------- confusion

def confusion_counts(predictions: pd.DataFrame, n_classes: int) -> np.ndarray:
    """Counts: rows the true class, columns the predicted one."""
    matrix = np.zeros((n_classes, n_classes), int)
    np.add.at(matrix, (predictions["y_true"].to_numpy(int), predictions["y_pred"].to_numpy(int)),
              1)
    return matrix


def confusion(panels: dict[str, pd.DataFrame], classes: list[str], title: str) -> Any:
    """Row-normalised confusion matrices (a row: the share of a true class given each
    prediction; counts in brackets), one panel per entry of ``panels`` (e.g. per cross-modal
    direction), with one colour bar from 0 to 1."""
    plt = pyplot()
    n = len(classes)
    size = 0.75 * n + 2.2
    cols = min(2, len(panels))
    lines = -(-len(panels) // cols)
    fig, axes = plt.subplots(lines, cols, figsize=(size * cols + 1.6, (size + 1.0) * lines),
                             squeeze=False, layout="constrained")
    font = 9 if n <= 4 else 7 if n <= 6 else 5.5
    image = None
    for ax, (name, rows) in zip(axes.flat, panels.items(), strict=False):
        counts = confusion_counts(rows, n)
        totals = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, totals, out=np.full(counts.shape, np.nan), where=totals > 0)
        image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
        for i in range(n):
            for j in range(n):
                text = "–" if totals[i, 0] == 0 else f"{share[i, j]:.2f}\n({counts[i, j]})"
                dark = totals[i, 0] and share[i, j] > 0.55
                ax.text(j, i, text, ha="center", va="center", fontsize=font,
                        color="white" if dark else "black")
        head = name if len(panels) > 1 else f"{title}: {name}"
        ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="true",
               title=f"{head}\n({int(counts.sum())} windows)")
        ax.set_xticklabels(classes, rotation=40, ha="right", fontsize=8)
        ax.set_yticklabels(classes, fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    bar = fig.colorbar(image, ax=list(axes.flat), shrink=0.8 if lines > 1 else 1.0)
    bar.set_label("share of the true class (row-normalised)")
    if len(panels) > 1:
        fig.suptitle(title, fontsize=10)
    return fig


# --------------------------------------------------------------------------- per subject

def subject_scores(rows: list[dict[str, Any]], metric: str, mean: float | None,
                   ci: tuple[float | None, float | None], title: str) -> Any:
    """One bar per subject (``value``), each subject's chance level marked on its bar
    (``chance``), subjects the runner dropped (``dropped``) drawn as hatched empty slots; the
    mean over subjects with its confidence interval as a band."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(rows) + 1.5) + 2.6, 3.4))
    x = np.arange(len(rows))
    for k, row in enumerate(rows):
        if row.get("dropped"):
            ax.bar(k, 1.0, color="none", edgecolor="#999999", hatch="//", linewidth=0.8)
            ax.text(k, 0.5, "dropped", rotation=90, ha="center", va="center", color=MISSED,
                    fontsize=8, bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
            continue
        ax.bar(k, row["value"], color=HIT, width=0.7)
        if row.get("chance") is not None:
            ax.hlines(row["chance"], k - 0.42, k + 0.42, colors="black", linewidth=1.6,
                      linestyles=(0, (2, 1)))
    ax.plot([], [], color="black", linestyle=(0, (2, 1)), label="chance (this subject's "
            "test labels)")
    if mean is not None:
        ax.axhline(mean, color="#e67e22", linewidth=1.2, label=f"mean {mean:.3f}")
        if ci[0] is not None and ci[1] is not None:
            ax.axhspan(ci[0], ci[1], color="#e67e22", alpha=0.15, label="95 % CI of the mean")
    ax.set_xticks(x, [str(r["subject"]) for r in rows], fontsize=8,
                  rotation=90 if len(rows) > 20 else 0)
    ax.set(xlabel="test subject", ylabel=metric.replace("_", " "), ylim=(0, 1.0),
           xlim=(-0.6, len(rows) - 0.4), title=title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return fig


# --------------------------------------------------------------------------- curves

def history_curves(histories: dict[str, pd.DataFrame], title: str) -> Any | None:
    """One panel per logged value (losses, validation metrics), one line per fold over the
    epochs; ``None`` when nothing was logged."""
    columns = sorted({c for h in histories.values() for c in h.columns
                      if c not in ("epoch", "n_epochs") and h[c].notna().any()},
                     key=lambda c: (0 if "train" in c or c == "loss" else
                                    1 if c.startswith("val") else 2, c))
    if not columns:
        return None
    plt = pyplot()
    width = min(4, len(columns))
    height = -(-len(columns) // width)
    fig, axes = plt.subplots(height, width, figsize=(3.4 * width + 0.5, 2.6 * height + 0.5),
                             squeeze=False, layout="constrained")
    many = len(histories) > 8               # folds as thin grey lines under their mean
    for ax, column in zip(axes.flat, columns, strict=False):
        parts = [(name, t[["epoch", column]].dropna()) for name, t in histories.items()
                 if column in t]
        for name, part in parts:
            if many:
                ax.plot(part["epoch"], part[column], color="#999999", linewidth=0.5,
                        alpha=0.6)
            else:
                ax.plot(part["epoch"], part[column], linewidth=1, marker=".", markersize=3,
                        label=name)
        if many and parts:
            mean = pd.concat([p.groupby("epoch")[column].mean() for _, p in parts],
                             axis=1).mean(axis=1)
            ax.plot(mean.index, mean.to_numpy(), color=HIT, linewidth=2,
                    label=f"mean of {len(parts)} folds")
        ax.set(title=column, xlabel="epoch")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6, title=None if many else "fold", title_fontsize=6)
    fig.suptitle(title, fontsize=10)
    return fig


# --------------------------------------------------------------------------- uncertainty

def prob_columns(predictions: pd.DataFrame) -> list[str]:
    return sorted((c for c in predictions.columns if c.startswith("prob_")),
                  key=lambda c: int(c.removeprefix("prob_")))


def reliability(predictions: pd.DataFrame, title: str, n_bins: int = 10) -> Any:
    """Reliability diagram of the windows' top-class probability: accuracy per confidence bin
    against the diagonal (gap shaded), the windows per bin below."""
    probs = predictions[prob_columns(predictions)].to_numpy(float)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == predictions["y_true"].to_numpy(int)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    accuracy = np.array([correct[which == b].mean() if count[b] else np.nan
                         for b in range(n_bins)])
    mean_conf = np.array([confidence[which == b].mean() if count[b] else np.nan
                          for b in range(n_bins)])
    ece = float(np.nansum(count / max(len(confidence), 1) * np.abs(accuracy - mean_conf)))
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(4.6, 4.8), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    centers = (edges[:-1] + edges[1:]) / 2
    width = 1.0 / n_bins
    top.bar(centers, np.nan_to_num(accuracy), width=width * 0.95, color=HIT,
            label="accuracy in bin")
    low = np.nan_to_num(np.minimum(accuracy, mean_conf))
    top.bar(centers, np.nan_to_num(np.abs(mean_conf - accuracy)), bottom=low,
            width=width * 0.95, color="none", edgecolor=MISSED, hatch="///", linewidth=0.6,
            label="gap to the bin's mean confidence")
    top.plot([0, 1], [0, 1], color="black", linestyle="--", linewidth=1, label="calibrated")
    top.set(ylabel="accuracy", ylim=(0, 1), xlim=(0, 1),
            title=f"{title}\nECE {ece:.3f} ({n_bins} bins, {len(confidence)} windows)")
    top.legend(fontsize=7, loc="upper left")
    bottom.bar(centers, count, width=width * 0.95, color="#7f8c8d")
    bottom.set(xlabel="confidence (top-class probability)", ylabel="windows")
    fig.tight_layout()
    return fig


def trial_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per test trial (per fold): its windows' mean uncertainty (and range), the
    trial's prediction (argmax of the mean probabilities), true label and whether it is
    right."""
    keys = [c for c in TRIAL_COLUMNS if c in predictions]
    probs = prob_columns(predictions)
    grouped = predictions.groupby(keys, sort=False)
    table = grouped.agg(uncertainty=("uncertainty", "mean"), low=("uncertainty", "min"),
                        high=("uncertainty", "max"), windows=("uncertainty", "size"),
                        y_true=("y_true", "first"))
    if probs:
        table["y_pred"] = grouped[probs].mean().to_numpy().argmax(axis=1)
    else:
        table["y_pred"] = grouped["y_pred"].agg(lambda s: s.mode().iloc[0])
    table["correct"] = table["y_true"] == table["y_pred"]
    return table.reset_index()


def trial_uncertainty(trials: pd.DataFrame, title: str) -> Any:
    """Per-trial uncertainty: the trials ordered by their mean uncertainty, the range over
    their windows as a bar, coloured by whether the trial's prediction is right; and the two
    groups' distributions beside it."""
    plt = pyplot()
    order = trials.sort_values("uncertainty").reset_index(drop=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.4),
                                      gridspec_kw={"width_ratios": [3, 1]}, sharey=True)
    x = np.arange(len(order))
    for flag, color, label in ((True, HIT, "trial right"), (False, MISSED, "trial wrong")):
        part = order[order["correct"] == flag]
        left.vlines(part.index, part["low"], part["high"], colors=color, alpha=0.35,
                    linewidth=1)
        left.scatter(part.index, part["uncertainty"], s=10, color=color,
                     label=f"{label} ({len(part)})")
    left.set(xlabel="test trial (ordered by mean uncertainty)", ylabel="uncertainty",
             title=title, xlim=(-1, max(len(x), 1)))
    left.legend(fontsize=7, loc="upper left")
    left.grid(alpha=0.3)
    groups = [order.loc[order["correct"] == flag, "uncertainty"].to_numpy() for flag in
              (True, False)]
    shown = [(g, name) for g, name in zip(groups, ("right", "wrong"), strict=True) if len(g)]
    if shown:
        right.boxplot([g for g, _ in shown], widths=0.6)
        right.set_xticks(range(1, len(shown) + 1), [name for _, name in shown])
    right.set(title="per trial")
    right.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- comparison

def paired_points(runs: list[str], units: list[str], values: dict[str, list[float]],
                  chance: float | None, metric: str, unit: str, title: str) -> Any:
    """Each run's value per subject (points) with a line joining a subject's values across
    the runs, each run's mean (black bar) and the chance level (dashed)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(4.5, 1.7 * len(runs) + 2), 4.2))
    matrix = np.array([values[r] for r in runs], float)          # runs x units
    rng = np.random.default_rng(0)
    jitter = rng.uniform(-0.06, 0.06, size=matrix.shape[1])
    colors = plt.get_cmap("tab10" if len(units) <= 10 else "tab20")(np.arange(len(units)) % 20)
    for j, name in enumerate(units):
        ax.plot(np.arange(len(runs)) + jitter[j], matrix[:, j], color=colors[j], alpha=0.55,
                linewidth=1, marker="o", markersize=4,
                label=name if len(units) <= 15 else None)
    means = np.nanmean(matrix, axis=1)
    ax.hlines(means, np.arange(len(runs)) - 0.22, np.arange(len(runs)) + 0.22, colors="black",
              linewidth=2.5, label="mean")
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1.2,
                   label=f"chance {chance:.3f}")
    ax.set_xticks(range(len(runs)), runs, rotation=15 if len(runs) > 3 else 0, fontsize=8)
    ax.set(ylabel=metric.replace("_", " "), xlim=(-0.5, len(runs) - 0.5),
           title=f"{title}\n(one line per {unit.removesuffix('s')})")
    low = np.nanmin([np.nanmin(matrix), chance if chance is not None else 1.0])
    ax.set_ylim(max(0.0, low - 0.08), min(1.0, np.nanmax(matrix) + 0.08))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5),
              title=unit.removesuffix("s"), title_fontsize=7)
    fig.tight_layout()
    return fig
