"""Helpers of the SGMC equivalence harness (benchmarks/equivalence/sgmc_helpers.py), without
the released checkout: script extraction, CPU / float64 stand-ins, key map, draws, shapes."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "equivalence" / "sgmc_helpers.py"
spec = importlib.util.spec_from_file_location("equivalence_sgmc_helpers", PATH)
helpers = importlib.util.module_from_spec(spec)
sys.modules["equivalence_sgmc_helpers"] = helpers
spec.loader.exec_module(helpers)

SCRIPT = '''
import numpy as np
raise SystemExit("the script's top level ran")

def scale(x):
    return FACTOR * x

def train(out, Q):
    for batch in range(2):
        out = torch.reshape(out, (-1, Q, out.shape[-1]))
        out = torch.max(out, dim=1)[0]
        print(batch)
    return out
'''


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "SSL_training(DEAP).py"
    path.write_text(SCRIPT)
    return path


def test_script_functions_are_defined_without_running_the_script(script):
    namespace = {"FACTOR": 3}
    functions = helpers.script_functions(script, ["scale"], namespace)
    assert functions["scale"](2) == 6 and namespace["scale"] is functions["scale"]
    with pytest.raises(LookupError, match="missing_one"):
        helpers.script_functions(script, ["scale", "missing_one"], {})


def test_function_statements_picks_single_lines_in_order(script):
    lines = helpers.function_statements(script, "train", ("torch.max(out", "torch.reshape(out"))
    assert lines.splitlines() == ["out = torch.reshape(out, (-1, Q, out.shape[-1]))",
                                  "out = torch.max(out, dim=1)[0]"]
    scope = {"torch": torch, "Q": 2, "out": torch.arange(8.0).reshape(4, 2)}
    exec(lines, scope)
    assert scope["out"].tolist() == [[2.0, 3.0], [6.0, 7.0]]
    with pytest.raises(LookupError, match="2 statements"):
        helpers.function_statements(script, "train", ("out = torch",))


def test_cuda_device_as_cpu_only_inside_the_context():
    original = torch.Tensor.to
    with helpers.cuda_device_as_cpu():
        assert torch.arange(3).to("cuda").device.type == "cpu"
        assert torch.ones(2).to(device=torch.device("cuda")).device.type == "cpu"
        assert torch.ones(2).to(torch.float64).dtype == torch.float64
    assert torch.Tensor.to is original


def test_torch_float_proxy():
    proxy = helpers.TorchFloatAs(torch.float64)
    assert proxy.float is torch.float64 and proxy.max is torch.max
    assert proxy.tensor([1.0], dtype=proxy.float).dtype == torch.float64


def test_key_map_fills_the_official_model_exactly_once():
    from affectlab.methods.base import create_method

    method = create_method("me_mhacl", {"modalities": ["eeg"]}, n_classes=2,
                           preset="sgmc_official")
    method.build({"eeg": 32})
    ours = nn.ModuleDict({"encoder": method.encoder_, "projector": method.projector_,
                          "classifier": method.classifier_}).state_dict()
    pairs = helpers.sgmc_key_map()
    targets, sources = [t for t, _ in pairs], [s for _, s in pairs]
    assert sorted(targets) == sorted(ours) and len(set(sources)) == len(sources)
    assert {s.split(".")[0] for s in sources} >= {"conv1", "layer4", "fc_projector3",
                                                  "bn_fc2", "fc_classifier3"}
    assert sum("downsample" in s for s in sources) == 4 * (1 + 5)   # first block per stage
    fake = {s: torch.full((1,), float(i)) for i, s in enumerate(sources)}
    mapped = helpers.map_to_affectlab(fake, pairs)
    assert mapped["encoder.stem.0.weight"].item() == sources.index("conv1.weight")
    assert mapped["classifier.7.bias"].item() == sources.index("fc_classifier3.bias")


def test_draws_follow_sgmc_order_and_rows_pair_k_with_k_plus_q():
    perm, split = helpers.sgmc_draws(random.Random(5), 32)
    again = random.Random(5)
    assert perm == again.sample(range(0, 32), 32) and split == again.randint(1, 126)
    assert sorted(perm) == list(range(32))
    rows = helpers.group_rows(perm, q=2, n_subjects=32, n_clips=3)
    assert rows.shape == (3, 4)
    assert rows[2].tolist() == [64 + p for p in perm[:4]]


def test_output_shapes_leave_the_forward_unchanged():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    x = torch.randn(5, 4)
    expected = model(x)
    assert helpers.output_shapes(model, ["0", "2"], x) == [(5, 3), (5, 2)]
    assert torch.equal(model(x), expected) and not model[0]._forward_hooks
