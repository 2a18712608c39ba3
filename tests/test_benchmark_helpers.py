"""The pure helpers of benchmarks/profile_step.py (operator table, FLOP and matmul-rate
arithmetic) and benchmarks/protocol_time.py (executor options, fold comparison, speed-up)."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[f"benchmark_{name}"] = module
    spec.loader.exec_module(module)
    return module


profile_step = _load("profile_step")
protocol_time = _load("protocol_time")


# --------------------------------------------------------------------------- profile_step

def test_is_matmul_names_products_convolutions_and_attention():
    for name in ("aten::mm", "aten::addmm", "aten::bmm", "aten::mkldnn_convolution",
                 "aten::convolution_backward",
                 "aten::_scaled_dot_product_flash_attention_for_cpu_backward"):
        assert profile_step.is_matmul(name), name
    for name in ("aten::add_", "aten::bernoulli_", "aten::copy_", "Optimizer.step#Adam.step",
                 "autograd::engine::evaluate_function: MmBackward0"):
        assert not profile_step.is_matmul(name), name


def test_op_summary_sums_repeated_names_and_divides_by_steps():
    rows = [("aten::mm", 0.6, 4), ("aten::add_", 0.2, 10), ("aten::mm", 0.2, 2),
            ("Optimizer.step#Adam.step", 0.2, 2), ("aten::copy_", 0.0, 6)]
    out = profile_step.op_summary(rows, steps=2, top=2)
    assert [r["op"] for r in out["table"]] == ["aten::mm", "Optimizer.step#Adam.step"]
    mm = out["table"][0]
    assert mm["self_s"] == pytest.approx(0.4)
    assert mm["calls"] == 3
    assert mm["share"] == pytest.approx(0.8 / 1.2)
    assert mm["matmul"] is True
    assert out["self_s"] == pytest.approx(0.6)
    assert out["matmul_self_s"] == pytest.approx(0.4)
    assert out["other_self_s"] == pytest.approx(0.2)
    assert out["calls"] == 12
    empty = profile_step.op_summary([], steps=1)
    assert empty["table"] == [] and empty["self_s"] == 0 and empty["calls"] == 0
    with pytest.raises(ValueError):
        profile_step.op_summary(rows, steps=0)


def test_matmul_rate_is_the_median_rate_per_size_and_the_best_as_reference():
    ticks = itertools.count()                      # every product takes one clock unit
    out = profile_step.matmul_rate((8, 16), repeats=3, clock=lambda: float(next(ticks)))
    assert out["gflops_per_s"] == {"8": pytest.approx(2 * 8 ** 3 / 1e9),
                                   "16": pytest.approx(2 * 16 ** 3 / 1e9)}
    assert out["reference_gflops_per_s"] == pytest.approx(2 * 16 ** 3 / 1e9)
    assert profile_step.gflops(1000, 2.0) == pytest.approx(1.0)


def test_flop_arithmetic():
    assert profile_step.attention_flops((2, 3, 5, 8), (2, 3, 7, 8), (2, 3, 7, 4)) \
        == 2 * 6 * 5 * 7 * (8 + 4)
    linear, x = torch.nn.Linear(4, 3), torch.randn(2, 4, requires_grad=True)
    total, per_op = profile_step.count_flops(lambda: linear(x).sum().backward())
    assert total == 3 * 2 * 2 * 4 * 3              # forward, grad input, grad weight
    assert sum(per_op.values()) == total
    assert profile_step.bound(0.8, 0.9) == "compute"
    assert profile_step.bound(0.2, 0.3) == "overhead"
    assert profile_step.bound(0.2, 0.7) == "mixed"


# --------------------------------------------------------------------------- protocol_time

def test_executor_options_reads_keyword_parameters():
    class Executor:
        def __init__(self, workers=None, retries=1, *, devices=None, **rest):
            pass

    assert protocol_time.executor_options(Executor.__init__) == {"workers", "retries",
                                                                  "devices"}


def test_differing_folds_ignores_timing():
    local = {"000": {"accuracy": 0.5, "seconds": 3.0}, "001": {"accuracy": 0.7, "seconds": 1.0}}
    same = {"000": {"accuracy": 0.5, "seconds": 9.0}, "001": {"accuracy": 0.7, "seconds": 2.0}}
    assert protocol_time.differing_folds(local, same) == []
    other = {"000": {"accuracy": 0.5, "seconds": 9.0}, "001": {"accuracy": 0.6, "seconds": 1.0}}
    assert protocol_time.differing_folds(local, other) == ["001"]
    assert protocol_time.differing_folds(local, {"000": local["000"]}) == ["001"]
    assert protocol_time.speedups({"local": 10.0, "process": 4.0}) == {"local": 1.0,
                                                                       "process": 2.5}
