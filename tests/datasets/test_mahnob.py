"""MAHNOB-HCI reader: BDF writer round trip, trigger-based clips, unusable sessions yielded as
skipped and counted, face mapping and untracked faces, errors."""

from __future__ import annotations

import json
import logging
import shutil
import xml.etree.ElementTree as ET
from datetime import datetime

import mne
import numpy as np
import pytest

from affectlab.datasets import get_spec, iter_recordings, mahnob
from affectlab.datasets.base import check_recording
from affectlab.datasets.channels import MAHNOB_CHANNELS
from affectlab.errors import ConfigError, DatasetFormatError
from affectlab.presets import prepare

FACE = {"face_au", "face_landmarks", "gaze"}


@pytest.fixture(scope="module")
def mahnob_root(synthetic_root):
    return synthetic_root("mahnob", n_subjects=3, seconds=4)


@pytest.fixture(scope="module")
def all_recordings(mahnob_root):
    """Everything the reader yields, the unusable sessions (``skipped``) included."""
    return list(iter_recordings("mahnob", mahnob_root))


@pytest.fixture(scope="module")
def recordings(all_recordings):
    """The usable trials."""
    return [r for r in all_recordings if not r.skipped]


@pytest.fixture(scope="module")
def manifest(mahnob_root):
    return json.loads((mahnob_root.parent / "manifest.json").read_text())["mahnob"]


def _copy(mahnob_root, tmp_path, session_ids):
    """A small copy holding only some session folders (tests must not touch the fixture)."""
    root = tmp_path / "mahnob"
    for sid in session_ids:
        shutil.copytree(mahnob_root / "Sessions" / str(sid), root / "Sessions" / str(sid))
    return root


def _attrs(folder):
    return ET.parse(folder / "session.xml").getroot().attrib


def _set_attr(folder, **attrs):
    tree = ET.parse(folder / "session.xml")
    for key, value in attrs.items():
        if value is None:
            tree.getroot().attrib.pop(key, None)
        else:
            tree.getroot().set(key, value)
    tree.write(folder / "session.xml", encoding="utf-8", xml_declaration=True)


def _bdf(folder):
    return next(folder.glob("*.bdf"))


def _rewrite_bdf(path, status=None, drop=()):
    """Re-write a BDF with a new Status row and/or without some channels."""
    raw = mne.io.read_raw_bdf(path, preload=True, stim_channel="Status", verbose="error")
    data = raw.get_data()
    data[:40] *= 1e6
    data[42:45] *= 1e6
    if status is not None:
        data[46] = status
    keep = [i for i, name in enumerate(MAHNOB_CHANNELS) if name not in drop]
    mahnob.write_bdf(path, data[keep], [MAHNOB_CHANNELS[i] for i in keep], datetime(2009, 7, 9))
    return raw.n_times


def test_round_trip_conforms(all_recordings, recordings, mahnob_root):
    spec = get_spec("mahnob")
    assert len(recordings) == 20 + 20 + 17 and len(all_recordings) == 57 + 2
    for rec in all_recordings:
        check_recording(rec, spec)
    first = recordings[0]
    attrs = _attrs(mahnob_root / "Sessions" / "2")
    eeg = first.streams["eeg"]
    assert eeg.data.shape[0] == 32 and eeg.sfreq == 256.0 and eeg.onset_s == 3.0
    assert eeg.stimulus_s == pytest.approx(float(attrs["cutLenSec"]), abs=1 / 256)
    assert eeg.units == "uV" and first.streams["ecg"].ch_names == ["EXG1", "EXG2", "EXG3"]
    assert first.streams["gsr"].units == "Ohm" and first.streams["temp"].units == "degC"
    assert first.ratings == {"valence": float(attrs["feltVlnc"]),
                             "arousal": float(attrs["feltArsl"]),
                             "dominance": float(attrs["feltCtrl"])}
    assert first.stimulus == attrs["mediaFile"].removesuffix(".avi")
    assert first.session == 1 and first.subject == 1


def test_counts_trials_and_stimuli(recordings):
    by_subject = {s: [r for r in recordings if r.subject == s] for s in (1, 2, 3)}
    assert [len(v) for v in by_subject.values()] == [20, 20, 17]
    for recs in by_subject.values():
        assert [r.trial for r in recs] == list(range(1, len(recs) + 1))
    # every participant watched the same 20 clips, in a different order
    assert {r.stimulus for r in by_subject[1]} == {r.stimulus for r in by_subject[2]}
    assert len({r.stimulus for r in by_subject[1]}) == 20
    assert [r.stimulus for r in by_subject[1]] != [r.stimulus for r in by_subject[2]]


def test_bdf_writer_round_trip_through_mne(tmp_path):
    rng = np.random.default_rng(0)
    n = 3 * 256
    data = rng.normal(0, 100, (47, n))
    data[40:42] = rng.uniform(1e5, 1e6, (2, n))
    data[45] = rng.uniform(30, 35, n)
    status = np.full(n, mahnob.STATUS_HIGH_BITS)
    status[300:310] |= 1
    status[600:620] |= 2
    data[46] = status
    path = tmp_path / "x.bdf"
    mahnob.write_bdf(path, data, MAHNOB_CHANNELS, datetime(2009, 7, 9, 17, 0))
    assert path.read_bytes()[:8] == b"\xffBIOSEMI"
    raw = mne.io.read_raw_bdf(path, preload=True, stim_channel="Status", verbose="error")
    assert raw.ch_names == MAHNOB_CHANNELS and raw.info["sfreq"] == 256.0 and raw.n_times == n
    back = raw.get_data()
    step_uv = 524287 / 16777215                      # physical range / digital range
    assert np.abs(back[:40] * 1e6 - data[:40]).max() <= step_uv / 2 + 1e-9
    assert np.abs(back[40:42] - data[40:42]).max() <= 4e6 / 16777215 / 2 + 1e-9
    assert np.abs(back[45] - data[45]).max() <= 200 / 16777215 / 2 + 1e-9
    events = mne.find_events(raw, stim_channel="Status", shortest_event=1, verbose="error")
    assert events[:, 0].tolist() == [300, 600] and events[:, 2].tolist() == [1, 2]
    assert mahnob.clip_bounds(raw, path, None) == (300, 600)


def test_clip_taken_from_status_events(mahnob_root, tmp_path):
    root = _copy(mahnob_root, tmp_path, [2])
    path = _bdf(root / "Sessions" / "2")
    n = mne.io.read_raw_bdf(path, verbose="error").n_times
    status = np.zeros(n)
    status[512:520], status[1280:1290] = 5, 9             # onset 2 s, offset 5 s
    _rewrite_bdf(path, status)
    rec = next(iter_recordings("mahnob", root))
    assert rec.streams["eeg"].onset_s == 2.0 and rec.streams["eeg"].n_times == 1280
    assert rec.streams["gsr"].n_times == 1280
    # one event only: the offset comes from cutLenSec
    status[1280:1290] = 0
    _rewrite_bdf(path, status)
    _set_attr(root / "Sessions" / "2", cutLenSec="2.50")
    rec = next(iter_recordings("mahnob", root))
    assert rec.streams["eeg"].n_times == 512 + 640


def test_bdf_without_onset_trigger(mahnob_root, tmp_path):
    root = _copy(mahnob_root, tmp_path, [2])
    path = _bdf(root / "Sessions" / "2")
    _rewrite_bdf(path, status=np.zeros(mne.io.read_raw_bdf(path, verbose="error").n_times))
    with pytest.raises(DatasetFormatError, match=r"Trial1_emotion.bdf.*Status channel has no "
                                                 r"clip-onset trigger"):
        list(iter_recordings("mahnob", root))


def test_unusable_sessions_are_yielded_skipped_and_counted(mahnob_root, all_recordings,
                                                          recordings, manifest, caplog):
    nuisances = manifest["nuisances"]
    skipped = [r for r in all_recordings if r.skipped]
    assert [(r.subject, r.trial, r.skipped) for r in skipped] == [
        (3, 0, "no BDF"), (3, 0, "no felt ratings")]
    assert [int(r.source.split("/")[-1]) for r in skipped] == [
        *nuisances["session_folders_without_bdf"], *nuisances["session_folders_without_ratings"]]
    assert all(r.stimulus and not r.streams and not r.ratings for r in skipped)
    # the implicit-tagging folder (isStim="0") is not an emotion session: left out, logged
    assert nuisances["implicit_tagging_folders"] == [43]
    ids = {int(r.source.split("/")[-2]) for r in recordings}
    assert 43 not in ids and not ids & {2 * 130 + 36, 2 * 130 + 38, 2 * 130 + 40}
    with caplog.at_level(logging.INFO, logger="affectlab.datasets.mahnob"):
        assert next(iter_recordings("mahnob", mahnob_root)).subject == 1
    assert 'left out 1 session folder(s)' in caplog.text and 'isStim="0"' in caplog.text
    # the data preset counts them, by reason
    windows, _ = prepare("mahnob", mahnob_root, "default", {"subjects": [3]}, use_cache=False)
    assert windows.description["trials_without_windows"] == {"no BDF": 1, "no felt ratings": 1}
    assert windows.meta["trial"].nunique() == 17


def test_is_stim_zero_and_missing_xml(mahnob_root, tmp_path, caplog):
    root = _copy(mahnob_root, tmp_path, [2, 4, 6, 8])
    _set_attr(root / "Sessions" / "4", isStim="0")
    (root / "Sessions" / "6" / "session.xml").unlink()         # an emotion BDF, no XML
    (root / "Sessions" / "8" / "session.xml").unlink()         # neither: not a session
    _bdf(root / "Sessions" / "8").rename(root / "Sessions" / "8" / "Part_1_S_Trial4_tag.bdf")
    with caplog.at_level(logging.INFO, logger="affectlab.datasets.mahnob"):
        recs = list(iter_recordings("mahnob", root))
    assert [(r.subject, r.trial, r.skipped) for r in recs] == [(1, 1, ""),
                                                               (1, 0, "no session.xml")]
    assert "left out 2" in caplog.text and "no session.xml and no emotion BDF" in caplog.text
    # a folder with neither felt ratings nor an emotion BDF is not an emotion session
    _set_attr(root / "Sessions" / "4", isStim="1", feltVlnc=None, feltArsl=None)
    _bdf(root / "Sessions" / "4").rename(root / "Sessions" / "4" / "Part_1_S_Trial2_tag.bdf")
    assert [r.skipped for r in iter_recordings("mahnob", root)] == ["", "no session.xml"]
    # ... but one with an emotion BDF is an unusable emotion session
    _bdf(root / "Sessions" / "4").rename(root / "Sessions" / "4" / "Part_1_S_Trial2_emotion.bdf")
    assert [r.skipped for r in iter_recordings("mahnob", root)] == [
        "", "no felt ratings", "no session.xml"]


def test_face_csv_mapping(recordings, mahnob_root):
    subject1 = [r for r in recordings if r.subject == 1]
    assert all(FACE <= set(r.streams) for r in subject1)
    assert all(FACE <= r.missing for r in recordings if r.subject == 3)
    au = subject1[0].streams["face_au"]
    clip = float(_attrs(mahnob_root / "Sessions" / "2")["cutLenSec"])
    assert au.onset_s == pytest.approx(3.0) and au.sfreq == mahnob.FACE_FPS
    assert abs(au.n_times - (3.0 + clip) * au.sfreq) <= 1      # cut at clip offset
    assert au.valid is not None and au.valid.shape == (au.n_times,)


def test_face_dir_option(mahnob_root, tmp_path):
    face_dir = tmp_path / "faces"
    face_dir.mkdir()
    source = next((mahnob_root / "Sessions" / "2").glob("*C1 trigger*.csv"))
    shutil.copy(source, face_dir / f"{2 * 130 + 2}.csv")      # subject 3, first session
    recs = [r for r in iter_recordings("mahnob", mahnob_root, subjects=[3], face_dir=face_dir)
            if not r.skipped]
    assert FACE <= set(recs[0].streams)
    assert all(FACE <= r.missing for r in recs[1:])


def test_subject_selection_and_inner_folder(mahnob_root):
    recs = list(iter_recordings("mahnob", mahnob_root / "Sessions", subjects=[2]))
    assert {r.subject for r in recs} == {2} and len(recs) == 20


def test_stray_files_ignored(mahnob_root, tmp_path):
    root = _copy(mahnob_root, tmp_path, [2, 4])
    (root / "Sessions" / "notes.txt").write_text("stray")
    (root / "Sessions" / "backup").mkdir()
    (root / "Sessions" / "2" / "P1-Rec1_Gaze.tsv").write_text("stray")
    (root / "Sessions" / "2" / "readme.bdf.txt").write_text("stray")
    assert len(list(iter_recordings("mahnob", root))) == 2


def test_missing_root_and_sessions(tmp_path):
    with pytest.raises(DatasetFormatError, match="does not exist"):
        list(iter_recordings("mahnob", tmp_path / "nowhere"))
    with pytest.raises(DatasetFormatError, match="Sessions"):
        list(iter_recordings("mahnob", tmp_path))


def test_missing_subject(mahnob_root):
    with pytest.raises(DatasetFormatError, match=r"Sessions.*subject\(s\) \[7\]"):
        list(iter_recordings("mahnob", mahnob_root, subjects=[7]))


def test_truncated_bdf(mahnob_root, tmp_path):
    root = _copy(mahnob_root, tmp_path, [2])
    path = _bdf(root / "Sessions" / "2")
    path.write_bytes(path.read_bytes()[:50000])
    with pytest.raises(DatasetFormatError, match="Trial1_emotion.bdf: truncated"):
        list(iter_recordings("mahnob", root))
    path.write_bytes(b"\xffBIOSEMI")
    with pytest.raises(DatasetFormatError, match="Trial1_emotion.bdf: unreadable BDF header"):
        list(iter_recordings("mahnob", root))


def test_malformed_session_xml(mahnob_root, tmp_path):
    root = _copy(mahnob_root, tmp_path, [2])
    xml = root / "Sessions" / "2" / "session.xml"
    xml.write_text(xml.read_text()[:120])
    with pytest.raises(DatasetFormatError, match=r"2/session.xml: malformed XML"):
        list(iter_recordings("mahnob", root))


def test_missing_subject_element_and_channel(mahnob_root, tmp_path):
    root = _copy(mahnob_root, tmp_path, [2])
    folder = root / "Sessions" / "2"
    tree = ET.parse(folder / "session.xml")
    tree.getroot().remove(tree.getroot().find("subject"))
    tree.write(folder / "session.xml")
    with pytest.raises(DatasetFormatError, match=r"session.xml: <subject id>"):
        list(iter_recordings("mahnob", root))
    shutil.rmtree(root)
    root = _copy(mahnob_root, tmp_path, [2])
    _rewrite_bdf(_bdf(root / "Sessions" / "2"), drop=("Temp",))
    with pytest.raises(DatasetFormatError, match=r"Trial1_emotion.bdf: channel\(s\) \['Temp'\]"):
        list(iter_recordings("mahnob", root))


@pytest.mark.parametrize("value", ["NaN", "12", "high"])
def test_bad_or_nan_rating(mahnob_root, tmp_path, value):
    root = _copy(mahnob_root, tmp_path, [2])
    _set_attr(root / "Sessions" / "2", feltVlnc=value)
    for policy in ("raise", "mark_missing"):       # ratings are labels, never marked missing
        with pytest.raises(DatasetFormatError, match=r"session.xml: attribute 'feltVlnc'"):
            list(iter_recordings("mahnob", root, nan_policy=policy))


def test_bad_nan_policy(mahnob_root):
    with pytest.raises(ConfigError, match="nan_policy"):
        list(iter_recordings("mahnob", mahnob_root, nan_policy="zero"))


def test_untracked_face_windows_are_marked_missing(mahnob_root, manifest):
    nuisances = manifest["nuisances"]
    failures = nuisances["face_tracking_failures"]
    assert len(failures) == 4 and all(f["untracked_windows"] for f in failures)
    windows, _ = prepare("mahnob", mahnob_root, "all", use_cache=False)
    face = windows.description["missing"]["face_au"]
    assert face["invalid_windows"] == nuisances["untracked_face_windows"]
    assert face["absent_trials"] == 17                                 # subject 3: no faces
    meta = windows.meta[~windows.available("face_au")]
    lost = set(zip(meta["subject"], meta["trial"], meta["window"], strict=True))
    for failure in failures:
        assert {(failure["subject"], failure["trial"], w)
                for w in failure["untracked_windows"]} <= lost


def test_writer_manifest(tmp_path):
    manifest = mahnob.write_synthetic(tmp_path / "m", n_subjects=1, seconds=2)
    assert len(manifest["trials"]) == 17
    assert manifest["expected"]["trials_without_windows"] == {"no BDF": 1, "no felt ratings": 1}
    assert manifest["nuisances"]["absent_session_folders"] == [40]
    assert all(1 <= t["rating_valence"] <= 9 for t in manifest["trials"])
    recs = [r for r in iter_recordings("mahnob", tmp_path / "m") if not r.skipped]
    assert [r.ratings["valence"] for r in recs] == [t["rating_valence"]
                                                    for t in manifest["trials"]]


def test_writer_with_fewer_trials_and_clean(tmp_path):
    manifest = mahnob.write_synthetic(tmp_path / "m", n_subjects=3, seconds=2, n_trials=5)
    recs = list(iter_recordings("mahnob", tmp_path / "m"))
    assert [(r.subject, r.trial) for r in recs if not r.skipped] == [
        *[(s, t) for s in (1, 2) for t in range(1, 6)], (3, 1), (3, 2)]
    assert len(manifest["trials"]) == 12
    clean = mahnob.write_synthetic(tmp_path / "c", n_subjects=2, seconds=2, n_trials=3,
                                   nuisances=False)
    assert clean["nuisances"] == {}
    recs = list(iter_recordings("mahnob", tmp_path / "c"))
    assert len(recs) == 6 and not any(r.skipped or r.missing for r in recs)
    assert all(r.streams["face_au"].valid.all() for r in recs)
    assert abs(recs[0].streams["eeg"].data.mean()) < 100             # no DC offsets
    with pytest.raises(ConfigError, match="n_trials"):
        mahnob.write_synthetic(tmp_path / "x", n_subjects=1, n_trials=21)
