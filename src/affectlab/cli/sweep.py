"""``affectlab sweep``."""

from __future__ import annotations

from pathlib import Path

import typer

from affectlab.cli import app
from affectlab.cli.experiment import base_config, executor_options, interrupted, resume_command


@app.command()
def sweep(method: str = typer.Option(None, help="method name (affectlab list)"),
          dataset: str = typer.Option(None, help="dataset name"),
          root: Path = typer.Option(None, help="dataset folder as released"),
          protocol: str = typer.Option(None, help="evaluation protocol"),
          grid: list[str] = typer.Option([], help="key=v1,v2,... (repeatable; keys as in "
                                         "--set, e.g. method.C=0.1,1 or seed=0,1,2)"),
          labels: str = typer.Option(None, help="label scheme"),
          preset: str = typer.Option(None, help="data preset (default: the method's)"),
          method_preset: str = typer.Option(None, help="method hyper-parameters: default | "
                                            "paper | fast (smoke test)"),
          config: Path = typer.Option(None, help="YAML config file (CLI options override it)"),
          set_: list[str] = typer.Option([], "--set", help="override shared by every run"),
          out: Path = typer.Option(None, help="sweep directory (default "
                                   "sweeps/<method>-<dataset>-<protocol>)"),
          rank_by: str = typer.Option("balanced_accuracy", help="metric whose VALIDATION "
                                      "mean over seeds ranks the configurations"),
          executor: str = typer.Option("local", help="local | process | ray"),
          workers: int = typer.Option(None, help="worker processes (process), or CPUs of the "
                                      "local Ray instance started without --ray-address"),
          devices: str = typer.Option(None, help="process: pin the workers to CUDA devices, "
                                      "auto | cuda:0,cuda:1 (one device per worker)"),
          workers_per_device: int = typer.Option(None, help="process with --devices: workers "
                                                 "per device (default 1)"),
          ray_address: str = typer.Option(None, help="Ray cluster: auto | host:port "
                                          "(default: start a local instance)"),
          ship_data: bool = typer.Option(False, help="ray: send each run's WindowSet through "
                                         "Ray's object store")) -> None:
    """Run a grid (one resumable run per grid point) and rank its configurations (grid points
    without seed / protocol.seed) by the mean over seeds of a validation metric."""
    from affectlab.executors import check_executor

    raw = base_config(config, set_, labels, method=method, dataset=dataset, root=root,
                      protocol=protocol, preset=preset, method_preset=method_preset)
    check_executor(executor, workers)
    from affectlab.run import check_device, check_folder
    from affectlab.sweep import SweepFailed, run_sweep

    if out is not None:
        check_folder("--out", out)
    if executor != "ray" and isinstance(raw.get("device"), str):   # Ray's workers: their own
        check_device(raw["device"])
    try:
        _, sweep_dir = run_sweep(raw, grid, out, executor=executor, workers=workers,
                                 rank_by=rank_by, progress=True,
                                 **executor_options(executor, ray_address, ship_data,
                                                    devices, workers_per_device))
    except SweepFailed as failed:
        typer.echo((failed.out / "sweep.md").read_text())
        raise
    except KeyboardInterrupt:
        interrupted(f"interrupted: finished folds are kept; resume with: "
                    f"{resume_command(None)}")
    typer.echo((sweep_dir / "sweep.md").read_text())
    typer.echo(f"sweep directory: {sweep_dir}")
