"""Faults during a run: every fold failing, some folds failing, a second run (or sweep) into a
folder that is being written, Ctrl-C. Each ends with a clear message and a non-zero exit, never a
traceback, and keeps what was finished."""

from __future__ import annotations

import fcntl
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from affectlab.errors import ConfigError
from affectlab.methods import METHODS
from affectlab.run import LOCK_FILE, RunFailed, RunInterrupted, load_config, run_experiment

FOLDS = ("subj1", "subj2", "subj3")            # loso on the 3-subject synthetic DEAP


@pytest.fixture
def logreg_fit(monkeypatch):
    """``logreg_fit(replacement)``: the logreg method's ``fit`` replaced for this test;
    ``replacement(method, train, original)`` may raise or call ``original()``."""
    cls = METHODS.get("logreg")
    original = cls.fit

    def install(replacement) -> None:
        def fit(self, train, unlabeled=None, val=None):
            return replacement(self, train, lambda: original(self, train, unlabeled, val))

        monkeypatch.setattr(cls, "fit", fit)

    return install


def test_every_fold_failing_ends_with_a_summary_of_the_failures(cli, run_args, tmp_path,
                                                                logreg_fit):
    def explode(method, train, original):
        raise RuntimeError("fit exploded\nsecond line of the message")

    logreg_fit(explode)
    out = tmp_path / "run"
    result = cli(run_args(out))
    assert result.code == 2
    assert "Traceback" not in result.err + result.out
    lines = result.err.strip().splitlines()
    assert lines[0] == "error: 3 of 3 fold(s) failed after a retry:"
    assert lines[1:4] == [f"  fold {k} ({name}): RuntimeError: fit exploded"
                          for k, name in enumerate(FOLDS)]
    assert lines[4] == f"tracebacks: {out}/folds/<k>/error.txt; summary of the failures: " \
                       f"{out}/summary.md"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["n_folds"] == 0
    assert [f["fold"] for f in summary["failed_folds"]] == list(FOLDS)
    assert {f["error"] for f in summary["failed_folds"]} == {"RuntimeError: fit exploded"}
    text = (out / "summary.md").read_text()
    assert "**Every fold failed** (3)" in text and "second line" not in text
    for k in range(3):
        trace = (out / "folds" / f"{k:03d}" / "error.txt").read_text()
        assert "Traceback" in trace and "second line of the message" in trace


def test_some_folds_failing_still_summarise_the_others(cli, run_args, tmp_path, monkeypatch):
    cls = METHODS.get("logreg")
    original = cls.fit

    def fail_without_subject_2(self, train, unlabeled=None, val=None):
        seen = {*train.windows.meta["subject"], *val.windows.meta["subject"]}
        if 2 not in seen:              # the fold testing subject 2 (others train or validate on it)
            raise ValueError("no luck with subject 2")
        return original(self, train, unlabeled, val)

    monkeypatch.setattr(cls, "fit", fail_without_subject_2)
    out = tmp_path / "run"
    result = cli(run_args(out))
    assert result.code == 2 and "Traceback" not in result.err
    assert "error: 1 of 3 fold(s) failed after a retry:" in result.err
    assert "  fold 1 (subj2): ValueError: no luck with subject 2" in result.err
    assert f"summary of the 2 finished fold(s): {out}/summary.md" in result.err
    assert "| subj1 |" in result.out and "| subj3 |" in result.out    # the table is printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_folds"] == 2 and summary["fold_names"] == ["subj1", "subj3"]
    assert "**Fold 1 (subj2) FAILED**: ValueError: no luck with subject 2" in \
        (out / "summary.md").read_text()


@pytest.fixture
def config(deap, windowset_cache):
    def make(**extra):
        return load_config({"method": "logreg", "dataset": "deap", "root": str(deap),
                            "protocol": "loso", "method_preset": "fast", "preset": "m2s",
                            "cache_dir": str(windowset_cache), **extra})

    return make


def test_library_raises_run_failed_with_the_summary(config, tmp_path, logreg_fit):
    logreg_fit(lambda method, train, original: 1 / 0)
    with pytest.raises(RunFailed) as err:
        run_experiment(config(), out=tmp_path / "run")
    assert err.value.summary["failed_folds"][0]["error"] == "ZeroDivisionError: division by zero"


def _hold_lock(path: Path) -> subprocess.Popen:
    """Another process holding the run directory's lock until its stdin closes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys\n"
         f"f = open({str(path)!r}, 'a+'); fcntl.flock(f, fcntl.LOCK_EX)\n"
         "f.write(str(os.getpid())); f.flush(); print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_second_run_into_a_locked_folder_is_refused(cli, run_args, config, tmp_path):
    out = tmp_path / "run"
    holder = _hold_lock(out / LOCK_FILE)
    try:
        with pytest.raises(ConfigError, match=rf"option '--out': {out} is in use by another run "
                                              rf"\(process {holder.pid}\); wait for it"):
            run_experiment(config(), out=out)
        result = cli(run_args(out))
        assert result.code == 2 and len(result.err.strip().splitlines()) == 1
        assert f"{out} is in use by another run" in result.err
        assert not (out / "config.yaml").exists() and not (out / "folds").exists()
    finally:
        holder.communicate("")
    summary, _ = run_experiment(config(), out=out)         # released: the run goes ahead
    assert summary["complete"]


def _try_lock(folder) -> str:
    """'acquired' when another process could take ``folder``'s run lock now, else 'refused'."""
    with open(folder / LOCK_FILE, "a+") as other:
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return "acquired"
        except BlockingIOError:
            return "refused"


def test_the_lock_is_held_while_folds_run_and_released_after(config, tmp_path, logreg_fit):
    out = tmp_path / "run"
    attempts = []

    def try_lock(method, train, original):
        attempts.append(_try_lock(out))
        return original()

    logreg_fit(try_lock)
    run_experiment(config(), out=out)
    assert attempts == ["refused"] * 3
    with open(out / LOCK_FILE, "a+") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)        # free once the run ended


def test_different_config_is_checked_under_the_lock(config, tmp_path):
    out = tmp_path / "run"
    run_experiment(config(max_folds=1), out=out)
    with pytest.raises(ConfigError, match="holds a run with a different config"):
        run_experiment(config(max_folds=1, seed=3), out=out)
    summary, _ = run_experiment(config(max_folds=1, seed=3), out=out, overwrite=True)
    assert summary["seed"] == 3 and (out / LOCK_FILE).exists()


@pytest.fixture
def sweep_raw(deap, windowset_cache) -> dict:
    return {"method": "logreg", "dataset": "deap", "root": str(deap), "protocol": "loso",
            "method_preset": "fast", "preset": "m2s", "cache_dir": str(windowset_cache)}


def test_second_sweep_into_a_locked_folder_is_refused(cli, sweep_raw, tmp_path):
    from affectlab.sweep import run_sweep

    out = tmp_path / "sweep"
    holder = _hold_lock(out / LOCK_FILE)
    try:
        with pytest.raises(ConfigError, match=rf"option '--out': {out} is in use by another run "
                                              rf"\(process {holder.pid}\); wait for it"):
            run_sweep(sweep_raw, ["method.C=1,10"], out)
        result = cli(["sweep", "--method", "logreg", "--dataset", "deap", "--root",
                      sweep_raw["root"], "--protocol", "loso", "--method-preset", "fast",
                      "--preset", "m2s", "--grid", "method.C=1,10", "--out", str(out),
                      "--set", f"cache_dir={sweep_raw['cache_dir']}"])
        assert result.code == 2 and len(result.err.strip().splitlines()) == 1
        assert f"{out} is in use by another run" in result.err
        assert [p.name for p in out.iterdir()] == [LOCK_FILE]        # nothing written
    finally:
        holder.communicate("")
    table, _ = run_sweep(sweep_raw, ["method.C=1,10"], out)     # released: the sweep goes ahead
    assert table["complete"].all()


def test_the_sweep_holds_its_folder_and_run_folders_until_it_ends(sweep_raw, tmp_path,
                                                                  logreg_fit):
    from affectlab.sweep import run_sweep

    out = tmp_path / "sweep"
    folders = [out, out / "method.C=1", out / "method.C=10"]
    attempts = []

    def try_lock(method, train, original):
        attempts.extend(_try_lock(folder) for folder in folders)
        return original()

    logreg_fit(try_lock)
    run_sweep(sweep_raw, ["method.C=1,10"], out)
    assert attempts == ["refused"] * 3 * 6            # every folder, during all 6 folds
    for folder in folders:
        with open(folder / LOCK_FILE, "a+") as other:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)    # free once the sweep ended


def _interrupt_second_fold(logreg_fit) -> None:
    calls = []

    def fit(method, train, original):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original()

    logreg_fit(fit)


def test_ctrl_c_prints_how_to_resume_and_exits_130(cli, run_args, tmp_path, logreg_fit,
                                                  monkeypatch):
    out = tmp_path / "run"
    _interrupt_second_fold(logreg_fit)
    result = cli([*run_args(out), "--overwrite"])
    assert result.code == 130
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err
    head, _, command = lines[0].partition("; resume with: ")
    assert head == f"interrupted: 1 of 3 fold(s) finished, kept in {out}"
    assert shlex.split(command) == ["affectlab", *run_args(out)]      # without --overwrite
    first = out / "folds" / "000" / "metrics.json"
    stamp = first.stat().st_mtime_ns
    assert not (out / "folds" / "001" / "metrics.json").exists()

    monkeypatch.undo()                                    # the method works again: resume
    resumed = cli(shlex.split(command)[1:])
    assert resumed.code == 0, resumed.err
    assert first.stat().st_mtime_ns == stamp
    assert json.loads((out / "summary.json").read_text())["n_folds"] == 3
    assert "fold 0 (subj1) already finished: skipped" in (out / "run.log").read_text()


def test_library_ctrl_c_is_a_keyboard_interrupt_naming_the_run(config, tmp_path, logreg_fit):
    _interrupt_second_fold(logreg_fit)
    with pytest.raises(KeyboardInterrupt) as err:
        run_experiment(config(), out=tmp_path / "run")
    assert isinstance(err.value, RunInterrupted)
    assert (err.value.run_dir, err.value.finished, err.value.total) == (tmp_path / "run", 1, 3)


def test_resume_command_drops_overwrite_and_names_the_folder():
    from affectlab.cli.experiment import resume_command

    assert resume_command(Path("runs/x"), ["run", "--method", "m", "--overwrite"]) == \
        "affectlab run --method m --out runs/x"
    assert resume_command(Path("runs/x"), ["run", "--out=a b"]) == "affectlab run '--out=a b'"


def test_ctrl_c_with_the_process_executor_stops_the_workers(config, tmp_path, monkeypatch):
    """Ctrl-C while the driver waits: queued folds are dropped, workers ended, no hang."""
    import affectlab.executors as executors

    def interrupted_wait(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(executors, "wait", interrupted_wait)
    stopped = []
    original_stop = executors._stop
    monkeypatch.setattr(executors, "_stop", lambda pool: stopped.append(original_stop(pool)))
    with pytest.raises(RunInterrupted) as err:
        run_experiment(config(), out=tmp_path / "run", executor="process", workers=1)
    assert stopped and err.value.total == 3
    assert not list((tmp_path / "run" / "folds").glob("*/metrics.json"))
