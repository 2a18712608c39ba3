"""DREAMER reader: synthetic round trip, the MATLAB struct layout, and bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import scipy.io

from affectlab.datasets import dreamer, get_spec, iter_recordings
from affectlab.datasets.base import check_recording
from affectlab.datasets.channels import EMOTIV_EEG
from affectlab.errors import DatasetFormatError

FIELDS = ["Data", "EEG_SamplingRate", "ECG_SamplingRate", "EEG_Electrodes", "noOfSubjects",
          "noOfVideoSequences", "Disclaimer", "Provider", "Version", "Acknowledgement"]


@pytest.fixture(scope="module")
def dreamer_root(synthetic_root):
    return synthetic_root("dreamer", n_subjects=3, seconds=4)


def _copy(dreamer_root, tmp_path):
    root = tmp_path / "dreamer"
    shutil.copytree(dreamer_root, root)
    return root


def _edit(root, change):
    """Load DREAMER.mat with scipy's defaults, let ``change(top)`` edit it in place, save."""
    path = root / "DREAMER.mat"
    top = scipy.io.loadmat(path)["DREAMER"]
    change(top)
    scipy.io.savemat(path, {"DREAMER": top}, do_compression=True)


def _subject(top, s=0):
    return top[0, 0]["Data"][0, s]


def test_round_trip_conforms(dreamer_root):
    spec = get_spec("dreamer")
    recordings = list(iter_recordings("dreamer", dreamer_root))
    assert len(recordings) == 3 * 18
    assert [(r.subject, r.trial) for r in recordings[:2]] == [(1, 1), (1, 2)]
    for rec in recordings:
        check_recording(rec, spec)
        assert set(rec.ratings) == {"valence", "arousal", "dominance"}
        assert all(float(v).is_integer() for v in rec.ratings.values())
    first = recordings[0]
    eeg, ecg = first.streams["eeg"], first.streams["ecg"]
    assert eeg.data.shape == (14, (4 + 4) * 128) and eeg.sfreq == 128.0
    assert ecg.data.shape == (2, (4 + 4) * 256) and ecg.sfreq == 256.0
    assert eeg.onset_s == ecg.onset_s == dreamer.SYNTH_BASELINE_S
    assert eeg.ch_names == EMOTIV_EEG
    assert 3500 < eeg.data.mean() < 4500            # Emotiv DC offset kept
    assert recordings[17].stimulus == "video18"


def test_written_file_has_the_released_access_path(dreamer_root):
    m = scipy.io.loadmat(dreamer_root / "DREAMER.mat")
    top = m["DREAMER"]
    assert top.shape == (1, 1) and list(top.dtype.names) == FIELDS
    stimulus = top[0, 0]["Data"][0, 2]["EEG"][0, 0]["stimuli"][0, 0][17, 0]
    baseline = top[0, 0]["Data"][0, 0]["ECG"][0, 0]["baseline"][0, 0][0, 0]
    assert stimulus.shape == (4 * 128, 14) and stimulus.dtype == np.float64
    assert baseline.shape == (4 * 256, 2)
    assert top[0, 0]["Data"].shape == (1, 3)
    assert top[0, 0]["Data"][0, 0]["ScoreValence"][0, 0].shape == (18, 1)
    assert top[0, 0]["EEG_Electrodes"].shape == (1, 14)
    assert float(top[0, 0]["EEG_SamplingRate"][0, 0]) == 128.0


def test_sampling_rates_come_from_the_file(dreamer_root, tmp_path):
    root = _copy(dreamer_root, tmp_path)

    def double_rates(top):
        top[0, 0]["EEG_SamplingRate"][0, 0] = 256.0
        top[0, 0]["ECG_SamplingRate"][0, 0] = 512.0

    _edit(root, double_rates)
    rec = next(iter_recordings("dreamer", root))
    assert rec.streams["eeg"].sfreq == 256.0 and rec.streams["ecg"].sfreq == 512.0
    assert rec.streams["eeg"].onset_s == 4 * 128 / 256       # derived from the baseline length


def test_bad_sampling_rate(dreamer_root, tmp_path):
    root = _copy(dreamer_root, tmp_path)

    def zero_rate(top):
        top[0, 0]["ECG_SamplingRate"][0, 0] = 0.0

    _edit(root, zero_rate)
    with pytest.raises(DatasetFormatError, match="DREAMER.mat.*ECG_SamplingRate.*positive"):
        list(iter_recordings("dreamer", root))


def test_time_by_channel_is_transposed(dreamer_root, tmp_path):
    root = _copy(dreamer_root, tmp_path)
    ramp = np.arange(4 * 128, dtype=np.float64)

    def put_ramp(top):
        _subject(top, 1)["EEG"][0, 0]["stimuli"][0, 0][4, 0][:, 2] = ramp   # F3, clip 5

    _edit(root, put_ramp)
    rec = [r for r in iter_recordings("dreamer", root, subjects=[2]) if r.trial == 5][0]
    eeg = rec.streams["eeg"]
    np.testing.assert_array_equal(eeg.data[eeg.ch_names.index("F3"), 4 * 128:], ramp)


def test_file_path_root_and_stray_file(dreamer_root, tmp_path):
    root = _copy(dreamer_root, tmp_path)
    (root / "notes.txt").write_text("not data")
    assert len(list(iter_recordings("dreamer", root / "DREAMER.mat", subjects=[3]))) == 18


def test_missing_root(tmp_path):
    with pytest.raises(DatasetFormatError, match="does not exist"):
        list(iter_recordings("dreamer", tmp_path / "nowhere"))
    with pytest.raises(DatasetFormatError, match="DREAMER.mat"):
        list(iter_recordings("dreamer", tmp_path))


def test_missing_subject(dreamer_root):
    with pytest.raises(DatasetFormatError, match=r"DREAMER.mat.*subject\(s\) \[7\]"):
        list(iter_recordings("dreamer", dreamer_root, subjects=[7]))


def test_truncated_file(dreamer_root, tmp_path):
    root = _copy(dreamer_root, tmp_path)
    path = root / "DREAMER.mat"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DatasetFormatError, match="DREAMER.mat.*truncated"):
        list(iter_recordings("dreamer", root))


def test_missing_variable(dreamer_root, tmp_path):
    root = _copy(dreamer_root, tmp_path)
    scipy.io.savemat(root / "DREAMER.mat", {"other": np.zeros(3)})
    with pytest.raises(DatasetFormatError, match="DREAMER.mat.*variable 'DREAMER' missing"):
        list(iter_recordings("dreamer", root))


def test_missing_field(dreamer_root, tmp_path):
    root = _copy(dreamer_root, tmp_path)

    def drop_arousal(top):
        subject = _subject(top)[0, 0]
        fields = {n: subject[n] for n in subject.dtype.names if n != "ScoreArousal"}
        top[0, 0]["Data"][0, 0] = dreamer._struct(**fields)

    _edit(root, drop_arousal)
    with pytest.raises(DatasetFormatError, match=r"field 'DREAMER.Data\{1\}.ScoreArousal'"):
        list(iter_recordings("dreamer", root))


@pytest.mark.parametrize("field, part, shape, pattern", [
    ("EEG", "stimuli", (512, 13), r"EEG.stimuli\{3\}' has shape \(512, 13\)"),
    ("ECG", "baseline", (2, 1024), r"ECG.baseline\{3\}' has shape \(2, 1024\)"),
])
def test_wrong_shape(dreamer_root, tmp_path, field, part, shape, pattern):
    root = _copy(dreamer_root, tmp_path)

    def reshape(top):
        _subject(top)[field][0, 0][part][0, 0][2, 0] = np.zeros(shape)

    _edit(root, reshape)
    with pytest.raises(DatasetFormatError, match=r"DREAMER.mat.*Data\{1\}\." + pattern):
        list(iter_recordings("dreamer", root))


def test_wrong_number_of_scores(dreamer_root, tmp_path):
    root = _copy(dreamer_root, tmp_path)

    def short_scores(top):
        _subject(top)["ScoreDominance"][0, 0] = np.ones((17, 1), np.uint8)

    _edit(root, short_scores)
    with pytest.raises(DatasetFormatError, match="ScoreDominance' has 17 values"):
        list(iter_recordings("dreamer", root))


def test_nan_raises_or_marks_missing(dreamer_root, tmp_path):
    root = _copy(dreamer_root, tmp_path)

    def nan_in_ecg(top):
        _subject(top)["ECG"][0, 0]["stimuli"][0, 0][2, 0][10, 1] = np.nan

    _edit(root, nan_in_ecg)
    with pytest.raises(DatasetFormatError,
                       match=r"DREAMER.mat.*Data\{1\}.ECG.stimuli\{3\}' \(ecg\).*NaN"):
        list(iter_recordings("dreamer", root, subjects=[1]))
    recordings = list(iter_recordings("dreamer", root, subjects=[1], nan_policy="mark_missing"))
    assert recordings[2].missing == {"ecg"} and "eeg" in recordings[2].streams
    assert "ecg" in recordings[1].streams
    for rec in recordings:
        check_recording(rec, get_spec("dreamer"))
