"""Folds as Ray tasks, on a local Ray instance or on a cluster (``pip install affectlab[ray]``).

A task is a :class:`~affectlab.executors.FoldTask`: the run's configuration (a plain dict, with
``root``, ``cache_dir`` and the fold directory made absolute), the fold index and the fold
directory. The worker rebuilds the plan from the cached WindowSet and writes the fold's files
itself, so the dataset folder, the WindowSet cache and the run directory must be on storage that
every node sees at the same path. With ``ship_data=True`` the driver puts each run's WindowSet in
Ray's object store instead, and workers need only the run directory.

Each task asks for ``resources.cpus_per_task`` CPUs and ``resources.gpus_per_task`` GPUs
(fractions allowed) of its run's configuration; a task that asks for no GPU runs on the CPU.
Unset, ``gpus_per_task`` is 1 for ``device: auto`` on a cluster with GPUs (the task then runs on
the GPU Ray assigns it, which Ray makes its only visible device), else 0.
Ray's own retries are off: a failed task is submitted once more, and a second failure is
reported with the worker's traceback. Each task also carries its run's method class, so a method
defined in the driver's script (not importable by the workers) runs as well.
"""

from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from affectlab.errors import ConfigError
from affectlab.executors import Executor, FoldTask, TaskDone, TaskFailed, run_task
from affectlab.plugins import pin

log = logging.getLogger("affectlab.run.ray")
WAIT_S = 1.0            # longest wait for finished tasks before polling again


def import_ray() -> ModuleType:
    """The ``ray`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor", "ray is not installed; install the extra with "
                                        "pip install affectlab[ray]") from None
    return ray


def _fold(task: FoldTask, windows: Any = None,
          method_cls: type | None = None) -> tuple[dict | None, str]:
    """The Ray task: one attempt at a fold; an error comes back as its traceback.

    ``method_cls``: the driver's method class, which the task's method name then means here
    (Ray pickles a class no worker can import, e.g. one defined in a script, by value)."""
    try:
        if method_cls is not None:
            pin(task.config["method"], method_cls)
        return run_task(task, windows=windows), ""
    except Exception:  # noqa: BLE001  (reported to the driver, which retries once)
        return None, traceback.format_exc()


def _key(config: dict) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def task_gpus(config: dict, cluster_gpus: float = 0) -> float:
    """The GPUs a task asks for: ``resources.gpus_per_task``, or when unset 1 for ``device:
    auto`` on a cluster with GPUs, else 0."""
    gpus = config["resources"].get("gpus_per_task")
    if gpus is not None:
        return gpus
    return 1 if config["device"] == "auto" and cluster_gpus > 0 else 0


def portable(task: FoldTask, cluster_gpus: float = 0) -> FoldTask:
    """The task as any node needs it: absolute paths (dataset, cache, fold directory), the
    GPUs it asks for (:func:`task_gpus`, given the cluster's), and ``device: auto`` made
    ``cpu`` when that is none (Ray would not count its use)."""
    from affectlab.presets import default_cache_dir

    config = dict(task.config)
    config["root"] = str(Path(config["root"]).resolve())
    config["cache_dir"] = str(Path(config["cache_dir"] or default_cache_dir()).resolve())
    gpus = task_gpus(config, cluster_gpus)
    config["resources"] = {**config["resources"], "gpus_per_task": gpus}
    if config["device"] == "auto" and not gpus:
        config["device"] = "cpu"
    return FoldTask(config, task.index, str(Path(task.fold_dir).resolve()))


class RayExecutor(Executor):
    """One Ray task per fold.

    address: ``auto`` (the cluster this node belongs to), ``host:port`` (a head node), or
        ``None``: use the Ray instance this process is connected to, else start a local one
        with ``workers`` CPUs (default 2). A connection made here is closed afterwards.
    ship_data: put each run's WindowSet in the object store (no shared storage needed for the
        data; the run directory must still be shared).
    """

    def __init__(self, workers: int | None = None, address: str | None = None,
                 retries: int = 1, ship_data: bool = False):
        self.ray = import_ray()
        self.workers, self.address = workers, address
        self.retries, self.ship_data = retries, ship_data
        self._connected_here = False
        self._shipped: dict[str, Any] = {}
        self._methods: dict[str, type] = {}

    def add_plan(self, plan) -> None:
        self._methods[_key(plan.cfg.model_dump())] = plan.method_cls
        if self.ship_data:
            self._connect()
            self._shipped[_key(plan.cfg.model_dump())] = self.ray.put(plan.windows)

    def run_tasks(self, tasks: list[FoldTask], done: TaskDone, failed: TaskFailed,
                  on_epoch=None) -> None:
        running: dict[Any, int] = {}
        try:
            if tasks:
                self._connect()
                self._check_resources(tasks)
                self._run(tasks, running, done, failed)
        finally:
            for ref in running:         # left only when interrupted
                self.ray.cancel(ref)
            self._disconnect()

    def _run(self, tasks: list[FoldTask], running: dict[Any, int], done: TaskDone,
             failed: TaskFailed) -> None:
        remote = self.ray.remote(_fold)
        shipped = [self._shipped.get(_key(t.config)) for t in tasks]
        methods = [self._methods.get(_key(t.config)) for t in tasks]
        cluster_gpus = self.ray.cluster_resources().get("GPU", 0)
        sent = [portable(t, cluster_gpus) for t in tasks]
        _log_devices(tasks, cluster_gpus)

        def submit(i: int) -> None:
            res = sent[i].config["resources"]
            ref = remote.options(num_cpus=res["cpus_per_task"], num_gpus=res["gpus_per_task"],
                                 max_retries=0, name=f"fold {tasks[i].index}")
            running[ref.remote(sent[i], shipped[i], methods[i])] = i

        attempts = [0] * len(tasks)
        for i in range(len(tasks)):
            submit(i)
        while running:
            ready, _ = self.ray.wait(list(running), num_returns=len(running), timeout=WAIT_S)
            for ref in ready:
                i = running.pop(ref)
                metrics, trace = self._result(ref)
                if metrics is not None:
                    done(tasks[i], metrics)
                elif attempts[i] < self.retries:
                    attempts[i] += 1
                    log.warning("fold %d in %s failed; retrying:\n%s", tasks[i].index,
                                tasks[i].fold_dir, trace)
                    submit(i)
                else:
                    failed(tasks[i], trace)

    def _result(self, ref: Any) -> tuple[dict | None, str]:
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:     # the worker died, out of memory, ...
            return None, "".join(traceback.format_exception(exc))

    def _connect(self) -> None:
        if self.ray.is_initialized():
            return
        if self.address:
            try:
                self.ray.init(address=self.address, logging_level=logging.WARNING)
            except ConnectionError as exc:
                raise ConfigError("--ray-address", f"{str(exc).rstrip('.')}. Is the cluster "
                                  "running (ray status on the head)? A cluster with token "
                                  "authentication also needs RAY_AUTH_MODE=token and its token "
                                  "here") from exc
        else:
            self.ray.init(num_cpus=self.workers or 2, include_dashboard=False,
                          logging_level=logging.WARNING)
        self._connected_here = True

    def _disconnect(self) -> None:
        self._shipped.clear()
        self._methods.clear()
        if self._connected_here:
            self.ray.shutdown()
            self._connected_here = False

    def _check_resources(self, tasks: list[FoldTask]) -> None:
        """Refuse requests beyond the cluster's total (Ray would wait for them forever)."""
        have = self.ray.cluster_resources()
        for res in {_key(t.config["resources"]): t.config["resources"] for t in tasks}.values():
            for field, name in (("cpus_per_task", "CPU"), ("gpus_per_task", "GPU")):
                if (res[field] or 0) > have.get(name, 0):
                    raise ConfigError(f"resources.{field}",
                                      f"a task asks for {res[field]} {name}; the Ray cluster "
                                      f"has {have.get(name, 0):g}")


def _log_devices(tasks: list[FoldTask], cluster_gpus: float) -> None:
    """Which device the tasks of ``device: auto`` without ``resources.gpus_per_task`` got."""
    if not any(t.config["device"] == "auto" and t.config["resources"].get("gpus_per_task")
               is None for t in tasks):
        return
    if cluster_gpus > 0:
        log.info("ray: device auto on a cluster with %g GPU(s): each fold asks for 1 GPU "
                 "(resources.gpus_per_task=0 runs on CPUs)", cluster_gpus)
    else:
        log.info("ray: device auto on a cluster without GPUs: the folds run on CPUs")
