"""Executors: who runs the folds of a run.

``local``    in this process, one fold after another (default; epoch progress bars).
``process``  a local pool of ``workers`` processes (spawned; one torch thread each).

Workers never receive the tensors through a pipe: a task is the run's configuration (a plain
dict), the fold index and the fold directory. A worker rebuilds the plan from the cached WindowSet
(the path in the configuration's cache), which it loads once and keeps for later tasks. Every
worker writes its fold's files itself, atomically, exactly as the local executor does, so the run
directory and the summary are the same whichever executor ran the folds. A task that raises is
retried once; a second failure is reported to the runner with its traceback.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
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


def run_task(task: FoldTask) -> dict:
    """Worker entry point: (re)build the plan once per process, then fit / predict the fold."""
    from affectlab.run import load_config, plan_run, run_fold

    key = json.dumps(task.config, sort_keys=True)
    if key not in _PLANS:
        _PLANS.clear()
        _PLANS[key] = plan_run(load_config(task.config))
    return run_fold(_PLANS[key], task.index, Path(task.fold_dir))


def tasks_for(plan, run_dir: Path, indices: list[int]) -> list[FoldTask]:
    config = plan.cfg.model_dump()
    return [FoldTask(config, k, str(run_dir / "folds" / f"{k:03d}")) for k in indices]


class LocalExecutor:
    """Run folds in this process, in order."""

    def __init__(self, retries: int = 1):
        self.retries = retries

    def run(self, plan, run_dir: Path, indices: list[int], done: Done, failed: Failed,
            on_epoch=None, on_start=None) -> None:
        from affectlab.run import run_fold

        for k in indices:
            if on_start is not None:
                on_start(plan.folds[k].name)
            for attempt in range(self.retries + 1):
                try:
                    metrics = run_fold(plan, k, run_dir / "folds" / f"{k:03d}", on_epoch)
                except Exception:  # noqa: BLE001  (any fold error is reported, not fatal)
                    if attempt == self.retries:
                        failed(k, traceback.format_exc())
                    continue
                done(k, metrics)
                break


def _init_worker(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


class ProcessExecutor:
    """Run folds on a pool of local worker processes."""

    def __init__(self, workers: int | None = None, retries: int = 1):
        self.workers = workers or max(1, (os.cpu_count() or 2) // 2)
        self.retries = retries

    def run(self, plan, run_dir: Path, indices: list[int], done: Done, failed: Failed,
            on_epoch=None, on_start=None) -> None:
        if not indices:
            return
        tasks = {t.index: t for t in tasks_for(plan, run_dir, indices)}
        attempts = dict.fromkeys(tasks, 0)
        with ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"),
                                 initializer=_init_worker,
                                 initargs=(plan.cfg.threads,)) as pool:
            running: dict[Future, int] = {pool.submit(run_task, t): k for k, t in tasks.items()}
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    k = running.pop(future)
                    error = future.exception()
                    if error is None:
                        done(k, future.result())
                    elif attempts[k] < self.retries:
                        attempts[k] += 1
                        running[pool.submit(run_task, tasks[k])] = k
                    else:
                        failed(k, "".join(traceback.format_exception(error)))


EXECUTORS = {"local": LocalExecutor, "process": ProcessExecutor}


def create_executor(name: str, workers: int | None = None, **options: Any):
    """Build an executor by name (``local``, ``process``, or ``ray`` when installed)."""
    if name == "local":
        return LocalExecutor(**options)
    if name == "process":
        return ProcessExecutor(workers=workers, **options)
    if name == "ray":
        from affectlab.ray_executor import RayExecutor

        return RayExecutor(workers=workers, **options)
    raise ConfigError("--executor", f"unknown executor '{name}'; valid: local, process, ray")
