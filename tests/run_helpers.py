"""Run configurations shared by the runner tests."""

from __future__ import annotations

from pathlib import Path

from affectlab.run import load_config


def config(deap: Path, tmp_path: Path, **extra):
    """A ``logreg`` LOSO run on a synthetic DEAP copy (``fast`` preset, ``m2s`` data preset,
    cache under ``tmp_path``); ``extra`` overrides any field."""
    raw = {"method": "logreg", "dataset": "deap", "root": str(deap), "protocol": "loso",
           "method_preset": "fast", "cache_dir": str(tmp_path / "cache"), "preset": "m2s"}
    raw.update(extra)
    return load_config(raw)
