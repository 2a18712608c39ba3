"""AMIGOS reader: synthetic round trip, layouts, long videos, label order, face, the release's
nuisances (NaN peripheral columns, empty cells, untracked faces) and bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import scipy.io

from affectlab.datasets import amigos, get_spec, iter_recordings
from affectlab.datasets.base import check_recording
from affectlab.errors import ConfigError, DatasetFormatError
from affectlab.presets import prepare

FACE = {"face_au", "face_landmarks", "gaze"}


@pytest.fixture(scope="module")
def amigos_root(synthetic_root):
    return synthetic_root("amigos", n_subjects=3, seconds=4)


@pytest.fixture(scope="module")
def manifest(amigos_root):
    return json.loads((amigos_root.parent / "manifest.json").read_text())["amigos"]


@pytest.fixture(scope="module")
def gaps(manifest):
    """The NaN nuisances written, by kind ("short gap", "long gap", "whole trial")."""
    return {gap["kind"]: gap for gap in manifest["nuisances"]["nan_peripheral"]}


def _unavailable(windows, name):
    """{(subject, trial): [window, ...]} of the windows where ``name`` is not available."""
    meta = windows.meta[~windows.available(name)]
    out: dict[tuple[int, int], list[int]] = {}
    for subject, trial, window in zip(meta["subject"], meta["trial"], meta["window"],
                                      strict=True):
        out.setdefault((int(subject), int(trial)), []).append(int(window))
    return out


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
    assert trials[1] == trials[2] == trials[3] == list(range(1, 21))
    # subject 2's cells 17-20 are empty (0x0): listed, yielded without data, never silent
    empty = [r for r in recordings if r.skipped]
    assert [(r.subject, r.trial, r.skipped) for r in empty] == [
        (2, t, "empty cell") for t in range(17, 21)]
    assert all(not r.streams and not r.ratings for r in empty)
    long = [r for r in recordings if r.trial > 16 and not r.skipped]
    assert {r.stimulus for r in long if r.subject == 1} == {"videoN1", "videoP1", "videoB1",
                                                            "videoU1"}
    assert long[0].streams["eeg"].n_times == (5 + 6) * 128
    for rec in recordings:
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


@pytest.mark.parametrize("variable", ["joined_data", "labels_selfassessment", "VideoIDs",
                                      "labels_ext_annotation"])
def test_mismatching_cell_counts_name_the_file(amigos_root, tmp_path, variable):
    root = _copy(amigos_root, tmp_path)

    def drop_cells(content):
        content[variable] = content[variable][:, :19]

    _edit(root / "Data_Preprocessed_P01.mat", drop_cells)
    with pytest.raises(DatasetFormatError) as info:
        list(iter_recordings("amigos", root, subjects=[1]))
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(root / "Data_Preprocessed_P01.mat"))
    assert "different numbers of cells" in message and f"'{variable}' 19" in message
    assert "'joined_data' 20" in message or variable == "joined_data"


def test_cell_count_comes_from_the_file(amigos_root, tmp_path):
    root = _copy(amigos_root, tmp_path)

    def keep_cells(count):
        def change(content):
            for name in amigos.VARIABLES + amigos.CHECKED_VARIABLES:
                content[name] = content[name][:, :count]
        return change

    _edit(root / "Data_Preprocessed_P01.mat", keep_cells(10))      # short videos only
    _edit(root / "Data_Preprocessed_P03.mat", keep_cells(18))      # two long videos
    trials = [r.trial for r in iter_recordings("amigos", root, subjects=[1], long_videos=True)]
    assert trials == list(range(1, 11))
    recordings = list(iter_recordings("amigos", root, subjects=[3], long_videos=True))
    assert [r.trial for r in recordings] == list(range(1, 19))
    assert len(list(iter_recordings("amigos", root, subjects=[3]))) == 16
    # labels_ext_annotation is not read: a file without it reads
    _edit(root / "Data_Preprocessed_P02.mat", lambda c: c.pop("labels_ext_annotation"))
    assert len(list(iter_recordings("amigos", root, subjects=[2]))) == 16


def test_writer_with_fewer_trials(tmp_path):
    manifest = amigos.write_synthetic(tmp_path / "a", n_subjects=2, seconds=2, n_trials=18)
    recordings = list(iter_recordings("amigos", tmp_path / "a", long_videos=True))
    assert [r.trial for r in recordings if r.subject == 1] == list(range(1, 19))
    assert [r.skipped for r in recordings if r.subject == 2][16:] == ["empty cell"] * 2
    assert manifest["n_trials"] == 18
    manifest = amigos.write_synthetic(tmp_path / "b", n_subjects=2, seconds=2, n_trials=6)
    recordings = list(iter_recordings("amigos", tmp_path / "b", long_videos=True))
    assert [r.trial for r in recordings] == [*range(1, 7)] * 2
    windows, _ = prepare("amigos", tmp_path / "b", "default", use_cache=False)
    expected = manifest["expected"]
    assert (len(windows), windows.meta["trial"].nunique()) == (expected["windows"], 6)
    assert windows.description["missing"]["pps"] == expected["missing"]["pps"]
    with pytest.raises(ConfigError, match="n_trials"):
        amigos.write_synthetic(tmp_path / "c", n_subjects=1, n_trials=21)


def test_self_assessment_columns_arousal_first(amigos_root, tmp_path):
    root = _copy(amigos_root, tmp_path)
    row = np.array([[2.0, 8.0, 3.0, 4.0, 6.0, 0, 0, 1, 0, 0, 0, 0]])
    _edit(root / "Data_Preprocessed_P01.mat", _set_cell("labels_selfassessment", 0, row))
    rec = next(iter_recordings("amigos", root, subjects=[1]))
    assert rec.ratings == {"arousal": 2.0, "valence": 8.0, "dominance": 3.0, "liking": 4.0}


def test_empty_labels_cell_is_yielded_as_skipped_and_counted(amigos_root, tmp_path):
    root = _copy(amigos_root, tmp_path)
    _edit(root / "Data_Preprocessed_P01.mat",
          _set_cell("labels_selfassessment", 17, np.zeros((0, 0))))
    _edit(root / "Data_Preprocessed_P02.mat",
          _set_cell("labels_selfassessment", 2, np.zeros((0, 0))))
    recordings = list(iter_recordings("amigos", root, subjects=[1], long_videos=True))
    assert [r.trial for r in recordings] == list(range(1, 21))
    assert [(r.trial, r.skipped) for r in recordings if r.skipped] == [
        (18, "no self-assessment")]
    windows, _ = prepare("amigos", root, "default", {"subjects": [2]}, use_cache=False)
    assert windows.description["trials_without_windows"] == {"no self-assessment": 1}
    assert 3 not in set(windows.meta["trial"]) and windows.meta["trial"].nunique() == 15


def test_default_marks_exactly_the_nan_windows_missing(amigos_root, manifest, gaps):
    assert set(gaps) == {"short gap", "long gap", "whole trial"}
    windows, _ = prepare("amigos", amigos_root, "default", use_cache=False)
    lost = _unavailable(windows, "pps")
    whole = gaps["whole trial"]
    assert lost.pop((whole["subject"], whole["trial"])) == whole["windows"] == [0, 1, 2, 3]
    assert lost == {(gap["subject"], gap["trial"]): gap["windows"]
                    for gap in (gaps["short gap"], gaps["long gap"])}
    assert windows.description["missing"]["pps"] == manifest["expected"]["missing"]["pps"]
    assert windows.available("eeg").all()
    # the reader flags exactly the NaN rows, interpolating values for the filters
    recordings = {(r.subject, r.trial): r for r in iter_recordings("amigos", amigos_root)}
    for kind, gap in gaps.items():
        rec = recordings[gap["subject"], gap["trial"]]
        n_rows = gap["rows"][1] - gap["rows"][0]
        assert rec.nonfinite[gap["modality"]] == {"nonfinite": n_rows, "interpolated": 0}
        if kind == "whole trial":          # only that modality is lost, for that trial only
            assert rec.missing - FACE == {"ecg"} and {"eeg", "gsr"} <= set(rec.streams)
            continue
        stream = rec.streams[gap["modality"]]
        assert np.isfinite(stream.data).all()
        np.testing.assert_array_equal(np.flatnonzero(~stream.valid), np.arange(*gap["rows"]))
        check_recording(rec, get_spec("amigos"))


def test_interpolate_fills_the_short_gap_only(amigos_root, gaps):
    short, long = gaps["short gap"], gaps["long gap"]
    assert short["seconds"] < 0.5 < long["seconds"]
    windows, _ = prepare("amigos", amigos_root, "default", {"nan_policy": "interpolate"},
                         use_cache=False)
    lost = _unavailable(windows, "pps")
    whole = gaps["whole trial"]
    assert lost.pop((whole["subject"], whole["trial"])) == whole["windows"]
    assert lost == {(long["subject"], long["trial"]): long["windows"]}
    recordings = {(r.subject, r.trial): r
                  for r in iter_recordings("amigos", amigos_root, nan_policy="interpolate")}
    rec = recordings[short["subject"], short["trial"]]
    n_short = short["rows"][1] - short["rows"][0]
    assert rec.nonfinite["ecg"] == {"nonfinite": n_short, "interpolated": n_short}
    assert rec.streams["ecg"].valid.all()
    rec = recordings[long["subject"], long["trial"]]
    assert rec.nonfinite["gsr"]["interpolated"] == 0
    assert (~rec.streams["gsr"].valid).sum() == long["rows"][1] - long["rows"][0]


def test_nan_policy_raise_names_the_file_and_columns(amigos_root, gaps):
    short = gaps["short gap"]
    with pytest.raises(DatasetFormatError) as info:
        list(iter_recordings("amigos", amigos_root, subjects=[short["subject"]],
                             nan_policy="raise"))
    message = str(info.value)
    assert "\n" not in message
    n_rows = short["rows"][1] - short["rows"][0]
    assert message.startswith(str(amigos_root / f"Data_Preprocessed_P{short['subject']:02d}"
                                                f".mat: key 'joined_data{{{short['trial']}}}"
                                                f"(:, 15:16)' (ecg) holds {n_rows} non-finite"))


def test_untracked_face_windows_are_marked_missing(amigos_root, manifest):
    nuisances = manifest["nuisances"]
    assert len(nuisances["face_tracking_failures"]) == 4          # two per subject with face
    for failure in nuisances["face_tracking_failures"]:
        start, stop = failure["seconds"]
        assert stop - start >= 2.0 and failure["untracked_windows"]
    windows, _ = prepare("amigos", amigos_root, "all", use_cache=False)
    face = windows.description["missing"]["face_au"]
    assert face["invalid_windows"] == nuisances["untracked_face_windows"]
    assert face["absent_trials"] == 16 + 1                         # subject 3, subject 1 cell 5
    lost = _unavailable(windows, "face_au")
    for failure in nuisances["face_tracking_failures"]:
        assert set(failure["untracked_windows"]) <= set(lost[failure["subject"],
                                                             failure["trial"]])


def test_nan_rating_raises_or_skips(amigos_root, tmp_path):
    root = _copy(amigos_root, tmp_path)

    def nan_valence(content):
        content["labels_selfassessment"][0, 3][0, 1] = np.nan

    _edit(root / "Data_Preprocessed_P01.mat", nan_valence)
    with pytest.raises(DatasetFormatError, match=r"labels_selfassessment\{4\}' \(ratings\)"):
        list(iter_recordings("amigos", root, subjects=[1], nan_policy="raise"))
    recordings = list(iter_recordings("amigos", root, subjects=[1]))
    assert len(recordings) == 16
    assert [(r.trial, r.skipped) for r in recordings if r.skipped] == [(4, "NaN self-assessment")]


def test_clean_copy_has_no_nuisances(tmp_path):
    manifest = amigos.write_synthetic(tmp_path / "a", n_subjects=2, seconds=2, nuisances=False)
    assert manifest["nuisances"] == {}
    recordings = list(iter_recordings("amigos", tmp_path / "a", long_videos=True))
    assert len(recordings) == 2 * 20 and not any(r.skipped or r.missing or r.nonfinite
                                                 for r in recordings)
    assert all(r.streams["face_au"].valid.all() for r in recordings)


def test_long_videos_data_option_reaches_the_reader(amigos_root):
    short = prepare("amigos", amigos_root, "clmer", {"subjects": [1], "window_s": 2.0,
                                                     "stride_s": 2.0}, use_cache=False)[0]
    both = prepare("amigos", amigos_root, "clmer", {"subjects": [1], "long_videos": True,
                                                    "window_s": 2.0, "stride_s": 2.0},
                   use_cache=False)[0]
    assert sorted(short.meta["trial"].unique()) == list(range(1, 17))
    assert sorted(both.meta["trial"].unique()) == list(range(1, 21))
    with pytest.raises(ConfigError, match="data.long_videos"):
        prepare("deap", amigos_root, "default", {"long_videos": True}, use_cache=False)
