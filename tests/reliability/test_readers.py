"""Bad input over the seven readers: every case ends in one of two classes of outcome.

* ``error``: the command stops with one line (``error: <file>: <problem> (expected ...)``) that
  names the file at fault, never a traceback; the Python API raises the project's
  :class:`~affectlab.errors.AffectlabError`.
* ``counted``: the run goes on, and what was lost or flagged is counted in the WindowSet's
  description (as ``affectlab info --json`` returns it) and shown in the ``affectlab info``
  table.

The cases (truncated, empty, wrong key, wrong shape, out-of-range ratings or labels, missing
participant, foreign file, flat channel, NaN; sampling rates where a release states them) are
made on copies of small synthetic datasets, one corruption per copy.
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io

from affectlab.datasets import iter_recordings
from affectlab.datasets.channels import SEED_EEG
from affectlab.errors import AffectlabError
from affectlab.inspect import dataset_info

#: (subjects, stimulus seconds) of each source copy: few subjects, short trials (the
#: parameters of the reader tests, so that the copies are shared with them)
SOURCES = {"deap": (3, 4), "seed": (2, 2), "seed_iv": (2, 4), "seed_v": (2, 8),
           "dreamer": (3, 4), "amigos": (3, 4), "mahnob": (3, 4)}


@pytest.fixture(scope="session")
def sources(synthetic_root) -> Callable[[str], Path]:
    """``sources(name)``: the synthetic copy a case breaks (written once per test run)."""
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            n_subjects, seconds = SOURCES[name]
            made[name] = synthetic_root(name, n_subjects=n_subjects, seconds=seconds)
        return made[name]

    return get


@pytest.fixture(scope="session")
def baseline(sources, windowset_cache) -> Callable[..., dict]:
    """``baseline(name, preset, options)``: ``dataset_info`` of the unbroken copy."""

    def info(name: str, preset: str, options: dict) -> dict:
        return dataset_info(name, sources(name), preset, options, cache_dir=windowset_cache)

    return info


# --------------------------------------------------------------------------- file helpers

def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _edit_mat(path: Path, edit: Callable[[dict], None]) -> None:
    content = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    edit(content)
    scipy.io.savemat(path, content, do_compression=True)


def _edit_pickle(path: Path, edit: Callable[[dict], None]) -> None:
    with open(path, "rb") as handle:
        content = pickle.load(handle, encoding="latin1")
    edit(content)
    with open(path, "wb") as handle:
        pickle.dump(content, handle, protocol=2)


def _edit_npz(path: Path, edit: Callable[[dict], None]) -> None:
    with np.load(path) as npz:
        content = {key: pickle.loads(npz[key].tobytes()) for key in npz.files}
    edit(content)
    np.savez(path, **{key: np.array(pickle.dumps(value)) for key, value in content.items()})


def _foreign(path: Path, source: Path) -> None:
    """Put another dataset's file where ``path`` was (same name)."""
    path.unlink()
    shutil.copyfile(source, path)


def _first(folder: Path, pattern: str) -> Path:
    return sorted(folder.glob(pattern))[0]


# DEAP ----------------------------------------------------------------------------------

DEAP_DAT = "data_preprocessed_python/s01.dat"
DEAP_CSV = "metadata_csv/participant_ratings.csv"


def _deap_data(edit: Callable[[np.ndarray], None]) -> Callable[[Path], None]:
    def run(root: Path) -> None:
        _edit_pickle(root / DEAP_DAT, lambda c: edit(c["data"]))
    return run


def _deap_drop_participant(root: Path) -> None:
    table = pd.read_csv(root / DEAP_CSV)
    table[table["Participant_id"] != 1].to_csv(root / DEAP_CSV, index=False)


def _deap_rename_key(content: dict) -> None:
    content["ratings"] = content.pop("labels")


def _deap_wrong_shape(content: dict) -> None:
    content["data"] = content["data"][:, :39]


def _deap_rating(content: dict) -> None:
    content["labels"][0, 0] = 12.0


def _deap_flat(data: np.ndarray) -> None:
    data[1, 2] = 0.0                                  # F3 of video 2: zeros throughout


def _deap_nan(data: np.ndarray) -> None:
    data[0, 0, 384 + 10:384 + 20] = np.nan            # Fp1, inside the first window


# SEED family ---------------------------------------------------------------------------

def _seed_feature(root: Path) -> Path:
    return _first(root / "ExtractedFeatures", "1_*.mat")


def _seed_iv_feature(root: Path, session: int = 1) -> Path:
    return _first(root / "eeg_feature_smooth" / str(session), "1_*.mat")


def _seed_iv_eye(root: Path) -> Path:
    return _first(root / "eye_feature_smooth" / "1", "1_*.mat")


def _set(key: str, value: Callable[[np.ndarray], np.ndarray]) -> Callable[[dict], None]:
    def edit(content: dict) -> None:
        content[key] = value(content[key])
    return edit


def _raw_channel_flat(path_of: Callable[[Path], Path]) -> Callable[[Path], None]:
    def run(root: Path) -> None:
        def edit(content: dict) -> None:
            name = next(k for k in content if k.endswith("_eeg1"))
            content[name][5] = 3.0                    # channel 6 of trial 1: constant
        _edit_mat(path_of(root), edit)
    return run


def _nan_at(array: np.ndarray) -> np.ndarray:
    array = array.astype(np.float64)
    array[0, 0, 0] = np.nan                           # window 1 of channel 1, band 1
    return array


def _relabel_trial(old: int, new: int) -> Callable[[dict], None]:
    """Trial ``old``'s feature variables renamed to trial ``new``."""
    def edit(content: dict) -> None:
        for name in ("de_movingAve", "de_LDS", "psd_movingAve", "psd_LDS"):
            content[f"{name}{new}"] = content.pop(f"{name}{old}")
    return edit


SEED_V_DE = "EEG_DE_features/1_123.npz"
SEED_V_EYE = "Eye_movement_features/1_123.npz"


def _seed_v_label(content: dict) -> None:
    content["label"][0] = np.full_like(content["label"][0], 7)


def _seed_v_rename(content: dict) -> None:
    content["labels"] = content.pop("label")


def _seed_v_shape(content: dict) -> None:
    content["data"][0] = content["data"][0][:, :300]


def _seed_v_nan(content: dict) -> None:
    content["data"][0] = content["data"][0].astype(np.float64)
    content["data"][0][0, 5] = np.nan


# DREAMER -------------------------------------------------------------------------------

def _dreamer(edit: Callable[[np.ndarray], None]) -> Callable[[Path], None]:
    def run(root: Path) -> None:
        path = root / "DREAMER.mat"
        top = scipy.io.loadmat(path)["DREAMER"]
        edit(top)
        scipy.io.savemat(path, {"DREAMER": top}, do_compression=True)
    return run


def _dreamer_cell(top: np.ndarray, modality: str, part: str) -> np.ndarray:
    return top[0, 0]["Data"][0, 0][modality][0, 0][part][0, 0]


def _dreamer_rename(root: Path) -> None:
    path = root / "DREAMER.mat"
    scipy.io.savemat(path, {"Dreamer": scipy.io.loadmat(path)["DREAMER"]},
                     do_compression=True)


def _dreamer_shape(top: np.ndarray) -> None:
    cells = _dreamer_cell(top, "EEG", "stimuli")
    cells[0, 0] = cells[0, 0][:, :13]


def _dreamer_rating(top: np.ndarray) -> None:
    top[0, 0]["Data"][0, 0]["ScoreValence"][0, 0][0, 0] = 9


def _dreamer_rate(top: np.ndarray) -> None:
    top[0, 0]["EEG_SamplingRate"][0, 0] = 256.0


def _dreamer_flat(top: np.ndarray) -> None:
    for part in ("baseline", "stimuli"):
        _dreamer_cell(top, "EEG", part)[0, 0][:, 3] = 4000.0     # FC5 of clip 1


def _dreamer_nan(top: np.ndarray) -> None:
    cell = _dreamer_cell(top, "EEG", "stimuli")
    cell[0, 0] = cell[0, 0].astype(np.float64)
    cell[0, 0][10:20, 0] = np.nan


# AMIGOS --------------------------------------------------------------------------------

AMIGOS_P01 = "Data_Preprocessed_P01.mat"


def _amigos(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    return lambda root: _edit_mat(root / AMIGOS_P01, edit)


def _amigos_joined(edit: Callable[[np.ndarray], np.ndarray]) -> Callable[[dict], None]:
    def change(content: dict) -> None:
        content["joined_data"][0, 0] = edit(np.array(content["joined_data"][0, 0], np.float64))
    return change


def _amigos_rename(content: dict) -> None:
    content["joined"] = content.pop("joined_data")


def _amigos_rating(content: dict) -> None:
    content["labels_selfassessment"][0, 0][0, 1] = 15.0           # valence of video 1


def _column(column: int, value: float, rows: slice = slice(None)):
    def edit(data: np.ndarray) -> np.ndarray:
        data[rows, column] = value
        return data
    return edit


# MAHNOB-HCI ----------------------------------------------------------------------------

def _mahnob_session(root: Path) -> Path:
    """Subject 1's first emotion session folder (the first the reader opens)."""
    folders = sorted((p.parent for p in (root / "Sessions").glob("*/Part_1_*_emotion.bdf")),
                     key=lambda p: int(p.name))
    return folders[0]


def _mahnob_bdf(root: Path) -> Path:
    return _first(_mahnob_session(root), "*.bdf")


def _bdf_header(path: Path, offset: int, text: str) -> None:
    content = bytearray(path.read_bytes())
    content[offset:offset + len(text)] = text.encode("ascii")
    path.write_bytes(bytes(content))


def _mahnob_rename_channel(root: Path) -> None:
    _bdf_header(_mahnob_bdf(root), 256, "Xp1".ljust(16))           # label of channel 1 (Fp1)


def _mahnob_rate(root: Path) -> None:
    _bdf_header(_mahnob_bdf(root), 244, "2".ljust(8))              # 2-s records: 128 Hz


def _mahnob_flat(root: Path) -> None:
    """EEG channel 3 (F3) of the first session: digital zero throughout."""
    path = _mahnob_bdf(root)
    content = bytearray(path.read_bytes())
    n_channels = int(content[252:256].decode())
    spr = 256
    body = np.frombuffer(content, np.uint8, offset=256 * (n_channels + 1)).copy()
    records = body.reshape(-1, n_channels, spr * 3)
    records[:, 2, :] = 0
    path.write_bytes(bytes(content[:256 * (n_channels + 1)]) + records.tobytes())


def _mahnob_attr(**attrs: str) -> Callable[[Path], None]:
    def run(root: Path) -> None:
        import xml.etree.ElementTree as ET

        path = _mahnob_session(root) / "session.xml"
        tree = ET.parse(path)
        for key, value in attrs.items():
            tree.getroot().set(key, value)
        tree.write(path, encoding="utf-8", xml_declaration=True)
    return run


# --------------------------------------------------------------------------- the cases

@dataclass
class Error:
    """Refused: one line naming the file (``file`` is a part of its path)."""

    file: str
    text: str = ""


@dataclass
class Counted:
    """Read: ``check(info, baseline)`` holds on ``affectlab info --json`` (``baseline``: the
    same of the unbroken copy) and ``shown`` is a row of the ``affectlab info`` table."""

    check: Callable[[dict, dict], bool]
    shown: str
    preset: str = "default"
    options: dict = field(default_factory=lambda: {"subjects": [1]})


def _path(relative: str) -> Callable[[Path], Path]:
    return lambda root: root / relative


def _file_case(path_of: Callable[[Path], Path], action: Callable[[Path], None]):
    return lambda root, sources: action(path_of(root))


def _whole(action: Callable[[Path], None]):
    return lambda root, sources: action(root)


def _foreign_case(path_of: Callable[[Path], Path], other: str,
                  other_path: Callable[[Path], Path]):
    return lambda root, sources: _foreign(path_of(root), other_path(sources(other)))


DEAP_FLAT = {"trials": 1, "windows": 4, "channels": {"F3": 1}}

CASES: dict[tuple[str, str], tuple[Callable, Error | Counted]] = {
    # DEAP
    ("deap", "truncated"): (_file_case(_path(DEAP_DAT), _truncate), Error("s01.dat")),
    ("deap", "empty"): (_file_case(_path(DEAP_DAT), _empty), Error("s01.dat")),
    ("deap", "empty ratings csv"): (_file_case(_path(DEAP_CSV), _empty),
                                    Error("participant_ratings.csv", "empty")),
    ("deap", "wrong key"): (_file_case(_path(DEAP_DAT), lambda p: _edit_pickle(
        p, _deap_rename_key)), Error("s01.dat", "key 'labels' missing")),
    ("deap", "wrong shape"): (_file_case(_path(DEAP_DAT), lambda p: _edit_pickle(
        p, _deap_wrong_shape)), Error("s01.dat", "(n, 40, n)")),
    ("deap", "out-of-range rating"): (_file_case(_path(DEAP_DAT), lambda p: _edit_pickle(
        p, _deap_rating)), Counted(lambda info, base: info["invalid_ratings"] == {"valence": 1},
                                   "valence off the scale")),
    ("deap", "missing participant"): (_whole(_deap_drop_participant), Counted(
        lambda info, base: [(Path(k).name, v["subjects"], v["trials"])
                            for k, v in info["unlisted"].items()]
        == [("participant_ratings.csv", [1], 40)], "not in participant_ratings.csv")),
    ("deap", "foreign file"): (_foreign_case(_path(DEAP_DAT), "seed", _seed_feature),
                               Error("s01.dat", "cannot unpickle")),
    ("deap", "flat channel"): (_whole(_deap_data(_deap_flat)), Counted(
        lambda info, base: info["flat_channels"] == {"eeg": DEAP_FLAT}
        and info["missing"]["eeg"]["invalid_windows"] == 4, "flat eeg channels")),
    ("deap", "NaN"): (_whole(_deap_data(_deap_nan)), Counted(
        lambda info, base: info["missing"]["eeg"]["invalid_windows"] == 1
        and not info["flat_channels"], "missing eeg")),
    # SEED
    ("seed", "truncated"): (_file_case(_seed_feature, _truncate), Error("1_20131027.mat")),
    ("seed", "empty"): (_file_case(_seed_feature, _empty), Error("1_20131027.mat")),
    ("seed", "wrong key"): (_file_case(_seed_feature, lambda p: _edit_mat(
        p, lambda c: c.pop("de_LDS1"))), Error("1_20131027.mat", "'de_LDS1' missing")),
    ("seed", "wrong shape"): (_file_case(_seed_feature, lambda p: _edit_mat(
        p, _set("de_LDS1", lambda a: a[:61])), ), Error("1_20131027.mat", "(62, n, 5)")),
    ("seed", "label off the class set"): (_file_case(_path("ExtractedFeatures/label.mat"),
                                                     lambda p: _edit_mat(p, _set(
                                                         "label", lambda a: a + 1))),
                                          Error("label.mat", "{-1, 0, 1}")),
    ("seed", "missing participant session"): (_file_case(
        lambda root: sorted((root / "ExtractedFeatures").glob("1_*.mat"))[-1],
        lambda p: p.unlink()), Error("ExtractedFeatures", "subject 1 has 2 files")),
    ("seed", "foreign file"): (_foreign_case(_seed_feature, "seed_iv", _seed_iv_feature),
                               Error("1_20131027.mat", "unexpected trial number")),
    ("seed", "flat channel"): (_whole(_raw_channel_flat(
        lambda root: _first(root / "Preprocessed_EEG", "1_*.mat"))), Counted(
        lambda info, base: info["flat_channels"]["eeg"]["channels"] == {SEED_EEG[5]: 1}
        and info["missing"]["eeg"]["invalid_windows"] == info["flat_channels"]["eeg"]["windows"]
        > 0, "flat eeg channels", options={"subjects": [1], "eeg_source": "raw"})),
    ("seed", "NaN"): (_file_case(_seed_feature, lambda p: _edit_mat(
        p, _set("de_LDS1", _nan_at))), Counted(
        lambda info, base: info["missing"]["eeg"]["invalid_windows"] == 1, "missing eeg")),
    # SEED-IV
    ("seed_iv", "truncated"): (_file_case(_seed_iv_feature, _truncate), Error("1_20160518.mat")),
    ("seed_iv", "empty"): (_file_case(_seed_iv_feature, _empty), Error("1_20160518.mat")),
    ("seed_iv", "wrong key"): (_file_case(_seed_iv_eye, lambda p: _edit_mat(
        p, lambda c: c.update(eye1=c.pop("eye_1")))), Error("eye_feature_smooth",
                                                            "'eye_1' missing")),
    ("seed_iv", "wrong shape"): (_file_case(_seed_iv_eye, lambda p: _edit_mat(
        p, _set("eye_1", lambda a: a[:30]))), Error("eye_feature_smooth", "(31, n)")),
    ("seed_iv", "label off the class set"): (_file_case(_seed_iv_feature, lambda p: _edit_mat(
        p, _relabel_trial(2, 25))), Error("1_20160518.mat", "have no label")),
    ("seed_iv", "missing participant session"): (_file_case(
        lambda root: _seed_iv_feature(root, 2), lambda p: p.unlink()),
        Error("eeg_feature_smooth/2", "subject 1 has no file")),
    ("seed_iv", "foreign file"): (_foreign_case(_seed_iv_feature, "seed", _seed_feature),
                                  Error("1_20160518.mat", "a SEED ExtractedFeatures file")),
    ("seed_iv", "flat channel"): (_whole(_raw_channel_flat(
        lambda root: _first(root / "eeg_raw_data" / "1", "1_*.mat"))), Counted(
        lambda info, base: info["flat_channels"]["eeg"]["channels"] == {SEED_EEG[5]: 1}
        and info["missing"]["eeg"]["invalid_windows"] == info["flat_channels"]["eeg"]["windows"]
        > 0, "flat eeg channels", options={"subjects": [1], "eeg_source": "raw"})),
    ("seed_iv", "NaN"): (_file_case(_seed_iv_feature, lambda p: _edit_mat(
        p, _set("de_LDS1", _nan_at))), Counted(    # the trial's only window: no window left
        lambda info, base: info["trials_without_windows"] == {"no eeg": 1}
        and info["n_trials"] == base["n_trials"] - 1, "trials without windows")),
    # SEED-V
    ("seed_v", "truncated"): (_file_case(_path(SEED_V_DE), _truncate), Error("1_123.npz")),
    ("seed_v", "empty"): (_file_case(_path(SEED_V_DE), _empty), Error("1_123.npz")),
    ("seed_v", "wrong key"): (_file_case(_path(SEED_V_DE), lambda p: _edit_npz(
        p, _seed_v_rename)), Error("1_123.npz", "key 'label' missing")),
    ("seed_v", "wrong shape"): (_file_case(_path(SEED_V_DE), lambda p: _edit_npz(
        p, _seed_v_shape)), Error("1_123.npz", "(n, 310)")),
    ("seed_v", "label off the class set"): (_file_case(_path(SEED_V_DE), lambda p: _edit_npz(
        p, _seed_v_label)), Error("1_123.npz", "a class in 0..4")),
    ("seed_v", "missing participant eye file"): (_file_case(_path(SEED_V_EYE),
                                                            lambda p: p.unlink()), Counted(
        lambda info, base: info["missing"]["eye"]["absent_trials"] == info["n_trials"] // 2,
        "missing eye", options={"subjects": [1, 2]})),
    ("seed_v", "foreign file"): (_foreign_case(_path(SEED_V_DE), "deap", _path(DEAP_DAT)),
                                 Error("1_123.npz", "not an .npz")),
    ("seed_v", "NaN"): (_file_case(_path(SEED_V_DE), lambda p: _edit_npz(p, _seed_v_nan)),
                        Counted(lambda info, base: info["missing"]["eeg"]["invalid_windows"]
                                == 1, "missing eeg")),
    # DREAMER
    ("dreamer", "truncated"): (_file_case(_path("DREAMER.mat"), _truncate),
                               Error("DREAMER.mat")),
    ("dreamer", "empty"): (_file_case(_path("DREAMER.mat"), _empty), Error("DREAMER.mat")),
    ("dreamer", "wrong key"): (_whole(_dreamer_rename),
                               Error("DREAMER.mat", "variable 'DREAMER' missing")),
    ("dreamer", "wrong shape"): (_whole(_dreamer(_dreamer_shape)),
                                 Error("DREAMER.mat", "(n, 14)")),
    ("dreamer", "sampling rate"): (_whole(_dreamer(_dreamer_rate)), Error(
        "DREAMER.mat", "'DREAMER.EEG_SamplingRate' is 256 Hz (expected 128 Hz")),
    ("dreamer", "out-of-range rating"): (_whole(_dreamer(_dreamer_rating)), Counted(
        lambda info, base: info["invalid_ratings"] == {"valence": 1}, "valence off the scale")),
    ("dreamer", "foreign file"): (_foreign_case(_path("DREAMER.mat"), "amigos",
                                                _path(AMIGOS_P01)),
                                  Error("DREAMER.mat", "variable 'DREAMER' missing")),
    ("dreamer", "flat channel"): (_whole(_dreamer(_dreamer_flat)), Counted(
        lambda info, base: info["flat_channels"] == {"eeg": {"trials": 1, "windows": 4,
                                                             "channels": {"FC5": 1}}}
        and info["missing"]["eeg"]["invalid_windows"] == 4, "flat eeg channels")),
    ("dreamer", "NaN"): (_whole(_dreamer(_dreamer_nan)), Counted(
        lambda info, base: info["missing"]["eeg"]["invalid_windows"] == 1, "missing eeg")),
    # AMIGOS
    ("amigos", "truncated"): (_file_case(_path(AMIGOS_P01), _truncate), Error(AMIGOS_P01)),
    ("amigos", "empty"): (_file_case(_path(AMIGOS_P01), _empty), Error(AMIGOS_P01)),
    ("amigos", "wrong key"): (_whole(_amigos(_amigos_rename)),
                              Error(AMIGOS_P01, "'joined_data' missing")),
    ("amigos", "wrong shape"): (_whole(_amigos(_amigos_joined(lambda a: a[:, :16]))),
                                Error(AMIGOS_P01, "(n, 17)")),
    ("amigos", "out-of-range rating"): (_whole(_amigos(_amigos_rating)), Counted(
        lambda info, base: info["invalid_ratings"] == {"valence": 1}, "valence off the scale")),
    ("amigos", "missing participant face"): (_whole(lambda root: shutil.rmtree(
        root / "face" / "P01")), Counted(
        lambda info, base: info["missing"]["face_au"]["absent_trials"] >= info["n_trials"] // 2
        > base["missing"]["face_au"]["absent_trials"], "missing face_au", preset="all",
        options={"subjects": [1, 2]})),
    ("amigos", "foreign file"): (_foreign_case(_path(AMIGOS_P01), "dreamer",
                                               _path("DREAMER.mat")),
                                 Error(AMIGOS_P01, "missing")),
    ("amigos", "flat channel"): (_whole(_amigos(_amigos_joined(_column(14, 0.0)))), Counted(
        lambda info, base: info["flat_channels"] == {"ecg": {"trials": 1, "windows": 4,
                                                             "channels": {"ECG_Right": 1}}}
        and info["missing"]["pps"]["invalid_windows"]
        == base["missing"]["pps"]["invalid_windows"] + 4, "flat ecg channels")),
    ("amigos", "NaN"): (_whole(_amigos(_amigos_joined(_column(3, np.nan, slice(740, 760))))),
                        Counted(lambda info, base: info["missing"]["eeg"]["invalid_windows"]
                                == 1, "missing eeg")),
    # MAHNOB-HCI
    ("mahnob", "truncated"): (_file_case(_mahnob_bdf, _truncate), Error("_emotion.bdf",
                                                                        "truncated")),
    ("mahnob", "empty"): (_file_case(_mahnob_bdf, _empty), Error("_emotion.bdf")),
    ("mahnob", "wrong key"): (_whole(_mahnob_rename_channel),
                              Error("_emotion.bdf", "['Fp1'] missing")),
    ("mahnob", "wrong shape"): (_whole(lambda root: _bdf_header(_mahnob_bdf(root), 252, "40  ")),
                                Error("_emotion.bdf")),
    ("mahnob", "sampling rate"): (_whole(_mahnob_rate), Error(
        "_emotion.bdf", "channel 'Fp1' (samples per record / record duration) is 128 Hz")),
    ("mahnob", "out-of-range rating"): (_whole(_mahnob_attr(feltVlnc="12")),
                                        Error("session.xml", "'feltVlnc'")),
    ("mahnob", "missing participant BDF"): (_file_case(_mahnob_bdf, lambda p: p.unlink()),
                                            Counted(lambda info, base: info[
                                                "trials_without_windows"].get("no BDF", 0)
                                                == base["trials_without_windows"].get(
                                                    "no BDF", 0) + 1,
                                                "trials without windows")),
    ("mahnob", "foreign file"): (_foreign_case(_mahnob_bdf, "deap", _path(DEAP_DAT)),
                                 Error("_emotion.bdf", "BDF")),
    ("mahnob", "flat channel"): (_whole(_mahnob_flat), Counted(
        lambda info, base: info["flat_channels"]["eeg"]["channels"] == {"F3": 1}
        and info["flat_channels"]["eeg"]["trials"] == 1, "flat eeg channels")),
    ("mahnob", "NaN"): (_whole(_mahnob_attr(feltArsl="NaN")), Error("session.xml",
                                                                    "'feltArsl'")),
}


@pytest.fixture
def broken(request, sources, tmp_path) -> Callable[[str, str], Path]:
    """``broken(dataset, case)``: a copy of the source with the case's corruption."""

    def make(dataset: str, case: str) -> Path:
        root = tmp_path / dataset
        shutil.copytree(sources(dataset), root)
        CASES[dataset, case][0](root, sources)
        return root

    return make


@pytest.mark.parametrize("dataset, case", list(CASES), ids=[f"{d}-{c}" for d, c in CASES])
def test_bad_input(dataset, case, broken, baseline, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")               # the info table on one line per row
    root = broken(dataset, case)
    outcome = CASES[dataset, case][1]
    cache = ["--cache-dir", str(tmp_path / "cache")]
    if isinstance(outcome, Error):
        with pytest.raises(AffectlabError) as error:
            list(iter_recordings(dataset, root))
        message = str(error.value)
        assert "\n" not in message and outcome.file in message and outcome.text in message, \
            message
        result = cli(["info", dataset, "--root", str(root), *cache])
        assert result.code == 2 and "Traceback" not in result.err
        assert result.err.strip().splitlines()[-1] == f"error: {message}"
        return
    options = [f"--set=data.{k}={json.dumps(v)}" for k, v in outcome.options.items()]
    args = ["info", dataset, "--root", str(root), "--preset", outcome.preset, *options, *cache]
    result = cli([*args, "--json"])
    assert result.code == 0, result.err
    info = json.loads(result.out)
    base = baseline(dataset, outcome.preset, outcome.options)
    assert outcome.check(info, base), {k: info[k] for k in (
        "missing", "invalid_ratings", "flat_channels", "unlisted", "trials_without_windows")}
    table = cli(args)                                  # read again from the cache
    assert table.code == 0 and outcome.shown in table.out, table.out


def test_every_reader_has_every_kind_of_case():
    kinds = {"truncated", "empty", "wrong key", "wrong shape", "foreign file", "NaN"}
    for dataset in SOURCES:
        cases = {case for d, case in CASES if d == dataset}
        assert kinds <= cases, (dataset, kinds - cases)
        assert any(c.startswith("missing participant") for c in cases) or dataset == "dreamer"
        assert any(c.startswith(("out-of-range", "label off")) for c in cases), dataset
        assert "flat channel" in cases or dataset == "seed_v", dataset  # no raw signal read


def test_flat_channel_refused_under_nan_policy_raise(broken):
    root = broken("deap", "flat channel")
    with pytest.raises(AffectlabError, match=r"s01\.dat: eeg channel\(s\) F3 of subject 1 "
                       r"session 1 trial 2 constant \(0\) over the whole recording"):
        list(iter_recordings("deap", root, nan_policy="raise"))


def test_flat_channel_and_unlisted_participant_in_the_run_summary(broken, tmp_path, cli):
    root = broken("deap", "flat channel")
    CASES["deap", "missing participant"][0](root, None)
    out = tmp_path / "run"
    result = cli(["run", "--method", "logreg", "--dataset", "deap", "--root", str(root),
                  "--protocol", "loso", "--method-preset", "fast", "--set",
                  f"cache_dir={tmp_path / 'cache'}", "--out", str(out)])
    assert result.code == 0, result.err
    summary = (out / "summary.md").read_text()
    assert "Flat eeg channels (constant over a whole recording; trials per channel): F3 (1); " \
        "1 trial(s), 4 windows, marked missing." in summary
    assert "Not in participant_ratings.csv: subject(s) 1 (40 trials), face files not mapped " \
        "to videos, face marked missing." in summary
    assert "dropped 4 of 480 windows (eeg: 4)" in summary
