"""``affectlab run`` and ``affectlab report``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from affectlab.cli import app


@app.command()
def run(method: str = typer.Option(None, help="method name (affectlab list)"),
        dataset: str = typer.Option(None, help="dataset name"),
        root: Path = typer.Option(None, help="dataset folder as released"),
        protocol: str = typer.Option(None, help="evaluation protocol"),
        labels: str = typer.Option(None, help="label scheme"),
        preset: str = typer.Option(None, help="data preset (default: the method's)"),
        method_preset: str = typer.Option(None, help="method hyper-parameters: paper | fast"),
        config: Path = typer.Option(None, help="YAML config file (CLI options override it)"),
        set_: list[str] = typer.Option([], "--set", help="override, e.g. method.epochs=5, "
                                       "protocol.n_splits=3, data.window_s=2, seed=1"),
        out: Path = typer.Option(None, help="run directory (default runs/<name>)"),
        overwrite: bool = typer.Option(False, help="discard an existing run directory"),
        executor: str = typer.Option("local", help="local | process | ray"),
        workers: int = typer.Option(None, help="worker processes for --executor process"),
        as_json: bool = typer.Option(False, "--json", help="print summary.json")) -> None:
    """Run a method under a protocol; resumable; prints per-fold and mean ± std table."""
    from affectlab.run import apply_overrides, load_config, read_config_file, run_experiment

    raw = read_config_file(config) if config else {}
    given = {"method": method, "dataset": dataset, "root": str(root) if root else None,
             "protocol": protocol, "preset": preset, "method_preset": method_preset}
    raw.update({k: v for k, v in given.items() if v is not None})
    if labels is not None:
        raw.setdefault("labels", {})["scheme"] = labels
    for needed in ("method", "dataset", "root"):
        if needed not in raw:
            raise typer.BadParameter(f"--{needed} is required (or give it in --config)")
    cfg = load_config(apply_overrides(raw, set_))
    summary, run_dir = run_experiment(cfg, out=out, overwrite=overwrite, progress=not as_json,
                                      executor=executor, workers=workers)
    if as_json:
        typer.echo(json.dumps(summary, indent=1))
        return
    typer.echo((run_dir / "summary.md").read_text())
    typer.echo(f"run directory: {run_dir}")


@app.command()
def report(run_dirs: list[Path] = typer.Argument(..., help="run directories"),
           out: Path = typer.Option(Path("report"), help="output folder")) -> None:
    """Comparison table (Markdown + CSV) and plots (PNG) for run directories."""
    from affectlab.report import write_report

    written = write_report(list(run_dirs), out)
    typer.echo((out / "comparison.md").read_text())
    typer.echo(f"tables: {', '.join(map(str, written['tables']))}")
    typer.echo(f"plots:  {out / 'plots'} ({len(written['plots'])} files)")
