"""AMIGOS: 40 participants x 16 short (+ 4 long) videos; Emotiv EEG, ECG and GSR at 128 Hz.

Layout read (``--root`` is the folder holding the subject files; a participant folder or a
folder one level above is accepted too)::

    Data_Preprocessed_P01.mat ... _P40.mat       flat (TorchEEG's layout), or as unzipped:
    Data_Preprocessed_P01/Data_Preprocessed_P01.mat
    face/P01/P01_<VideoID>.csv                   OpenFace CSVs of the frontal face videos
                                                 (ASSUMED layout; ``face_dir`` overrides)

Every ``.mat`` holds four 1x20 cells, one cell per video in presentation order:
``joined_data`` ``(n, 17)`` float64 **time x column** (14 EEG, ECG right, ECG left, GSR, all
128 Hz), ``labels_selfassessment`` ``(1, 12)`` (arousal, valence, dominance, liking,
familiarity, then seven 0/1 basic-emotion flags: note arousal comes first),
``labels_ext_annotation`` ``(k, 3)`` (not read) and ``VideoIDs`` (strings such as ``'138'``,
``'N1'``). Cells 1-16 are the short videos; cells 17-20 the long ones, empty (0x0) for
participants who did not watch them. Long videos are left out unless ``long_videos=True``
(TorchEEG ignores them too); an empty cell is a trial that does not exist and is not yielded.

Each trial starts with a pre-stimulus baseline of ``baseline_s`` = 5 s (TorchEEG's and other
third-party code's reading of the release). The face CSV is assumed to start at stimulus onset
(``face_onset_s`` = 0 s on the video's clock, as for DEAP). ``trial`` is the cell index + 1 and
``stimulus`` is ``video<VideoID>``. A trial whose self-assessment cell is empty (reported for
P32's long videos) cannot be labelled and is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from affectlab.datasets import openface
from affectlab.datasets import synthetic as syn
from affectlab.datasets.base import (
    DatasetSpec,
    Recording,
    Stream,
    apply_nan_policy,
    check_array,
    check_nan_policy,
    load_mat,
)
from affectlab.datasets.channels import EMOTIV_EEG
from affectlab.errors import ConfigError, DatasetFormatError

SFREQ = 128.0
BASELINE_S = 5.0
N_CELLS = 20
N_SHORT = 16
N_COLUMNS = 17
FACE_DIR = "face"
FACE_FPS = 25.0
FACE = tuple(openface.FACE_MODALITIES)
FILE_PATTERN = re.compile(r"^Data_Preprocessed_P(\d+)\.mat$")
FOLDER_PATTERN = re.compile(r"^Data_Preprocessed_P(\d+)$")
EXPECTED_FILES = "Data_Preprocessed_P01.mat ... Data_Preprocessed_P40.mat (flat, or each in " \
    "its Data_Preprocessed_PXX/ folder)"
VARIABLES = ("joined_data", "labels_selfassessment", "VideoIDs")
# column ranges of joined_data, per modality
COLUMNS = {
    "eeg": (slice(0, 14), EMOTIV_EEG),
    "ecg": (slice(14, 16), ["ECG_Right", "ECG_Left"]),
    "gsr": (slice(16, 17), ["GSR"]),
}
# position of each rating in labels_selfassessment (arousal first)
RATING_COLUMNS = {"arousal": 0, "valence": 1, "dominance": 2, "liking": 3}


def subject_files(folder: Path) -> dict[int, Path]:
    """Subject number -> ``.mat`` file, flat in ``folder`` or one level down (unzip layout).

    Other files and folders are ignored; a flat file wins over a nested copy.
    """
    flat, nested = {}, {}
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and (match := FILE_PATTERN.match(entry.name)):
            flat[int(match.group(1))] = entry
        elif entry.is_dir() and FOLDER_PATTERN.match(entry.name):
            for inner in sorted(entry.iterdir()):
                if inner.is_file() and (match := FILE_PATTERN.match(inner.name)):
                    nested[int(match.group(1))] = inner
    return dict(sorted({**nested, **flat}.items()))


def find_root(root: str | Path) -> tuple[Path, dict[int, Path]]:
    """The folder holding the subject files (``root``, its parent or a child) and the files."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetFormatError(root, "AMIGOS root does not exist",
                                 f"a folder holding {EXPECTED_FILES}")
    if root.is_file() or FOLDER_PATTERN.match(root.name):
        root = root.parent
    for candidate in (root, root.parent, *sorted(p for p in root.iterdir() if p.is_dir())):
        files = subject_files(candidate)
        if files:
            return candidate, files
    raise DatasetFormatError(root, "no AMIGOS subject files found", EXPECTED_FILES)


def load_cells(path: Path) -> dict[str, list]:
    """Load one subject file: each variable of :data:`VARIABLES` as a list of 20 cells."""
    content = load_mat(path, list(VARIABLES),
                       f"a MATLAB v5 file with {', '.join(VARIABLES)}")
    cells = {}
    for name in VARIABLES:
        if name not in content:
            found = sorted(content)
            raise DatasetFormatError(path, f"variable '{name}' missing (variables read: "
                                     f"{found})", f"the 1x{N_CELLS} cells {', '.join(VARIABLES)}")
        value = content[name]
        if not isinstance(value, np.ndarray) or value.dtype != object or value.size != N_CELLS:
            raise DatasetFormatError(path, f"variable '{name}' is {type(value).__name__} "
                                     f"{getattr(value, 'dtype', '')} of shape "
                                     f"{getattr(value, 'shape', '')}", f"a 1x{N_CELLS} cell")
        cells[name] = list(value.ravel())
    return cells


def video_id(cell: object, path: Path, index: int) -> str:
    """The ``VideoIDs`` cell as a string (a number stored as a number is accepted too)."""
    value = np.asarray(cell)
    if value.dtype.kind == "U" and value.size:
        text = "".join(value.ravel()).strip()
    elif value.size == 1 and np.issubdtype(value.dtype, np.number):
        number = float(value.ravel()[0])
        text = str(int(number)) if number.is_integer() else ""
    else:
        text = ""
    if not text:
        raise DatasetFormatError(path, f"key 'VideoIDs{{{index + 1}}}' is {value!r}",
                                 "a video id string such as '138' or 'N1'")
    return text


def read(root: Path, subjects: Sequence[int] | None = None, face_dir: Path | None = None,
         nan_policy: str = "raise", long_videos: bool = False, baseline_s: float = BASELINE_S,
         face_onset_s: float = 0.0, **_: object) -> Iterator[Recording]:
    """Yield AMIGOS recordings (one per subject x video) with eeg / ecg / gsr and face streams.

    ``long_videos`` adds cells 17-20 where a participant has them; ``baseline_s`` is the
    pre-stimulus part of every trial; ``face_onset_s`` the stimulus onset on the face CSV's clock.
    """
    check_nan_policy(nan_policy)
    if not baseline_s >= 0:
        raise ConfigError("baseline_s", f"got {baseline_s!r}; must be >= 0 seconds")
    root, files = find_root(root)
    if subjects is not None:
        absent = sorted(set(subjects) - set(files))
        if absent:
            raise DatasetFormatError(root, f"subject file(s) missing for {absent}", ", ".join(
                f"Data_Preprocessed_P{s:02d}.mat" for s in absent))
        files = {s: files[s] for s in subjects}
    face_root = Path(face_dir) if face_dir is not None else root / FACE_DIR
    n_cells = N_CELLS if long_videos else N_SHORT
    for subject, path in files.items():
        cells = load_cells(path)
        for k in range(n_cells):
            rec = _recording(subject, k, cells, path, baseline_s, nan_policy)
            if rec is None:
                continue
            video = rec.stimulus.removeprefix("video")
            face_file = face_root / f"P{subject:02d}" / f"P{subject:02d}_{video}.csv"
            if face_file.is_file():
                rec.streams.update(openface.read_csv(face_file, stimulus_onset_s=face_onset_s))
            else:
                rec.missing.update(FACE)
            yield rec


def _columns_key(k: int, columns: slice) -> str:
    first, last = columns.start + 1, columns.stop
    span = str(first) if first == last else f"{first}:{last}"
    return f"joined_data{{{k + 1}}}(:, {span})"


def _recording(subject: int, k: int, cells: dict[str, list], path: Path, baseline_s: float,
               nan_policy: str) -> Recording | None:
    """The recording of cell ``k`` (0-based), or None if the cell holds no labelled trial."""
    data, labels = cells["joined_data"][k], cells["labels_selfassessment"][k]
    if np.asarray(data).size == 0 or np.asarray(labels).size == 0:
        return None
    key = f"joined_data{{{k + 1}}}"
    data = check_array(data, path, key, shape=(None, N_COLUMNS))
    onset = int(round(baseline_s * SFREQ))
    if data.shape[0] <= onset:
        raise DatasetFormatError(path, f"key '{key}' has only {data.shape[0]} samples",
                                 f"more than the {onset} baseline samples ({baseline_s} s)")
    ratings = _ratings(labels, path, k, nan_policy)
    if ratings is None:
        return None
    rec = Recording(dataset="amigos", subject=subject, session=1, trial=k + 1,
                    stimulus=f"video{video_id(cells['VideoIDs'][k], path, k)}",
                    ratings=ratings, source=str(path))
    for modality, (columns, names) in COLUMNS.items():
        block = data[:, columns].T
        if apply_nan_policy(rec, modality, block, path, _columns_key(k, columns), nan_policy):
            rec.streams[modality] = Stream(np.ascontiguousarray(block, np.float64), SFREQ,
                                           list(names), onset_s=baseline_s)
    return rec


def _ratings(labels: object, path: Path, k: int, nan_policy: str) -> dict[str, float] | None:
    """Valence, arousal, dominance, liking from one self-assessment row (arousal first).

    A NaN rating raises under ``nan_policy="raise"``; otherwise the trial is skipped (None),
    since it cannot be labelled.
    """
    key = f"labels_selfassessment{{{k + 1}}}"
    row = check_array(labels, path, key, ndim=2).ravel()
    if row.size < len(RATING_COLUMNS):
        raise DatasetFormatError(path, f"key '{key}' has {row.size} values",
                                 "(1, 12): arousal, valence, dominance, liking, familiarity, ...")
    values = {name: float(row[i]) for name, i in RATING_COLUMNS.items()}
    if all(np.isfinite(list(values.values()))):
        return values
    if nan_policy == "raise":
        raise DatasetFormatError(path, f"key '{key}' (ratings) contains NaN",
                                 "finite ratings; pass nan_policy='mark_missing' to skip the "
                                 "trial")
    return None


# --------------------------------------------------------------------------- synthetic writer

SHORT_VIDEOS = ("4", "5", "9", "10", "13", "18", "19", "20", "23", "30", "31", "34", "36", "58",
                "80", "138")
LONG_VIDEOS = ("N1", "P1", "B1", "U1")
# latent (valence, arousal) of the seven basic-emotion flags of labels_selfassessment
BASIC_EMOTIONS = {
    "neutral": (0.0, -0.2), "disgust": (-0.6, 0.35), "happiness": (0.85, 0.5),
    "surprise": (0.3, 0.8), "anger": (-0.7, 0.7), "fear": (-0.6, 0.95), "sadness": (-0.8, -0.6),
}
SEGMENT_S = 20.0           # labels_ext_annotation: one row per 20-s segment


def write_synthetic(root: Path, n_subjects: int = 4, seed: int = 0,
                    seconds: float | None = None) -> dict:
    """Write synthetic ``Data_Preprocessed_PXX.mat`` files (flat) and face CSVs.

    Short videos last ``seconds`` (default 8 s; real 51-150 s) and long ones 1.5 x that (real
    14-24 min), each after a 5-s baseline. Subject 2 has empty (0x0) long-video cells, as P08,
    P24 and P28 do; the last subject has no face CSVs and subject 1 lacks the one of cell 5.
    """
    seconds = 8.0 if seconds is None else float(seconds)
    root.mkdir(parents=True, exist_ok=True)
    trials_manifest, profiles = [], {}
    for subject in range(1, n_subjects + 1):
        rng = syn.rng_for(seed, "amigos", subject)
        profile = syn.SubjectProfile.draw(rng, subject)
        profiles[subject] = profile.to_dict()
        videos = [*rng.permutation(SHORT_VIDEOS), *rng.permutation(LONG_VIDEOS)]
        cells = {name: [np.zeros((0, 0))] * N_CELLS for name in
                 ("joined_data", "labels_selfassessment", "labels_ext_annotation", "VideoIDs")}
        with_face = subject < n_subjects or n_subjects == 1
        for k, video in enumerate(videos):
            if k >= N_SHORT and subject == 2:
                continue
            latent = syn.draw_latent(rng)
            duration = seconds if k < N_SHORT else 1.5 * seconds
            cells["joined_data"][k], events = _synth_trial(rng, latent, profile, duration)
            cells["labels_selfassessment"][k] = _self_assessment(rng, latent)
            cells["labels_ext_annotation"][k] = _external_annotation(rng, latent, duration)
            cells["VideoIDs"][k] = str(video)
            face = with_face and not (subject == 1 and k == 4)
            if face:
                openface.synthesize_face(
                    root / FACE_DIR / f"P{subject:02d}" / f"P{subject:02d}_{video}.csv", rng,
                    syn.rng_for(seed, "amigos-face", subject), duration, FACE_FPS, latent,
                    events, profile.face_lag_s)
            trials_manifest.append({"subject": subject, "session": 1, "trial": k + 1,
                                    "stimulus": f"video{video}", "long": k >= N_SHORT,
                                    "face": face, **latent.to_dict()})
        syn.write_mat(root / f"Data_Preprocessed_P{subject:02d}.mat",
                         {name: _row_cell(items) for name, items in cells.items()})
    return {"trials": trials_manifest, "subjects": profiles, "stimulus_seconds": seconds,
            "long_video_seconds": 1.5 * seconds, "baseline_seconds": BASELINE_S}


def _row_cell(items: list) -> np.ndarray:
    """A 1xN MATLAB cell array for ``scipy.io.savemat``."""
    out = np.empty((1, len(items)), dtype=object)
    for i, item in enumerate(items):
        out[0, i] = item
    return out


def _synth_trial(rng: np.random.Generator, latent: syn.TrialLatent,
                 profile: syn.SubjectProfile, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """``joined_data`` of one video, ``(n_times, 17)``, and the stimulus event times."""
    onset = int(round(BASELINE_S * SFREQ))
    n_stim = int(round(seconds * SFREQ))
    env_stim, events = syn.event_envelope(rng, n_stim, SFREQ)
    calm = syn.TrialLatent(0.0, -0.3, None, latent.noisy, latent.session_gain)
    out = np.zeros((N_COLUMNS, onset + n_stim))
    out[:14, :onset] = syn.eeg(rng, EMOTIV_EEG, onset, SFREQ, calm, profile)
    out[:14, onset:] = syn.eeg(rng, EMOTIV_EEG, n_stim, SFREQ, latent, profile, env_stim)
    out[14:16] = syn.ecg(rng, onset + n_stim, SFREQ, latent, profile, n_leads=2)
    out[16] = syn.skin_conductance(rng, onset + n_stim, SFREQ, latent, profile,
                                   np.r_[np.zeros(onset), env_stim])
    return syn.quantize(out.T), events


def _self_assessment(rng: np.random.Generator, latent: syn.TrialLatent) -> np.ndarray:
    """``(1, 12)``: arousal, valence, dominance, liking, familiarity (1-9), 7 emotion flags."""
    distance = {name: np.hypot(latent.valence - v, latent.arousal - a)
                for name, (v, a) in BASIC_EMOTIONS.items()}
    closest = min(distance, key=distance.__getitem__)
    flags = [float(name == closest) for name in BASIC_EMOTIONS]
    row = [syn.rating_from_latent(latent.arousal, 1, 9, rng),
           syn.rating_from_latent(latent.valence, 1, 9, rng),
           round(float(rng.uniform(1, 9)), 2), round(float(rng.uniform(1, 9)), 2),
           float(rng.integers(1, 10)), *flags]
    return np.array([row])


def _external_annotation(rng: np.random.Generator, latent: syn.TrialLatent,
                         seconds: float) -> np.ndarray:
    """``(k, 3)``: segment number, valence, arousal (centred on 0) per 20-s segment."""
    k = max(1, int(np.ceil(seconds / SEGMENT_S)))
    noise = rng.normal(0, 0.1, (k, 2))
    return np.column_stack([np.arange(1, k + 1), latent.valence + noise[:, 0],
                            latent.arousal + noise[:, 1]]).round(3)


SPEC = DatasetSpec(
    name="amigos",
    title="AMIGOS",
    modalities=("eeg", "ecg", "gsr", *FACE),
    feature_sets=(),
    rating_scale=(1.0, 9.0),
    native_classes=None,
    n_sessions=1,
    layout="Data_Preprocessed_PXX.mat (or Data_Preprocessed_PXX/Data_Preprocessed_PXX.mat): "
           "joined_data, labels_selfassessment, VideoIDs; face/PXX/PXX_<VideoID>.csv",
    reader=read,
    writer=write_synthetic,
)
