"""``affectlab reproduce``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from affectlab.cli import app


@app.command()
def reproduce(method: str = typer.Argument(..., help="paper method: clmer, dhcm_cacl, m2s, "
                                           "me_mhacl, uf_ama"),
              dataset: str = typer.Option(..., help="dataset its paper reports"),
              root: Path = typer.Option(..., help="dataset folder as released"),
              method_preset: str = typer.Option("default", help="method hyper-parameters: "
                                                "default | paper | fast (smoke test)"),
              out: Path = typer.Option(None, help="folder of both run directories and the "
                                       "table (default runs/reproduce/<method>-<dataset>)"),
              set_: list[str] = typer.Option([], "--set", help="override for both runs, e.g. "
                                             "method.epochs=5, seed=1, max_folds=2"),
              overwrite: bool = typer.Option(False, help="discard existing run directories"),
              as_json: bool = typer.Option(False, "--json", help="print reproduce.json")) -> None:
    """Run a paper method under its paper's protocol and selection (e.g. the best epoch on
    the test labels, a random window split) and under an honest counterpart on the same
    data; print both figures side by side with the gap and the paper's reported number,
    LEAKY and ORACLE figures labelled. Writes reproduce.json / .md / .html into --out."""
    from affectlab import catalog
    from affectlab.reproduction import check_configs, paper_setting, run_configs

    catalog.check_method(method)
    dataset = catalog.check("datasets", dataset)
    entry = paper_setting(method, dataset)
    raws = run_configs(entry, root, method_preset, set_)
    check_configs(raws)
    from affectlab.reproduction import reproduction_markdown, run_reproduction
    from affectlab.run import RunInterrupted

    try:
        result, folder = run_reproduction(method, dataset, root, method_preset=method_preset,
                                          out=out, overrides=set_, overwrite=overwrite,
                                          progress=not as_json)
    except RunInterrupted as stop:
        from affectlab.cli.experiment import interrupted

        interrupted(f"{stop}; resume by running the same command again")
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    typer.echo(reproduction_markdown(result))
    typer.echo(f"written: {folder / 'reproduce.json'}, {folder / 'reproduce.md'}, "
               f"{folder / 'reproduce.html'}")
