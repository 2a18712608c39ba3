"""Sweeps: a Cartesian grid of overrides run as separate runs, ranked by a validation metric.

A sweep directory holds ``sweep.yaml`` (the base configuration, the grid and the ranking metric),
one run directory per grid point (named from its values, e.g. ``method.C=0.1_seed=0``; each
resumable exactly like a run), ``run.log``, and the table ``sweep.md`` / ``sweep.csv``. Every fold
of every run goes to one executor, so a pool or a Ray cluster stays busy across runs.

The table is ranked by the mean over folds of a metric on each fold's **validation** part (carved
from the training subjects or trials); the test metric stands beside it and is never used to
rank: choosing a configuration by its test score would make that score optimistic.
"""

from __future__ import annotations

import itertools
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from affectlab import evaluation
from affectlab.errors import AffectlabError, ConfigError
from affectlab.executors import Executor, FoldTask, create_executor, tasks_for
from affectlab.run import (
    RunConfig,
    _attach_log,
    _Progress,
    apply_overrides,
    atomic_write_text,
    load_config,
    pending_folds,
    plan_run,
    prepare_run_dir,
    write_summary,
)

log = logging.getLogger("affectlab.run.sweep")
RANK_METRICS = (*evaluation.METRICS, "ovr_accuracy", *evaluation.UNCERTAINTY_METRICS)
LOWER_IS_BETTER = ("ece",)


class SweepFailed(AffectlabError):
    """Some folds failed twice; the table of what finished is written (``out``) and kept."""

    def __init__(self, message: str, table: pd.DataFrame, out: Path):
        super().__init__(message)
        self.table, self.out = table, out


@dataclass
class SweepRun:
    """One grid point: its configuration, run directory and the folds still to run."""

    name: str
    point: dict[str, str]
    cfg: RunConfig
    run_dir: Path
    fold_names: list[str]
    tasks: list[FoldTask]
    failed: dict[int, str] = field(default_factory=dict)


def split_values(text: str) -> list[str]:
    """``"1,[a,b],x"`` -> ``["1", "[a,b]", "x"]``: commas inside brackets do not split."""
    values, depth, current = [], 0, ""
    for char in text:
        depth += (char in "[{") - (char in "]}")
        if char == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += char
    return [*values, current.strip()]


def parse_grid(specs: list[str]) -> dict[str, list[str]]:
    """``["method.C=0.1,1", "seed=0,1"]`` -> ``{"method.C": ["0.1", "1"], "seed": ["0", "1"]}``
    (values stay text; each is parsed as YAML when applied, like ``--set``)."""
    grid: dict[str, list[str]] = {}
    for spec in specs:
        key, sep, text = spec.partition("=")
        key = key.strip()
        values = split_values(text)
        if not sep or not key or "" in values:
            raise ConfigError("--grid", f"'{spec}' is not key=v1,v2,...")
        if key in grid:
            raise ConfigError("--grid", f"'{key}' is given twice")
        if len(set(values)) != len(values):
            raise ConfigError("--grid", f"'{spec}' repeats a value")
        grid[key] = values
    if not grid:
        raise ConfigError("--grid", "give at least one --grid key=v1,v2,...")
    return grid


def grid_points(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    """Every combination of the grid's values, first key slowest."""
    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]


def point_name(point: dict[str, str]) -> str:
    """A directory name from a grid point: ``method.C=0.1_seed=0``."""
    text = "_".join(f"{key}={value}" for key, value in point.items())
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", text).strip("-")


def default_sweep_dir(raw: dict[str, Any]) -> Path:
    cfg = load_config(raw)
    return Path("sweeps") / f"{cfg.method}-{cfg.dataset}-{cfg.protocol}"


def plan_sweep(raw: dict[str, Any], grid: dict[str, list[str]], out: Path,
               executor: Executor) -> list[SweepRun]:
    """Validate every grid point and create (or resume) its run directory, before any
    training."""
    runs: list[SweepRun] = []
    for point in grid_points(grid):
        name = point_name(point)
        if any(run.name == name for run in runs):
            raise ConfigError("--grid", f"two grid points share the directory name '{name}'")
        cfg = load_config(apply_overrides(raw, [f"{k}={v}" for k, v in point.items()]))
        plan = plan_run(cfg)
        without = [f.name for f in plan.folds if not len(f.val)]
        if without:
            raise ConfigError("protocol.val_fraction",
                              f"a sweep ranks by validation, but folds {', '.join(without)} "
                              f"of {name} have no validation part")
        run_dir = prepare_run_dir(plan, out / name)
        executor.add_plan(plan)
        runs.append(SweepRun(name, point, cfg, run_dir, [f.name for f in plan.folds],
                             tasks_for(plan, run_dir, pending_folds(plan, run_dir))))
    return runs


def run_sweep(raw: dict[str, Any], grid_specs: list[str], out: str | Path | None = None,
              executor: str = "local", workers: int | None = None,
              rank_by: str = "balanced_accuracy", progress: bool = False,
              **executor_options: Any) -> tuple[pd.DataFrame, Path]:
    """Run (or resume) every grid point on one executor; write and return the ranked table.

    Raises :class:`SweepFailed` after writing the table when some folds failed twice.
    """
    if rank_by not in RANK_METRICS:
        raise ConfigError("--rank-by", f"got {rank_by}; valid: {', '.join(RANK_METRICS)}")
    grid = parse_grid(grid_specs)
    out = Path(out) if out else default_sweep_dir(raw)
    out.mkdir(parents=True, exist_ok=True)
    _attach_log(out)
    atomic_write_text(out / "sweep.yaml", yaml.safe_dump(
        {"config": raw, "grid": grid, "rank_by": rank_by}, sort_keys=False))
    runner = create_executor(executor, workers=workers, **executor_options)
    runs = plan_sweep(raw, grid, out, runner)
    log.info("sweep %s: %d runs, %d folds to run, executor %s", out, len(runs),
             sum(len(r.tasks) for r in runs), executor)
    _run_folds(runs, runner, progress)
    table = sweep_table(runs, rank_by)
    write_table(table, out, rank_by, list(grid))
    failed = [f"{run.name} fold {k}" for run in runs for k in sorted(run.failed)]
    if failed:
        raise SweepFailed(f"{len(failed)} fold(s) failed after a retry: {', '.join(failed)}; "
                          f"tracebacks in {out}/<run>/folds/<k>/error.txt", table, out)
    return table, out


def _run_folds(runs: list[SweepRun], runner: Executor, progress: bool) -> None:
    """All pending folds of all runs on one executor; one progress bar over every fold."""
    owner = {task.fold_dir: run for run in runs for task in run.tasks}
    total = sum(len(run.fold_names) for run in runs)
    with _Progress(progress, total) as bar:
        bar.advance(total - len(owner))

        def done(task: FoldTask, metrics: dict) -> None:
            run = owner[task.fold_dir]
            log.info("%s fold %d (%s): accuracy %.4f, balanced %.4f, %.1fs", run.name,
                     task.index, run.fold_names[task.index], metrics["accuracy"],
                     metrics["balanced_accuracy"], metrics["seconds"])
            bar.advance(1)

        def failed(task: FoldTask, trace: str) -> None:
            run = owner[task.fold_dir]
            run.failed[task.index] = trace
            fold_dir = Path(task.fold_dir)
            fold_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(fold_dir / "error.txt", trace)
            log.error("%s fold %d failed twice:\n%s", run.name, task.index, trace)
            bar.advance(1)

        runner.run_tasks([task for run in runs for task in run.tasks], done, failed,
                         on_epoch=bar.epoch)


def sweep_table(runs: list[SweepRun], rank_by: str) -> pd.DataFrame:
    """One row per run: grid values, validation and test metric (mean, std), ranked by
    validation."""
    rows = []
    for run in runs:
        summary = write_summary(plan_run(run.cfg), run.run_dir, run.failed)
        val = summary.get("val_metrics", {}).get(rank_by, {})
        test = summary.get("metrics", {}).get(rank_by, {})
        rows.append({"run": run.name, **run.point,
                     f"val_{rank_by}": val.get("mean", np.nan),
                     f"val_{rank_by}_std": val.get("std", np.nan),
                     f"test_{rank_by}": test.get("mean", np.nan),
                     f"test_{rank_by}_std": test.get("std", np.nan),
                     "folds": summary.get("n_folds", 0), "n_folds": len(run.fold_names),
                     "complete": summary.get("complete", False),
                     "leaky": summary.get("leaky", False), "run_dir": str(run.run_dir)})
    table = pd.DataFrame(rows).sort_values(f"val_{rank_by}", ascending=rank_by in LOWER_IS_BETTER,
                                           na_position="last", kind="stable")
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index(drop=True)


def write_table(table: pd.DataFrame, out: Path, rank_by: str, keys: list[str]) -> None:
    """``sweep.csv`` (every column) and ``sweep.md`` (readable, with the ranking rule)."""
    from affectlab.report import markdown_table

    atomic_write_text(out / "sweep.csv", table.to_csv(index=False))
    shown = table[["rank", "run", *keys]].astype(str)
    for part in ("val", "test"):
        shown[f"{part} {rank_by}"] = [_mean_std(m, s) for m, s in zip(
            table[f"{part}_{rank_by}"], table[f"{part}_{rank_by}_std"], strict=True)]
    shown["folds"] = [f"{d}/{n}" + ("" if c else " (INCOMPLETE)") for d, n, c in zip(
        table["folds"], table["n_folds"], table["complete"], strict=True)]
    order = "lowest" if rank_by in LOWER_IS_BETTER else "highest"
    lines = [f"# Sweep: {len(table)} runs", "",
             f"Ranked by **validation** {rank_by} ({order} first; mean ± std over folds, each "
             f"fold's validation part is carved from its training data). The test {rank_by} "
             "is shown beside it and is never used to rank or select.", ""]
    if table["leaky"].any():
        lines += ["**LEAKY protocol**: windows of one trial are on both sides of the split.", ""]
    atomic_write_text(out / "sweep.md", "\n".join([*lines, markdown_table(shown)]))


def _mean_std(mean: float, std: float) -> str:
    return "n/a" if not np.isfinite(mean) else f"{mean:.4f} ± {std:.4f}"
