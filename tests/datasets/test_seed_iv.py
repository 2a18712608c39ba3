"""SEED-IV reader: round trip, sessions by folder, label table, eye trimming and NaN, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from affectlab.datasets import get_spec, iter_recordings, seed_iv
from affectlab.datasets.base import check_recording
from affectlab.errors import DatasetFormatError

from .helpers import copy_dataset, edit_mat

SECONDS = 4                       # one 4-s window (raw files are large)
FIRST = "1_20160518.mat"          # subject 1 in session folder 1
FEATS, EYE, RAW = "eeg_feature_smooth", "eye_feature_smooth", "eeg_raw_data"


@pytest.fixture(scope="module")
def seed_iv_root(synthetic_root):
    return synthetic_root("seed_iv", n_subjects=2, seconds=SECONDS)


def _copy(src: Path, tmp_path: Path, *modify: str, **drop) -> Path:
    return copy_dataset(src, tmp_path / "seed_iv", *modify, **drop)


def _read(root, **options):
    return list(iter_recordings("seed_iv", root, **options))


def test_round_trip_conforms(seed_iv_root):
    spec = get_spec("seed_iv")
    recordings = _read(seed_iv_root)
    assert len(recordings) == 2 * 3 * 24
    for rec in recordings:
        check_recording(rec, spec)
    first = recordings[0]
    assert first.streams["eeg"].data.shape == (62, SECONDS * 200 + 1)
    assert first.features["eye"].data.shape == (SECONDS // 4, 31)
    for name in seed_iv.BAND_SETS:
        assert first.features[name].data.shape == (SECONDS // 4, 62, 5)
        assert first.features[name].window_s == 4.0


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


def test_eye_and_eeg_windows_trimmed_to_the_shorter(seed_iv_root, tmp_path):
    root = _copy(seed_iv_root, tmp_path, EYE, FEATS)

    def longer(names):
        def edit(content):
            for name in names:
                content[name] = np.concatenate([content[name], content[name][:, -1:]], axis=1)
        return edit
    edit_mat(root / EYE / "1" / FIRST, longer(["eye_3"]))                   # eye one longer
    edit_mat(root / FEATS / "1" / FIRST, longer([f"{n}4" for n in seed_iv.BAND_SETS]))
    recordings = _read(root, subjects=[1], raw=False)
    for rec in recordings[2:4]:
        assert {f.n_windows for f in rec.features.values()} == {SECONDS // 4}
        assert not rec.missing


def test_eye_nan_raises_or_marks_missing(seed_iv_root, tmp_path):
    root = _copy(seed_iv_root, tmp_path, EYE)

    def edit(content):
        content["eye_5"][0, 0] = np.nan
    edit_mat(root / EYE / "1" / FIRST, edit)
    with pytest.raises(DatasetFormatError, match=f"1/{FIRST}.*'eye_5' \\(eye\\) contains NaN"):
        _read(root, subjects=[1], raw=False)
    recordings = _read(root, subjects=[1], raw=False, nan_policy="mark_missing")
    assert recordings[4].missing == {"eye"} and "eye" in recordings[5].features


def test_missing_eye_file_marks_eye_missing(seed_iv_root, tmp_path):
    root = _copy(seed_iv_root, tmp_path, EYE, drop=(RAW,))
    (root / EYE / "2" / "1_20161125.mat").unlink()
    recordings = _read(root, subjects=[1], raw=False)
    assert all(("eye" in r.missing) == (r.session == 2) for r in recordings)


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
