"""SEED-V reader: round trip, pickled-dict .npz container, label table, trials from the keys,
eye / DE window trimming, NaN policies, bad input."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from affectlab.datasets import get_spec, iter_recordings, seed_v, synth
from affectlab.datasets.base import check_recording
from affectlab.errors import DatasetFormatError
from affectlab.presets import prepare

SECONDS = 8                       # two 4-s windows
DE, EYE = "EEG_DE_features", "Eye_movement_features"


@pytest.fixture(scope="module")
def seed_v_root(synthetic_root):
    return synthetic_root("seed_v", n_subjects=2, seconds=SECONDS)


@pytest.fixture(scope="module")
def manifest(seed_v_root):
    return json.loads((seed_v_root.parent / "manifest.json").read_text())["seed_v"]


def _unavailable(windows, name: str) -> set[tuple[int, int, int, int]]:
    meta = windows.meta[~windows.available(name)]
    return set(zip(meta.subject, meta.session, meta.trial, meta.window, strict=True))


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


def test_eye_and_eeg_windows_trimmed_to_the_shorter(seed_v_root, manifest):
    de = _load(seed_v_root / DE / "1_123.npz")["data"]
    eye = _load(seed_v_root / EYE / "1_123.npz")["data"]
    assert len(eye[3]) == len(de[3]) + 1 and len(eye[7]) == len(de[7]) - 1   # as written
    differ = {(d["subject"], d["key"]): d for d in manifest["nuisances"]["eye_windows_differ"]}
    assert {k for s, k in differ if s == 1} == {k for k in de if len(de[k]) != len(eye[k])}
    assert manifest["nuisances"]["eye_windows_fewer"] == sum(
        d["eye_windows"] == d["de_windows"] - 1 for d in differ.values()) > 0
    for k, rec in enumerate(_read(seed_v_root, subjects=[1])):
        n = min(len(de[k]), len(eye[k]))
        assert rec.features["de_LDS"].n_windows == rec.features["eye"].n_windows == n
        assert not rec.missing
    windows, _ = prepare("seed_v", seed_v_root, "default", use_cache=False)
    assert len(windows) == manifest["expected"]["windows"] == sum(
        min(t["windows"], t["eye_windows"]) for t in manifest["trials"])
    assert windows.available("eye").all() and windows.available("eeg").all()


def test_clean_copy_has_equal_window_counts(tmp_path):
    entry = synth(tmp_path, ["seed_v"], n_subjects=1, seconds=SECONDS,
                  nuisances=False)["seed_v"]
    assert entry["nuisances"] == {}
    assert all(t["windows"] == t["eye_windows"] and not t["noisy"] for t in entry["trials"])
    de = _load(tmp_path / "seed_v" / DE / "1_123.npz")["data"]
    eye = _load(tmp_path / "seed_v" / EYE / "1_123.npz")["data"]
    assert all(len(de[k]) == len(eye[k]) for k in de)


def test_copy_with_fewer_trials_reads(seed_v_root, tmp_path):
    small = tmp_path / "small"
    expected = seed_v.write_synthetic(small, n_subjects=1, seconds=SECONDS,
                                      n_trials=5)["expected"]
    assert sorted(_load(small / DE / "1_123.npz")["data"]) == [
        15 * s + t for s in range(3) for t in range(5)]
    recordings = _read(small)
    assert [(r.session, r.trial) for r in recordings] == [(s, t) for s in (1, 2, 3)
                                                          for t in range(1, 6)]
    assert all(r.native_label == seed_v.LABELS[r.session][r.trial - 1] for r in recordings)
    windows, _ = prepare("seed_v", small, "default", use_cache=False)
    assert len(windows) == expected["windows"] and expected["trials"] == 15
    # a copy cut to session 2 (keys 15..29) in both files
    root = _copy(seed_v_root, tmp_path)
    for folder in (DE, EYE):
        _rewrite(root / folder / "2_123.npz", lambda c: [
            table.pop(k) for table in c.values() for k in list(table) if not 15 <= k < 30])
    assert {(r.session, r.trial) for r in _read(root, subjects=[2])} == {
        (2, t) for t in range(1, 16)}


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
    (lambda c: c["data"].pop(7), r"key 'label' has entries \[7\] that key 'data' lacks"),
    (lambda c: c["label"].pop(7), r"key 'label' has no entries \[7\] that key 'data' holds"),
    (lambda c: c["data"].update({45: c["data"][0]}), r"key 'data': entries \[45\] outside 0..44"),
    (lambda c: c.update(data={}), "key 'data' holds no trial entries"),
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


def test_eye_keys_must_match_the_de_keys(seed_v_root, tmp_path):
    root = _copy(seed_v_root, tmp_path)
    _rewrite(root / EYE / "1_123.npz", lambda c: c["data"].pop(20))
    with pytest.raises(DatasetFormatError, match=rf"{EYE}/1_123.npz: key 'data' has no entries "
                       rf"\[20\] that key 'data' of .*{DE}/1_123.npz holds") as error:
        _read(root, subjects=[1])
    assert "\n" not in str(error.value)


@pytest.fixture(scope="module")
def long_root(tmp_path_factory):
    """8 windows per trial, two trials per session, no nuisances: room for gaps inside."""
    root = tmp_path_factory.mktemp("seed-v-long") / "seed_v"
    seed_v.write_synthetic(root, n_subjects=1, seconds=32, nuisances=False, n_trials=2)
    return root


def test_nan_policies(long_root, tmp_path):
    root = _copy(long_root, tmp_path)

    def edit(content):
        content["data"][1][1, 2] = np.nan         # trial 2 of session 1: a 1-window gap
        content["data"][1][3:6, :] = np.nan      # and a 3-window one
    _rewrite(root / EYE / "1_123.npz", edit)
    rec = _read(root)[1]                          # default: mark_missing
    assert "eye" in rec.features and not rec.missing
    assert rec.nonfinite == {"eye": {"nonfinite": 4, "interpolated": 0}}
    windows, _ = prepare("seed_v", root, "default", use_cache=False)
    assert _unavailable(windows, "eye") == {(1, 1, 2, w) for w in (1, 3, 4, 5)}
    assert windows.description["missing"]["eye"]["invalid_windows"] == 4
    assert windows.available("eeg").all()
    filled, _ = prepare("seed_v", root, "default", {"nan_policy": "interpolate"},
                        use_cache=False)
    assert _unavailable(filled, "eye") == {(1, 1, 2, w) for w in (3, 4, 5)}
    eye = _read(root, nan_policy="interpolate")[1].features["eye"].data
    assert np.allclose(eye[1], (eye[0] + eye[2]) / 2)
    with pytest.raises(DatasetFormatError, match=r"1_123.npz: key 'data\[1\]' \(eye\) holds 4 "
                       "non-finite windows") as error:
        _read(root, nan_policy="raise")
    assert "\n" not in str(error.value)


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
