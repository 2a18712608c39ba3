"""SEED-IV reader: round trip, sessions by folder, label table, sizes from the variables, eye
trimming, blink gaps (NaN) under every nan_policy, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from affectlab.datasets import get_spec, iter_recordings, seed_iv, synth
from affectlab.datasets.base import check_recording
from affectlab.errors import DatasetFormatError
from affectlab.presets import prepare

from .helpers import copy_dataset, edit_mat

SECONDS = 4                       # one 4-s window (raw files are large); blink trials are longer
FIRST = "1_20160518.mat"          # subject 1 in session folder 1
FEATS, EYE, RAW = "eeg_feature_smooth", "eye_feature_smooth", "eeg_raw_data"


@pytest.fixture(scope="module")
def seed_iv_root(synthetic_root):
    return synthetic_root("seed_iv", n_subjects=2, seconds=SECONDS)


@pytest.fixture(scope="module")
def manifest(seed_iv_root):
    return json.loads((seed_iv_root.parent / "manifest.json").read_text())["seed_iv"]


def _windows(manifest: dict) -> dict[tuple[int, int, int], int]:
    return {(t["subject"], t["session"], t["trial"]): t["windows"] for t in manifest["trials"]}


def _gap_windows(manifest: dict, longer_than: int = 0) -> set[tuple[int, int, int, int]]:
    """(subject, session, trial, window) of the blink gaps the writer made."""
    return {(g["subject"], g["session"], g["trial"], run["start"] + i)
            for g in manifest["nuisances"]["eye_blink_gaps"] for run in g["runs"]
            if run["length"] > longer_than for i in range(run["length"])}


def _unavailable(windows, name: str) -> set[tuple[int, int, int, int]]:
    meta = windows.meta[~windows.available(name)]
    return set(zip(meta.subject, meta.session, meta.trial, meta.window, strict=True))


def _copy(src: Path, tmp_path: Path, *modify: str, **drop) -> Path:
    return copy_dataset(src, tmp_path / "seed_iv", *modify, **drop)


def _read(root, **options):
    return list(iter_recordings("seed_iv", root, **options))


def test_round_trip_conforms(seed_iv_root, manifest):
    spec = get_spec("seed_iv")
    recordings = _read(seed_iv_root)
    assert len(recordings) == 2 * 3 * 24
    windows = _windows(manifest)
    for rec in recordings:
        check_recording(rec, spec)
        n = windows[rec.subject, rec.session, rec.trial]
        assert rec.streams["eeg"].data.shape == (62, n * 800 + 1)     # the "+1" sample
        assert rec.features["eye"].data.shape == (n, 31)
        for name in seed_iv.BAND_SETS:
            assert rec.features[name].data.shape == (n, 62, 5)
            assert rec.features[name].window_s == 4.0
    assert sorted(set(windows.values())) == [SECONDS // 4, seed_iv.BLINK_WINDOWS]


def test_labels_and_stimuli_follow_the_session_tables(seed_iv_root):
    for rec in _read(seed_iv_root, raw=False):
        assert rec.native_label == seed_iv.LABELS[rec.session][rec.trial - 1]
        assert rec.stimulus == f"s{rec.session}_clip{rec.trial:02d}"
    assert seed_iv.LABELS[1][:4] == (1, 2, 3, 0) and seed_iv.LABELS[3][-3:] == (0, 1, 0)


def test_session_is_the_folder_not_the_date(seed_iv_root, tmp_path):
    root = _copy(seed_iv_root, tmp_path, FEATS, EYE, drop=(RAW,))
    for folder in (FEATS, EYE):        # session 1 now carries the latest date, session 3 the first
        (root / folder / "1" / FIRST).rename(root / folder / "1" / "1_20991231.mat")
        (root / folder / "3" / "1_20161126.mat").rename(root / folder / "3" / "1_20000101.mat")
    recordings = _read(root, subjects=[1], raw=False)
    assert [Path(r.source).parent.name for r in recordings[::24]] == ["1", "2", "3"]
    assert [r.session for r in recordings[::24]] == [1, 2, 3]
    original = _read(seed_iv_root, subjects=[1], raw=False)
    assert np.array_equal(recordings[0].features["de_LDS"].data,
                          original[0].features["de_LDS"].data)


def test_raw_false_skips_raw_files(seed_iv_root, tmp_path):
    root = _copy(seed_iv_root, tmp_path, drop=(RAW,))
    recordings = _read(root, subjects=[2], raw=False)
    assert len(recordings) == 72 and all(not r.streams for r in recordings)
    with pytest.raises(DatasetFormatError, match="eeg_raw_data.*raw=False"):
        _read(root, subjects=[2])


def test_eye_and_eeg_windows_trimmed_to_the_shorter(seed_iv_root, manifest, tmp_path):
    root = _copy(seed_iv_root, tmp_path, EYE, FEATS)

    def longer(names):
        def edit(content):
            for name in names:
                content[name] = np.concatenate([content[name], content[name][:, -1:]], axis=1)
        return edit
    edit_mat(root / EYE / "1" / FIRST, longer(["eye_3"]))                   # eye one longer
    edit_mat(root / FEATS / "1" / FIRST, longer([f"{n}4" for n in seed_iv.BAND_SETS]))
    recordings = _read(root, subjects=[1], raw=False)
    windows = _windows(manifest)
    for rec in recordings[2:4]:
        assert {f.n_windows for f in rec.features.values()} == {windows[1, 1, rec.trial]}
        assert not rec.missing


def test_blink_gaps_are_written_as_described(manifest):
    nuisances = manifest["nuisances"]
    gaps = nuisances["eye_blink_gaps"]
    assert {g["subject"] for g in gaps} == {1}                 # odd-numbered subjects only
    assert [g["session"] for g in gaps] == [1, 2, 3]
    lengths = [run["length"] for g in gaps for run in g["runs"]]
    assert max(lengths) > 2 and min(lengths) <= 2
    kinds = {(run["length"] > 2, run["features"] == "all") for g in gaps for run in g["runs"]}
    assert kinds == {(True, True), (True, False), (False, True), (False, False)}
    assert nuisances["eye_nan_windows"] == {
        "mark_missing": sum(lengths), "interpolate": sum(n for n in lengths if n > 2)}
    assert manifest["expected"]["missing"] == {
        "eye": {"absent_trials": 0, "absent_windows": 0, "invalid_windows": sum(lengths)}}


def test_blink_gaps_marked_missing_by_default(seed_iv_root, manifest):
    gaps = {(g["subject"], g["session"], g["trial"]): g for g in
            manifest["nuisances"]["eye_blink_gaps"]}
    partial = whole = 0
    for rec in _read(seed_iv_root, raw=False):
        eye = rec.features["eye"].data
        gap = gaps.get((rec.subject, rec.session, rec.trial))
        if gap is None:
            assert np.isfinite(eye).all() and not rec.nonfinite
            continue
        nan = np.isnan(eye)
        expected = sorted(run["start"] + i for run in gap["runs"] for i in range(run["length"]))
        assert np.flatnonzero(nan.any(axis=1)).tolist() == expected
        assert rec.nonfinite == {"eye": {"nonfinite": len(expected), "interpolated": 0}}
        whole += int(nan.all(axis=1).sum())
        partial += int((nan.any(axis=1) & ~nan.all(axis=1)).sum())
        assert not rec.missing
    assert whole and partial                 # all 31 features, and some rows of a window only
    windows, _ = prepare("seed_iv", seed_iv_root, "default", use_cache=False)
    assert _unavailable(windows, "eye") == _gap_windows(manifest)
    assert windows.available("eeg").all()
    assert windows.description["missing"]["eye"] == manifest["expected"]["missing"]["eye"]


def test_interpolate_fills_the_short_gaps_only(seed_iv_root, manifest):
    windows, _ = prepare("seed_iv", seed_iv_root, "default", {"nan_policy": "interpolate"},
                         use_cache=False)
    assert _unavailable(windows, "eye") == _gap_windows(manifest, longer_than=2)
    assert windows.description["missing"]["eye"]["invalid_windows"] == \
        manifest["nuisances"]["eye_nan_windows"]["interpolate"]
    filled = {(r.subject, r.session, r.trial): r for r in _read(seed_iv_root, subjects=[1],
                                                                  raw=False,
                                                                  nan_policy="interpolate")}
    for gap in manifest["nuisances"]["eye_blink_gaps"]:
        rec = filled[gap["subject"], gap["session"], gap["trial"]]
        short = [run for run in gap["runs"] if run["length"] <= 2]
        assert rec.nonfinite["eye"]["interpolated"] == sum(run["length"] for run in short)
        eye = rec.features["eye"].data
        for run in short:
            before, after = eye[run["start"] - 1], eye[run["start"] + run["length"]]
            assert np.allclose(eye[run["start"]], before + (after - before) / (run["length"] + 1))


def test_nan_policy_raise_names_the_file_and_key(seed_iv_root, manifest):
    gap = manifest["nuisances"]["eye_blink_gaps"][0]           # the first one read
    n = sum(run["length"] for run in gap["runs"])
    with pytest.raises(DatasetFormatError, match=rf"{EYE}/{gap['session']}/1_\d{{8}}\.mat: key "
                       rf"'eye_{gap['trial']}' \(eye\) holds {n} non-finite windows") as error:
        _read(seed_iv_root, raw=False, nan_policy="raise")
    assert "\n" not in str(error.value)


def test_clean_copy_has_no_nan(tmp_path):
    manifest = synth(tmp_path, ["seed_iv"], n_subjects=1, seconds=SECONDS,
                     nuisances=False)["seed_iv"]
    assert manifest["nuisances"] == {} and manifest["expected"]["missing"] == {}
    recordings = _read(tmp_path / "seed_iv", raw=False, nan_policy="raise")
    assert all(r.features["eye"].n_windows == SECONDS // 4 for r in recordings)


def test_missing_eye_file_marks_eye_missing(seed_iv_root, tmp_path):
    root = _copy(seed_iv_root, tmp_path, EYE, drop=(RAW,))
    (root / EYE / "2" / "1_20161125.mat").unlink()
    recordings = _read(root, subjects=[1], raw=False)
    assert all(("eye" in r.missing) == (r.session == 2) for r in recordings)


def test_copy_with_fewer_trials_reads(tmp_path):
    small = tmp_path / "seed_iv"
    expected = seed_iv.write_synthetic(small, n_subjects=1, seconds=SECONDS,
                                       n_trials=5)["expected"]
    recordings = _read(small)
    assert [(r.session, r.trial) for r in recordings] == [(s, t) for s in (1, 2, 3)
                                                          for t in range(1, 6)]
    assert all(r.native_label == seed_iv.LABELS[r.session][r.trial - 1] for r in recordings)
    windows, _ = prepare("seed_iv", small, "default", use_cache=False)
    assert len(windows) == expected["windows"] and expected["trials"] == 15
    assert windows.meta.groupby(["subject", "session", "trial"]).ngroups == 15
    assert windows.description["missing"]["eye"] == expected["missing"].get(
        "eye", {"absent_trials": 0, "absent_windows": 0, "invalid_windows": 0})


def test_files_of_a_session_must_agree(seed_iv_root, tmp_path):
    root = _copy(seed_iv_root, tmp_path, FEATS, EYE, RAW)

    def drop_trial_24(content):
        for name in [n for n in content if n.endswith("24")]:
            content.pop(name)
    edit_mat(root / FEATS / "1" / FIRST, drop_trial_24)      # features now hold 1 .. 23
    with pytest.raises(DatasetFormatError, match=rf"{RAW}/1/{FIRST}: unexpected trial "
                       rf"number\(s\) \[24\] \(the EEG feature file .*{FIRST} holds trials "
                       r"1 \.\. 23\)") as error:
        _read(root, subjects=[1])
    assert "\n" not in str(error.value)
    with pytest.raises(DatasetFormatError, match=rf"{EYE}/1/{FIRST}: eye variables for "
                       rf"trial\(s\) \[24\] that the EEG feature file .*{FIRST} does not hold"):
        _read(root, subjects=[1], raw=False)
    edit_mat(root / EYE / "1" / FIRST, drop_trial_24)
    edit_mat(root / RAW / "1" / FIRST, drop_trial_24)
    recordings = _read(root, subjects=[1])
    assert len(recordings) == 23 + 24 + 24


def test_trials_beyond_the_label_table(seed_iv_root, tmp_path):
    root = _copy(seed_iv_root, tmp_path, FEATS, drop=(RAW,))
    edit_mat(root / FEATS / "2" / "1_20161125.mat",
             lambda c: c.update({f"{n}25": c[f"{n}24"] for n in seed_iv.BAND_SETS}))
    with pytest.raises(DatasetFormatError, match=r"2/1_20161125.mat: trial\(s\) \[25\] have no "
                       r"label: the session 2 table covers trials 1 \.\. 24"):
        _read(root, subjects=[1], raw=False)


def test_subject_selection_and_inner_folder(seed_iv_root):
    recordings = _read(seed_iv_root / FEATS, subjects=[2], raw=False)
    assert {r.subject for r in recordings} == {2} and len(recordings) == 72


def test_stray_files_are_ignored(seed_iv_root, tmp_path):
    root = _copy(seed_iv_root, tmp_path, FEATS, drop=(RAW,))
    (root / FEATS / "1" / "notes.txt").write_text("not a subject")
    (root / FEATS / "4").mkdir()
    (root / FEATS / "ReadMe.txt").write_text("read me")
    assert len(_read(root, subjects=[1], raw=False)) == 72


def test_missing_directory(tmp_path):
    with pytest.raises(DatasetFormatError, match="eeg_feature_smooth"):
        _read(tmp_path)


def test_missing_session_folders(tmp_path):
    (tmp_path / FEATS).mkdir()
    with pytest.raises(DatasetFormatError, match="no session folders.*1/, 2/, 3/"):
        _read(tmp_path, raw=False)


def test_missing_subject_file(seed_iv_root, tmp_path):
    with pytest.raises(DatasetFormatError, match="7_<yyyymmdd>.mat"):
        _read(seed_iv_root, subjects=[7])
    root = _copy(seed_iv_root, tmp_path, FEATS, drop=(RAW,))
    (root / FEATS / "3" / "1_20161126.mat").unlink()
    with pytest.raises(DatasetFormatError, match="3.*subject 1 has no file"):
        _read(root, raw=False)


def test_truncated_file(seed_iv_root, tmp_path):
    root = _copy(seed_iv_root, tmp_path, RAW)
    path = root / RAW / "1" / FIRST
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DatasetFormatError, match=f"{FIRST}.*truncated"):
        _read(root, subjects=[1])


@pytest.mark.parametrize("folder, edit, pattern", [
    (FEATS, lambda c: c.pop("psd_LDS24"), "variable 'psd_LDS24' missing"),
    (FEATS, lambda c: c.update(de_movingAve2=np.zeros((62, 2, 4))), "'de_movingAve2' has shape"),
    (EYE, lambda c: c.pop("eye_9"), "variable 'eye_9' missing"),
    (EYE, lambda c: c.update(eye_9=np.zeros((33, 2))), r"'eye_9' has shape \(33, 2\)"),
    (RAW, lambda c: c.pop("cz_eeg24"), r"trial\(s\) \[24\] missing"),
])
def test_bad_variables(seed_iv_root, tmp_path, folder, edit, pattern):
    root = _copy(seed_iv_root, tmp_path, folder)
    edit_mat(root / folder / "1" / FIRST, edit)
    with pytest.raises(DatasetFormatError, match=f"{FIRST}.*{pattern}"):
        _read(root, subjects=[1])
