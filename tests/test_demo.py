"""The demo pairs each method with logreg on the same inputs, or says why it cannot."""

from __future__ import annotations

import torch

from affectlab.demo import run_demo

torch.set_num_threads(1)


def test_cross_modal_demo_runs_without_a_baseline_and_says_so(tmp_path):
    lines: list[str] = []
    table = run_demo(tmp_path / "runs", tmp_path / "data", methods=["m2s"], echo=lines.append)
    assert table.exists()
    assert (tmp_path / "runs" / "m2s" / "summary.json").exists()
    assert not (tmp_path / "runs" / "m2s-logreg").exists()
    assert any("no same-input baseline under cross_modal" in line and "chance 0.250" in line
               for line in lines)
