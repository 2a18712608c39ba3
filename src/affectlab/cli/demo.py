"""``affectlab demo``: every registered method on small synthetic data, one comparison table."""

from __future__ import annotations

from pathlib import Path

import typer

from affectlab.cli import app


@app.command()
def demo(out: Path = typer.Option(Path("runs/demo"), help="where run directories go"),
         data: Path = typer.Option(Path(".affectlab_cache/demo-data"),
                                   help="where the synthetic datasets are written"),
         methods: str = typer.Option("all", help="comma-separated methods, or 'all'"),
         subjects: int = typer.Option(3, min=2, help="synthetic subjects per dataset")) -> None:
    """Write small synthetic datasets, run every method (fast preset, leak-free protocol),
    print the comparison table and where the runs and plots are."""
    from affectlab import catalog

    chosen = None if methods == "all" else [m.strip() for m in methods.split(",")]
    for name in chosen or []:
        catalog.check("methods", name)
    from affectlab.demo import run_demo

    table_path = run_demo(out, data, chosen, subjects, echo=typer.echo)
    typer.echo(table_path.read_text())
    typer.echo(f"runs: {out}   table and plots: {out / 'report'}")
