"""``affectlab compare``."""

from __future__ import annotations

from pathlib import Path

import typer

from affectlab.cli import app


@app.command()
def compare(run_dirs: list[Path] = typer.Argument(..., help="run directories (same dataset, "
                                                  "protocol and folds)"),
            metric: str = typer.Option("balanced_accuracy", help="per-subject metric: "
                                       "balanced_accuracy | accuracy"),
            out: Path = typer.Option(Path("compare"), help="output folder")) -> None:
    """Paired per-subject tests between runs: Wilcoxon and permutation p (Holm-corrected),
    mean difference and effect sizes; writes compare.json, compare.csv and comparison.html
    (paired per-subject plot, tables, the runs' honesty flags)."""
    from affectlab.cli.checks import check_run_dirs

    check_run_dirs(run_dirs)
    from affectlab.html_report import write_comparison_report
    from affectlab.report import compare_markdown, write_comparison

    result = write_comparison(list(run_dirs), out, metric)
    page = write_comparison_report(result, list(run_dirs), out)
    typer.echo(compare_markdown(result))
    typer.echo(f"written: {out / 'compare.json'}, {out / 'compare.csv'}, {page}")
