"""No host sync per training step: the PyTorch methods read values back from the device (a
loss, a mask's length, a flag) at most a fixed number of times per epoch, however many
mini-batches the epoch has.

Every way a tensor reaches the host (``item``, ``float`` / ``int`` / ``bool`` / ``index``,
``tolist``, ``cpu``, ``numpy``) and every blocking copy onto a device (``.to(device)``, a
tensor made with ``device=``) called from the package's code is counted during one short
``fit`` of each method; a run with three or more times as many steps per epoch must count the
same, and one more epoch must count more. Integers drawn from a host generator
(:func:`affectlab.training.draw_int`) never touch the device and are not counted.
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from affectlab.methods import METHODS
from affectlab.run import fold_splits, load_config, plan_run
from affectlab.training import draw_int

READS = ("item", "__float__", "__int__", "__bool__", "__index__", "tolist", "cpu", "numpy")
PACKAGE = str(Path(draw_int.__code__.co_filename).parent)
EXEMPT = {draw_int.__code__}

# method -> (tiny options, options for few steps, for many steps, for one more epoch)
CASES = {
    "clmer": ({"encoder_channels": [4, 8], "summary_dim": 8, "d_model": 8, "n_heads": 2,
               "token_length": 4, "pretrain_epochs": 1, "epochs": 1},
              {"batch_size": 12}, {"batch_size": 2}, {"batch_size": 12, "epochs": 2}),
    "dhcm_cacl": ({"d_model": 9, "d_state": 4, "ssm_hidden": 8, "pretrain_epochs": 1,
                   "finetune_epochs": 1},
                  {"batch_size": 8}, {"batch_size": 2}, {"batch_size": 8, "finetune_epochs": 2}),
    "m2s": ({"d_model": 8, "head_dim": 4, "ffn_dim": 8, "proj_dim": 4, "cpc_hidden": 4,
             "club_hidden": 4, "ft_hidden": 4, "epochs": 1, "ft_epochs": 1, "patience": 5},
            {"batch_size": 64, "ft_batch_size": 64}, {"batch_size": 8, "ft_batch_size": 8},
            {"batch_size": 64, "ft_batch_size": 64, "ft_epochs": 2}),
    "uf_ama": ({"d_model": 8, "ffn_dim": 8, "fusion_dim": 8, "head_hidden": 4,
                "fusion_head_hidden": 4, "epochs": 1},
               {"batch_size": 144}, {"batch_size": 36}, {"batch_size": 144, "epochs": 2}),
    "me_mhacl": ({"base_width": 2, "projector_dims": [8, 8, 8], "pretrain_epochs": 1,
                  "finetune_epochs": 1},
                 {"P": 32, "batch_size": 64}, {"P": 4, "batch_size": 8},
                 {"P": 32, "batch_size": 64, "finetune_epochs": 2}),
}


class Reads:
    """Counts host reads and blocking device copies made by the package's own frames."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.sites: collections.Counter = collections.Counter()
        for name in READS:
            monkeypatch.setattr(torch.Tensor, name, self._wrap(getattr(torch.Tensor, name),
                                                               name, lambda *a, **k: True))
        monkeypatch.setattr(torch.Tensor, "to", self._wrap(torch.Tensor.to, "to", _blocking))
        for name in ("tensor", "as_tensor"):
            monkeypatch.setattr(torch, name, self._wrap(getattr(torch, name), name,
                                                        lambda *a, **k: "device" in k))

    def _wrap(self, call, name: str, counted):
        def wrapper(*args, **kwargs):
            frame = sys._getframe(1)
            if frame.f_code.co_filename.startswith(PACKAGE) and frame.f_code not in EXEMPT \
                    and counted(*args, **kwargs):
                self.sites[f"{name} at {Path(frame.f_code.co_filename).name}:"
                           f"{frame.f_lineno}"] += 1
            return call(*args, **kwargs)

        return wrapper


def _blocking(*args, **kwargs) -> bool:
    """``tensor.to(...)`` aimed at a device, without ``non_blocking=True``."""
    targets = [*args[1:], kwargs.get("device")]
    return any(isinstance(t, str | torch.device) for t in targets) \
        and not kwargs.get("non_blocking")


@pytest.fixture(scope="module")
def plans(synthetic_root, windowset_cache):
    """The first fold of each method's demo on small synthetic data (``fast`` preset)."""
    cache: dict[str, object] = {}

    def plan(method: str):
        if method not in cache:
            cls = METHODS.get(method)
            demo = cls.demo
            raw = {"method": method, "dataset": demo["dataset"],
                   "root": str(synthetic_root(demo["dataset"])), "protocol": demo["protocol"],
                   "labels": {"scheme": demo["labels"]}, "method_preset": "fast",
                   "max_folds": 1, "cache_dir": str(windowset_cache),
                   "options": {"protocol": demo.get("options", {}).get("protocol", {}),
                               "method": demo.get("options", {}).get("method", {})}}
            cache[method] = plan_run(load_config(raw))
        return cache[method]

    return plan


def _fit(plan, options: dict, monkeypatch: pytest.MonkeyPatch) -> tuple[collections.Counter,
                                                                         int]:
    """(host reads by site, optimiser steps) of one ``fit`` of the plan's first fold."""
    cls = plan.method_cls
    method = cls(cls.Config(**{**plan.method_config, **options}), n_classes=plan.labels.n_classes,
                 seed=0, device=torch.device("cpu"))
    train, unlabeled, val, _ = fold_splits(plan, plan.folds[0])
    if method.name == "me_mhacl":                    # two windows per trial: a faster fit
        keep = (train.windows.meta["window"] < 2).to_numpy().nonzero()[0]
        train = type(train)(train.windows.subset(keep), train.y[keep], train.modalities)
    steps = [0]
    hook = register_optimizer_step_post_hook(
        lambda *_: steps.__setitem__(0, steps[0] + 1))
    with monkeypatch.context() as patch:
        reads = Reads(patch)
        try:
            method.fit(train, unlabeled=unlabeled, val=val)
        finally:
            hook.remove()
    return reads.sites, steps[0]


@pytest.mark.parametrize("name", list(CASES))
def test_host_reads_do_not_grow_with_the_steps_of_an_epoch(name, plans, monkeypatch):
    torch.set_num_threads(1)
    base, few, many, longer = CASES[name]
    plan = plans(name)
    few_reads, few_steps = _fit(plan, {**base, **few}, monkeypatch)
    many_reads, many_steps = _fit(plan, {**base, **many}, monkeypatch)
    longer_reads, _ = _fit(plan, {**base, **longer}, monkeypatch)
    assert many_steps >= 3 * few_steps > 0, (few_steps, many_steps)
    assert many_reads == few_reads, f"per-step host reads: {many_reads - few_reads}"
    assert sum(longer_reads.values()) > sum(few_reads.values())
