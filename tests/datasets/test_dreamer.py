"""DREAMER reader: synthetic round trip, the MATLAB struct layout, sizes taken from the file,
the release's nuisances (DC offset, artefacts), NaN handling and bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import scipy.io

from affectlab.datasets import dreamer, get_spec, iter_recordings
from affectlab.datasets.base import check_recording
from affectlab.datasets.channels import EMOTIV_EEG
from affectlab.errors import ConfigError, DatasetFormatError
from affectlab.presets import prepare

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


def test_sampling_rates_other_than_the_release_are_refused(dreamer_root, tmp_path):
    rec = next(iter_recordings("dreamer", dreamer_root))
    assert rec.streams["eeg"].sfreq == 128.0 and rec.streams["ecg"].sfreq == 256.0
    assert rec.streams["eeg"].onset_s == 4.0                 # derived from the baseline length
    root = _copy(dreamer_root, tmp_path)

    def double_rate(top):
        top[0, 0]["EEG_SamplingRate"][0, 0] = 256.0

    _edit(root, double_rate)
    with pytest.raises(DatasetFormatError) as error:
        next(iter_recordings("dreamer", root))
    message = str(error.value)
    assert "\n" not in message and "DREAMER.mat" in message
    assert "'DREAMER.EEG_SamplingRate' is 256 Hz" in message and "expected 128 Hz" in message


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
    with pytest.raises(DatasetFormatError, match="ScoreDominance' has 17 values but "
                                                 r"'DREAMER.Data\{1\}.EEG.stimuli' 18"):
        list(iter_recordings("dreamer", root))


@pytest.mark.parametrize("field, part", [("EEG", "baseline"), ("ECG", "baseline"),
                                         ("ECG", "stimuli")])
def test_mismatching_cell_counts_name_the_field(dreamer_root, tmp_path, field, part):
    root = _copy(dreamer_root, tmp_path)

    def drop_cell(top):
        struct = _subject(top, 1)[field][0, 0]
        struct[part][0, 0] = struct[part][0, 0][:17]

    _edit(root, drop_cell)
    with pytest.raises(DatasetFormatError) as info:
        list(iter_recordings("dreamer", root))
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(root / "DREAMER.mat"))
    assert f"'DREAMER.Data{{2}}.{field}.{part}' has 17 cells but " \
        "'DREAMER.Data{2}.EEG.stimuli' 18" in message


def test_trial_count_comes_from_the_stimuli_cells(dreamer_root, tmp_path):
    root = _copy(dreamer_root, tmp_path)

    def keep_twelve(top):
        subject = _subject(top, 2)
        for field in ("EEG", "ECG"):
            for part in ("baseline", "stimuli"):
                subject[field][0, 0][part][0, 0] = subject[field][0, 0][part][0, 0][:12]
        for score in ("ScoreValence", "ScoreArousal", "ScoreDominance"):
            subject[score][0, 0] = subject[score][0, 0][:12]

    _edit(root, keep_twelve)
    trials = {s: [r.trial for r in iter_recordings("dreamer", root, subjects=[s])]
              for s in (1, 3)}
    assert trials == {1: list(range(1, 19)), 3: list(range(1, 13))}


def test_writer_with_fewer_trials(tmp_path):
    manifest = dreamer.write_synthetic(tmp_path / "d", n_subjects=2, seconds=2, n_trials=5)
    recordings = list(iter_recordings("dreamer", tmp_path / "d"))
    assert [(r.subject, r.trial) for r in recordings] == [(s, t) for s in (1, 2)
                                                          for t in range(1, 6)]
    windows, _ = prepare("dreamer", tmp_path / "d", "default", use_cache=False)
    assert len(windows) == manifest["expected"]["windows"] == 2 * 5 * 2
    with pytest.raises(ConfigError, match="n_trials"):
        dreamer.write_synthetic(tmp_path / "e", n_subjects=1, n_trials=0)


def test_nuisances_recorded_and_clean_copy(dreamer_root, tmp_path):
    entry = json.loads((dreamer_root.parent / "manifest.json").read_text())["dreamer"]
    nuisances = entry["nuisances"]
    assert set(nuisances) == {"eeg_dc_offset_uv", "artefact_trials"}
    low, high = nuisances["eeg_dc_offset_uv"]["range_per_subject"]["1"]
    eeg = next(iter_recordings("dreamer", dreamer_root)).streams["eeg"]
    assert low - 200 < eeg.data.mean(axis=1).min() and eeg.data.mean(axis=1).max() < high + 200
    assert nuisances["artefact_trials"] and all(
        t["noisy"] == ({"subject": t["subject"], "trial": t["trial"]}
                       in nuisances["artefact_trials"]) for t in entry["trials"])
    clean = dreamer.write_synthetic(tmp_path / "c", n_subjects=1, seconds=2, nuisances=False)
    assert clean["nuisances"] == {} and not any(t["noisy"] for t in clean["trials"])
    eeg = next(iter_recordings("dreamer", tmp_path / "c")).streams["eeg"]
    assert abs(eeg.data.mean()) < 50                                # no DC offset


def test_nan_is_marked_missing_by_default_or_raises(dreamer_root, tmp_path):
    root = _copy(dreamer_root, tmp_path)

    def nan_in_ecg(top):
        _subject(top)["ECG"][0, 0]["stimuli"][0, 0][2, 0][10, 1] = np.nan       # second 0
        _subject(top)["ECG"][0, 0]["stimuli"][0, 0][4, 0][:, :] = np.nan        # the clip
        for part in ("baseline", "stimuli"):                                     # all of it
            _subject(top)["ECG"][0, 0][part][0, 0][5, 0][:, :] = np.nan

    _edit(root, nan_in_ecg)
    with pytest.raises(DatasetFormatError) as info:
        list(iter_recordings("dreamer", root, subjects=[1], nan_policy="raise"))
    message = str(info.value)
    assert "\n" not in message and message.startswith(
        str(root / "DREAMER.mat") + r": key 'DREAMER.Data{1}.ECG.baseline/stimuli{3}' (ecg) "
        "holds 1 non-finite samples")
    recordings = list(iter_recordings("dreamer", root, subjects=[1]))
    ecg = recordings[2].streams["ecg"]
    assert np.isfinite(ecg.data).all()
    assert np.flatnonzero(~ecg.valid).tolist() == [4 * 256 + 10]     # after the 4 s baseline
    assert not recordings[4].streams["ecg"].valid[4 * 256:].any()      # baseline kept
    assert recordings[5].missing == {"ecg"} and "eeg" in recordings[5].streams
    assert "ecg" in recordings[1].streams and recordings[1].streams["ecg"].valid is None
    for rec in recordings:
        check_recording(rec, get_spec("dreamer"))
    windows, _ = prepare("dreamer", root, "default", {"subjects": [1]}, use_cache=False)
    meta = windows.meta[~windows.available("pps")]
    assert list(zip(meta["trial"], meta["window"], strict=True)) == [
        (3, 0), *[(t, w) for t in (5, 6) for w in range(4)]]
    assert windows.description["missing"]["pps"] == {
        "absent_trials": 1, "absent_windows": 4, "invalid_windows": 1 + 4}
    filled = list(iter_recordings("dreamer", root, subjects=[1], nan_policy="interpolate"))
    assert filled[2].streams["ecg"].valid.all()
    assert filled[2].nonfinite["ecg"] == {"nonfinite": 1, "interpolated": 1}
