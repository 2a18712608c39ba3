"""Shared fixtures: synthetic datasets written once per test run, handed out by path."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _writer_hash() -> str:
    """Hash of the dataset modules' sources: copies written by older writers are not reused
    (the shared folder outlives one test run)."""
    import hashlib

    import affectlab.datasets

    digest = hashlib.sha256()
    for path in sorted(Path(affectlab.datasets.__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """``synthetic_root(name, n_subjects=3, seconds=None)`` -> folder of a synthetic dataset.

    Each (name, n_subjects, seconds) is written once per test run, shared by the xdist workers
    through a lock file in the common temporary folder. Tests must not modify the folder; copy
    it (``shutil.copytree``) before breaking files.
    """
    from affectlab.datasets import synth

    shared = tmp_path_factory.getbasetemp().parent / f"affectlab-synthetic-{_writer_hash()}"
    shared.mkdir(exist_ok=True)

    def make(name: str, n_subjects: int = 3, seconds: float | None = None) -> Path:
        out = shared / f"{name}-{n_subjects}-{seconds}"
        with open(shared / f"{out.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (out / "manifest.json").exists():
                synth(out, [name], n_subjects=n_subjects, seed=0, seconds=seconds)
        return out / name

    return make


@pytest.fixture(scope="session")
def windowset_cache(tmp_path_factory):
    """One WindowSet cache folder per test run (the cache's own keys keep entries apart)."""
    path = tmp_path_factory.getbasetemp().parent / "affectlab-windowsets"
    path.mkdir(exist_ok=True)
    return path
