"""Executors: who runs the folds of a run.

``local``    in this process, one fold after another (default; epoch progress bars).
``process``  a local pool of ``workers`` processes (spawned; one torch thread each).
``ray``      one Ray task per fold on a Ray cluster (:mod:`affectlab.ray_executor`).

Workers never receive the tensors through a pipe: a task is the run's configuration (a plain
dict), the fold index and the fold directory. A worker rebuilds the plan from the cached WindowSet
(the path in the configuration's cache), which it loads once and keeps for later tasks. Every
worker writes its fold's files itself, atomically, exactly as the local executor does, so the run
directory and the summary are the same whichever executor ran the folds. A task that raises is
retried once; a second failure is reported to the runner with its traceback.

``run`` runs folds of one plan; ``run_tasks`` runs fold tasks of any number of runs on one pool
(a sweep).
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from affectlab.errors import ConfigError

Done = Callable[[int, dict], None]
Failed = Callable[[int, str], None]


@dataclass(frozen=True)
class FoldTask:
    """What a worker needs for one fold: a picklable, tensor-free description."""

    config: dict[str, Any]
    index: int
    fold_dir: str


_PLANS: dict[str, Any] = {}


TaskDone = Callable[[FoldTask, dict], None]
TaskFailed = Callable[[FoldTask, str], None]


def run_task(task: FoldTask, on_epoch=None, windows=None) -> dict:
    """Worker entry point: (re)build the plan once per process, then fit / predict the fold.

    ``windows``: the plan's WindowSet when it was shipped with the task (else the cache is read).
    """
    from affectlab.run import load_config, plan_run, run_fold

    key = json.dumps(task.config, sort_keys=True)
    if key not in _PLANS:
        _PLANS.clear()
        _PLANS[key] = plan_run(load_config(task.config), windows=windows)
    return run_fold(_PLANS[key], task.index, Path(task.fold_dir), on_epoch)


def tasks_for(plan, run_dir: Path, indices: list[int]) -> list[FoldTask]:
    config = plan.cfg.model_dump()
    return [FoldTask(config, k, str(run_dir / "folds" / f"{k:03d}")) for k in indices]


def _attempt(call: Callable[[], dict], retries: int) -> tuple[dict | None, str]:
    """Call up to ``retries + 1`` times: (result, "") or (None, the last traceback)."""
    trace = ""
    for _ in range(retries + 1):
        try:
            return call(), ""
        except Exception:  # noqa: BLE001  (any fold error is reported, not fatal)
            trace = traceback.format_exc()
    return None, trace


class Executor:
    """Runs the folds of one plan (``run``) or fold tasks of many runs (``run_tasks``)."""

    def run(self, plan, run_dir: Path, indices: list[int], done: Done, failed: Failed,
            on_epoch=None, on_start=None) -> None:
        self.add_plan(plan)
        self.run_tasks(tasks_for(plan, run_dir, indices), lambda t, m: done(t.index, m),
                       lambda t, trace: failed(t.index, trace))

    def add_plan(self, plan) -> None:
        """Called with each plan before its tasks run (an executor may ship its data)."""

    def run_tasks(self, tasks: list[FoldTask], done: TaskDone, failed: TaskFailed,
                  on_epoch=None) -> None:
        raise NotImplementedError


class LocalExecutor(Executor):
    """Run folds in this process, in order."""

    def __init__(self, retries: int = 1):
        self.retries = retries

    def run(self, plan, run_dir: Path, indices: list[int], done: Done, failed: Failed,
            on_epoch=None, on_start=None) -> None:
        from affectlab.run import run_fold

        for k in indices:
            if on_start is not None:
                on_start(plan.folds[k].name)
            fold_dir = run_dir / "folds" / f"{k:03d}"
            metrics, trace = _attempt(partial(run_fold, plan, k, fold_dir, on_epoch),
                                      self.retries)
            if metrics is None:
                failed(k, trace)
            else:
                done(k, metrics)

    def run_tasks(self, tasks: list[FoldTask], done: TaskDone, failed: TaskFailed,
                  on_epoch=None) -> None:
        for task in tasks:
            metrics, trace = _attempt(partial(run_task, task, on_epoch), self.retries)
            if metrics is None:
                failed(task, trace)
            else:
                done(task, metrics)


def _init_worker(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


class ProcessExecutor(Executor):
    """Run folds on a pool of local worker processes."""

    def __init__(self, workers: int | None = None, retries: int = 1):
        self.workers = workers or max(1, (os.cpu_count() or 2) // 2)
        self.retries = retries

    def run_tasks(self, tasks: list[FoldTask], done: TaskDone, failed: TaskFailed,
                  on_epoch=None) -> None:
        if not tasks:
            return
        attempts = [0] * len(tasks)
        with ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"),
                                 initializer=_init_worker,
                                 initargs=(tasks[0].config["threads"],)) as pool:
            running: dict[Future, int] = {pool.submit(run_task, t): i
                                          for i, t in enumerate(tasks)}
            try:
                while running:
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        i = running.pop(future)
                        error = future.exception()
                        if error is None:
                            done(tasks[i], future.result())
                        elif attempts[i] < self.retries:
                            attempts[i] += 1
                            running[pool.submit(run_task, tasks[i])] = i
                        else:
                            failed(tasks[i], "".join(traceback.format_exception(error)))
            except KeyboardInterrupt:
                _stop(pool)
                raise


def _stop(pool: ProcessPoolExecutor) -> None:
    """Ctrl-C: drop the queued folds and end the workers (finished folds stay on disk; a fold
    being written is written atomically, so it is either complete or absent)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()


EXECUTORS = {"local": LocalExecutor, "process": ProcessExecutor}


def check_executor(name: str, workers: int | None = None) -> None:
    """Refuse an unknown executor or a number of workers below 1 (before any work)."""
    if name not in (*EXECUTORS, "ray"):
        raise ConfigError("--executor", f"got {name!r}; allowed: {', '.join(EXECUTORS)}, ray")
    if workers is not None and workers < 1:
        raise ConfigError("--workers", f"got {workers}; allowed: at least 1")


def create_executor(name: str, workers: int | None = None, **options: Any) -> Executor:
    """Build an executor by name (``local``, ``process``, or ``ray`` when installed)."""
    if name == "local":
        return LocalExecutor(**options)
    if name == "process":
        return ProcessExecutor(workers=workers, **options)
    check_executor(name, workers)
    from affectlab.ray_executor import RayExecutor

    return RayExecutor(workers=workers, **options)
