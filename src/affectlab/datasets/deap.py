"""DEAP: 32 participants x 40 music videos, EEG 32 + 8 peripheral channels at 128 Hz.

Layout read (``--root`` is the folder holding ``data_preprocessed_python/``)::

    data_preprocessed_python/s01.dat ... s32.dat   Python-2 pickles {'data': (40, 40, 8064),
                                                   'labels': (40, 4)}, trial = video order
                                                   (a copy or subset may hold other trial
                                                   counts: sizes are taken from the file)
    metadata_csv/participant_ratings.csv           Participant_id, Trial, Experiment_id, ...
    face/s01/s01_trial01.csv ...                   OpenFace CSVs of face_video/sXX/sXX_trialYY.avi
                                                   (YY = presentation trial, s01-s22 only)

Rows of ``data`` are in video (Experiment_id) order; the first 3 s (384 samples) are the
pre-trial baseline. Face files are named by presentation trial and mapped to the video through
``participant_ratings.csv``. A trial without its face file has the face modalities marked
missing: the release has face video for 22 of the 32 participants only, and a few videos of
those are absent, so the ``default`` data preset leaves faces out and the ``all`` preset marks
them missing where absent. A participant (or video) with face files that
``participant_ratings.csv`` does not list cannot have them mapped: its face is marked missing,
logged, and counted (``Recording.unlisted``, the WindowSet's ``description["unlisted"]``,
``affectlab info``, the run summary); an empty or unreadable CSV is an error naming it. NaN /
Inf samples are handled by ``nan_policy`` (default: the affected windows are marked missing).
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

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
    require_dir,
    resolve_root,
)
from affectlab.datasets.channels import DEAP_EEG
from affectlab.errors import ConfigError, DatasetFormatError

SFREQ = 128.0
BASELINE_S = 3.0
N_TRIALS = 40                   # of the release; a file's own count is what is read
N_CHANNELS = 40
PYTHON_DIR = "data_preprocessed_python"
RATINGS_CSV = Path("metadata_csv") / "participant_ratings.csv"
FACE_DIR = "face"
# channel index ranges of the 40 rows, per modality
CHANNELS = {
    "eeg": (slice(0, 32), DEAP_EEG),
    "eog": (slice(32, 34), ["hEOG", "vEOG"]),
    "emg": (slice(34, 36), ["zEMG", "tEMG"]),
    "gsr": (slice(36, 37), ["GSR"]),
    "resp": (slice(37, 38), ["Respiration"]),
    "ppg": (slice(38, 39), ["Plethysmograph"]),
    "temp": (slice(39, 40), ["Temperature"]),
}
FACE = tuple(openface.FACE_MODALITIES)
FILE_PATTERN = re.compile(r"^s(\d{2})\.dat$")

log = logging.getLogger(__name__)


def load_dat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Load one ``sXX.dat`` (a Python-2 pickle) and check its keys and shapes."""
    try:
        with open(path, "rb") as handle:
            content = pickle.load(handle, encoding="latin1")
    except (EOFError, pickle.UnpicklingError, ValueError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(path, f"cannot unpickle ({type(exc).__name__}: {exc}); "
                                 "the file is truncated or not a DEAP .dat",
                                 "a pickle dict with keys 'data' and 'labels'") from exc
    if not isinstance(content, dict):
        raise DatasetFormatError(path, f"holds a {type(content).__name__}",
                                 "a dict with keys 'data' and 'labels'")
    for key in ("data", "labels"):
        if key not in content:
            raise DatasetFormatError(path, f"key '{key}' missing (keys: {sorted(content)})",
                                     "keys 'data' and 'labels'")
    data = check_array(content["data"], path, "data", shape=(None, N_CHANNELS, None))
    labels = check_array(content["labels"], path, "labels", shape=(None, 4))
    if len(data) != len(labels) or len(data) == 0:
        raise DatasetFormatError(path, f"key 'data' holds {len(data)} trials and 'labels' "
                                 f"{len(labels)}", "one labels row (valence, arousal, dominance, "
                                 "liking) per trial of 'data', at least one")
    if data.shape[2] <= int(BASELINE_S * SFREQ):
        raise DatasetFormatError(path, f"key 'data' has only {data.shape[2]} samples per trial",
                                 f"more than the {int(BASELINE_S * SFREQ)} baseline samples")
    return data, labels


def presentation_orders(root: Path) -> dict[int, dict[int, int]]:
    """Map participant -> {Experiment_id (video): Trial (presentation position)}."""
    path = root / RATINGS_CSV
    if not path.is_file():
        return {}
    needed = {"Participant_id", "Trial", "Experiment_id"}
    expected = f"a CSV with columns including {', '.join(sorted(needed))}"
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise DatasetFormatError(path, "the file is empty", expected) from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DatasetFormatError(path, f"cannot read the CSV ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''})",
                                 expected) from exc
    if not needed <= set(table.columns):
        raise DatasetFormatError(path, f"columns {sorted(map(str, table.columns))}", expected)
    if table.empty:
        raise DatasetFormatError(path, "no rows", "one row per participant and trial")
    orders: dict[int, dict[int, int]] = {}
    for line, row in enumerate(table.itertuples(index=False), start=2):
        try:
            participant, video, trial = (int(row.Participant_id), int(row.Experiment_id),
                                         int(row.Trial))
        except (TypeError, ValueError) as exc:
            raise DatasetFormatError(path, f"line {line}: Participant_id, Experiment_id, Trial "
                                     f"= {row.Participant_id!r}, {row.Experiment_id!r}, "
                                     f"{row.Trial!r}", "integers") from exc
        orders.setdefault(participant, {})[video] = trial
    return orders


def read(root: Path, subjects: Sequence[int] | None = None, face_dir: Path | None = None,
         nan_policy: str = DEFAULT_NAN_POLICY, **_: object) -> Iterator[Recording]:
    """Yield DEAP recordings (one per subject x video), with face streams where available."""
    check_nan_policy(nan_policy)
    root = resolve_root(root, [PYTHON_DIR], "DEAP")
    folder = require_dir(root / PYTHON_DIR, "DEAP", "s01.dat ... s32.dat")
    files = {int(m.group(1)): p for p in sorted(folder.iterdir())
             if (m := FILE_PATTERN.match(p.name))}
    if not files:
        raise DatasetFormatError(folder, "no sXX.dat files", "s01.dat ... s32.dat")
    if subjects is not None:
        absent = sorted(set(subjects) - set(files))
        if absent:
            raise DatasetFormatError(folder, f"subject file(s) missing for {absent}",
                                     ", ".join(f"s{s:02d}.dat" for s in absent))
        files = {s: files[s] for s in subjects}
    face_root = Path(face_dir) if face_dir is not None else root / FACE_DIR
    orders = presentation_orders(root) if face_root.is_dir() else {}
    if face_root.is_dir() and not orders:
        raise DatasetFormatError(root / RATINGS_CSV, "needed to map face files to videos",
                                 "participant_ratings.csv with Participant_id, Trial, "
                                 "Experiment_id")
    for subject, path in files.items():
        data, labels = load_dat(path)
        order = orders.get(subject)
        unmapped = _unmapped(subject, len(data), order, face_root, path)
        for k in range(len(data)):
            rec = _recording(subject, k, data[k], labels[k], path, face_root, order,
                             nan_policy)
            if k + 1 in unmapped:
                rec.unlisted[str(root / RATINGS_CSV)] = "face files not mapped to videos, " \
                    "face marked missing"
            yield rec


def _unmapped(subject: int, n_trials: int, order: dict[int, int] | None, face_root: Path,
              path: Path) -> list[int]:
    """The videos of a subject with face files whose presentation trial
    ``participant_ratings.csv`` does not give (so its face files cannot be found); logged."""
    if not (face_root / f"s{subject:02d}").is_dir():
        return []
    videos = [k + 1 for k in range(n_trials) if order is None or k + 1 not in order]
    if videos:
        which = "no rows" if order is None else f"no row for video(s) {videos}"
        log.warning("DEAP: %s has %s of participant %d (%s) although %s holds its face "
                    "files; face marked missing for %d trial(s)", RATINGS_CSV, which,
                    subject, path.name, face_root / f"s{subject:02d}", len(videos))
    return videos


def _recording(subject: int, k: int, trial: np.ndarray, labels: np.ndarray, path: Path,
               face_root: Path, order: dict[int, int] | None, nan_policy: str) -> Recording:
    rec = Recording(
        dataset="deap", subject=subject, session=1, trial=k + 1, stimulus=f"video{k + 1:02d}",
        ratings=dict(zip(("valence", "arousal", "dominance", "liking"), map(float, labels),
                         strict=True)),
        source=str(path),
    )
    for modality, (rows, names) in CHANNELS.items():
        block = trial[rows]
        add_stream(rec, modality, Stream(np.asarray(block, np.float64), SFREQ, list(names),
                                         onset_s=BASELINE_S),
                   path, f"data[{k}, {rows.start}:{rows.stop}]", nan_policy)
    face_file = None
    if order is not None and (k + 1) in order:
        face_file = face_root / f"s{subject:02d}" / f"s{subject:02d}_trial{order[k + 1]:02d}.csv"
    if face_file is not None and face_file.is_file():
        rec.streams.update(openface.read_csv(face_file))
    else:
        rec.missing.update(FACE)
    return rec


# --------------------------------------------------------------------------- synthetic writer

def write_synthetic(root: Path, n_subjects: int = 4, seed: int = 0,
                    seconds: float | None = None, nuisances: bool = True,
                    n_trials: int | None = None) -> dict:
    """Write a synthetic DEAP: ``n_subjects`` .dat files, ratings CSV and face CSVs.

    Stimulus length defaults to 8 s (real: 60 s); ``n_trials`` trials (default 40, as released)
    and 40 channels. With ``nuisances`` (the release's): the last subject has no face CSVs (as
    s23-s32), subject 3 (or the last with faces) lacks the face file of one trial (as s03),
    face tracking fails in short runs of frames (``success = 0``), and about 10 % of the trials
    carry artefacts. Without: faces for everyone, every frame tracked, no artefact trials.
    """
    seconds = 8.0 if seconds is None else float(seconds)
    n_trials = N_TRIALS if n_trials is None else int(n_trials)
    if not 1 <= n_trials:
        raise ConfigError("n_trials", f"got {n_trials}; must be >= 1")
    n_times = int(round((BASELINE_S + seconds) * SFREQ))
    folder = root / PYTHON_DIR
    folder.mkdir(parents=True, exist_ok=True)
    rating_rows, trials_manifest, profiles = [], [], {}
    no_face, lost_files, artefacts, long_failures = [], [], [], []
    lost_subject = 3 if n_subjects > 3 else max(1, n_subjects - 1)     # s03 lacks one video
    for subject in range(1, n_subjects + 1):
        rng = syn.rng_for(seed, "deap", subject)
        profile = syn.SubjectProfile.draw(rng, subject)
        profiles[subject] = profile.to_dict()
        order = rng.permutation(n_trials) + 1          # order[j] = video shown at trial j+1
        data = np.zeros((n_trials, N_CHANNELS, n_times))
        labels = np.zeros((n_trials, 4))
        with_face = not nuisances or subject < n_subjects or n_subjects == 1
        if not with_face:
            no_face.append(subject)
        for k in range(n_trials):
            latent = syn.draw_latent(rng, noisy_rate=0.1 if nuisances else 0.0)
            if latent.noisy:
                artefacts.append({"subject": subject, "trial": k + 1})
            data[k], env_events = _synth_trial(rng, latent, profile, n_times)
            labels[k] = [syn.rating_from_latent(latent.valence, 1, 9, rng),
                         syn.rating_from_latent(latent.arousal, 1, 9, rng),
                         round(float(rng.uniform(1, 9)), 2), round(float(rng.uniform(1, 9)), 2)]
            presentation = int(np.flatnonzero(order == k + 1)[0]) + 1
            lost = nuisances and subject == lost_subject and presentation == min(5, n_trials)
            if lost:
                lost_files.append({"subject": subject, "presentation_trial": presentation,
                                   "video": k + 1})
            face = with_face and not lost
            if face:
                written = openface.synthesize_face(
                    root / FACE_DIR / f"s{subject:02d}" / f"s{subject:02d}_trial"
                    f"{presentation:02d}.csv", rng, syn.rng_for(seed, "deap-face", subject),
                    seconds, 25.0, latent, env_events, profile.face_lag_s,
                    dropout_rate=0.03 if nuisances else 0.0)
                if written["long_failure_s"] is not None:
                    long_failures.append({"subject": subject, "trial": k + 1,
                                          "seconds": written["long_failure_s"],
                                          "untracked_windows": written["untracked_windows"]})
            trials_manifest.append({"subject": subject, "trial": k + 1, "video": k + 1,
                                    "presentation_trial": presentation, "face": face,
                                    **latent.to_dict()})
        for j, video in enumerate(order):
            v, a, d, lk = labels[video - 1]
            familiarity = int(rng.integers(1, 6))
            rating_rows.append((subject, j + 1, int(video), 0, v, a, d, lk, familiarity))
        with open(folder / f"s{subject:02d}.dat", "wb") as handle:
            pickle.dump({"labels": labels, "data": syn.quantize(data)}, handle, protocol=2)
    (root / RATINGS_CSV).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rating_rows, columns=["Participant_id", "Trial", "Experiment_id", "Start_time",
                                       "Valence", "Arousal", "Dominance", "Liking",
                                       "Familiarity"]).to_csv(root / RATINGS_CSV, index=False)
    found = {}
    if nuisances:
        found = {"subjects_without_face": no_face, "missing_face_files": lost_files,
                 "untracked_face_frames": "about 3 % of the frames, in runs of 5 (success = 0)",
                 "face_tracking_lost": long_failures,
                 "artefact_trials": artefacts}
    windows_per_trial = sig.n_windows(int(round(seconds * SFREQ)), SFREQ, 1.0)
    expected = syn.expected_counts(n_subjects, n_subjects * n_trials,
                                   n_subjects * n_trials * windows_per_trial)
    return {"trials": trials_manifest, "subjects": profiles, "stimulus_seconds": seconds,
            "n_trials": n_trials, "nuisances": found, "expected": expected}


def _synth_trial(rng: np.random.Generator, latent: syn.TrialLatent,
                 profile: syn.SubjectProfile, n_times: int) -> tuple[np.ndarray, np.ndarray]:
    """All 40 channels of one trial (baseline + stimulus), and the stimulus event times."""
    onset = int(BASELINE_S * SFREQ)
    env_stim, events = syn.event_envelope(rng, n_times - onset, SFREQ)
    env = np.r_[np.zeros(onset), env_stim]
    calm = syn.TrialLatent(0.0, -0.3, None, latent.noisy, latent.session_gain)
    out = np.zeros((N_CHANNELS, n_times))
    out[:32, :onset] = syn.eeg(rng, DEAP_EEG, onset, SFREQ, calm, profile)
    out[:32, onset:] = syn.eeg(rng, DEAP_EEG, n_times - onset, SFREQ, latent, profile, env_stim)
    out[32:34] = 20 * rng.standard_normal((2, n_times))
    out[34] = syn.emg(rng, n_times, SFREQ, 5 + 4 * syn.EFFECT_SCALE * max(latent.valence, 0))
    out[35] = syn.emg(rng, n_times, SFREQ, 5)
    conductance = syn.skin_conductance(rng, n_times, SFREQ, latent, profile, env)
    out[36] = 1e6 / np.maximum(conductance, 0.5)        # Geneva format: skin resistance (Ohm)
    out[37] = 1000 * syn.respiration(rng, n_times, SFREQ, latent, profile)
    out[38] = 1000 * syn.ppg(rng, n_times, SFREQ, latent, profile)
    out[39] = syn.skin_temperature(rng, n_times, SFREQ, latent, profile)
    return out, events


SPEC = DatasetSpec(
    name="deap",
    title="DEAP",
    modalities=("eeg", "eog", "emg", "gsr", "resp", "ppg", "temp", *FACE),
    feature_sets=(),
    rating_scale=(1.0, 9.0),
    native_classes=None,
    n_sessions=1,
    layout="data_preprocessed_python/sXX.dat, metadata_csv/participant_ratings.csv, "
           "face/sXX/sXX_trialYY.csv",
    reader=read,
    writer=write_synthetic,
)
