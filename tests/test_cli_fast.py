"""A fast command line: the static catalog matches the live registries, and ``--help``,
``list`` and every name or argument error answer without importing torch, scikit-learn, pandas
or the methods."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from affectlab import catalog
from affectlab.catalog_data import CATALOG

HEAVY = ("torch", "sklearn", "pandas", "scipy", "mne", "affectlab.methods", "affectlab.run")
# Runs the console entry point on argv, then reports which heavy modules it imported.
PROBE = f"""
import sys
from affectlab.cli import main
try:
    main()
finally:
    print("HEAVY:", [m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr)
"""
RUN = ["run", "--method", "logreg", "--dataset", "deap", "--root", "data"]


def probe(*args: str) -> tuple[int, str, list[str]]:
    """Exit code, stderr (without the probe's line) and the heavy modules imported."""
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True,
                          text=True, timeout=60)
    *lines, last = proc.stderr.rstrip().splitlines()
    assert last.startswith("HEAVY: "), proc.stderr
    return proc.returncode, "\n".join(lines), eval(last.removeprefix("HEAVY: "))  # noqa: S307


def test_catalog_matches_the_live_registries():
    assert catalog.live() == CATALOG, (
        "affectlab/catalog_data.py is out of date: run python -m affectlab.catalog")


@pytest.mark.parametrize(("args", "message"), [
    (["list", "lgoreg"], "unknown method 'lgoreg'; valid: clmer,"),
    (["info", "deep", "--root", "data"], "unknown dataset 'deep'; valid: amigos,"),
    (["prepare", "seed_vi", "--root", "data"], "unknown dataset 'seed_vi'"),
    (["prepare", "deap", "--root", "data", "--preset", "m2ss", "--verify"],
     "unknown preset 'm2ss'"),
    (["info", "deap", "--root", "data", "--preset", "m2ss"], "unknown preset 'm2ss'"),
    (["info", "seed", "--root", "data", "--preset", "dhcm_cacl"],
     "preset 'dhcm_cacl' does not support seed"),
    (["run", "--method", "nope", "--dataset", "deap", "--root", "data"],
     "unknown method 'nope'"),
    (["run", "--method", "logreg", "--dataset", "deep", "--root", "data"],
     "unknown dataset 'deep'"),
    ([*RUN, "--protocol", "losso"], "unknown protocol 'losso'; valid: cross_modal,"),
    ([*RUN, "--protocol", "cross_modal"], "logreg supports subject_dependent"),
    ([*RUN, "--labels", "valence"], "unknown label scheme 'valence'"),
    ([*RUN, "--method-preset", "slow"], "unknown preset 'slow' for logreg"),
    ([*RUN, "--executor", "dask"], "option '--executor': got 'dask'"),
    ([*RUN, "--workers", "0"], "option '--workers': got 0"),
    ([*RUN, "--workers", "two"], "Invalid value for '--workers'"),
    ([*RUN, "--set", "novalue"], "'novalue' is not key=value"),
    ([*RUN, "--track", "wandb"], "option 'track': got 'wandb'; allowed: mlflow"),
    ([*RUN, "--set", "preset=rawx"], "unknown preset 'rawx'"),
    (["run", "--method", "mypkg:", "--dataset", "deap", "--root", "data"],
     "an import path is module:attribute"),
    (["run", "--dataset", "deap", "--root", "data"], "--method is required"),
    (["sweep", "--method", "mlpp", "--dataset", "deap", "--root", "data", "--grid", "seed=0,1"],
     "unknown method 'mlpp'"),
    (["synth", "--out", "data", "--datasets", "deap,deep"], "unknown dataset 'deep'"),
    (["synth", "--out", "data", "--difficulty", "extreme"], "unknown difficulty 'extreme'"),
    (["demo", "--methods", "logreg,svm"], "unknown method 'svm'"),
])
def test_errors_answer_before_heavy_imports(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err, heavy = probe(*args)
    assert code == 2 and message in err, err
    assert heavy == []
    assert not (tmp_path / "data").exists()                    # nothing was written


@pytest.mark.parametrize("args", [["--help"], ["list"], ["run", "--help"]])
def test_help_and_list_import_nothing_heavy(args):
    code, err, heavy = probe(*args)
    assert code == 0 and heavy == [], err


def test_list_and_help_answer_within_1_5_seconds():
    command = Path(sys.executable).with_name("affectlab")
    if not command.exists():
        pytest.skip("no affectlab console script next to this Python")
    for args in (["--help"], ["list"]):
        fastest = min(_seconds([str(command), *args]) for _ in range(3))
        assert fastest < 1.5, f"affectlab {' '.join(args)} took {fastest:.2f} s"


def _seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=True, timeout=60)
    return time.perf_counter() - start


def test_list_prints_every_registered_name():
    from affectlab.cli import app, data  # noqa: F401  (registers the commands)

    out = CliRunner().invoke(app, ["list"]).output
    for kind in ("datasets", "presets", "methods", "protocols"):
        for name in CATALOG[kind]:
            assert f"\n  {name} " in out, f"{kind} {name} missing from affectlab list"
    methods = out.split("\nmethods:\n", 1)[1].split("\nprotocols:\n", 1)[0]
    uf_ama = next(line for line in methods.splitlines() if line.startswith("  uf_ama "))
    assert uf_ama.endswith("(transductive)")


def test_list_method_shows_presets_and_options_with_defaults_and_descriptions():
    from affectlab.cli import app, data  # noqa: F401  (registers the commands)

    out = CliRunner().invoke(app, ["list", "mlp"]).output
    assert out.startswith("mlp: supervised MLP")
    assert "  fast" in out and "epochs=15, hidden=[64], patience=5" in out
    patience = next(line for line in out.splitlines() if line.strip().startswith("patience"))
    assert patience.split()[1:3] == ["int", "10"]
    assert patience.endswith("early-stopping patience on the validation part")
    logreg = CliRunner().invoke(app, ["list", "logreg"]).output
    assert "Literal['balanced'] | None" in logreg and "inverse regularisation strength" in logreg
