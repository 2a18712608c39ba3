"""Sweeps: a Cartesian grid of overrides run as separate runs, ranked by a validation metric.

A sweep directory holds ``sweep.yaml`` (the base configuration, the grid and the ranking metric),
one run directory per grid point (named from its values, e.g. ``method.C=0.1_seed=0``; each
resumable exactly like a run), ``run.log``, and the tables ``sweep.md``, ``sweep.csv`` (one row
per configuration) and ``sweep_runs.csv`` (one row per run). Every fold of every run goes to one
executor, so a pool or a Ray cluster stays busy across runs. The sweep holds the lock of the
sweep directory and of each run directory for its whole duration: a second sweep (or run) into
them is refused.

A configuration is a grid point without its seeds (:data:`SEED_KEYS`); its runs, one per seed,
are aggregated: mean, std, count and each seed's value. The table is ranked by the mean over
seeds of each run's mean over folds of a metric on each fold's **validation** part (carved from
the training subjects under cross-subject protocols by default, else from the training trials);
the test metric stands beside it and is never used to rank: choosing a configuration by its test
score would make that score optimistic.
"""

from __future__ import annotations

import itertools
import logging
import re
from contextlib import ExitStack
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
    locked_run_dir,
    pending_folds,
    plan_run,
    prepare_run_dir,
    write_summary,
)

log = logging.getLogger("affectlab.run.sweep")
RANK_METRICS = (*evaluation.METRICS, "ovr_accuracy", *evaluation.UNCERTAINTY_METRICS)
LOWER_IS_BETTER = ("ece",)
#: grid keys that make runs of one configuration (seeds of the run and of the protocol's splits)
SEED_KEYS = ("seed", "protocol.seed")
#: columns of :func:`run_table` that are neither grid keys nor metrics
RUN_COLUMNS = ("config", "run", "seed_label", "folds", "n_folds", "complete", "leaky", "val_by",
               "run_dir")


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
    val_by: str = "trial"
    cross_subject: bool = False


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
               executor: Executor, hold: ExitStack | None = None) -> list[SweepRun]:
    """Validate every grid point and create (or resume) its run directory, before any
    training. ``hold``: each run directory's lock is taken into it (held until it closes)."""
    from affectlab.protocols import create_protocol

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
        if hold is not None:
            hold.enter_context(locked_run_dir(out / name))
        run_dir = prepare_run_dir(plan, out / name)
        executor.add_plan(plan)
        protocol = create_protocol(cfg.protocol, cfg.dataset,
                                   **{"seed": cfg.seed, **cfg.options["protocol"]})
        runs.append(SweepRun(name, point, cfg, run_dir, [f.name for f in plan.folds],
                             tasks_for(plan, run_dir, pending_folds(plan, run_dir)),
                             val_by=plan.protocol_options.get("val_by", "trial"),
                             cross_subject=protocol.is_cross_subject()))
    return runs


def run_sweep(raw: dict[str, Any], grid_specs: list[str], out: str | Path | None = None,
              executor: str = "local", workers: int | None = None,
              rank_by: str = "balanced_accuracy", progress: bool = False,
              **executor_options: Any) -> tuple[pd.DataFrame, Path]:
    """Run (or resume) every grid point on one executor; write and return the ranked table
    (one row per configuration, :func:`config_table`; the per-run rows are in
    ``sweep_runs.csv``). The sweep directory and every run directory in it stay locked until
    the sweep ends: a second sweep into the same directory is refused with a
    :class:`ConfigError`.

    Raises :class:`SweepFailed` after writing the table when some folds failed twice.
    """
    if rank_by not in RANK_METRICS:
        raise ConfigError("--rank-by", f"got {rank_by}; valid: {', '.join(RANK_METRICS)}")
    grid = parse_grid(grid_specs)
    out = Path(out) if out else default_sweep_dir(raw)
    with locked_run_dir(out), ExitStack() as hold:
        _attach_log(out)
        atomic_write_text(out / "sweep.yaml", yaml.safe_dump(
            {"config": raw, "grid": grid, "rank_by": rank_by, "seed_keys": list(SEED_KEYS)},
            sort_keys=False))
        runner = create_executor(executor, workers=workers, **executor_options)
        runs = plan_sweep(raw, grid, out, runner, hold)
        log.info("sweep %s: %d runs, %d folds to run, executor %s", out, len(runs),
                 sum(len(r.tasks) for r in runs), executor)
        notes = validation_notes(runs)
        for note in notes:
            log.warning("%s", note)
        _run_folds(runs, runner, progress)
        per_run = run_table(runs, rank_by)
        table = config_table(per_run, rank_by, list(grid))
        write_table(table, out, rank_by, list(grid), per_run, notes)
    failed = [f"{run.name} fold {k}" for run in runs for k in sorted(run.failed)]
    if failed:
        raise SweepFailed(f"{len(failed)} fold(s) failed after a retry: {', '.join(failed)}; "
                          f"tracebacks in {out}/<run>/folds/<k>/error.txt", table, out)
    return table, out


def validation_notes(runs: list[SweepRun]) -> list[str]:
    """A warning for runs of a cross-subject protocol validated on held-out *trials* of the
    training subjects (``protocol.val_by=trial`` set explicitly): their validation score
    measures known subjects, the test score new ones."""
    trial = [run.name for run in runs if run.cross_subject and run.val_by == "trial"]
    if not trial:
        return []
    return [f"**Validation by trial under a cross-subject protocol** ({len(trial)} run(s)): "
            "the validation trials come from the training subjects, the test subjects are new; "
            "the validation score is optimistic and may rank differently (the default, "
            "protocol.val_by=subject, validates on held-out training subjects)."]


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


def run_table(runs: list[SweepRun], rank_by: str) -> pd.DataFrame:
    """One row per run (grid point, seed included), in grid order: its configuration's name,
    the grid values, the validation and test metric (mean and std over folds), folds finished
    and in all, ``complete``, ``leaky``, ``val_by`` and the run directory."""
    rows = []
    for run in runs:
        summary = write_summary(plan_run(run.cfg), run.run_dir, run.failed)
        val = summary.get("val_metrics", {}).get(rank_by, {})
        test = summary.get("metrics", {}).get(rank_by, {})
        rows.append({"config": config_name(run.point), "run": run.name, **run.point,
                     "seed_label": seed_label(run),
                     f"val_{rank_by}": val.get("mean", np.nan),
                     f"val_{rank_by}_std": val.get("std", np.nan),
                     f"test_{rank_by}": test.get("mean", np.nan),
                     f"test_{rank_by}_std": test.get("std", np.nan),
                     "folds": summary.get("n_folds", 0), "n_folds": len(run.fold_names),
                     "complete": summary.get("complete", False),
                     "leaky": summary.get("leaky", False), "val_by": run.val_by,
                     "run_dir": str(run.run_dir)})
    return pd.DataFrame(rows)


def sweep_table(runs: list[SweepRun], rank_by: str) -> pd.DataFrame:
    """One row per configuration (a grid point without its seeds, :data:`SEED_KEYS`), ranked
    by the mean over seeds of the **validation** metric; see :func:`config_table`."""
    return config_table(run_table(runs, rank_by), rank_by, list(runs[0].point) if runs else [])


def config_table(per_run: pd.DataFrame, rank_by: str,
                 grid_keys: list[str] | None = None) -> pd.DataFrame:
    """The runs of :func:`run_table` grouped by configuration (``grid_keys``: the grid's keys,
    by default every column that is not a run column or a metric): ``n_seeds`` (runs with a
    validation score), ``n_runs``, ``seeds``, ``val_<metric>_mean`` / ``_std`` /
    ``_per_seed`` and the same for ``test_``, ``runs`` and ``run_dirs`` (``;``-separated).
    Each seed's value is its run's mean over folds; the std is over seeds (population std, as
    over folds; NaN with one seed). Ranked by ``val_<metric>_mean`` (highest first, ``ece``
    lowest first; configurations without a validation score last); the test columns are never
    used to rank."""
    if grid_keys is None:
        grid_keys = [c for c in per_run.columns if c not in RUN_COLUMNS
                     and not c.startswith(("val_", "test_"))]
    keys = [k for k in grid_keys if k not in SEED_KEYS]
    rows = []
    for name, group in per_run.groupby("config", sort=False):
        row: dict[str, Any] = {"config": name, **{k: group[k].iloc[0] for k in keys}}
        values = {part: group[f"{part}_{rank_by}"].to_numpy(dtype=float)
                  for part in ("val", "test")}
        finite = np.isfinite(values["val"])
        row.update(n_seeds=int(finite.sum()), n_runs=len(group),
                   seeds=";".join(group["seed_label"]))
        for part, arr in values.items():
            ok = arr[np.isfinite(arr)]
            row[f"{part}_{rank_by}_mean"] = float(ok.mean()) if ok.size else np.nan
            row[f"{part}_{rank_by}_std"] = float(ok.std()) if ok.size > 1 else np.nan
            row[f"{part}_{rank_by}_per_seed"] = ";".join(
                "nan" if not np.isfinite(v) else repr(float(v)) for v in arr)
        row.update(folds=int(group["folds"].sum()), n_folds=int(group["n_folds"].sum()),
                   complete=bool(group["complete"].all()), leaky=bool(group["leaky"].any()),
                   val_by=";".join(dict.fromkeys(group["val_by"])),
                   runs=";".join(group["run"]), run_dirs=";".join(group["run_dir"]))
        rows.append(row)
    table = pd.DataFrame(rows).sort_values(f"val_{rank_by}_mean",
                                           ascending=rank_by in LOWER_IS_BETTER,
                                           na_position="last", kind="stable")
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index(drop=True)


def write_table(table: pd.DataFrame, out: Path, rank_by: str, keys: list[str],
                per_run: pd.DataFrame | None = None, notes: list[str] | None = None) -> None:
    """``sweep.csv`` (one row per configuration, every column), ``sweep_runs.csv`` (one row
    per run, i.e. per seed) and ``sweep.md`` (both, readable, with the ranking rule)."""
    from affectlab.report import markdown_table

    atomic_write_text(out / "sweep.csv", table.to_csv(index=False))
    if per_run is not None:
        atomic_write_text(out / "sweep_runs.csv", per_run.to_csv(index=False))
    config_keys = [k for k in keys if k not in SEED_KEYS]
    shown = table[["rank", "config", *config_keys]].astype(str)
    for part in ("val", "test"):
        shown[f"{part} {rank_by}"] = [_mean_std(m, s) for m, s in zip(
            table[f"{part}_{rank_by}_mean"], table[f"{part}_{rank_by}_std"], strict=True)]
    shown["seeds"] = table["n_seeds"].astype(str)
    shown["folds"] = [f"{d}/{n}" + ("" if c else " (INCOMPLETE)") for d, n, c in zip(
        table["folds"], table["n_folds"], table["complete"], strict=True)]
    order = "lowest" if rank_by in LOWER_IS_BETTER else "highest"
    n_runs = int(table["n_runs"].sum())
    lines = [f"# Sweep: {len(table)} configuration(s), {n_runs} run(s)", "",
             f"One row per configuration (the grid point without {' / '.join(SEED_KEYS)}). "
             f"Ranked by the **validation** {rank_by} ({order} first): each seed's run scores "
             "the mean over its folds of the validation part carved from the fold's training "
             "data; shown is the mean ± std of these over seeds (std n/a with one seed). The "
             f"test {rank_by} is shown beside it and is never used to rank or select.", ""]
    lines += [*(notes or []), *([""] if notes else [])]
    if table["leaky"].any():
        lines += ["**LEAKY protocol**: windows of one trial are on both sides of the split.", ""]
    lines.append(markdown_table(shown))
    if per_run is not None:
        runs = per_run[["config", "seed_label"]].astype(str).rename(
            columns={"seed_label": "seed"})
        runs.insert(0, "run", per_run["run"].astype(str))
        for part in ("val", "test"):
            runs[f"{part} {rank_by}"] = [_mean_std(m, s) for m, s in zip(
                per_run[f"{part}_{rank_by}"], per_run[f"{part}_{rank_by}_std"], strict=True)]
        runs["folds"] = [f"{d}/{n}" for d, n in zip(per_run["folds"], per_run["n_folds"],
                                                    strict=True)]
        lines += ["", "## Per seed", "", "Each run's mean ± std over its folds "
                  "(`sweep_runs.csv`).", "", markdown_table(runs)]
    atomic_write_text(out / "sweep.md", "\n".join(lines))


def _mean_std(mean: float, std: float) -> str:
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.4f} ± {std:.4f}" if np.isfinite(std) else f"{mean:.4f} ± n/a"


def config_name(point: dict[str, str]) -> str:
    """A configuration's name: its grid point without the seed keys (``base`` when the grid
    has nothing else)."""
    return point_name({k: v for k, v in point.items() if k not in SEED_KEYS}) or "base"


def seed_label(run: SweepRun) -> str:
    """``seed=1`` (and ``protocol.seed=...`` when the grid varies it): which seed a run is."""
    varied = {k: v for k, v in run.point.items() if k in SEED_KEYS}
    return point_name(varied) if varied else f"seed={run.cfg.seed}"
