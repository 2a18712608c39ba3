"""The equivalence harnesses' helpers (benchmarks/equivalence/common.py): error measure,
state-dict mapping, interleaved timing, table, and the shims for running released code."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "equivalence" / "common.py"
spec = importlib.util.spec_from_file_location("equivalence_common", PATH)
common = importlib.util.module_from_spec(spec)
sys.modules["equivalence_common"] = common
spec.loader.exec_module(common)


# --------------------------------------------------------------------------- rel_error

def test_rel_error_is_relative_to_the_leaf_scale():
    theirs = torch.tensor([1000.0, 1e-12, -2.0], dtype=torch.float64)
    ours = theirs + torch.tensor([1e-6, 1e-9, 0.0], dtype=torch.float64)
    assert common.rel_error(ours, theirs) == pytest.approx(1e-9, rel=1e-6)
    assert common.rel_error(theirs, theirs) == 0.0
    assert common.rel_error(0.0, 0.0) == 0.0
    assert common.rel_error(1.0, 0.0) == 1.0
    assert common.rel_error(2.0, 2.2) == pytest.approx(0.2 / 2.2)


def test_rel_error_nested_and_exact_leaves():
    a = {"x": [torch.ones(2), 3.0], "n": 4, "flag": torch.tensor([True, False])}
    b = {"x": [torch.ones(2) * 1.5, 3.0], "n": 4, "flag": torch.tensor([True, False])}
    assert common.rel_error(a, b) == pytest.approx(0.5 / 1.5)
    assert common.rel_error({**a, "n": 5}, a) == math.inf
    assert common.rel_error({**a, "flag": torch.tensor([True, True])}, a) == math.inf
    assert common.rel_error({"x": 1.0}, {"y": 1.0}) == math.inf
    assert common.rel_error([1.0], [1.0, 2.0]) == math.inf
    assert common.rel_error(torch.ones(2), torch.ones(3)) == math.inf
    assert common.rel_error({1: "a"}, {1: "a"}) == 0.0
    assert common.rel_error(float("nan"), 1.0) == math.inf


def test_floors_for_round_off_only_leaves():
    assert common.rel_error(torch.tensor([1e-17]), torch.tensor([-1e-17])) == 2.0
    assert common.rel_error(torch.tensor([1e-17]), torch.tensor([-1e-17]), floor=1e-5) \
        == pytest.approx(2e-12)
    grads = {"w": torch.tensor([0.5, -0.2]), "zero_in_exact_arithmetic": torch.tensor([1e-17])}
    noisy = {"w": torch.tensor([0.5, -0.2]), "zero_in_exact_arithmetic": torch.tensor([3e-17])}
    assert common.gradient_error(noisy, grads) == pytest.approx(2e-17 / 5e-4)
    assert common.gradient_error({**noisy, "w": torch.tensor([0.6, -0.2])}, grads) \
        == pytest.approx(0.1 / 0.6)


def test_change_errors_masks_gradients_near_adam_eps():
    before = {"w": torch.zeros(3), "steps": torch.tensor(1)}
    theirs = {"w": torch.tensor([-1e-3, 1e-3, -5e-4]), "steps": torch.tensor(2)}
    ours = {"w": torch.tensor([-1e-3, 1e-3, 5e-4]), "steps": torch.tensor(2)}
    grads = {"w": torch.tensor([0.3, -0.1, 1e-8])}     # the last one: |g| ~ eps
    everything, conditioned = common.change_errors(before, ours, theirs, grads)
    assert everything == pytest.approx(1.0) and conditioned == 0.0
    _, counter = common.change_errors(before, {**ours, "steps": torch.tensor(3)}, theirs, grads)
    assert counter == math.inf


def test_within_uses_the_dtype_tolerance():
    assert common.within(5e-10, "float64") and not common.within(5e-9, "float64")
    assert common.within(5e-5, "float32") and not common.within(5e-4, "float32")


# --------------------------------------------------------------------------- mapping

class Released(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Linear(3, 2)
        self.steps = nn.ModuleList(nn.Linear(4, 2) for _ in range(2))
        self.template = nn.Linear(3, 2)             # built, never run


class Ours(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 2)
        self.b = nn.Linear(4, 4)                    # the two steps stacked


MAPPING = common.rules([("a.weight", "first.weight"), ("a.bias", "first.bias"),
                        ("b.weight", ["steps.0.weight", "steps.1.weight"]),
                        ("b.bias", ["steps.0.bias", "steps.1.bias"])])


def test_mapping_copies_and_concatenates():
    torch.manual_seed(0)
    released, ours = Released(), Ours().double()
    common.load_mapped(ours, released.state_dict(), MAPPING, unused=["template.*"])
    assert torch.equal(ours.a.weight, released.first.weight.double())
    assert torch.equal(ours.b.weight[2:], released.steps[1].weight.double())
    assert torch.equal(ours.b.bias[:2], released.steps[0].bias.double())
    assert ours.a.weight.dtype == torch.float64


def test_mapping_reports_every_gap():
    released, ours = Released().state_dict(), Ours().state_dict()
    with pytest.raises(ValueError, match="template.weight.*neither mapped"):
        common.map_state(released, ours, MAPPING)
    with pytest.raises(ValueError, match="'b.bias' has no rule"):
        common.map_state(released, ours, MAPPING[:3], unused=["template.*", "steps.*.bias"])
    with pytest.raises(ValueError, match="filled by 2 rules"):
        common.map_state(released, ours, [*MAPPING, MAPPING[0]], unused=["template.*"])
    bad = common.rules([("a.weight", "first.weight"), ("a.bias", "first.bias"),
                        ("b.weight", "steps.0.weight"), ("b.bias", ["steps.0.bias"])])
    with pytest.raises(ValueError, match="shape"):
        common.map_state(released, ours, bad, unused=["template.*", "steps.1.*"])
    with pytest.raises(ValueError, match="unknown source 'nope'"):
        common.map_state(released, ours, [*MAPPING[:3], common.Rule("b.bias", ("nope",))],
                         unused=["template.*", "steps.*.bias"])


def test_prefixed_rules():
    out = common.prefixed("net.", "model.", ["w", "b"])
    assert out == [common.Rule("net.w", ("model.w",)), common.Rule("net.b", ("model.b",))]
    keys = ["enc.layers.1.w", "enc.layers.10.w", "head.b", "template.w"]
    out = common.rules_from_prefixes(keys, [("blocks.1.", "enc.layers.1."), ("h.", "head.")])
    assert out == [common.Rule("blocks.1.w", ("enc.layers.1.w",)), common.Rule("h.b", ("head.b",))]


# --------------------------------------------------------------------------- timing, table

def test_interleaved_timing_alternates_and_uses_the_clock():
    order, now = [], [0.0]

    def make(name, cost):
        def step():
            order.append(name)
            now[0] += cost
        return step

    times = common.interleaved_timing({"a": make("a", 1.0), "b": make("b", 3.0)}, repeats=3,
                                      warmup=1, clock=lambda: now[0])
    assert order == ["a", "b"] * 4                                  # warm-up round + 3
    assert times == {"a": [1.0] * 3, "b": [3.0] * 3}
    summary = common.timing_summary({"a": [3.0, 1.0, 2.0]})
    assert summary["a"] == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}


def test_interleaved_timing_default_clock_is_cpu_time():
    def busy():
        sum(i * i for i in range(200_000))

    times = common.interleaved_timing({"busy": busy, "idle": lambda: None}, repeats=2,
                                      warmup=0)
    assert min(times["busy"]) > max(times["idle"])


def test_format_table_marks_mismatches():
    table = common.format_table([
        {"component": "kernel", "errors": {"float64": 1e-15, "float32": 2e-7}},
        {"component": "adam step", "errors": {"float64": 3e-6, "float32": 1e-5}},
        {"component": "membership", "errors": {"float64": 0.0}}])
    lines = table.splitlines()
    assert lines[0].startswith("| component | float64 max rel. error | float32")
    assert "| kernel | 1.00e-15 | 2.00e-07 | yes |" in lines
    assert "| adam step | 3.00e-06 | 1.00e-05 | NO |" in lines
    assert "| membership | 0.00e+00 | - | yes |" in lines
    assert lines[-1] == "(tolerance: float64 1e-09, float32 0.0001)"
    step = {"component": "step", "errors": {"float64": 1e-12, "float32": 1e-3},
            "tolerance": common.STEP_TOLERANCE}
    table = common.format_table([step])
    assert "| step* | 1.00e-12 | 1.00e-03 | yes |" in table
    assert table.endswith("; * float32 0.002)")
    assert common.row_matches(step) and not common.row_matches({**step, "tolerance": None})


def test_json_is_strict(tmp_path):
    path = tmp_path / "out" / "r.json"
    common.write_json(path, {"e": math.inf, "t": torch.tensor([1.5]), "n": [float("nan")]})
    assert path.read_text().replace(" ", "").replace("\n", "") == \
        '{"e":"inf","t":[1.5],"n":["nan"]}'


# --------------------------------------------------------------------------- shims

def test_record_backward_and_shims():
    w = torch.ones(2, requires_grad=True)
    with common.record_backward() as calls:
        (w * 3).sum().backward()
        (w * 2).sum().backward()
    assert [float(c) for c in calls] == [6.0, 4.0]
    assert torch.equal(w.grad, torch.full((2,), 5.0))
    with common.cuda_as_cpu():
        x = torch.ones(1)
        assert x.cuda() is x and isinstance(nn.Linear(1, 1).cuda(), nn.Linear)
    with common.float64_port():
        assert torch.zeros(1).float().dtype == torch.float64
    assert torch.zeros(1).dtype == torch.float32
    with common.float64_port(active=False):
        assert torch.zeros(1).double().float().dtype == torch.float32


def test_disable_dropout_and_count_calls():
    net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5),
                        nn.TransformerEncoderLayer(4, 2, 8, dropout=0.1, batch_first=True))
    assert common.disable_dropout(net) == 5       # Dropout, the layer's 3 and its attention
    net.train()
    x = torch.randn(3, 2, 4)
    assert torch.equal(net(x), net(x))
    calls = common.count_calls(net[0])
    net(x)
    net(x)
    assert len(calls) == 2


def test_reshape_rearrange_matches_the_patterns_used():
    x = torch.arange(2 * 5 * 310.0).reshape(2, 5, 310)
    y = common.reshape_rearrange(x, "b n (c d) -> (b n) c d", c=62)
    assert y.shape == (10, 62, 5) and torch.equal(y[7, 3], x[1, 2, 15:20])
    z = common.reshape_rearrange(y, "(b f) d c -> b f d c", f=5)
    assert torch.equal(common.reshape_rearrange(z, "b f d c -> (b f) d c"), y)
    assert torch.equal(common.reshape_rearrange(y, "(b n) c d -> b n (c d)", n=5), x)
    with pytest.raises(NotImplementedError):
        common.reshape_rearrange(y, "a b c -> a c b")


def test_harness_arguments_and_environment(tmp_path):
    parser = common.harness_arguments("Title.\n\nDetails.", "owner/repo", "result.json",
                                      repeats=7, warmup=2)
    args = parser.parse_args(["--official", str(tmp_path)])
    assert (args.official, args.repeats, args.warmup, args.no_timing) == (tmp_path, 7, 2, False)
    assert args.out == common.RESULTS / "result.json"
    assert parser.description == "Title."
    with pytest.raises(SystemExit):
        parser.parse_args([])                       # --official is required
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert common.environment()["threads"] == 1
    finally:
        torch.set_num_threads(threads)
    assert set(common.environment()) == {"torch", "python", "machine", "threads"}
