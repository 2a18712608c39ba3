"""AMIGOS reader: synthetic round trip, layouts, long videos, label order, face and bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import scipy.io

from affectlab.datasets import amigos, get_spec, iter_recordings
from affectlab.datasets.base import check_recording
from affectlab.errors import ConfigError, DatasetFormatError

FACE = {"face_au", "face_landmarks", "gaze"}


@pytest.fixture(scope="module")
def amigos_root(synthetic_root):
    return synthetic_root("amigos", n_subjects=3, seconds=4)


def _copy(amigos_root, tmp_path):
    root = tmp_path / "amigos"
    shutil.copytree(amigos_root, root)
    return root


def _edit(path, change):
    """Load one subject file with scipy's defaults, let ``change(content)`` edit it, save."""
    content = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    change(content)
    scipy.io.savemat(path, content, do_compression=True)


def test_round_trip_conforms(amigos_root):
    spec = get_spec("amigos")
    recordings = list(iter_recordings("amigos", amigos_root))
    assert len(recordings) == 3 * 16                 # long videos are off by default
    for rec in recordings:
        check_recording(rec, spec)
        assert set(rec.ratings) == {"valence", "arousal", "dominance", "liking"}
    first = recordings[0]
    assert (first.subject, first.session, first.trial) == (1, 1, 1)
    assert first.streams["eeg"].data.shape == (14, (5 + 4) * 128)
    assert first.streams["ecg"].ch_names == ["ECG_Right", "ECG_Left"]
    assert first.streams["gsr"].data.shape == (1, (5 + 4) * 128)
    assert {s.onset_s for s in first.streams.values() if s.sfreq == 128.0} == {5.0}
    stimuli = {r.stimulus for r in recordings if r.subject == 1}
    assert stimuli == {f"video{v}" for v in amigos.SHORT_VIDEOS}


def test_face_present_and_missing(amigos_root):
    recordings = list(iter_recordings("amigos", amigos_root))
    by_subject = {s: [r for r in recordings if r.subject == s] for s in (1, 2, 3)}
    assert all(FACE <= r.missing for r in by_subject[3])         # no face data at all
    assert [r.trial for r in by_subject[1] if FACE <= r.missing] == [5]
    au = by_subject[2][0].streams["face_au"]
    assert au.data.shape[0] == 17 and au.sfreq == 25.0 and au.valid is not None


def test_long_videos_option_and_empty_cells(amigos_root):
    recordings = list(iter_recordings("amigos", amigos_root, long_videos=True))
    trials = {s: [r.trial for r in recordings if r.subject == s] for s in (1, 2, 3)}
    assert trials[1] == trials[3] == list(range(1, 21))
    assert trials[2] == list(range(1, 17))                   # cells 17-20 are empty (0x0)
    long = [r for r in recordings if r.trial > 16]
    assert {r.stimulus for r in long if r.subject == 1} == {"videoN1", "videoP1", "videoB1",
                                                            "videoU1"}
    assert long[0].streams["eeg"].n_times == (5 + 6) * 128
    for rec in long:
        check_recording(rec, get_spec("amigos"))


def test_baseline_option(amigos_root):
    rec = next(iter_recordings("amigos", amigos_root, baseline_s=2.0))
    assert rec.streams["eeg"].onset_s == 2.0
    with pytest.raises(ConfigError, match="baseline_s"):
        next(iter_recordings("amigos", amigos_root, baseline_s=-1.0))


def test_nested_unzip_layout(amigos_root, tmp_path):
    root = _copy(amigos_root, tmp_path)
    for path in root.glob("Data_Preprocessed_P*.mat"):
        (root / path.stem).mkdir()
        path.rename(root / path.stem / path.name)
    flat = list(iter_recordings("amigos", amigos_root, subjects=[2]))
    nested = list(iter_recordings("amigos", root, subjects=[2]))
    assert [r.stimulus for r in nested] == [r.stimulus for r in flat]
    np.testing.assert_array_equal(nested[3].streams["gsr"].data, flat[3].streams["gsr"].data)
    assert "face_au" in nested[0].streams
    # a participant folder given as the root means its parent
    from_folder = list(iter_recordings("amigos", root / "Data_Preprocessed_P01"))
    assert {r.subject for r in from_folder} == {1, 2, 3}


def test_parent_folder_and_stray_files(amigos_root, tmp_path):
    root = _copy(amigos_root, tmp_path)
    (root / "notes.txt").write_text("not a subject")
    (root / "Data_Preprocessed_P01.mat.bak").write_text("old copy")
    (root / "External_Annotations").mkdir()
    recordings = list(iter_recordings("amigos", tmp_path, subjects=[1]))
    assert len(recordings) == 16 and "face_au" in recordings[0].streams


def test_missing_root(tmp_path):
    with pytest.raises(DatasetFormatError, match="does not exist"):
        list(iter_recordings("amigos", tmp_path / "nowhere"))
    with pytest.raises(DatasetFormatError, match="no AMIGOS subject files.*Data_Preprocessed_P01"):
        list(iter_recordings("amigos", tmp_path))


def test_missing_subject_file(amigos_root):
    with pytest.raises(DatasetFormatError, match="Data_Preprocessed_P07.mat"):
        list(iter_recordings("amigos", amigos_root, subjects=[7]))


def test_truncated_file(amigos_root, tmp_path):
    root = _copy(amigos_root, tmp_path)
    path = root / "Data_Preprocessed_P01.mat"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DatasetFormatError, match="Data_Preprocessed_P01.mat.*truncated"):
        list(iter_recordings("amigos", root, subjects=[1]))


def test_missing_variable(amigos_root, tmp_path):
    root = _copy(amigos_root, tmp_path)
    _edit(root / "Data_Preprocessed_P02.mat", lambda c: c.pop("labels_selfassessment"))
    with pytest.raises(DatasetFormatError,
                       match="Data_Preprocessed_P02.mat.*variable 'labels_selfassessment'"):
        list(iter_recordings("amigos", root, subjects=[2]))


def _set_cell(variable, index, value):
    def change(content):
        content[variable][0, index] = value
    return change


@pytest.mark.parametrize("variable, value, pattern", [
    ("joined_data", np.zeros((900, 16)), r"joined_data\{3\}' has shape \(900, 16\)"),
    ("joined_data", np.zeros((17, 900)), r"joined_data\{3\}' has shape \(17, 900\)"),
    ("joined_data", np.zeros((100, 17)), r"joined_data\{3\}' has only 100 samples"),
    ("labels_selfassessment", np.ones((1, 3)), r"labels_selfassessment\{3\}' has 3 values"),
    ("VideoIDs", np.ones((2, 2)), r"VideoIDs\{3\}'"),
])
def test_wrong_cell_content(amigos_root, tmp_path, variable, value, pattern):
    root = _copy(amigos_root, tmp_path)
    _edit(root / "Data_Preprocessed_P01.mat", _set_cell(variable, 2, value))
    with pytest.raises(DatasetFormatError, match=r"Data_Preprocessed_P01.mat.*" + pattern):
        list(iter_recordings("amigos", root, subjects=[1]))


def test_wrong_number_of_cells(amigos_root, tmp_path):
    root = _copy(amigos_root, tmp_path)

    def drop_cells(content):
        content["joined_data"] = content["joined_data"][:, :16]

    _edit(root / "Data_Preprocessed_P01.mat", drop_cells)
    with pytest.raises(DatasetFormatError, match="variable 'joined_data'.*1x20 cell"):
        list(iter_recordings("amigos", root, subjects=[1]))


def test_self_assessment_columns_arousal_first(amigos_root, tmp_path):
    root = _copy(amigos_root, tmp_path)
    row = np.array([[2.0, 8.0, 3.0, 4.0, 6.0, 0, 0, 1, 0, 0, 0, 0]])
    _edit(root / "Data_Preprocessed_P01.mat", _set_cell("labels_selfassessment", 0, row))
    rec = next(iter_recordings("amigos", root, subjects=[1]))
    assert rec.ratings == {"arousal": 2.0, "valence": 8.0, "dominance": 3.0, "liking": 4.0}


def test_empty_labels_cell_skips_the_trial(amigos_root, tmp_path):
    root = _copy(amigos_root, tmp_path)
    _edit(root / "Data_Preprocessed_P01.mat",
          _set_cell("labels_selfassessment", 17, np.zeros((0, 0))))
    trials = [r.trial for r in iter_recordings("amigos", root, subjects=[1], long_videos=True)]
    assert trials == [*range(1, 18), 19, 20]


def test_nan_in_gsr_raises_or_marks_only_gsr(amigos_root, tmp_path):
    root = _copy(amigos_root, tmp_path)

    def nan_in_gsr(content):
        content["joined_data"][0, 2][700, 16] = np.nan

    _edit(root / "Data_Preprocessed_P01.mat", nan_in_gsr)
    with pytest.raises(DatasetFormatError,
                       match=r"Data_Preprocessed_P01.mat.*joined_data\{3\}\(:, 17\)' \(gsr\)"
                             r".*NaN"):
        list(iter_recordings("amigos", root, subjects=[1]))
    recordings = list(iter_recordings("amigos", root, subjects=[1], nan_policy="mark_missing"))
    assert recordings[2].missing == {"gsr"}
    assert {"eeg", "ecg", "face_au"} <= set(recordings[2].streams)
    assert "gsr" in recordings[1].streams
    for rec in recordings:
        check_recording(rec, get_spec("amigos"))


def test_nan_rating_raises_or_skips(amigos_root, tmp_path):
    root = _copy(amigos_root, tmp_path)

    def nan_valence(content):
        content["labels_selfassessment"][0, 3][0, 1] = np.nan

    _edit(root / "Data_Preprocessed_P01.mat", nan_valence)
    with pytest.raises(DatasetFormatError, match=r"labels_selfassessment\{4\}' \(ratings\)"):
        list(iter_recordings("amigos", root, subjects=[1]))
    recordings = list(iter_recordings("amigos", root, subjects=[1], nan_policy="mark_missing"))
    assert 4 not in [r.trial for r in recordings] and len(recordings) == 15
