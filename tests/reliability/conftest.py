"""Fixtures of the reliability tests: a small synthetic DEAP, the CLI run in this process, and
a guard that fails a test when data is read."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest


class CliResult(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def deap(synthetic_root) -> Path:
    return synthetic_root("deap", n_subjects=3, seconds=4)


@pytest.fixture
def run_args(deap, windowset_cache) -> Callable[..., list[str]]:
    """``run_args(out, *extra)``: ``affectlab run`` arguments of a fast logreg run on DEAP."""

    def make(out: Path, *extra: str) -> list[str]:
        return ["run", "--method", "logreg", "--dataset", "deap", "--root", str(deap),
                "--protocol", "loso", "--method-preset", "fast", "--preset", "m2s",
                "--set", f"cache_dir={windowset_cache}", "--out", str(out), *extra]

    return make


@pytest.fixture
def cli(monkeypatch, capsys) -> Callable[[list[str]], CliResult]:
    """Run ``affectlab <args>`` in this process through the console entry point (the same
    error handling as the installed command): exit code, stdout, stderr."""
    from affectlab.cli import main

    def invoke(args: list[str]) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["affectlab", *args])
        capsys.readouterr()
        with pytest.raises(SystemExit) as stop:
            main()
        captured = capsys.readouterr()
        code = stop.value.code
        return CliResult(code if isinstance(code, int) else (0 if code is None else 1),
                         captured.out, captured.err)

    return invoke


@pytest.fixture
def no_data_read(monkeypatch) -> None:
    """Any attempt to read or prepare a dataset fails the test."""
    import affectlab.presets

    def refuse(*args, **kwargs):
        raise AssertionError("data was read before the options were checked")

    monkeypatch.setattr(affectlab.presets, "prepare", refuse)
