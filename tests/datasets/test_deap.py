"""DEAP reader: synthetic round trip, conformance, face mapping, and bad input."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest

from affectlab.datasets import get_spec, iter_recordings
from affectlab.datasets.base import check_recording
from affectlab.errors import DatasetFormatError, UnknownNameError


@pytest.fixture(scope="module")
def deap_root(synthetic_root):
    return synthetic_root("deap", n_subjects=3, seconds=4)


def test_round_trip_conforms(deap_root):
    spec = get_spec("deap")
    recordings = list(iter_recordings("deap", deap_root))
    assert len(recordings) == 3 * 40
    for rec in recordings:
        check_recording(rec, spec)
    first = recordings[0]
    assert first.streams["eeg"].data.shape == (32, (3 + 4) * 128)
    assert first.streams["eeg"].onset_s == 3.0
    assert first.streams["gsr"].ch_names == ["GSR"]


def test_face_present_mapped_and_missing(deap_root):
    recordings = list(iter_recordings("deap", deap_root))
    by_subject = {s: [r for r in recordings if r.subject == s] for s in (1, 2, 3)}
    # the last synthetic subject has no face video at all
    assert all({"face_au", "face_landmarks", "gaze"} <= r.missing for r in by_subject[3])
    with_face = [r for r in by_subject[1] if "face_au" in r.streams]
    assert len(with_face) == 40
    au = with_face[0].streams["face_au"]
    assert au.data.shape[0] == 17 and au.sfreq == 25.0 and au.valid is not None


def test_subject_selection_and_inner_folder(deap_root):
    recordings = list(iter_recordings("deap", deap_root / "data_preprocessed_python",
                                      subjects=[2]))
    assert {r.subject for r in recordings} == {2}


def test_stray_file_is_ignored(deap_root, tmp_path):
    root = tmp_path / "deap"
    shutil.copytree(deap_root, root)
    (root / "data_preprocessed_python" / "notes.txt").write_text("not a subject")
    assert len(list(iter_recordings("deap", root, subjects=[1]))) == 40


def _copy(deap_root, tmp_path):
    root = tmp_path / "deap"
    shutil.copytree(deap_root, root)
    return root


def test_missing_directory(tmp_path):
    with pytest.raises(DatasetFormatError, match="data_preprocessed_python"):
        list(iter_recordings("deap", tmp_path))


def test_missing_subject_file(deap_root):
    with pytest.raises(DatasetFormatError, match="s07.dat"):
        list(iter_recordings("deap", deap_root, subjects=[7]))


def test_truncated_pickle(deap_root, tmp_path):
    root = _copy(deap_root, tmp_path)
    path = root / "data_preprocessed_python" / "s01.dat"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DatasetFormatError, match="s01.dat.*truncated"):
        list(iter_recordings("deap", root, subjects=[1]))


@pytest.mark.parametrize("content, pattern", [
    ({"labels": np.zeros((40, 4))}, "key 'data' missing"),
    ({"data": np.zeros((40, 40, 1000)), "labels": np.zeros((40, 3))}, "'labels' has shape"),
    ({"data": np.zeros((40, 32, 1000)), "labels": np.zeros((40, 4))}, "'data' has shape"),
])
def test_bad_content(deap_root, tmp_path, content, pattern):
    root = _copy(deap_root, tmp_path)
    with open(root / "data_preprocessed_python" / "s01.dat", "wb") as handle:
        pickle.dump(content, handle, protocol=2)
    with pytest.raises(DatasetFormatError, match=pattern):
        list(iter_recordings("deap", root, subjects=[1]))


def test_nan_marks_the_windows_missing_by_default(deap_root, tmp_path):
    from affectlab.presets import prepare

    root = _copy(deap_root, tmp_path)
    path = root / "data_preprocessed_python" / "s01.dat"
    with open(path, "rb") as handle:
        content = pickle.load(handle, encoding="latin1")
    onset = 3 * 128
    content["data"][2, 36, onset + 130] = np.nan          # GSR of video 3, second 2
    content["data"][4, 36, :] = np.inf                    # GSR of video 5, all of it
    with open(path, "wb") as handle:
        pickle.dump(content, handle, protocol=2)
    with pytest.raises(DatasetFormatError, match=r"s01.dat.*data\[2, 36:37\].*1 non-finite"):
        list(iter_recordings("deap", root, subjects=[1], nan_policy="raise"))
    recordings = list(iter_recordings("deap", root, subjects=[1]))
    gsr = recordings[2].streams["gsr"]
    assert np.isfinite(gsr.data).all() and (~gsr.valid).sum() == 1
    assert recordings[2].nonfinite["gsr"] == {"nonfinite": 1, "interpolated": 0}
    assert "gsr" in recordings[4].missing and "gsr" not in recordings[4].streams
    windows, _ = prepare("deap", root, "default", {"subjects": [1]}, use_cache=False)
    pps = windows.available("pps")
    meta = windows.meta
    assert not pps[(meta["trial"] == 3).to_numpy() & (meta["window"] == 1).to_numpy()].any()
    assert pps[(meta["trial"] == 3).to_numpy()].sum() == 3      # 4 windows, 1 lost
    assert not pps[(meta["trial"] == 5).to_numpy()].any()
    assert windows.description["missing"]["pps"] == {
        "absent_trials": 1, "absent_windows": 4, "invalid_windows": 1}
    assert windows.available("eeg").all()
    filled = list(iter_recordings("deap", root, subjects=[1], nan_policy="interpolate"))
    assert filled[2].streams["gsr"].valid.all()
    assert filled[2].nonfinite["gsr"] == {"nonfinite": 1, "interpolated": 1}


def test_a_copy_with_16_trials_reads(tmp_path):
    from affectlab.datasets import deap
    from affectlab.presets import prepare

    entry = deap.write_synthetic(tmp_path / "deap", n_subjects=2, seconds=2, n_trials=16)
    recordings = list(iter_recordings("deap", tmp_path / "deap"))
    assert len(recordings) == 2 * 16 and {r.trial for r in recordings} == set(range(1, 17))
    windows, _ = prepare("deap", tmp_path / "deap", "default", use_cache=False)
    assert len(windows) == entry["expected"]["windows"] == 2 * 16 * 2


def test_data_and_labels_must_agree(deap_root, tmp_path):
    root = _copy(deap_root, tmp_path)
    with open(root / "data_preprocessed_python" / "s02.dat", "wb") as handle:
        pickle.dump({"data": np.zeros((16, 40, 1000)), "labels": np.zeros((15, 4))}, handle,
                    protocol=2)
    with pytest.raises(DatasetFormatError, match=r"s02.dat.*16 trials and 'labels' 15"):
        list(iter_recordings("deap", root, subjects=[2]))


def test_unknown_dataset():
    with pytest.raises(UnknownNameError, match="deap"):
        get_spec("deep")


def test_ratings_off_the_scale_are_marked_missing_and_counted(deap_root, tmp_path, caplog):
    from affectlab.inspect import dataset_info
    from affectlab.labels import make_labels
    from affectlab.presets import prepare

    root = _copy(deap_root, tmp_path)
    path = root / "data_preprocessed_python" / "s01.dat"
    with open(path, "rb") as handle:
        content = pickle.load(handle, encoding="latin1")
    content["labels"][1, 0] = 12.0                      # valence of video 2
    content["labels"][3, 1] = -3.0                      # arousal of video 4
    with open(path, "wb") as handle:
        pickle.dump(content, handle, protocol=2)
    recordings = list(iter_recordings("deap", root, subjects=[1]))
    assert np.isnan(recordings[1].ratings["valence"])
    assert recordings[1].invalid_ratings == {"valence": 12.0}
    assert recordings[3].invalid_ratings == {"arousal": -3.0}
    assert "valence 12 of subject 1 trial 2" in caplog.text and "s01.dat" in caplog.text
    ws = prepare("deap", root, "default", {"subjects": [1]}, use_cache=False)[0]
    assert ws.description["invalid_ratings"] == {"valence": 1, "arousal": 1}
    labels = make_labels(ws.meta, "deap", "binary_valence")
    assert (labels.y[ws.meta["trial"].to_numpy() == 2] == -1).all()
    info = dataset_info("deap", root, "default", {"subjects": [1]}, cache_dir=tmp_path / "c")
    assert info["invalid_ratings"] == {"valence": 1, "arousal": 1}
