"""Shared fixtures: synthetic datasets written once per test session, handed out by path."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """``synthetic_root(name, n_subjects=3, seconds=None)`` -> folder of a synthetic dataset.

    Each (name, n_subjects, seconds) is written once per session (per xdist worker). Tests must
    not modify the folder; copy it (``shutil.copytree``) before breaking files.
    """
    from affectlab.datasets import synth

    cache: dict[tuple, object] = {}

    def make(name: str, n_subjects: int = 3, seconds: float | None = None):
        key = (name, n_subjects, seconds)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"synth_{name}")
            synth(out, [name], n_subjects=n_subjects, seed=0, seconds=seconds)
            cache[key] = out / name
        return cache[key]

    return make


@pytest.fixture(scope="session")
def windowset_cache(tmp_path_factory):
    """One WindowSet cache folder per test session (per xdist worker)."""
    return tmp_path_factory.mktemp("windowsets")
