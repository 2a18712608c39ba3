"""SEED-V reader: round trip, pickled-dict .npz container, label table, trimming, bad input."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from affectlab.datasets import get_spec, iter_recordings, seed_v
from affectlab.datasets.base import check_recording
from affectlab.errors import DatasetFormatError

SECONDS = 8                       # two 4-s windows
DE, EYE = "EEG_DE_features", "Eye_movement_features"


@pytest.fixture(scope="module")
def seed_v_root(synthetic_root):
    return synthetic_root("seed_v", n_subjects=2, seconds=SECONDS)


def _copy(src: Path, tmp_path: Path) -> Path:
    root = tmp_path / "seed_v"
    shutil.copytree(src, root)
    return root


def _load(path: Path) -> dict[str, dict]:
    with np.load(path) as npz:
        return {key: pickle.loads(npz[key].tobytes()) for key in npz.files}


def _read(root, **options):
    return list(iter_recordings("seed_v", root, **options))


def test_round_trip_conforms(seed_v_root):
    spec = get_spec("seed_v")
    recordings = _read(seed_v_root)
    assert len(recordings) == 2 * 45
    for rec in recordings:
        check_recording(rec, spec)
    first = recordings[0]
    assert first.features["de_LDS"].data.shape == (SECONDS // 4, 62, 5)
    assert first.features["eye"].data.shape == (SECONDS // 4, 33)
    assert first.features["de_LDS"].window_s == 4.0 and not first.streams


def test_sessions_trials_and_labels_from_keys(seed_v_root):
    recordings = _read(seed_v_root, subjects=[1])
    assert [(r.session, r.trial) for r in recordings[14:16]] == [(1, 15), (2, 1)]
    for rec in recordings:
        assert rec.native_label == seed_v.LABELS[rec.session][rec.trial - 1]
        assert rec.stimulus == f"s{rec.session}_clip{rec.trial:02d}"
    assert seed_v.LABELS[2] == seed_v.LABELS[3] != seed_v.LABELS[1]


def test_rows_are_channel_major(seed_v_root):
    data = _load(seed_v_root / DE / "1_123.npz")["data"]
    rec = _read(seed_v_root, subjects=[1])[20]
    assert np.array_equal(rec.features["de_LDS"].data[1, 7], data[20][1, 35:40])


def test_eye_and_eeg_windows_trimmed_to_the_shorter(seed_v_root):
    de = _load(seed_v_root / DE / "1_123.npz")["data"]
    eye = _load(seed_v_root / EYE / "1_123.npz")["data"]
    assert len(eye[3]) == len(de[3]) + 1 and len(eye[7]) == len(de[7]) - 1   # as written
    for k, rec in enumerate(_read(seed_v_root, subjects=[1])):
        n = min(len(de[k]), len(eye[k]))
        assert rec.features["de_LDS"].n_windows == rec.features["eye"].n_windows == n
        assert not rec.missing


def test_truncated_pickle_inside_the_npz(seed_v_root, tmp_path):
    root = _copy(seed_v_root, tmp_path)
    path = root / DE / "1_123.npz"
    with np.load(path) as npz:
        data, label = npz["data"].tobytes(), npz["label"]
    np.savez(path, data=np.array(data[: len(data) // 2]), label=label)
    with pytest.raises(DatasetFormatError,
                       match="1_123.npz: key 'data': cannot unpickle.*truncated"):
        _read(root, subjects=[1])


def test_truncated_npz(seed_v_root, tmp_path):
    root = _copy(seed_v_root, tmp_path)
    path = root / EYE / "2_123.npz"
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(DatasetFormatError, match="2_123.npz.*truncated or not an .npz"):
        _read(root, subjects=[2])


def _rewrite(path: Path, edit) -> None:
    content = _load(path)
    edit(content)
    np.savez(path, **{key: np.array(pickle.dumps(value)) for key, value in content.items()})


@pytest.mark.parametrize("edit, pattern", [
    (lambda c: c.pop("label"), "key 'label' missing"),
    (lambda c: c["data"].pop(7), r"key 'data': trial entries \[7\] missing"),
    (lambda c: c.update(data=[1, 2]), "key 'data' holds a list"),
    (lambda c: c["data"].update({3: np.zeros((2, 300))}), r"'data\[3\]' has shape \(2, 300\)"),
    (lambda c: c["label"].update({5: np.array([1.0, 2.0])}), r"label\[5\].*vary"),
    (lambda c: c["label"].update({5: np.array([1.0])}), r"label\[5\]' has 1 values for 2"),
    (lambda c: c["label"].update({5: np.array([7.0, 7.0])}), r"label\[5\]' holds 7.0"),
])
def test_bad_content(seed_v_root, tmp_path, edit, pattern):
    root = _copy(seed_v_root, tmp_path)
    _rewrite(root / DE / "1_123.npz", edit)
    with pytest.raises(DatasetFormatError, match=f"1_123.npz.*{pattern}"):
        _read(root, subjects=[1])


def test_eye_nan_raises_or_marks_missing(seed_v_root, tmp_path):
    root = _copy(seed_v_root, tmp_path)

    def edit(content):
        content["data"][4][0, 2] = np.nan
    _rewrite(root / EYE / "1_123.npz", edit)
    with pytest.raises(DatasetFormatError, match=r"1_123.npz.*'data\[4\]' \(eye\) contains NaN"):
        _read(root, subjects=[1])
    recordings = _read(root, subjects=[1], nan_policy="mark_missing")
    assert recordings[4].missing == {"eye"} and "eye" in recordings[5].features


def test_missing_eye_file_marks_eye_missing(seed_v_root, tmp_path):
    root = _copy(seed_v_root, tmp_path)
    (root / EYE / "2_123.npz").unlink()
    recordings = _read(root)
    assert all(("eye" in r.missing) == (r.subject == 2) for r in recordings)


def test_subject_selection_inner_folder_and_stray_file(seed_v_root, tmp_path):
    root = _copy(seed_v_root, tmp_path)
    (root / DE / "notes.txt").write_text("not a subject")
    (root / DE / "1_123.npz.bak").write_text("not a subject either")
    recordings = _read(root / DE, subjects=[2])
    assert {r.subject for r in recordings} == {2} and len(recordings) == 45


def test_missing_directory(tmp_path):
    with pytest.raises(DatasetFormatError, match="EEG_DE_features"):
        _read(tmp_path)


def test_missing_subject_file(seed_v_root):
    with pytest.raises(DatasetFormatError, match="7_123.npz"):
        _read(seed_v_root, subjects=[7])
