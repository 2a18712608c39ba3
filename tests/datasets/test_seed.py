"""SEED reader: synthetic round trip, sessions by date, raw / feature / eye files, sizes from
label.mat and the variables, the release without eye data, NaN policies, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from affectlab.datasets import get_spec, iter_recordings, synth
from affectlab.datasets import seed as seed_mod
from affectlab.datasets.base import check_recording
from affectlab.errors import DatasetFormatError
from affectlab.presets import prepare

from .helpers import copy_dataset, edit_mat

SECONDS = 2
FIRST = "1_20131027.mat"          # subject 1, session 1


@pytest.fixture(scope="module")
def seed_root(synthetic_root):
    """With the release's nuisances: no eye features at all."""
    return synthetic_root("seed", n_subjects=2, seconds=SECONDS)


@pytest.fixture(scope="module")
def clean_root(tmp_path_factory):
    """Without nuisances: eye features (the assumed form) for every subject."""
    out = tmp_path_factory.mktemp("seed-clean")
    synth(out, ["seed"], n_subjects=2, seconds=SECONDS, nuisances=False)
    return out / "seed"


def _manifest(root: Path) -> dict:
    return json.loads((root.parent / "manifest.json").read_text())[root.name]


def _unavailable(windows, name: str) -> set[tuple[int, int, int, int]]:
    meta = windows.meta[~windows.available(name)]
    return set(zip(meta.subject, meta.session, meta.trial, meta.window, strict=True))


def _copy(src: Path, tmp_path: Path, *modify: str, **drop) -> Path:
    return copy_dataset(src, tmp_path / "seed", *modify, **drop)


def _read(root, **options):
    return list(iter_recordings("seed", root, **options))


def test_round_trip_conforms(seed_root):
    spec = get_spec("seed")
    recordings = _read(seed_root)
    assert len(recordings) == 2 * 3 * 15
    for rec in recordings:
        check_recording(rec, spec)
    first = recordings[0]
    eeg = first.streams["eeg"]
    assert eeg.data.shape == (62, SECONDS * 200 + 1) and eeg.sfreq == 200.0
    assert eeg.ch_names[:3] == ["FP1", "FPZ", "FP2"]
    assert first.features["de_LDS"].axes == ("window", "channel", "band")
    assert [r.native_label for r in recordings[:15]] == [v + 1 for v in seed_mod.LABELS]
    assert [r.stimulus for r in recordings[:2]] == ["clip01", "clip02"]
    assert {(r.subject, r.session) for r in recordings} == {(s, k) for s in (1, 2)
                                                           for k in (1, 2, 3)}
    assert all(r.missing == {"eye"} for r in recordings)        # the release has no eye data


def test_windows_match_stimulus_length(clean_root):
    for rec in _read(clean_root, subjects=[1]):
        for name in (*seed_mod.BAND_SETS, "eye"):
            assert rec.features[name].n_windows == SECONDS, name
        assert rec.features["de_LDS"].data.shape[1:] == (62, 5)
        assert rec.features["eye"].data.shape[1:] == (33,)


def test_features_consistent_with_raw(seed_root):
    rec = _read(seed_root, subjects=[1])[4]
    power = seed_mod.band_power(rec.streams["eeg"].data, 200.0, 1.0)      # (62, T, 5)
    de = 0.5 * np.log(2 * np.pi * np.e * power) + seed_mod.DE_OFFSET
    released = rec.features["de_movingAve"].data.mean(axis=0)            # (62, 5)
    assert np.corrcoef(de.mean(axis=1).ravel(), released.ravel())[0, 1] > 0.95
    assert 10 < released.min() and released.max() < 27


def test_sessions_numbered_by_date(seed_root):
    recordings = _read(seed_root, subjects=[1])
    dates = {r.session: Path(r.source).name for r in recordings}
    assert dates == {1: FIRST, 2: "1_20131030.mat", 3: "1_20131107.mat"}


def test_fourth_session_file_is_an_error(seed_root, tmp_path):
    root = _copy(seed_root, tmp_path, "ExtractedFeatures")
    shutil.copy(root / "ExtractedFeatures" / FIRST, root / "ExtractedFeatures" / "1_20140101.mat")
    with pytest.raises(DatasetFormatError, match="subject 1 has 4 files.*3 files"):
        _read(root, subjects=[1])


def test_raw_false_skips_raw_files(seed_root, tmp_path):
    root = tmp_path / "seed"
    root.mkdir()
    (root / "ExtractedFeatures").symlink_to(seed_root / "ExtractedFeatures")
    recordings = _read(root, raw=False)
    assert len(recordings) == 90
    assert all(not r.streams and "de_LDS" in r.features for r in recordings)
    with pytest.raises(DatasetFormatError, match="Preprocessed_EEG.*raw=False"):
        _read(root)


def test_raw_variables_matched_by_suffix(seed_root, tmp_path):
    root = _copy(seed_root, tmp_path, "Preprocessed_EEG")
    path = root / "Preprocessed_EEG" / FIRST

    def rename(content):
        for name in list(content):
            content[name.replace("djc_", "someone_")] = content.pop(name)
        content["someone_info"] = np.zeros((1, 3))
    edit_mat(path, rename)
    assert "someone_eeg7" in [name for name, _, _ in scipy.io.whosmat(path)]
    original = _read(seed_root, subjects=[1])[6].streams["eeg"].data
    assert np.array_equal(_read(root, subjects=[1])[6].streams["eeg"].data, original)


def test_release_without_eye_data_reads_with_default_and_all(seed_root):
    assert not (seed_root / seed_mod.EYE_DIR).exists()
    manifest = _manifest(seed_root)
    assert "no_eye_features" in manifest["nuisances"]
    assert manifest["nuisances"]["artefact_trials"] == [
        {key: t[key] for key in ("subject", "session", "trial")} for t in manifest["trials"]
        if t["noisy"]]
    windows, _ = prepare("seed", seed_root, "default", use_cache=False)
    assert windows.names == ["eeg"] and windows.available("eeg").all()
    assert windows.meta["subject"].nunique() == 2 and len(windows) == 2 * 45 * SECONDS
    everything, _ = prepare("seed", seed_root, "all", use_cache=False)
    assert everything.description["absent_modalities"] == ["eye"]
    assert everything.names == ["eeg"] and len(everything) == len(windows)


def test_clean_copy_has_eye_for_everyone(clean_root):
    manifest = _manifest(clean_root)
    assert manifest["nuisances"] == {}
    assert not any(t["noisy"] for t in manifest["trials"])
    recordings = _read(clean_root, raw=False)
    assert all("eye" in r.features and not r.missing for r in recordings)
    windows, _ = prepare("seed", clean_root, "all", use_cache=False)
    assert windows.available("eye").all() and not windows.description["absent_modalities"]


def test_missing_eye_subject_and_eye_dir(clean_root, tmp_path):
    root = _copy(clean_root, tmp_path, seed_mod.EYE_DIR)
    for path in (root / seed_mod.EYE_DIR).glob("2_*.mat"):
        path.unlink()
    recordings = _read(root, raw=False)
    assert all("eye" in r.missing and "eye" not in r.features for r in recordings
               if r.subject == 2)
    assert all("eye" in r.features and not r.missing for r in recordings if r.subject == 1)
    windows, _ = prepare("seed", root, "all", use_cache=False)
    assert windows.description["missing"]["eye"] == {
        "absent_trials": 45, "absent_windows": 45 * SECONDS, "invalid_windows": 0}
    moved_root = tmp_path / "moved"
    moved_root.mkdir()
    (moved_root / "ExtractedFeatures").symlink_to(clean_root / "ExtractedFeatures")
    (moved_root / "eyes").symlink_to(clean_root / seed_mod.EYE_DIR)
    moved = _read(moved_root, subjects=[1], raw=False, eye_dir="eyes")
    assert all("eye" in r.features for r in moved)
    assert all("eye" in r.missing for r in _read(moved_root, subjects=[1], raw=False))


def test_subject_selection_and_inner_folder(seed_root):
    recordings = _read(seed_root / "Preprocessed_EEG", subjects=[2])
    assert {r.subject for r in recordings} == {2} and len(recordings) == 45


def test_stray_files_are_ignored(seed_root, tmp_path):
    root = _copy(seed_root, tmp_path, "ExtractedFeatures", "Preprocessed_EEG")
    for folder in ("ExtractedFeatures", "Preprocessed_EEG"):
        (root / folder / "notes.txt").write_text("not a subject")
        (root / folder / "1_2013.mat").write_text("not a subject either")
    assert len(_read(root, subjects=[1])) == 45


def test_missing_directory(tmp_path):
    with pytest.raises(DatasetFormatError, match="ExtractedFeatures"):
        _read(tmp_path)


def test_missing_subject_file(seed_root):
    with pytest.raises(DatasetFormatError, match="7_<yyyymmdd>.mat"):
        _read(seed_root, subjects=[7])


def test_truncated_file(seed_root, tmp_path):
    root = _copy(seed_root, tmp_path, "Preprocessed_EEG")
    path = root / "Preprocessed_EEG" / FIRST
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DatasetFormatError, match=f"{FIRST}.*truncated"):
        _read(root, subjects=[1])


@pytest.mark.parametrize("folder, edit, pattern", [
    ("ExtractedFeatures", lambda c: c.pop("de_LDS3"), "variable 'de_LDS3' missing"),
    ("ExtractedFeatures", lambda c: c.update(de_LDS3=np.zeros((61, 2, 5))),
     r"'de_LDS3' has shape \(61, 2, 5\)"),
    ("Preprocessed_EEG", lambda c: c.pop("djc_eeg5"), r"trial\(s\) \[5\] missing"),
    ("Preprocessed_EEG", lambda c: c.update(djc_eeg5=np.zeros((32, 401))),
     "'djc_eeg5' has shape"),
    ("Preprocessed_EEG", lambda c: c.update(xx_eeg5=c["djc_eeg5"]), "both hold trial 5"),
])
def test_bad_variables(seed_root, tmp_path, folder, edit, pattern):
    root = _copy(seed_root, tmp_path, folder)
    edit_mat(root / folder / FIRST, edit)
    with pytest.raises(DatasetFormatError, match=f"{FIRST}.*{pattern}"):
        _read(root, subjects=[1])


def test_label_file(seed_root, tmp_path):
    root = _copy(seed_root, tmp_path, "ExtractedFeatures", "Preprocessed_EEG")
    labels = root / "ExtractedFeatures" / "label.mat"
    edit_mat(labels, lambda c: c.update(label=np.full((1, 15), 2)))
    with pytest.raises(DatasetFormatError, match="label.mat.*'label' holds"):
        _read(root, subjects=[1])
    for folder in ("ExtractedFeatures", "Preprocessed_EEG"):
        (root / folder / "label.mat").unlink()
    with pytest.raises(DatasetFormatError, match="label.mat.*not found"):
        _read(root, subjects=[1])


def test_extra_eye_variable_is_an_error(clean_root, tmp_path):
    root = _copy(clean_root, tmp_path, seed_mod.EYE_DIR)
    edit_mat(root / seed_mod.EYE_DIR / FIRST, lambda c: c.update(eye_16=c["eye_15"]))
    with pytest.raises(DatasetFormatError, match=rf"{FIRST}: eye variables for trial\(s\) \[16\]"):
        _read(root, subjects=[1], raw=False)


def test_copy_with_fewer_trials_reads(tmp_path):
    root = tmp_path / "seed"
    manifest = seed_mod.write_synthetic(root, n_subjects=1, seconds=SECONDS, n_trials=5)
    labels = scipy.io.loadmat(root / "ExtractedFeatures" / "label.mat")["label"]
    assert labels.shape == (1, 5)
    recordings = _read(root)
    assert [(r.session, r.trial) for r in recordings] == [(s, t) for s in (1, 2, 3)
                                                          for t in range(1, 6)]
    assert [r.native_label for r in recordings[:5]] == [v + 1 for v in seed_mod.LABELS[:5]]
    assert all(r.streams["eeg"].n_times == SECONDS * 200 + 1 for r in recordings)
    windows, _ = prepare("seed", root, "default", use_cache=False)
    expected = manifest["expected"]
    assert len(windows) == expected["windows"] == 15 * SECONDS
    assert windows.meta.groupby(["subject", "session", "trial"]).ngroups == expected["trials"]


@pytest.mark.parametrize("folder, edit, pattern", [
    ("ExtractedFeatures", None, r"ExtractedFeatures/1_20131027.mat: feature variables for "
     r"unexpected trial number\(s\) \[15\] \(.*label.mat holds 14 labels"),
    ("ExtractedFeatures",
     lambda c: [c.pop(name) for name in list(c) if name.endswith("15")],
     r"ExtractedFeatures/1_20131027.mat: feature variables for trial\(s\) \[15\] missing "
     r"\(.*label.mat holds 15 labels"),
    ("Preprocessed_EEG", lambda c: c.update(djc_eeg16=c["djc_eeg15"]),
     r"Preprocessed_EEG/1_20131027.mat: unexpected trial number\(s\) \[16\] "
     r"\(.*label.mat holds 15 labels"),
])
def test_label_count_must_match_the_variables(seed_root, tmp_path, folder, edit, pattern):
    root = _copy(seed_root, tmp_path, "ExtractedFeatures", "Preprocessed_EEG")
    if edit is None:            # label.mat one short of the 15 trials of every file
        for labels in ("ExtractedFeatures", "Preprocessed_EEG"):
            edit_mat(root / labels / "label.mat",
                     lambda c: c.update(label=c["label"][:, :14]))
    else:
        edit_mat(root / folder / FIRST, edit)
    with pytest.raises(DatasetFormatError, match=pattern) as error:
        _read(root, subjects=[1])
    assert "\n" not in str(error.value)


@pytest.fixture(scope="module")
def long_root(tmp_path_factory):
    """8 windows per trial, two trials per session, eye features: room for gaps inside."""
    root = tmp_path_factory.mktemp("seed-long") / "seed"
    seed_mod.write_synthetic(root, n_subjects=1, seconds=8, nuisances=False, n_trials=2)
    return root


def _poke_gaps(root: Path) -> None:
    """NaN in de_LDS2 (trial 2 of session 1): window 2 (a short gap) and windows 4-6 (a long
    one, some bands only), in the file's (62, window, 5) layout; an eye NaN and a raw NaN."""
    def features(content):
        content["de_LDS2"][:, 2, :] = np.nan
        content["de_LDS2"][5, 4:7, 1:3] = np.nan
    edit_mat(root / "ExtractedFeatures" / FIRST, features)
    edit_mat(root / seed_mod.EYE_DIR / FIRST,
             lambda c: c["eye_1"].__setitem__((3, 1), np.nan))
    edit_mat(root / "Preprocessed_EEG" / FIRST,
             lambda c: c["djc_eeg1"].__setitem__((7, 100), np.nan))


def test_nan_policies(long_root, tmp_path):
    root = _copy(long_root, tmp_path, "ExtractedFeatures", "Preprocessed_EEG", seed_mod.EYE_DIR)
    _poke_gaps(root)
    recordings = _read(root)                             # default: mark_missing
    first, second = recordings[:2]
    assert not first.missing and not second.missing
    assert first.nonfinite == {"eye": {"nonfinite": 1, "interpolated": 0},
                               "eeg": {"nonfinite": 1, "interpolated": 0}}
    assert not first.streams["eeg"].valid[100] and first.streams["eeg"].valid.sum() == 1600
    assert np.isfinite(first.streams["eeg"].data).all()
    bad = ~np.isfinite(second.features["de_LDS"].data).reshape(8, -1).all(axis=1)
    assert np.flatnonzero(bad).tolist() == [2, 4, 5, 6]
    assert second.nonfinite["de_LDS"] == {"nonfinite": 4, "interpolated": 0}
    windows, _ = prepare("seed", root, "default", use_cache=False)
    assert _unavailable(windows, "eeg") == {(1, 1, 2, w) for w in (2, 4, 5, 6)}
    assert windows.description["missing"]["eeg"]["invalid_windows"] == 4

    filled, _ = prepare("seed", root, "default", {"nan_policy": "interpolate"},
                        use_cache=False)
    assert _unavailable(filled, "eeg") == {(1, 1, 2, w) for w in (4, 5, 6)}
    second = _read(root, raw=False, nan_policy="interpolate")[1]
    assert second.nonfinite["de_LDS"] == {"nonfinite": 4, "interpolated": 1}
    de = second.features["de_LDS"].data
    assert np.allclose(de[2], (de[1] + de[3]) / 2)

    with pytest.raises(DatasetFormatError, match=rf"{FIRST}: key 'eye_1' \(eye\) holds 1 "
                       "non-finite windows") as error:
        _read(root, raw=False, nan_policy="raise")
    assert "\n" not in str(error.value)
    edit_mat(root / seed_mod.EYE_DIR / FIRST, lambda c: c["eye_1"].__setitem__((3, 1), 0.0))
    with pytest.raises(DatasetFormatError, match=rf"ExtractedFeatures/{FIRST}: key 'de_LDS2' "
                       r"\(de_LDS\) holds 4 non-finite windows"):
        _read(root, raw=False, nan_policy="raise")
