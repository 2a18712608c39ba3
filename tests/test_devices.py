"""Workers and devices: the process executor's device slots and pinned workers, the options'
checks (CLI included), and the GPUs a Ray task asks for with ``device: auto``."""

from __future__ import annotations

import queue

import pytest

from affectlab import executors
from affectlab.errors import ConfigError
from affectlab.executors import FoldTask, ProcessExecutor, device_slots, resolve_devices
from affectlab.run import load_config

RAW = {"method": "logreg", "dataset": "deap", "root": "data"}


def task(**extra) -> FoldTask:
    return FoldTask(load_config({**RAW, **extra}).model_dump(), 0, "runs/x/folds/000")


def test_two_devices_with_two_workers_each_give_four_slots_round_robin():
    slots = device_slots(["cuda:0", "cuda:1"], 2)
    assert slots == ["0", "1", "0", "1"] and sorted(slots) == ["0", "0", "1", "1"]
    assert device_slots(["cuda"], 3) == ["0", "0", "0"]


def test_each_worker_takes_one_slot_and_sees_only_that_device(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "unset")
    monkeypatch.setattr(executors, "_PINNED", [])
    slots = queue.Queue()
    for slot in device_slots(["cuda:0", "cuda:1"], 2):
        slots.put(slot)
    seen = []
    for _ in range(4):                               # four workers start, one after another
        executors._init_worker(1, slots)
        seen.append(executors.os.environ["CUDA_VISIBLE_DEVICES"])
    assert sorted(seen) == ["0", "0", "1", "1"] and slots.empty()
    assert executors._PINNED == ["cuda"]             # a pinned worker's folds run on cuda:0


def test_pinned_workers_get_a_pool_of_slots(monkeypatch):
    monkeypatch.setattr(executors, "resolve_devices", lambda devices, device: list(devices))
    pool = ProcessExecutor(devices=["cuda:0", "cuda:1"], workers_per_device=2)
    assert pool._slots([task()]) == ["0", "1", "0", "1"]
    with pytest.raises(ConfigError, match="--workers.*2 device.*= 4"):
        ProcessExecutor(workers=3, devices=["cuda:0", "cuda:1"],
                        workers_per_device=2)._slots([task()])
    with pytest.raises(ConfigError, match="--workers-per-device"):
        ProcessExecutor(workers_per_device=0)


def test_devices_are_refused_on_cpu_and_without_cuda(monkeypatch):
    assert resolve_devices(None, "cpu") == [] and resolve_devices([], "cpu") == []
    with pytest.raises(ConfigError, match="--devices.*device is 'cpu'"):
        resolve_devices(["cuda:0"], "cpu")
    with pytest.raises(ConfigError, match="--devices.*allowed: auto"):
        resolve_devices(["gpu0"], "auto")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert resolve_devices("auto", "auto") == []     # auto without CUDA: no pinning
    with pytest.raises(ConfigError, match="--devices: CUDA is not available|CUDA is not"):
        resolve_devices("cuda:0,cuda:1", "auto")
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    assert resolve_devices("auto", "auto") == ["cuda:0", "cuda:1"]
    assert resolve_devices("0,cuda:1", "cuda") == ["cuda:0", "cuda:1"]
    with pytest.raises(ConfigError, match="cuda:2.*2 CUDA device"):
        resolve_devices(["cuda:2"], "auto")


def test_device_options_belong_to_the_process_executor():
    from affectlab.cli.experiment import executor_options

    assert executor_options("process", None, False, "cuda:0", 2) == {
        "devices": "cuda:0", "workers_per_device": 2}
    assert executor_options("process", None, False) == {}
    with pytest.raises(ConfigError, match="--devices.*only to --executor process"):
        executor_options("local", None, False, "auto")
    with pytest.raises(ConfigError, match="--workers-per-device.*only to --executor process"):
        executor_options("local", None, False, None, 2)


def test_ray_auto_device_asks_for_a_gpu_when_the_cluster_has_one(tmp_path, monkeypatch):
    from affectlab.ray_executor import portable, task_gpus

    monkeypatch.chdir(tmp_path)
    auto = task()
    assert auto.config["resources"]["gpus_per_task"] is None
    with_gpus = portable(auto, cluster_gpus=2)
    assert with_gpus.config["device"] == "auto"
    assert with_gpus.config["resources"]["gpus_per_task"] == 1
    without = portable(auto, cluster_gpus=0)
    assert without.config["device"] == "cpu"
    assert without.config["resources"]["gpus_per_task"] == 0
    fraction = task(resources={"gpus_per_task": 0.25})
    assert task_gpus(fraction.config, 2) == 0.25
    assert portable(fraction, 2).config["device"] == "auto"
    none = task(resources={"gpus_per_task": 0})     # asked for no GPU: the CPU
    assert portable(none, 2).config["device"] == "cpu"
    assert portable(task(device="cpu"), 2).config["resources"]["gpus_per_task"] == 0


def test_ray_executor_reads_the_cluster_gpus_and_requests_them(tmp_path, monkeypatch, caplog):
    pytest.importorskip("ray")
    from affectlab.ray_executor import RayExecutor

    monkeypatch.chdir(tmp_path)
    submitted = []

    class Remote:
        def options(self, **options):
            submitted.append(options)
            return self

        def remote(self, sent, *_):
            submitted[-1]["device"] = sent.config["device"]
            return len(submitted)

    class FakeRay:
        exceptions = type("exceptions", (), {"RayError": RuntimeError})

        def remote(self, _):
            return Remote()

        def cluster_resources(self):
            return {"CPU": 4, "GPU": 2}

        def wait(self, refs, num_returns, timeout):
            return list(refs), []

        def get(self, ref):
            return {"accuracy": 1.0}, ""

    runner = RayExecutor.__new__(RayExecutor)
    runner.ray, runner.retries, runner._shipped, runner._methods = FakeRay(), 0, {}, {}
    done = []
    with caplog.at_level("INFO", logger="affectlab.run.ray"):
        runner._run([task()], {}, lambda t, m: done.append(m), lambda t, trace: None)
    assert submitted[0]["num_gpus"] == 1 and submitted[0]["device"] == "auto"
    assert done == [{"accuracy": 1.0}]
    assert "asks for 1 GPU" in caplog.text
