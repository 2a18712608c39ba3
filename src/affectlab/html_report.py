"""Self-contained HTML reports: ``report.html`` of one run directory and ``comparison.html``
of ``affectlab compare``.

A page is one file: CSS inline, figures embedded as base64 PNG (matplotlib, Agg), no
JavaScript and no external URL, so it opens offline and can be mailed or archived with the run.
The run's honesty flags (leaky protocol, transductive method, test-selected oracle figures,
the ``fast`` smoke-test preset, a partial or failed run, dropped subjects) come first.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from affectlab import figures
from affectlab.report import load_predictions, load_summary

log = logging.getLogger(__name__)

RUN_REPORT = "report.html"
COMPARISON_REPORT = "comparison.html"
FOLD_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "kappa", "ece", "error_auroc")
SUMMARY_METRICS = (*FOLD_METRICS, "f1_weighted", "ovr_accuracy")

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
 margin:0 auto;max-width:1200px;padding:16px 24px;color:#222;background:#fff;line-height:1.4}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;border-bottom:1px solid #ddd;
 padding-bottom:3px;margin-top:1.6em}h3{font-size:1em;margin:1em 0 .3em}
.meta{color:#555;font-size:.9em}
.flags{list-style:none;padding:0;margin:.6em 0}
.flag{padding:7px 12px;margin:4px 0;border-radius:4px;border-left:6px solid}
.flag.bad{background:#fdecea;border-color:#c0392b}
.flag.warn{background:#fef5e7;border-color:#e67e22}
.flag.ok{background:#eafaf1;border-color:#27ae60}
table{border-collapse:collapse;margin:.5em 0;font-size:.85em}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f6f7}td.l,th.l{text-align:left}
tr.dropped td{color:#c0392b;background:#fbeeee}tr.failed td{color:#c0392b}
figure{margin:.8em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555;max-width:900px}
.note{font-size:.85em;color:#555}
footer{margin-top:2em;font-size:.8em;color:#777;border-top:1px solid #ddd;padding-top:6px}
"""


# --------------------------------------------------------------------------- HTML pieces

def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: object, digits: int = 4) -> str:
    """A number for a table cell; ``n/a`` for missing or non-finite values."""
    if value is None or isinstance(value, str):
        return "n/a" if value is None else value
    value = float(value)  # type: ignore[arg-type]
    return "n/a" if not np.isfinite(value) else f"{value:.{digits}f}"


def table(header: list[str], rows: list[list[object]], left: int = 1,
          classes: list[str] | None = None) -> str:
    """An HTML table; the first ``left`` columns left-aligned; ``classes`` per row."""
    def cell(tag: str, k: int, value: object) -> str:
        css = ' class="l"' if k < left else ""
        return f"<{tag}{css}>{esc(value)}</{tag}>"

    head = "".join(cell("th", k, h) for k, h in enumerate(header))
    body = []
    for i, row in enumerate(rows):
        css = f' class="{classes[i]}"' if classes and classes[i] else ""
        body.append(f"<tr{css}>" + "".join(cell("td", k, v) for k, v in enumerate(row))
                    + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def image(fig: Any, alt: str, caption: str) -> str:
    """A figure embedded as a base64 PNG, with its caption."""
    return (f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{figures.png(fig)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def page(title: str, body: list[str]) -> str:
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    import affectlab

    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><link rel=\"icon\" href=\"data:,\">"
            f"<style>{CSS}</style></head>\n<body>\n" + "\n".join(body)
            + f"\n<footer>Written by affectlab {esc(affectlab.__version__)} on {stamp}. "
              "Self-contained: figures embedded, no scripts, no external resources."
              "</footer>\n</body></html>\n")


# --------------------------------------------------------------------------- honesty flags

def honesty_flags(summary: dict) -> list[tuple[str, str]]:
    """``(level, sentence)`` for each thing a reader must know before reading the numbers:
    ``bad`` (the figures are not an honest estimate, or not a result at all) or ``warn``."""
    config = summary.get("config") or {}
    flags = []
    if config.get("method_preset") == "fast":
        flags.append(("bad", "Fast preset: smoke test, not a result (a few epochs, small "
                             "models; the numbers only show that the pipeline runs)."))
    if summary.get("leaky"):
        flags.append(("bad", "LEAKY protocol: windows of one trial are on both sides of the "
                             "split; the figures overestimate generalisation to new trials."))
    if "oracle_best_epoch" in summary or config.get("report_oracle"):
        flags.append(("bad", "Oracle figures: oracle_best_epoch picks the best epoch on the "
                             "TEST labels; it is shown apart and is not an honest estimate."))
    if summary.get("transductive"):
        flags.append(("warn", "Transductive: the method used the test part's data (without "
                              "labels) while training or normalising."))
    if config.get("max_folds"):
        flags.append(("bad", f"Only the first {config['max_folds']} fold(s) were run "
                             "(max_folds): a smoke test, not the protocol's result."))
    failed = summary.get("failed_folds") or []
    if failed or summary.get("complete") is False:
        flags.append(("bad", f"Incomplete run: {len(failed)} fold(s) failed; the figures "
                             "cover the finished folds only."))
    numerics = summary.get("numerics") or []
    if numerics:
        rounding = any(text.endswith(("(amp)", "(tf32)")) for text in numerics)
        flags.append(("warn", f"Numerics: {', '.join(numerics)}"
                      + ("; these round differently from float32, so the figures may differ "
                         "slightly from a run without them." if rounding else ".")))
    dropped = (summary.get("dropped") or {}).get("subjects") or []
    if dropped:
        flags.append(("warn", f"{len(dropped)} subject(s) dropped by the runner (no usable "
                              f"windows for the method's modalities): "
                              f"{', '.join(map(str, dropped))}; they are absent from every "
                              "figure and mean."))
    return flags


def flags_section(flags: list[tuple[str, str]], clean: str) -> str:
    items = [f'<li class="flag {level}">{esc(text)}</li>' for level, text in flags]
    if not flags:
        items = [f'<li class="flag ok">{esc(clean)}</li>']
    return (f'<section id="flags"><h2>Honesty flags</h2><ul class="flags">{"".join(items)}'
            "</ul></section>")


# --------------------------------------------------------------------------- run tables

def fold_records(run_dir: Path) -> list[dict]:
    """Each finished fold's metrics.json, in fold order."""
    records = []
    for path in sorted((run_dir / "folds").glob("*/metrics.json")):
        try:
            records.append({**json.loads(path.read_text()), "_dir": path.parent})
        except json.JSONDecodeError:
            continue
    return sorted(records, key=lambda r: r.get("index", 0))


def direction(record: dict) -> str | None:
    """``A → B``: the modalities a fold trained and was tested on (``None`` if unrecorded)."""
    train, test = record.get("train_modalities"), record.get("test_modalities")
    if not train or not test:
        return None
    return f"{'+'.join(train)} → {'+'.join(test)}"


def directions(records: list[dict]) -> dict[int, str] | None:
    """Each fold's direction when the folds have more than one (a cross-modal run), else
    ``None``."""
    ways = {r.get("index"): direction(r) for r in records}
    return ways if len({w for w in ways.values() if w}) > 1 else None


def chance_bar(levels: dict[str, float] | None) -> float | None:
    """The level to beat: the higher of the majority-class and uniform-guess chance."""
    return max(levels.values()) if levels else None


def summary_section(summary: dict) -> str:
    metrics, ci, chance = summary["metrics"], summary.get("ci", {}), summary.get("chance", {})
    rows = []
    for name in SUMMARY_METRICS:
        if name not in metrics:
            continue
        m, c, ch = metrics[name], ci.get(name), chance.get(name, {})
        if name == "ovr_accuracy" and "ovr_accuracy_chance" in metrics:
            ch = {"majority": metrics["ovr_accuracy_chance"]["mean"]}
        interval = (f"{fmt(c['mean'])} [{fmt(c['ci_low'])}, {fmt(c['ci_high'])}] "
                    f"({c['n']} {c['unit']})" if c and c.get("ci_low") is not None else
                    f"no CI ({c['n']} {c['unit']})" if c else "")
        rows.append([name, f"{fmt(m['mean'])} ± {fmt(m['std'])}", interval,
                     fmt(ch.get("majority")), fmt(ch.get("uniform"))])
    if "oracle_best_epoch" in summary:
        o = summary["oracle_best_epoch"]["accuracy"]
        rows.append(["oracle_best_epoch accuracy (TEST-selected, not honest)",
                     f"{fmt(o['mean'])} ± {fmt(o['std'])}", "", "", ""])
    text = table(["metric", "mean ± std over folds", "mean [95 % CI] over units",
                  "chance: majority", "chance: uniform"], rows)
    unit = next(iter(ci.values()), {})
    note = ("Intervals: bootstrap of the mean over test subjects (folds where a metric has no "
            f"per-subject values), {unit.get('method', 'bootstrap')}, seed {unit.get('seed', 0)}."
            " Chance: the majority-class prediction and the expected score of a uniform guess "
            "on the test labels, averaged over folds as the metrics are.")
    labels = summary.get("test_labels")
    if labels:
        note += " Test labels: " + ", ".join(f"{k} {v}" for k, v in labels.items()) + "."
    return (f'<section id="summary"><h2>Results</h2>{text}<p class="note">{esc(note)}</p>'
            "</section>")


def folds_section(summary: dict, records: list[dict], predictions: pd.DataFrame) -> str:
    from affectlab.stats import chance_levels

    n_classes = len(summary.get("classes") or [])
    shown = [m for m in FOLD_METRICS if m in summary["metrics"]]
    ways = directions(records) or {}
    cross = bool(ways)
    header = ["#", "fold", *(["direction"] if cross else []), "train", "val", "test",
              *shown, "chance (bal. acc.)", "seconds"]
    rows, classes = [], []
    for record in records:
        way = ways.get(record.get("index"))
        part = predictions[predictions["fold_index"] == record.get("index")]
        levels = chance_levels(part["y_true"].to_numpy(), n_classes)["balanced_accuracy"] \
            if len(part) and n_classes else None
        rows.append([record.get("index"), record.get("fold"), *([way or ""] if cross else []),
                     record.get("n_train", ""), record.get("n_val", ""),
                     record.get("n_test", ""), *(fmt(record.get(m)) for m in shown),
                     fmt(chance_bar(levels)), fmt(record.get("seconds"), 1)])
        classes.append("")
    for failure in summary.get("failed_folds") or []:
        rows.append([failure["index"], failure["fold"], *([""] if cross else []), "", "", "",
                     f"FAILED: {failure['error']}", *([""] * (len(shown) - 1)), "", ""])
        classes.append("failed")
    text = table(header, rows, left=3 if cross else 2, classes=classes)
    if cross:
        text = direction_table(records, ways, shown) + text
    return f'<section id="folds"><h2>Per fold</h2>{text}</section>'


def direction_table(records: list[dict], ways: dict[int, str], shown: list[str]) -> str:
    """Mean ± std over the folds of each cross-modal direction."""
    rows = []
    for way in dict.fromkeys(ways.values()):
        part = [r for r in records if ways.get(r.get("index")) == way]
        cells = []
        for m in shown:
            values = np.array([r[m] for r in part if r.get(m) is not None], float)
            cells.append(f"{fmt(values.mean())} ± {fmt(values.std())}" if values.size else "")
        rows.append([way, len(part), *cells])
    return ("<h3>Per direction (train → test modality)</h3>"
            + table(["direction", "folds", *shown], rows) + "<h3>Every fold</h3>")


def subject_rows(summary: dict, predictions: pd.DataFrame) -> list[dict[str, Any]]:
    """Every test subject (kept or dropped) with its scores, windows and chance level."""
    from affectlab.stats import chance_levels

    n_classes = len(summary.get("classes") or [])
    losses = summary.get("dropped") or {}
    partial = {str(k): v for k, v in (losses.get("subjects_partial") or {}).items()}
    per_subject = summary.get("per_subject") or {}
    rows = []
    for subject in sorted({*per_subject, *map(str, losses.get("subjects") or [])},
                          key=figures.natural):
        if subject not in per_subject:
            rows.append({"subject": subject, "dropped": True})
            continue
        part = predictions[predictions["subject"].astype(str) == subject]
        levels = (chance_levels(part["y_true"].to_numpy(), n_classes)["balanced_accuracy"]
                  if len(part) and n_classes else None)
        s = per_subject[subject]
        rows.append({"subject": subject, "dropped": False, "value": s["balanced_accuracy"],
                     "accuracy": s["accuracy"], "n_test": s["n_test"],
                     "chance": chance_bar(levels), "lost": partial.get(subject, 0)})
    return rows


def subject_figure(summary: dict, rows: list[dict[str, Any]], name: str) -> Any:
    """Balanced accuracy per subject (:func:`figures.subject_scores`) with the mean over
    subjects and its CI from the summary."""
    ci = (summary.get("ci") or {}).get("balanced_accuracy", {})
    by_subject = ci.get("unit") == "subjects"
    return figures.subject_scores(rows, "balanced_accuracy",
                                  ci.get("mean") if by_subject else None,
                                  (ci.get("ci_low"), ci.get("ci_high")) if by_subject else
                                  (None, None), f"{name}: balanced accuracy per test subject")


def subjects_section(summary: dict, predictions: pd.DataFrame, name: str) -> str:
    rows = subject_rows(summary, predictions)
    if not rows:
        return ""
    fig = subject_figure(summary, rows, name)
    cells, classes = [], []
    for r in rows:
        if r["dropped"]:
            cells.append([r["subject"], "dropped: no usable windows", 0, "", "", ""])
            classes.append("dropped")
        else:
            status = f"kept ({r['lost']} windows dropped)" if r["lost"] else "kept"
            cells.append([r["subject"], status, r["n_test"], fmt(r["accuracy"]),
                          fmt(r["value"]), fmt(r["chance"])])
            classes.append("")
    caption = ("Bars: balanced accuracy of each test subject's windows; the dashed mark on a "
               "bar is that subject's chance level (the higher of the majority-class and "
               "uniform-guess balanced accuracy on its test labels); the band is the mean over "
               "subjects with its 95 % bootstrap CI. Hatched slots: subjects the runner "
               "dropped.")
    return ('<section id="subjects"><h2>Per subject</h2>'
            + image(fig, "balanced accuracy per subject", caption)
            + table(["subject", "status", "test windows", "accuracy", "balanced accuracy",
                     "chance (bal. acc.)"], cells, left=2, classes=classes) + "</section>")


def confusion_panels(records: list[dict], predictions: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The prediction rows of each cross-modal direction, else of all test folds."""
    ways = directions(records)
    if not ways:
        return {"all test folds": predictions}
    return {way: predictions[predictions["fold_index"].isin(
        [k for k, w in ways.items() if w == way])] for way in dict.fromkeys(ways.values())}


def confusion_section(summary: dict, records: list[dict], predictions: pd.DataFrame,
                      name: str) -> str:
    classes = [str(c) for c in summary.get("classes") or []]
    if not classes or predictions.empty:
        return ""
    panels = confusion_panels(records, predictions)
    fig = figures.confusion(panels, classes, f"{name}: confusion"
                            + (" per direction" if len(panels) > 1 else ""))
    caption = ("Row-normalised: each row is one true class and sums to 1 (counts in "
               "brackets), pooled over the test folds" +
               ("; one panel per cross-modal direction (train → test modality)."
                if len(panels) > 1 else "."))
    return ('<section id="confusion"><h2>Confusion</h2>' + image(fig, "confusion matrix",
                                                                 caption) + "</section>")


def histories(records: list[dict]) -> dict[str, pd.DataFrame]:
    """Each fold's history.csv (per-epoch logged values) by fold name."""
    out = {}
    for record in records:
        path = record["_dir"] / "history.csv"
        if path.is_file():
            try:
                out[str(record.get("fold"))] = pd.read_csv(path)
            except (pd.errors.EmptyDataError, pd.errors.ParserError):
                continue
    return out


def curves_section(records: list[dict], name: str) -> str:
    logged = histories(records)
    fig = figures.history_curves(logged, f"{name}: training / validation") if logged else None
    if fig is None:
        return ""
    caption = ("Per-epoch values the method logged (folds/<k>/history.csv), one line per "
               "fold (with more than 8 folds thin grey lines under their mean); pre-training "
               "epochs come first where the method has a pre-training stage.")
    return ('<section id="curves"><h2>Training curves</h2>'
            + image(fig, "training and validation curves", caption) + "</section>")


def uncertainty_section(summary: dict, predictions: pd.DataFrame, name: str) -> str:
    if "uncertainty" not in predictions or not predictions["uncertainty"].notna().any():
        return ""
    rows = predictions[predictions["uncertainty"].notna()]
    parts = []
    if figures.prob_columns(rows):
        parts.append(image(figures.reliability(rows, f"{name}: reliability"),
                           "reliability diagram",
                           "Windows binned by their top-class probability: accuracy per bin "
                           "against the diagonal of a calibrated model; below, the windows "
                           "per bin."))
    trials = figures.trial_table(rows)
    parts.append(image(figures.trial_uncertainty(trials, f"{name}: uncertainty per trial"),
                       "uncertainty per trial",
                       "Each test trial's mean uncertainty over its windows (the vertical bar "
                       "spans its windows' range), coloured by whether the trial's prediction "
                       "(argmax of its mean probabilities) is right."))
    auroc = (summary.get("metrics") or {}).get("error_auroc", {}).get("mean")
    right = trials.loc[trials["correct"], "uncertainty"]
    wrong = trials.loc[~trials["correct"], "uncertainty"]
    note = (f"{len(trials)} test trials: mean uncertainty {fmt(right.mean(), 3)} on the "
            f"{len(right)} right, {fmt(wrong.mean(), 3)} on the {len(wrong)} wrong; "
            f"error-detection AUROC (windows, mean over folds) {fmt(auroc, 3)}.")
    return ('<section id="uncertainty"><h2>Calibration and uncertainty</h2>'
            + "".join(parts) + f'<p class="note">{esc(note)}</p></section>')


def data_section(summary: dict) -> str:
    losses = summary.get("dropped") or {}
    lines = []
    if losses.get("windows_before") is not None:
        from affectlab.run import _missing_lines, losses_line

        lines = [losses_line(losses).capitalize() + ".", *_missing_lines(losses)]
    forms = summary.get("forms") or {}
    if forms:
        lines.append("Inputs: " + "; ".join(f"{k}: {v}" for k, v in forms.items()) + ".")
    if not lines:
        return ""
    items = "".join(f"<li>{esc(line)}</li>" for line in lines)
    return f'<section id="data"><h2>Data</h2><ul class="note">{items}</ul></section>'


# --------------------------------------------------------------------------- pages

def run_report(run_dir: str | Path) -> str:
    """The HTML of one run directory's report."""
    run_dir = Path(run_dir)
    summary = load_summary(run_dir)
    name = run_dir.name
    title = (f"{summary['method']} on {summary['dataset']} — {summary['protocol']} "
             f"({summary['label_scheme']})")
    config = summary.get("config") or {}
    meta = (f"run {name} · {summary.get('n_folds', 0)} fold(s) · seed {summary.get('seed')} · "
            f"data preset {summary.get('data_preset', config.get('preset'))} · method preset "
            f"{config.get('method_preset', 'default')} · classes "
            f"{', '.join(map(str, summary.get('classes') or []))} · "
            f"{summary.get('n_windows', '?')} windows")
    body = [f"<header><h1>{esc(title)}</h1><p class=\"meta\">{esc(meta)}</p></header>",
            flags_section(honesty_flags(summary), "No honesty flags: a leak-free protocol, "
                          "an inductive method, no test-selected figures, the full run.")]
    if not summary.get("n_folds"):
        failures = [[f["index"], f["fold"], f["error"]] for f in summary.get("failed_folds", [])]
        body.append('<section id="folds"><h2>Every fold failed</h2>'
                    + table(["#", "fold", "error"], failures, left=3) + "</section>")
        return page(title, body)
    predictions = load_predictions(run_dir)
    records = fold_records(run_dir)
    body += [summary_section(summary), folds_section(summary, records, predictions),
             subjects_section(summary, predictions, name),
             confusion_section(summary, records, predictions, name),
             curves_section(records, name), uncertainty_section(summary, predictions, name),
             data_section(summary)]
    return page(title, [b for b in body if b])


def write_run_report(run_dir: str | Path) -> Path:
    """Write ``report.html`` into the run directory (replacing an older one)."""
    from affectlab.run import atomic_write_text

    path = Path(run_dir) / RUN_REPORT
    atomic_write_text(path, run_report(run_dir))
    return path


def try_write_run_report(run_dir: str | Path) -> Path | None:
    """:func:`write_run_report`, logging (not raising) a failure: the run's results stand
    without their report, and ``affectlab report RUN_DIR`` can write it later."""
    try:
        return write_run_report(run_dir)
    except Exception as exc:                          # noqa: BLE001  (a report never fails a run)
        log.warning("report.html not written (%s: %s); write it with: affectlab report %s",
                    type(exc).__name__, exc, run_dir)
        return None


def comparison_report(result: dict, run_dirs: list[str | Path]) -> str:
    """The HTML of ``affectlab compare``: flags of every run, the paired plot per subject,
    each run's results with chance and CI, and the paired tests."""
    from affectlab.report import results_table

    summaries = {Path(d).name: load_summary(d) for d in run_dirs}
    metric, unit = result["metric"], result["unit"]
    title = (f"Comparison: {metric} on {result['dataset']} — {result['protocol']} "
             f"({result['label_scheme']})")
    meta = (f"{len(summaries)} runs · {len(result['units'])} {unit} · paired tests per "
            f"{unit.removesuffix('s')}, Holm-corrected over {len(result['pairs'])} pair(s)")
    flags = [(level, f"{name}: {text}") for name, s in summaries.items()
             for level, text in honesty_flags(s)]
    body = [f"<header><h1>{esc(title)}</h1><p class=\"meta\">{esc(meta)}</p></header>",
            flags_section(flags, "No honesty flags in any run.")]
    chance = [chance_bar(s.get("chance", {}).get(metric)) for s in summaries.values()]
    level = max((c for c in chance if c is not None), default=None)
    runs = list(result["values"])
    fig = figures.paired_points(runs, result["units"], result["values"], level, metric, unit,
                                f"{metric} per {unit.removesuffix('s')}")
    body.append('<section id="plot"><h2>Per ' + esc(unit.removesuffix("s")) + "</h2>"
                + image(fig, "paired comparison", f"Each point is one {unit.removesuffix('s')}"
                        f"'s {metric} in one run; a line joins a {unit.removesuffix('s')}'s "
                        "values across the runs; black bars are the runs' means; the dashed "
                        "line is chance (the higher of the majority-class and uniform-guess "
                        "level).") + "</section>")
    per_unit = [[k, *(fmt(result["values"][r][i]) for r in runs)]
                for i, k in enumerate(result["units"])]
    body.append(f'<section id="units"><h2>Values per {esc(unit.removesuffix("s"))}</h2>'
                + table([unit.removesuffix("s"), *runs], per_unit) + "</section>")
    pairs = [[p["run_a"], p["run_b"], p["n"], fmt(p["mean_a"]), fmt(p["mean_b"]),
              f"{p['mean_difference']:+.4f}", fmt(p["cohens_dz"], 2),
              f"{p['rank_biserial']:+.2f}", f"{p['p_wilcoxon']:.3g}",
              f"{p['p_wilcoxon_holm']:.3g}", f"{p['p_permutation']:.3g}",
              f"{p['p_permutation_holm']:.3g}"] for p in result["pairs"]]
    body.append('<section id="tests"><h2>Paired tests</h2>' + table(
        ["a", "b", "n", "mean a", "mean b", "a − b", "Cohen's dz", "rank-biserial",
         "p Wilcoxon", "p Wilcoxon (Holm)", "p permutation", "p permutation (Holm)"],
        pairs, left=2) + "</section>")
    results = results_table(run_dirs)
    rows = [[r.run, r.metric, fmt(r.mean), fmt(r.std),
             "" if pd.isna(r.ci_low) else f"[{fmt(r.ci_low)}, {fmt(r.ci_high)}] ({r.ci_unit})",
             fmt(r.chance_majority), fmt(r.chance_uniform), r.n_folds, r.n_subjects]
            for r in results.itertuples()]
    body.append('<section id="runs"><h2>Runs</h2>' + table(
        ["run", "metric", "mean", "std (folds)", "95 % CI of the mean", "chance: majority",
         "chance: uniform", "folds", "subjects"], rows, left=2)
        + "<p class=\"note\">Each run's own report: "
        + ", ".join(f"<a href=\"{esc(_file_link(Path(d) / RUN_REPORT))}\">{esc(Path(d).name)}"
                    "</a>" for d in run_dirs if (Path(d) / RUN_REPORT).is_file())
        + "</p></section>")
    return page(title, body)


def _file_link(path: Path) -> str:
    """A run's report as a ``file:`` link (the comparison page may move; a run does not)."""
    return path.resolve().as_uri()


def write_comparison_report(result: dict, run_dirs: list[str | Path],
                            out: str | Path) -> Path:
    """Write ``comparison.html`` into ``out``."""
    path = Path(out) / COMPARISON_REPORT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(comparison_report(result, run_dirs))
    return path
