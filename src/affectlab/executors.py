"""Executors: who runs the folds of a run.

``local``    in this process, one fold after another (default; epoch progress bars).
``process``  a local pool of ``workers`` processes (spawned; one torch thread each); with
             ``devices`` (CUDA devices, or ``auto`` for every visible one) each worker is
             pinned to one device, ``workers_per_device`` workers per device.
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
import logging
import os
import re
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from affectlab.errors import ConfigError

log = logging.getLogger("affectlab.run")
Done = Callable[[int, dict], None]
Failed = Callable[[int, str], None]


@dataclass(frozen=True)
class FoldTask:
    """What a worker needs for one fold: a picklable, tensor-free description."""

    config: dict[str, Any]
    index: int
    fold_dir: str


_PLANS: dict[str, Any] = {}
_PINNED: list[str] = []         # a worker pinned to one CUDA device: its folds run on "cuda"


TaskDone = Callable[[FoldTask, dict], None]
TaskFailed = Callable[[FoldTask, str], None]


def run_task(task: FoldTask, on_epoch=None, windows=None) -> dict:
    """Worker entry point: (re)build the plan once per process, then fit / predict the fold.

    ``windows``: the plan's WindowSet when it was shipped with the task (else the cache is read).
    """
    from affectlab.run import load_config, plan_run, run_fold

    config = {**task.config, "device": _PINNED[0]} if _PINNED else task.config
    key = json.dumps(config, sort_keys=True)
    if key not in _PLANS:
        _PLANS.clear()
        _PLANS[key] = plan_run(load_config(config), windows=windows)
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


def _init_worker(threads: int, slots: Any = None) -> None:
    """A new worker: ``threads`` torch threads; with ``slots`` (a queue of device indices) it
    takes the next one and sees only that CUDA device (set before torch initialises CUDA)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if slots is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = slots.get()
        _PINNED[:] = ["cuda"]
    import torch

    torch.set_num_threads(threads)


def device_slots(devices: list[str], workers_per_device: int = 1) -> list[str]:
    """The ``CUDA_VISIBLE_DEVICES`` value of each worker: every device ``workers_per_device``
    times, round-robin (``cuda:0, cuda:1`` twice: ``0, 1, 0, 1``)."""
    indices = [device.partition(":")[2] or "0" if device.startswith("cuda") else device
               for device in devices]
    return [index for _ in range(workers_per_device) for index in indices]


def resolve_devices(devices: str | list[str] | None, device: str) -> list[str]:
    """``devices`` as a list of ``cuda:N`` (``auto``: every visible CUDA device, none without
    CUDA); refused with the run's ``device`` cpu / mps, without CUDA, or beyond the GPUs."""
    if devices is None or devices == []:
        return []
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if devices == "auto":
        devices = [f"cuda:{i}" for i in range(count)]
    if isinstance(devices, str):
        devices = [d.strip() for d in devices.split(",") if d.strip()]
    if not devices:
        return []
    bad = next((d for d in devices if not re.fullmatch(r"cuda(:\d+)?|\d+", str(d))), None)
    if bad is not None:
        raise ConfigError("--devices", f"got {bad!r}; allowed: auto or CUDA devices such as "
                                       "cuda:0,cuda:1")
    devices = [f"cuda:{d}" if str(d).isdigit() else str(d) for d in devices]
    if device not in ("auto", "cuda"):
        raise ConfigError("--devices", f"pins workers to CUDA devices, but device is "
                                       f"'{device}'; use device auto or cuda, or no --devices")
    if count == 0:
        raise ConfigError("--devices", "CUDA is not available on this machine; give no "
                                       "--devices")
    beyond = next((d for d in devices if int(d.partition(":")[2] or 0) >= count), None)
    if beyond is not None:
        raise ConfigError("--devices", f"got '{beyond}'; this machine has {count} CUDA "
                                       f"device(s): cuda:0 to cuda:{count - 1}")
    return devices


class ProcessExecutor(Executor):
    """Run folds on a pool of local worker processes.

    devices: CUDA devices to pin the workers to (``["cuda:0", "cuda:1"]``, or ``auto``: every
        visible one); each worker sees one device and runs its folds there, and the pool has
        ``workers_per_device`` workers per device. None: no pinning (the run's ``device``).
    """

    def __init__(self, workers: int | None = None, retries: int = 1,
                 devices: str | list[str] | None = None, workers_per_device: int = 1):
        if workers_per_device < 1:
            raise ConfigError("--workers-per-device", f"got {workers_per_device}; allowed: at "
                                                      "least 1")
        self.requested = workers
        self.workers = workers or max(1, (os.cpu_count() or 2) // 2)
        self.retries = retries
        self.devices, self.workers_per_device = devices, workers_per_device

    def _slots(self, tasks: list[FoldTask]) -> list[str]:
        """Each worker's device (none without ``devices``), checked against every task."""
        devices: list[str] = []
        for device in sorted({t.config["device"] for t in tasks}):
            devices = resolve_devices(self.devices, device)
        slots = device_slots(devices, self.workers_per_device)
        if slots and self.requested is not None and self.requested != len(slots):
            raise ConfigError("--workers", f"got {self.requested}, but --devices gives "
                                           f"{len(devices)} device(s) x {self.workers_per_device} "
                                           f"worker(s) per device = {len(slots)}")
        return slots

    def run_tasks(self, tasks: list[FoldTask], done: TaskDone, failed: TaskFailed,
                  on_epoch=None) -> None:
        if not tasks:
            return
        attempts = [0] * len(tasks)
        context = get_context("spawn")
        slots = self._slots(tasks)
        queue = None
        if slots:
            queue = context.Queue()
            for slot in slots:
                queue.put(slot)
            log.info("process executor: %d workers on CUDA devices %s", len(slots),
                     ", ".join(sorted(set(slots))))
        with ProcessPoolExecutor(len(slots) or self.workers, mp_context=context,
                                 initializer=_init_worker,
                                 initargs=(tasks[0].config["threads"], queue)) as pool:
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
