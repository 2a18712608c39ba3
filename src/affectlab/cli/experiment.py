"""``affectlab run`` and ``affectlab report``."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer

from affectlab.cli import app


def base_config(config: Path | None, set_: list[str], labels: str | None,
                **given: Any) -> dict[str, Any]:
    """The raw run config: ``--config`` file, then the given options, then ``--set``; its
    names checked against the static catalog (before torch or the methods are imported)."""
    from affectlab.cli.checks import check_run_names
    from affectlab.config import apply_overrides, read_config_file

    raw = read_config_file(config) if config else {}
    raw.update({k: str(v) if isinstance(v, Path) else v for k, v in given.items()
                if v is not None})
    if labels is not None:
        raw.setdefault("labels", {})["scheme"] = labels
    for needed in ("method", "dataset", "root"):
        if needed not in raw:
            raise typer.BadParameter(f"--{needed} is required (or give it in --config)")
    raw = apply_overrides(raw, set_)
    check_run_names(raw)
    return raw


def executor_options(executor: str, ray_address: str | None, ship_data: bool,
                     devices: str | None = None,
                     workers_per_device: int | None = None) -> dict[str, Any]:
    """Options only the ray executor takes (checks that Ray is installed) and those only the
    process executor takes (``--devices``: ``auto`` or a comma list such as
    ``cuda:0,cuda:1``); each refused with any other executor."""
    from affectlab.errors import ConfigError

    process = {k: v for k, v in (("devices", devices),
                                 ("workers_per_device", workers_per_device)) if v is not None}
    if process and executor != "process":
        raise ConfigError("--devices" if devices is not None else "--workers-per-device",
                          "applies only to --executor process")
    if executor == "ray":
        from affectlab.ray_executor import import_ray

        import_ray()                    # a missing extra is reported before any work
        return {"address": ray_address, "ship_data": ship_data}
    if ray_address or ship_data:
        raise ConfigError("--ray-address" if ray_address else "--ship-data",
                          "applies only to --executor ray")
    return process


def resume_command(run_dir: Path | None, argv: list[str] | None = None) -> str:
    """The command that resumes an interrupted run: this one, without ``--overwrite`` (which
    would discard the finished folds), with ``--out`` naming the run directory (when given)."""
    args = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--overwrite"]
    if run_dir is not None and not any(a == "--out" or a.startswith("--out=") for a in args):
        args += ["--out", str(run_dir)]
    return shlex.join(["affectlab", *args])


def interrupted(line: str) -> NoReturn:
    """Ctrl-C: one line on stderr, exit code 130."""
    typer.secho(line, fg="red", err=True)
    raise typer.Exit(130)


@app.command()
def run(method: str = typer.Option(None, help="method name (affectlab list)"),
        dataset: str = typer.Option(None, help="dataset name"),
        root: Path = typer.Option(None, help="dataset folder as released"),
        protocol: str = typer.Option(None, help="evaluation protocol"),
        labels: str = typer.Option(None, help="label scheme"),
        preset: str = typer.Option(None, help="data preset (default: the method's)"),
        method_preset: str = typer.Option(None, help="method hyper-parameters: default | paper "
                                          "| fast (smoke test)"),
        config: Path = typer.Option(None, help="YAML config file (CLI options override it)"),
        set_: list[str] = typer.Option([], "--set", help="override, e.g. method.epochs=5, "
                                       "protocol.n_splits=3, data.window_s=2, seed=1"),
        out: Path = typer.Option(None, help="run directory (default runs/<name>)"),
        overwrite: bool = typer.Option(False, help="discard an existing run directory"),
        executor: str = typer.Option("local", help="local | process | ray"),
        workers: int = typer.Option(None, help="worker processes (process), or CPUs of the "
                                    "local Ray instance started without --ray-address"),
        devices: str = typer.Option(None, help="process: pin the workers to CUDA devices, "
                                    "auto | cuda:0,cuda:1 (one device per worker)"),
        workers_per_device: int = typer.Option(None, help="process with --devices: workers "
                                               "per device (default 1)"),
        ray_address: str = typer.Option(None, help="Ray cluster: auto | host:port (default: "
                                        "start a local instance)"),
        ship_data: bool = typer.Option(False, help="ray: send the WindowSet through Ray's "
                                       "object store (no shared storage for data and cache)"),
        track: str = typer.Option(None, help="log the finished run to MLflow: mlflow (store: "
                                  "--set tracking.uri=..., default ./mlruns)"),
        as_json: bool = typer.Option(False, "--json", help="print summary.json")) -> None:
    """Run a method under a protocol; resumable; prints per-fold and mean ± std table.
    ``--method`` also takes an import path ``mymodule:MyMethod`` or a plugin's name."""
    from affectlab.executors import check_executor

    raw = base_config(config, set_, labels, method=method, dataset=dataset, root=root,
                      protocol=protocol, preset=preset, method_preset=method_preset,
                      track=track)
    check_executor(executor, workers)
    from affectlab.run import (
        RunFailed,
        RunInterrupted,
        load_config,
        run_experiment,
        summary_markdown,
    )

    cfg = load_config(raw)
    try:
        summary, run_dir = run_experiment(cfg, out=out, overwrite=overwrite,
                                          progress=not as_json, executor=executor,
                                          workers=workers,
                                          **executor_options(executor, ray_address, ship_data,
                                                             devices, workers_per_device))
    except RunInterrupted as stop:
        interrupted(f"{stop}; resume with: {resume_command(stop.run_dir)}")
    except KeyboardInterrupt:
        interrupted("interrupted before any fold ran (nothing to resume)")
    except RunFailed as failed:
        if failed.summary.get("n_folds"):       # the finished folds' table, then the failures
            typer.echo(json.dumps(failed.summary, indent=1) if as_json else
                       summary_markdown(failed.summary))
        raise
    if as_json:
        typer.echo(json.dumps(summary, indent=1))
        return
    typer.echo((run_dir / "summary.md").read_text())
    typer.echo(f"run directory: {run_dir}")


@app.command()
def report(run_dirs: list[Path] = typer.Argument(..., help="run directories"),
           out: Path = typer.Option(None, help="also write the comparison table (Markdown + "
                                    "CSV) and PNG plots of the runs here")) -> None:
    """(Re)write each run directory's report.html (self-contained: tables, embedded plots,
    honesty flags); with --out also a comparison table and PNG plots of the runs."""
    from affectlab.cli.checks import check_run_dirs

    check_run_dirs(run_dirs)
    from affectlab.html_report import write_run_report

    for run_dir in run_dirs:
        typer.echo(f"report: {write_run_report(run_dir)}")
    if out is None:
        return
    from affectlab.report import write_report

    written = write_report(list(run_dirs), out)
    typer.echo((out / "comparison.md").read_text())
    typer.echo(f"tables: {', '.join(map(str, written['tables']))}")
    typer.echo(f"plots:  {out / 'plots'} ({len(written['plots'])} files)")


@app.command()
def track(run_dirs: list[Path] = typer.Argument(..., help="run directories"),
          uri: str = typer.Option(None, help="tracking URI (default: the run's tracking.uri, "
                                  "MLFLOW_TRACKING_URI, else the file store ./mlruns)"),
          experiment: str = typer.Option(None, help="MLflow experiment (default: the run's "
                                         "tracking.experiment, else <dataset>-<protocol>-"
                                         "<labels>)")) -> None:
    """Log finished run directories to MLflow (params, fold and per-epoch metrics, honesty
    tags, summary and report.html as artifacts); an unchanged run already logged is skipped."""
    from affectlab.cli.checks import check_run_dirs
    from affectlab.tracking import check_tracking

    check_run_dirs(run_dirs)
    check_tracking("mlflow")
    from affectlab.tracking import track_run, tracking_uri

    for run_dir in run_dirs:
        run_id = track_run(run_dir, "mlflow", uri, experiment)
        typer.echo(f"{run_dir}: MLflow run {run_id} ({tracking_uri(uri)})")
