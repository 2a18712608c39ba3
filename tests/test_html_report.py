"""report.html and comparison.html: self-contained pages (no scripts, no external URL, every
figure embedded), the honesty flags first, dropped subjects shown, the plots that apply to the
run; rendered in headless Chromium where /usr/bin/chromium is installed."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from affectlab import evaluation
from affectlab.html_report import (
    COMPARISON_REPORT,
    RUN_REPORT,
    run_report,
    write_comparison_report,
    write_run_report,
)
from affectlab.report import compare_runs

CHROMIUM = Path("/usr/bin/chromium")
CLASSES = ["low_valence", "high_valence"]


def fake_run(run_dir: Path, *, seed: int = 0, subjects=(1, 2, 3), dropped=(),
             uncertainty: bool = False, history: bool = False, cross_modal: bool = False,
             **flags) -> Path:
    """A finished run directory written without training: per-fold predictions, metrics and
    history, summary.json as the runner writes it (``flags`` go into the summary or, for
    ``method_preset`` / ``report_oracle`` / ``max_folds``, its config)."""
    from affectlab.run import summary_statistics

    rng = np.random.default_rng(seed)
    ways = [("eeg", "eeg"), ("eeg", "eye")] if cross_modal else [(None, None)]
    records, tables = [], []
    for subject in subjects:
        for train, test in ways:
            k = len(records)
            y = np.repeat(rng.permutation([0, 0, 1, 1]), 5)           # 4 trials x 5 windows
            logits = rng.normal(size=(len(y), 2)) + 1.2 * np.eye(2)[y]
            probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
            unc = 1 - probs.max(axis=1) if uncertainty else None
            name = f"subj{subject}" + (f"_{train}2{test}" if cross_modal else "")
            metrics = {**evaluation.fold_metrics(y, probs, 2, unc), "fold": name, "index": k,
                       "info": {"subject": subject}, "n_train": 40, "n_val": 10, "seconds": 0.1,
                       "extras": {}}
            if cross_modal:
                metrics |= {"train_modalities": [train], "test_modalities": [test]}
            table = pd.DataFrame({"fold": name, "fold_index": k, "index": np.arange(len(y)),
                                  "subject": subject, "session": 1,
                                  "trial": np.repeat(np.arange(1, 5), 5),
                                  "window": np.tile(np.arange(5), 4), "y_true": y,
                                  "y_pred": probs.argmax(axis=1), "prob_0": probs[:, 0],
                                  "prob_1": probs[:, 1]})
            if uncertainty:
                table["uncertainty"] = unc
            fold_dir = run_dir / "folds" / f"{k:03d}"
            fold_dir.mkdir(parents=True)
            table.to_csv(fold_dir / "predictions.csv", index=False)
            (fold_dir / "metrics.json").write_text(json.dumps(metrics))
            if history:
                epochs = np.arange(1, 6)
                pd.DataFrame({"epoch": epochs, "n_epochs": 5, "train_loss": 1 / epochs,
                              "val_loss": 1.2 / epochs}).to_csv(fold_dir / "history.csv",
                                                                index=False)
            records.append(metrics)
            tables.append(table)
    predictions = pd.concat(tables, ignore_index=True)
    config_keys = ("method_preset", "report_oracle", "max_folds")
    config = {"method_preset": "default", **{k: v for k, v in flags.items() if k in config_keys}}
    names = [*evaluation.METRICS, "ovr_accuracy", "ovr_accuracy_chance",
             *evaluation.UNCERTAINTY_METRICS]
    summary = {"method": "logreg", "dataset": "deap", "protocol": "loso",
               "label_scheme": "binary_valence", "classes": CLASSES, "leaky": False,
               "transductive": False, "n_folds": len(records),
               "fold_names": [r["fold"] for r in records],
               "metrics": evaluation.aggregate(records, names),
               "per_subject": evaluation.per_subject(predictions), "n_windows": 400,
               "dropped": {"modalities_used": ["eeg"], "windows_before": 400,
                           "windows": 20 * len(dropped), "by_reason": {"missing_eeg": 20}
                           if dropped else {}, "trials": 4 * len(dropped),
                           "subjects": list(dropped), "subjects_partial": {}},
               "data_preset": "default", "seed": 0, "config": config, "version": "test",
               "complete": True, "failed_folds": [],
               **{k: v for k, v in flags.items() if k not in config_keys}}
    summary.update(summary_statistics(summary, predictions.assign(fold=predictions.fold_index),
                                      2))
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def sections(page: str) -> list[str]:
    return re.findall(r'<section id="([a-z]+)"', page)


def images(page: str) -> list[str]:
    return re.findall(r"<img [^>]*src=\"([^\"]*)\"", page)


def assert_self_contained(page: str) -> None:
    assert "<script" not in page.lower()
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "a resource from the network"
    assert "http://" not in page and "https://" not in page
    assert "@import" not in page and "url(" not in page
    found = images(page)
    assert found
    for src in found:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_page_is_self_contained_with_flags_first(tmp_path):
    run = fake_run(tmp_path / "r", method_preset="fast", leaky=True, transductive=True,
                   oracle_best_epoch={"accuracy": {"mean": 0.9, "std": 0.0,
                                                   "per_fold": [0.9, 0.9, 0.9]}})
    page = run_report(run)
    assert_self_contained(page)
    assert sections(page)[:4] == ["flags", "summary", "folds", "subjects"]
    flags = page.split('<section id="flags">', 1)[1].split("</section>", 1)[0]
    for words in ("smoke test, not a result", "LEAKY protocol", "TEST labels", "Transductive"):
        assert words in flags
    assert page.index('id="flags"') < page.index('id="summary"')
    assert "oracle_best_epoch accuracy (TEST-selected, not honest)" in page
    summary = page.split('<section id="summary">', 1)[1].split("</section>", 1)[0]
    assert "chance: majority" in summary and "[" in summary                # chance and CI
    assert "curves" not in sections(page) and "uncertainty" not in sections(page)


def test_clean_run_says_no_flags(tmp_path):
    page = run_report(fake_run(tmp_path / "r"))
    assert 'class="flag ok">No honesty flags' in page
    assert 'class="flag bad"' not in page and 'class="flag warn"' not in page


def test_failed_folds_flagged_and_named(tmp_path):
    failure = {"index": 3, "fold": "subj4", "error": "RuntimeError: boom"}
    page = run_report(fake_run(tmp_path / "r", complete=False, failed_folds=[failure]))
    assert "Incomplete run: 1 fold(s) failed" in page
    row = re.search(r'<tr class="failed">(.*?)</tr>', page).group(1)
    header = page.split('<section id="folds">', 1)[1].split("</tr>", 1)[0]
    assert "FAILED: RuntimeError: boom" in row
    assert len(re.findall(r"<td[ >]", row)) == len(re.findall(r"<th[ >]", header))
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "summary.json").write_text(json.dumps({
        "method": "mlp", "dataset": "deap", "protocol": "loso", "label_scheme": "binary_valence",
        "leaky": False, "n_folds": 0, "metrics": {}, "complete": False,
        "failed_folds": [failure], "seed": 0, "config": {}, "version": "test"}))
    page = run_report(tmp_path / "none")
    assert "Every fold failed" in page and "RuntimeError: boom" in page
    assert "Incomplete run" in page


def test_dropped_subjects_listed_and_drawn(tmp_path):
    page = run_report(fake_run(tmp_path / "r", subjects=(1, 2, 4), dropped=(3,)))
    assert "1 subject(s) dropped by the runner" in page
    table = page.split('<section id="subjects">', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r"<tr( class=\"dropped\")?><td class=\"l\">(\w+)</td>", table)
    assert [(bool(css), s) for css, s in rows] == [(False, "1"), (False, "2"),
                                                   (True, "3"), (False, "4")]
    assert "dropped: no usable windows" in table


def test_uncertainty_history_and_directions(tmp_path):
    page = run_report(fake_run(tmp_path / "r", uncertainty=True, history=True,
                               cross_modal=True))
    assert {"curves", "uncertainty", "confusion"} <= set(sections(page))
    assert 'alt="reliability diagram"' in page and 'alt="uncertainty per trial"' in page
    assert "24 test trials" in page                          # per trial: 3 subjects x 2 x 4
    assert "Per direction (train → test modality)" in page and "eeg → eye" in page
    assert "one panel per cross-modal direction" in page
    assert_self_contained(page)


def test_comparison_page(tmp_path):
    runs = [fake_run(tmp_path / "a", seed=0), fake_run(tmp_path / "b", seed=1,
                                                       method_preset="fast")]
    for run in runs:
        write_run_report(run)
    result = compare_runs(runs)
    path = write_comparison_report(result, runs, tmp_path / "cmp")
    page = path.read_text()
    assert_self_contained(page)
    assert sections(page) == ["flags", "plot", "units", "tests", "runs"]
    assert "b: Fast preset: smoke test, not a result" in page
    assert "p Wilcoxon (Holm)" in page and "chance: majority" in page
    assert f'href="{(runs[0] / RUN_REPORT).resolve().as_uri()}"' in page


def test_runner_writes_report_and_cli_rewrites_it(synthetic_root, tmp_path, monkeypatch):
    from affectlab.cli import app, compare, experiment  # noqa: F401  (registers)
    from affectlab.run import load_config, run_experiment

    deap = synthetic_root("deap", n_subjects=3, seconds=4)
    cfg = load_config({"method": "logreg", "dataset": "deap", "root": str(deap),
                       "protocol": "loso", "method_preset": "fast", "preset": "m2s",
                       "cache_dir": str(tmp_path / "cache")})
    _, run_dir = run_experiment(cfg, out=tmp_path / "run")
    page = (run_dir / RUN_REPORT).read_text()
    assert "smoke test, not a result" in page and "Per subject" in page
    (run_dir / RUN_REPORT).unlink()
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert (run_dir / RUN_REPORT).is_file() and not (tmp_path / "report").exists()
    runs = [str(fake_run(tmp_path / "a")), str(fake_run(tmp_path / "b", seed=3))]
    result = CliRunner().invoke(app, ["compare", *runs, "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cmp" / COMPARISON_REPORT).is_file()


PROBE = """
import sys
from affectlab.cli import main
try:
    main()
finally:
    print("HEAVY:", [m for m in ("torch", "pandas", "matplotlib", "affectlab.run")
                     if m in sys.modules], file=sys.stderr)
"""


@pytest.mark.parametrize("command", ["report", "compare"])
def test_missing_run_directory_is_refused_before_heavy_imports(command, tmp_path):
    proc = subprocess.run([sys.executable, "-c", PROBE, command, str(tmp_path / "nope"),
                           str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"{tmp_path / 'nope'}: no such folder" in proc.stderr
    assert proc.stderr.rstrip().endswith("HEAVY: []")


# --------------------------------------------------------------------------- headless Chromium

def chromium(page: Path, *args: str, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         "--window-size=1280,2000", *args, page.resolve().as_uri()],
        capture_output=True, text=True, timeout=90)


def console_errors(stderr: str) -> list[str]:
    """Lines where the page itself complained: console messages, uncaught errors, resources
    that failed to load (Chromium's own D-Bus / GPU chatter is not the page's)."""
    return [line for line in stderr.splitlines()
            if "CONSOLE" in line or "Uncaught" in line or "ERR_FILE_NOT_FOUND" in line
            or "Failed to load resource" in line or "net::ERR" in line]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (Debian's chromium "
                                                  "package; make test installs it)")
def test_pages_render_in_headless_chromium(tmp_path):
    from PIL import Image

    runs = [fake_run(tmp_path / "a", seed=0, uncertainty=True, history=True, dropped=(4,),
                     method_preset="fast"), fake_run(tmp_path / "b", seed=1, cross_modal=True)]
    for run in runs:
        write_run_report(run)
    cmp = [fake_run(tmp_path / "c", seed=2), fake_run(tmp_path / "d", seed=3)]
    pages = [run / RUN_REPORT for run in runs]
    pages.append(write_comparison_report(compare_runs(cmp), cmp, tmp_path / "cmp"))
    for k, page in enumerate(pages):
        shot = tmp_path / f"shot{k}.png"
        proc = chromium(page, f"--screenshot={shot}", "--dump-dom",
                        profile=tmp_path / f"profile{k}")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert console_errors(proc.stderr) == []
        assert shot.stat().st_size > 20_000
        with Image.open(shot) as image:
            assert image.size == (1280, 2000)
            grey = np.asarray(image.convert("L"))
        assert grey.max() - grey.min() > 150                      # text and figures drawn
        assert (grey < 200).sum() > 10_000
        dom = proc.stdout                                         # the page as rendered
        assert '<section id="flags">' in dom and "</footer>" in dom
        srcs = images(dom)
        assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    bad = tmp_path / "bad.html"                     # the check sees a page's console errors
    bad.write_text("<html><body><script>console.error('boom'); nofn();</script></body></html>")
    errors = console_errors(chromium(bad, "--dump-dom", profile=tmp_path / "bad").stderr)
    assert any("boom" in e for e in errors) and any("Uncaught" in e for e in errors)
