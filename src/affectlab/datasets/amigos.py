"""AMIGOS: 40 participants x 16 short (+ 4 long) videos; Emotiv EEG, ECG and GSR at 128 Hz.

Layout read (``--root`` is the folder holding the subject files; a participant folder or a
folder one level above is accepted too)::

    Data_Preprocessed_P01.mat ... _P40.mat       flat (TorchEEG's layout), or as unzipped:
    Data_Preprocessed_P01/Data_Preprocessed_P01.mat
    face/P01/P01_<VideoID>.csv                   OpenFace CSVs of the frontal face videos
                                                 (ASSUMED layout; ``face_dir`` overrides)

Every ``.mat`` holds four 1xN cells, one cell per video in presentation order (N = 20 in the
release): ``joined_data`` ``(n, 17)`` float64 **time x column** (14 EEG, ECG right, ECG left,
GSR, all 128 Hz), ``labels_selfassessment`` ``(1, 12)`` (arousal, valence, dominance, liking,
familiarity, then seven 0/1 basic-emotion flags: note arousal comes first),
``labels_ext_annotation`` ``(k, 3)`` (not read) and ``VideoIDs`` (strings such as ``'138'``,
``'N1'``). The number of videos is taken from the file: the four variables must hold the same
number of cells (``labels_ext_annotation`` is only checked when present), otherwise the file is
named in the error. Cells 1-16 are the short videos, later cells the long ones. Long videos are
left out unless ``long_videos=True`` (TorchEEG ignores them too).

Each trial starts with a pre-stimulus baseline of ``baseline_s`` = 5 s (TorchEEG's and other
third-party code's reading of the release). The face CSV is assumed to start at stimulus onset
(``face_onset_s`` = 0 s on the video's clock, as for DEAP). ``trial`` is the cell index + 1 and
``stimulus`` is ``video<VideoID>``.

What the release holds besides clean trials, and what the reader does with it:

* Empty (0x0) long-video cells of participants who did not watch them, and trials whose
  self-assessment cell is empty (reported for P32's long videos) or NaN: the trial is yielded
  without data, with ``Recording.skipped`` saying why (``"empty cell"``, ``"no
  self-assessment"``, ``"NaN self-assessment"``), so that it is counted, never silently lost.
  Under ``nan_policy="raise"`` a NaN rating stops with an error instead.
* NaN samples in some channels of some trials (peripheral columns in particular): handled per
  modality (``eeg``, ``ecg``, ``gsr``) by ``nan_policy``. The default ``mark_missing`` keeps the
  modality and flags the NaN samples, so that the data preset marks every window touching one
  missing; a modality that is NaN throughout the trial is missing for that trial;
  ``interpolate`` also fills gaps of at most 0.5 s; ``raise`` stops naming the file and the
  cell's columns.
* Participants without face video, or without some of its files: the face modalities are
  missing for those trials. Untracked face frames (``success = 0``) are masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from affectlab import signal as sig
from affectlab.datasets import openface
from affectlab.datasets import synthetic as syn
from affectlab.datasets.base import (
    DEFAULT_NAN_POLICY,
    DatasetSpec,
    Recording,
    Stream,
    add_stream,
    check_array,
    check_nan_policy,
    load_mat,
)
from affectlab.datasets.channels import EMOTIV_EEG
from affectlab.errors import ConfigError, DatasetFormatError

SFREQ = 128.0
BASELINE_S = 5.0
N_CELLS = 20                # of the release; a file's own cell count is what is read
N_SHORT = 16                # cells 1-16 are the short videos, later cells the long ones
N_COLUMNS = 17
FACE_DIR = "face"
FACE_FPS = 25.0
FACE = tuple(openface.FACE_MODALITIES)
FILE_PATTERN = re.compile(r"^Data_Preprocessed_P(\d+)\.mat$")
FOLDER_PATTERN = re.compile(r"^Data_Preprocessed_P(\d+)$")
EXPECTED_FILES = "Data_Preprocessed_P01.mat ... Data_Preprocessed_P40.mat (flat, or each in " \
    "its Data_Preprocessed_PXX/ folder)"
VARIABLES = ("joined_data", "labels_selfassessment", "VideoIDs")
# released but not read: its cell count is checked against the others when it is present
CHECKED_VARIABLES = ("labels_ext_annotation",)
# column ranges of joined_data, per modality
COLUMNS = {
    "eeg": (slice(0, 14), EMOTIV_EEG),
    "ecg": (slice(14, 16), ["ECG_Right", "ECG_Left"]),
    "gsr": (slice(16, 17), ["GSR"]),
}
_COLUMN_NAMES = [*EMOTIV_EEG, "ECG_Right", "ECG_Left", "GSR"]
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
    """Load one subject file: each variable of :data:`VARIABLES` as a list of cells.

    The cell count is the file's own; every variable (and ``labels_ext_annotation`` when
    present) must hold the same number of cells, one per video.
    """
    content = load_mat(path, [*VARIABLES, *CHECKED_VARIABLES],
                       f"a MATLAB v5 file with {', '.join(VARIABLES)}")
    cells = {}
    for name in (*VARIABLES, *CHECKED_VARIABLES):
        if name not in content:
            if name in CHECKED_VARIABLES:
                continue
            found = sorted(content)
            raise DatasetFormatError(path, f"variable '{name}' missing (variables read: "
                                     f"{found})", f"the 1xN cells {', '.join(VARIABLES)}")
        value = content[name]
        if not isinstance(value, np.ndarray) or value.dtype != object or value.size == 0 \
                or sum(n > 1 for n in value.shape) > 1:
            raise DatasetFormatError(path, f"variable '{name}' is {type(value).__name__} "
                                     f"{getattr(value, 'dtype', '')} of shape "
                                     f"{getattr(value, 'shape', '')}",
                                     "a 1xN cell, one cell per video")
        cells[name] = list(value.ravel())
    counts = {name: len(items) for name, items in cells.items()}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"'{name}' {count}" for name, count in counts.items())
        raise DatasetFormatError(path, f"the variables hold different numbers of cells "
                                 f"({listed})", "the same number of cells, one per video, in "
                                 "every variable")
    return {name: cells[name] for name in VARIABLES}


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
         nan_policy: str = DEFAULT_NAN_POLICY, long_videos: bool = False,
         baseline_s: float = BASELINE_S, face_onset_s: float = 0.0,
         **_: object) -> Iterator[Recording]:
    """Yield AMIGOS recordings (one per subject x video) with eeg / ecg / gsr and face streams.

    ``long_videos`` adds the cells after the 16th (the long videos) where a file has them;
    ``baseline_s`` is the pre-stimulus part of every trial; ``face_onset_s`` the stimulus onset
    on the face CSV's clock. A listed trial without usable data is yielded with
    ``Recording.skipped`` set and nothing else.
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
    for subject, path in files.items():
        cells = load_cells(path)
        n_cells = len(cells["joined_data"])
        for k in range(n_cells if long_videos else min(n_cells, N_SHORT)):
            rec = _recording(subject, k, cells, path, baseline_s, nan_policy)
            if rec.skipped:
                yield rec
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
               nan_policy: str) -> Recording:
    """The recording of cell ``k`` (0-based); ``skipped`` says why when it holds no trial."""
    data, labels = cells["joined_data"][k], cells["labels_selfassessment"][k]
    empty = np.asarray(data).size == 0
    if empty or np.asarray(labels).size == 0:
        return _skipped(subject, k, cells, path, "empty cell" if empty else "no self-assessment")
    key = f"joined_data{{{k + 1}}}"
    data = check_array(data, path, key, shape=(None, N_COLUMNS))
    onset = int(round(baseline_s * SFREQ))
    if data.shape[0] <= onset:
        raise DatasetFormatError(path, f"key '{key}' has only {data.shape[0]} samples",
                                 f"more than the {onset} baseline samples ({baseline_s} s)")
    ratings = _ratings(labels, path, k, nan_policy)
    if ratings is None:
        return _skipped(subject, k, cells, path, "NaN self-assessment")
    rec = Recording(dataset="amigos", subject=subject, session=1, trial=k + 1,
                    stimulus=f"video{video_id(cells['VideoIDs'][k], path, k)}",
                    ratings=ratings, source=str(path))
    for modality, (columns, names) in COLUMNS.items():
        block = data[:, columns].T
        add_stream(rec, modality, Stream(np.ascontiguousarray(block, np.float64), SFREQ,
                                         list(names), onset_s=baseline_s),
                   path, _columns_key(k, columns), nan_policy)
    return rec


def _skipped(subject: int, k: int, cells: dict[str, list], path: Path,
             reason: str) -> Recording:
    """A listed trial without usable data (counted by the data preset, never windowed)."""
    try:
        stimulus = f"video{video_id(cells['VideoIDs'][k], path, k)}"
    except DatasetFormatError:          # long-video cells of absent videos may be empty too
        stimulus = ""
    return Recording(dataset="amigos", subject=subject, session=1, trial=k + 1,
                     stimulus=stimulus, source=str(path), skipped=reason)


def _ratings(labels: object, path: Path, k: int, nan_policy: str) -> dict[str, float] | None:
    """Valence, arousal, dominance, liking from one self-assessment row (arousal first).

    A NaN rating raises under ``nan_policy="raise"``; otherwise None: the trial cannot be
    labelled and is yielded as skipped.
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
                                 "finite ratings; with nan_policy='mark_missing' the trial "
                                 "is skipped and counted")
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


# NaN written into the peripheral columns of three short-video trials (when ``nuisances``):
# (what, modality, joined_data columns, length range in seconds or None for the whole trial)
NAN_NUISANCES = (
    ("short gap", "ecg", (14,), (0.1, 0.4)),            # filled under nan_policy=interpolate
    ("long gap", "gsr", (16,), (1.5, 3.0)),              # its windows stay missing
    ("whole trial", "ecg", (14, 15), None),              # ecg (so pps) absent for the trial
)
LONG_FAILURES_PER_SUBJECT = 2      # face trials with a 2-3 s tracking failure, per subject


def write_synthetic(root: Path, n_subjects: int = 4, seed: int = 0,
                    seconds: float | None = None, nuisances: bool = True,
                    n_trials: int | None = None) -> dict:
    """Write synthetic ``Data_Preprocessed_PXX.mat`` files (flat) and face CSVs.

    ``n_trials`` cells per file (default 20 as released: 16 short videos, then 4 long ones).
    Short videos last ``seconds`` (default 8 s; real 51-150 s) and long ones 1.5 x that (real
    14-24 min), each after a 5-s baseline. With ``nuisances`` (the release's): subject 2 (or
    the only one) has empty (0x0) long-video cells, as P08, P24 and P28 do; the last subject
    has no face CSVs and subject 1 lacks the one of cell 5; face tracking fails in short runs
    of frames and, in two trials per subject, once for 2-3 s; three short-video trials hold NaN
    in peripheral columns (:data:`NAN_NUISANCES`: a short ECG gap, a GSR gap of a few seconds,
    ECG NaN throughout), always inside the whole 1 s windows of the stimulus; about 10 % of the
    trials carry EEG artefacts. Without: every cell, every face, every frame and sample valid.

    Returns the manifest entry: ``trials``, ``nuisances`` (what was written where) and
    ``expected`` (what the reader and the ``default`` data preset find).
    """
    seconds = 8.0 if seconds is None else float(seconds)
    n_cells = N_CELLS if n_trials is None else int(n_trials)
    if not 1 <= n_cells <= N_CELLS:
        raise ConfigError("n_trials", f"got {n_trials}; must be 1-{N_CELLS} (cells 1-{N_SHORT} "
                                      "are the short videos, later ones the long videos)")
    n_short = min(n_cells, N_SHORT)
    onset, n_stim = int(round(BASELINE_S * SFREQ)), int(round(seconds * SFREQ))
    n_windows = sig.n_windows(n_stim, SFREQ, 1.0)
    plan_rng = syn.rng_for(seed, "amigos-nuisances")
    nan_plan = _nan_plan(plan_rng, n_subjects, n_short, onset, n_stim) if nuisances else []
    empty_subject = min(2, n_subjects) if nuisances and n_cells > N_SHORT else None
    no_face = n_subjects if nuisances and n_subjects > 1 else None
    lost_face = (1, 4) if nuisances and n_short >= 5 else None       # (subject, cell)
    root.mkdir(parents=True, exist_ok=True)
    trials_manifest, profiles = [], {}
    artefacts, failures, untracked = [], [], 0
    for subject in range(1, n_subjects + 1):
        rng = syn.rng_for(seed, "amigos", subject)
        profile = syn.SubjectProfile.draw(rng, subject)
        profiles[subject] = profile.to_dict()
        videos = [*rng.permutation(SHORT_VIDEOS), *rng.permutation(LONG_VIDEOS)][:n_cells]
        cells = {name: [np.zeros((0, 0))] * n_cells for name in
                 ("joined_data", "labels_selfassessment", "labels_ext_annotation", "VideoIDs")}
        with_face = subject != no_face
        long_failure = set()
        if nuisances and with_face:
            faced = [k for k in range(n_short) if (subject, k) != lost_face]
            long_failure = {int(k) for k in plan_rng.choice(
                faced, min(LONG_FAILURES_PER_SUBJECT, len(faced)), replace=False)}
        for k, video in enumerate(videos):
            if k >= N_SHORT and subject == empty_subject:
                continue
            latent = syn.draw_latent(rng, noisy_rate=0.1 if nuisances else 0.0)
            if latent.noisy:
                artefacts.append({"subject": subject, "trial": k + 1})
            duration = seconds if k < N_SHORT else 1.5 * seconds
            data, events = _synth_trial(rng, latent, profile, duration)
            for gap in nan_plan:
                if (gap["subject"], gap["trial"]) == (subject, k + 1):
                    data[slice(*gap["rows"]), list(gap["column_index"])] = np.nan
            cells["joined_data"][k] = data
            cells["labels_selfassessment"][k] = _self_assessment(rng, latent)
            cells["labels_ext_annotation"][k] = _external_annotation(rng, latent, duration)
            cells["VideoIDs"][k] = str(video)
            face = with_face and (subject, k) != lost_face
            if face:
                written = openface.synthesize_face(
                    root / FACE_DIR / f"P{subject:02d}" / f"P{subject:02d}_{video}.csv", rng,
                    syn.rng_for(seed, "amigos-face", subject), duration, FACE_FPS, latent,
                    events, profile.face_lag_s, dropout_rate=0.03 if nuisances else 0.0,
                    long_failure=k in long_failure)
                if k < N_SHORT:
                    untracked += len(written["untracked_windows"])
                if written["long_failure_s"] is not None:
                    failures.append({"subject": subject, "trial": k + 1,
                                     "seconds": written["long_failure_s"],
                                     "untracked_windows": written["untracked_windows"]})
            trials_manifest.append({"subject": subject, "session": 1, "trial": k + 1,
                                    "stimulus": f"video{video}", "long": k >= N_SHORT,
                                    "face": face, **latent.to_dict()})
        syn.write_mat(root / f"Data_Preprocessed_P{subject:02d}.mat",
                      {name: _row_cell(items) for name, items in cells.items()})
    found = {}
    if nuisances:
        found = {
            "nan_peripheral": [{key: value for key, value in gap.items()
                                if key != "column_index"} for gap in nan_plan],
            "subjects_without_face": [no_face] if no_face else [],
            "missing_face_files": [{"subject": lost_face[0], "trial": lost_face[1] + 1}]
            if lost_face else [],
            "untracked_face_frames": "about 3 % of the frames, in runs of 5 (success = 0)",
            "face_tracking_failures": failures,
            "untracked_face_windows": untracked,
            "artefact_trials": artefacts,
        }
        if empty_subject is not None:
            found["empty_long_video_cells"] = {
                "subject": empty_subject, "trials": list(range(N_SHORT + 1, n_cells + 1))}
    return {"trials": trials_manifest, "subjects": profiles, "stimulus_seconds": seconds,
            "long_video_seconds": 1.5 * seconds, "baseline_seconds": BASELINE_S,
            "n_trials": n_cells, "nuisances": found,
            "expected": _expected(n_subjects, n_short, n_windows, nan_plan)}


def _nan_plan(rng: np.random.Generator, n_subjects: int, n_short: int, onset: int,
              n_stim: int) -> list[dict]:
    """Where :data:`NAN_NUISANCES` go: subject 1, 2 and the last (distinct short cells when
    they coincide), rows inside the whole 1 s windows of the stimulus with a valid sample on
    either side; ``windows`` are the stimulus windows that touch a NaN row."""
    n_windows = sig.n_windows(n_stim, SFREQ, 1.0)
    if n_windows == 0:
        return []
    region = n_windows * int(SFREQ)               # samples of the stimulus' whole windows
    used: dict[int, set[int]] = {}
    out = []
    for (kind, modality, columns, span), subject in zip(
            NAN_NUISANCES, (1, min(2, n_subjects), n_subjects), strict=True):
        free = [k for k in range(n_short) if k not in used.get(subject, set())]
        if not free:
            continue
        k = int(rng.choice(free))
        used.setdefault(subject, set()).add(k)
        if span is None:
            rows, windows = [0, onset + n_stim], list(range(n_windows))
        else:
            length = min(int(round(rng.uniform(*span) * SFREQ)), region - 2)
            begin = onset + 1 + int(rng.integers(0, region - 2 - length + 1))
            rows = [begin, begin + length]
            windows = list(range((begin - onset) // int(SFREQ),
                                 (begin + length - 1 - onset) // int(SFREQ) + 1))
        out.append({"subject": subject, "trial": k + 1, "kind": kind, "modality": modality,
                    "columns": [_COLUMN_NAMES[c] for c in columns], "column_index": columns,
                    "rows": rows, "seconds": round((rows[1] - rows[0]) / SFREQ, 4),
                    "windows": windows})
    return out


def _expected(n_subjects: int, n_short: int, n_windows: int, nan_plan: list[dict]) -> dict:
    """What the reader + ``default`` preset find: the short-video trials, 1 s windows of their
    stimulus; ``pps`` (ecg + gsr) absent where a block is NaN throughout, invalid in the
    windows a NaN gap touches (gaps lie in distinct trials)."""
    if n_windows == 0:
        return syn.expected_counts(0, 0, 0, trials_without_windows={
            "shorter than one 1.0 s window": n_subjects * n_short})
    whole = [gap for gap in nan_plan if gap["kind"] == "whole trial"]
    gaps = [gap for gap in nan_plan if gap["kind"] != "whole trial"]
    pps = {"absent_trials": len(whole), "absent_windows": len(whole) * n_windows,
           "invalid_windows": sum(len(gap["windows"]) for gap in gaps)}
    return syn.expected_counts(n_subjects, n_subjects * n_short,
                               n_subjects * n_short * n_windows,
                               {"pps": pps} if nan_plan else None)


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
