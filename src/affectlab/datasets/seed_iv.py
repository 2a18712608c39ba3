"""SEED-IV: 15 subjects x 3 sessions x 24 film clips; 62-channel EEG, DE / PSD and eye features.

Layout read (``--root`` is the folder holding the three folders below)::

    eeg_feature_smooth/{1,2,3}/<subject>_<yyyymmdd>.mat   de_movingAve<k>, de_LDS<k>,
                                                          psd_movingAve<k>, psd_LDS<k> per trial
                                                          k (24 in the release), (62, T, 5)
                                                          channel x window x band, 4-s windows
    eye_feature_smooth/{1,2,3}/<subject>_<yyyymmdd>.mat   eye_<k>, (31, T) feature x window
    eeg_raw_data/{1,2,3}/<subject>_<yyyymmdd>.mat         <initials>_eeg<k>, (62, n) float
                                                          channel x time, 200 Hz, n = k * 200 + 1

The session is the folder (not the date order). The trials of a session are the numbers of the
feature variables found in its EEG feature file; its raw file must hold the same trials and its
eye file no others (a disagreement is an error naming the file), so a copy with fewer trials
reads as it is. A SEED ``ExtractedFeatures`` file placed as a session (it also holds
``dasm_*`` / ``rasm_*`` / ``asm_*`` / ``dcau_*`` variables) is refused, naming the file.
Labels (0 neutral, 1 sad, 2 fear, 3 happy) are fixed per session position
(:data:`LABELS`), and the table must cover every trial found; each session shows 24 different
clips, so the stimulus id is ``s<session>_clip<NN>``. Raw variables are matched by the suffix
``_eeg(\\d+)$`` (the prefix is the subject's initials); the extra raw sample only makes a
trailing partial window, which windowing ignores. ``raw=False`` skips the raw files
(``eeg_raw_data/`` may then be absent).

Eye features hold NaN where blinks leave gaps: runs of windows, with all 31 features or only
some rows NaN. ``nan_policy`` decides: ``mark_missing`` (default) keeps those windows NaN, so the
data preset marks exactly them missing and counts them; ``interpolate`` fills runs of at most
two windows between good ones (longer runs stay missing); ``raise`` stops at the first one,
naming the file and variable. A subject without an eye file has ``eye`` marked missing. When
the eye and EEG feature window counts of a trial differ (by a window in the real data), every
feature set is trimmed to the shortest; nothing is marked missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from affectlab.datasets import synthetic as syn
from affectlab.datasets.base import (
    DEFAULT_NAN_POLICY,
    MAX_GAP_WINDOWS,
    DatasetSpec,
    Recording,
    check_nan_policy,
    load_mat,
    require_dir,
    resolve_root,
)
from affectlab.datasets.seed import (
    BAND_SETS,
    SFREQ,
    add_band_features,
    add_eye_features,
    add_raw_eeg,
    check_synthetic_size,
    extra_eye_variables,
    feature_trials,
    load_raw,
    select_subjects,
    subject_files,
    synthetic_band_features,
    synthetic_eeg,
    synthetic_trials,
    trial_span,
    trim_windows,
)
from affectlab.errors import DatasetFormatError

WINDOW_S = 4.0
N_TRIALS = 24           # of the release; a file's own variables are what is read
N_EYE = 31
SESSIONS = (1, 2, 3)
#: feature variables that SEED's ExtractedFeatures hold and SEED-IV's files do not
SEED_ONLY_VARIABLE = re.compile(r"^(?:dasm|rasm|asm|dcau)_(?:movingAve|LDS)\d+$")
RAW_DIR = "eeg_raw_data"
FEATURE_DIR = "eeg_feature_smooth"
EYE_DIR = "eye_feature_smooth"
CLASSES = ("neutral", "sad", "fear", "happy")
LABELS = {
    1: (1, 2, 3, 0, 2, 0, 0, 1, 0, 1, 2, 1, 1, 1, 2, 3, 2, 2, 3, 3, 0, 3, 0, 3),
    2: (2, 1, 3, 0, 0, 2, 0, 2, 3, 3, 2, 3, 2, 0, 1, 1, 2, 1, 0, 3, 0, 1, 3, 1),
    3: (1, 2, 2, 1, 3, 3, 3, 1, 1, 2, 1, 0, 2, 3, 3, 0, 2, 3, 0, 0, 2, 0, 1, 0),
}
INITIALS = ("cz", "ha", "hql", "ldy", "ly", "mhw", "mz", "qyt", "rx", "tyc", "whh", "wll", "wq",
            "zjd", "zjy")
SESSION_DATES = (   # per subject 1..15, sessions 1..3
    ("20160518", "20161125", "20161126"), ("20150915", "20150920", "20151012"),
    ("20150919", "20151018", "20151101"), ("20151111", "20151118", "20151123"),
    ("20160406", "20160413", "20160420"), ("20150507", "20150511", "20150512"),
    ("20150715", "20150717", "20150721"), ("20151103", "20151110", "20151117"),
    ("20151028", "20151119", "20151209"), ("20151014", "20151021", "20151023"),
    ("20150916", "20150921", "20151011"), ("20150725", "20150804", "20150807"),
    ("20151115", "20151125", "20161130"), ("20151205", "20151208", "20151215"),
    ("20150508", "20150514", "20150527"),
)


def read(root: Path, subjects: Sequence[int] | None = None, raw: bool = True,
         nan_policy: str = DEFAULT_NAN_POLICY, **_: object) -> Iterator[Recording]:
    """Yield SEED-IV recordings (subject x session x clip): raw EEG, DE / PSD sets, eye."""
    check_nan_policy(nan_policy)
    root = resolve_root(root, [FEATURE_DIR, EYE_DIR, RAW_DIR], "SEED-IV")
    feat_root = require_dir(root / FEATURE_DIR, "SEED-IV EEG features",
                            "session folders 1/, 2/, 3/ of <subject>_<yyyymmdd>.mat files")
    if raw:
        require_dir(root / RAW_DIR, "SEED-IV raw EEG (pass raw=False to read features only)",
                    "session folders 1/, 2/, 3/ of <subject>_<yyyymmdd>.mat files")
    sessions = [s for s in SESSIONS if (feat_root / str(s)).is_dir()]
    if not sessions:
        raise DatasetFormatError(feat_root, "no session folders", "folders 1/, 2/, 3/")
    files = {s: _session_files(feat_root / str(s)) for s in sessions}
    every = {subject: None for s in sessions for subject in files[s]}
    for subject in select_subjects(every, subjects, feat_root, "{s}_<yyyymmdd>.mat"):
        for session in sessions:
            path = files[session].get(subject)
            if path is None:
                raise DatasetFormatError(feat_root / str(session), f"subject {subject} has no "
                                         "file", f"{subject}_<yyyymmdd>.mat")
            raw_path = _find(root / RAW_DIR / str(session), subject) if raw else None
            if raw and raw_path is None:
                raise DatasetFormatError(root / RAW_DIR / str(session), f"subject {subject} has "
                                         "no raw EEG file (pass raw=False to read features "
                                         "only)", f"{subject}_<yyyymmdd>.mat")
            eye_path = _find(root / EYE_DIR / str(session), subject)
            yield from _session(subject, session, path, raw_path, eye_path, nan_policy)


def _session_files(folder: Path) -> dict[int, Path]:
    """Map subject -> its single file in a session folder."""
    files = subject_files(folder)
    for subject, paths in files.items():
        if len(paths) > 1:
            raise DatasetFormatError(folder, f"subject {subject} has {len(paths)} files "
                                     f"({', '.join(p.name for p in paths)})",
                                     "one file per subject in a session folder")
    return {subject: paths[0] for subject, paths in files.items()}


def _find(folder: Path, subject: int) -> Path | None:
    return _session_files(folder).get(subject) if folder.is_dir() else None


def _session(subject: int, session: int, path: Path, raw_path: Path | None,
             eye_path: Path | None, nan_policy: str) -> Iterator[Recording]:
    features = load_mat(path)
    foreign = sorted(name for name in features if SEED_ONLY_VARIABLE.match(name))
    if foreign:
        raise DatasetFormatError(path, f"holds SEED's asymmetry feature variables "
                                 f"({', '.join(foreign[:2])}, ...): a SEED ExtractedFeatures "
                                 "file, not a SEED-IV one",
                                 f"only {', '.join(f'{n}<k>' for n in BAND_SETS)} "
                                 "(SEED-IV eeg_feature_smooth)")
    trials = feature_trials(features, path, None)
    table = LABELS[session]
    beyond = [t for t in trials if t > len(table)]
    if beyond:
        raise DatasetFormatError(path, f"trial(s) {beyond} have no label: the session {session} "
                                 f"table covers trials 1 .. {len(table)}",
                                 f"at most {len(table)} trials per session")
    why = f" (the EEG feature file {path} holds trials {trial_span(trials)})"
    raw = {} if raw_path is None else load_raw(raw_path, trials, "raw EEG of a session", why)
    eye = {} if eye_path is None else load_mat(eye_path)
    if eye_path is not None:
        extra_eye_variables(eye, eye_path, trials, path)
    for trial in trials:
        rec = Recording(dataset="seed_iv", subject=subject, session=session, trial=trial,
                        stimulus=f"s{session}_clip{trial:02d}",
                        native_label=table[trial - 1], source=str(path))
        if raw_path is not None:
            add_raw_eeg(rec, *raw[trial], raw_path, nan_policy)
        add_band_features(rec, features, path, trial, WINDOW_S, nan_policy)
        if eye_path is None:
            rec.missing.add("eye")
        else:
            add_eye_features(rec, eye, eye_path, f"eye_{trial}", N_EYE, WINDOW_S, nan_policy)
        trim_windows(rec)
        yield rec


# --------------------------------------------------------------------------- synthetic writer

BLINK_WINDOWS = 10              # a synthetic trial with blink gaps lasts at least this long
PUPIL_ROWS = list(range(12))    # pupil-diameter features: what a partial gap loses


def blink_gaps(rng: np.random.Generator, n_windows: int, alternate: int) -> list[dict]:
    """Two NaN runs for a trial of ``n_windows`` (at least :data:`BLINK_WINDOWS`): one of 3-4
    windows (longer than ``interpolate`` fills) and one of 1-2, in random order, apart and away
    from the trial's edges. ``alternate`` (0 / 1) swaps which of the two runs loses all 31
    features and which the pupil rows only, so that both kinds occur for both lengths."""
    lengths = {"long": int(rng.integers(3, 5)), "short": int(rng.integers(1, 3))}
    order = ["long", "short"] if rng.random() < 0.5 else ["short", "long"]
    room = n_windows - 3 - sum(lengths.values())        # 2 edge windows + 1 between the runs
    before = int(rng.integers(0, room + 1))
    between = int(rng.integers(0, room - before + 1))
    start = 1 + before
    runs = []
    for kind in order:
        everything = (kind == "long") == (alternate == 0)
        runs.append({"start": start, "length": lengths[kind],
                     "features": "all" if everything else PUPIL_ROWS})
        start += lengths[kind] + 1 + between
    return runs


def write_synthetic(root: Path, n_subjects: int = 4, seed: int = 0,
                    seconds: float | None = None, nuisances: bool = True,
                    n_trials: int | None = None) -> dict:
    """Write a synthetic SEED-IV: raw EEG, DE / PSD features and eye features per session.

    Stimulus length defaults to 16 s per trial (4 windows of 4 s; real clips are about 2 min);
    ``n_trials`` trials per session (default 24, as released) x 3 session folders, real file
    names, initials and labels. Features are computed from the written raw EEG; every raw trial
    has seconds * 200 + 1 samples, as released. With ``nuisances`` (the release's): blink gaps
    in the eye features of one trial per session of every odd-numbered subject (such a trial
    lasts at least :data:`BLINK_WINDOWS` windows and holds two NaN runs, see
    :func:`blink_gaps`), and about 10 % artefact trials. Without: no NaN, no artefact trials.
    """
    seconds = 16.0 if seconds is None else float(seconds)
    check_synthetic_size(n_subjects, len(INITIALS), seconds, WINDOW_S, "SEED-IV")
    n_trials = synthetic_trials(n_trials, N_TRIALS, "SEED-IV")
    lengths = {False: int(round(seconds * SFREQ)) + 1,
               True: int(round(max(seconds, BLINK_WINDOWS * WINDOW_S) * SFREQ)) + 1}
    trials, profiles, artefacts, gaps = [], {}, [], []
    windows = 0
    for subject in range(1, n_subjects + 1):
        rng = syn.rng_for(seed, "seed_iv", subject)
        blink_rng = syn.rng_for(seed, "seed_iv-blinks", subject)
        profile = syn.SubjectProfile.draw(rng, subject)
        profiles[subject] = profile.to_dict()
        for session, date in zip(SESSIONS, SESSION_DATES[subject - 1], strict=True):
            gain = float(rng.uniform(0.85, 1.15))
            blinking = int(blink_rng.integers(1, n_trials + 1)) \
                if nuisances and subject % 2 == 1 else 0
            raw, features, eye = {}, {}, {}
            for trial in range(1, n_trials + 1):
                index = LABELS[session][trial - 1]
                latent = syn.draw_latent(rng, CLASSES[index], index, gain,
                                         noisy_rate=0.1 if nuisances else 0.0)
                if latent.noisy:
                    artefacts.append({"subject": subject, "session": session, "trial": trial})
                eeg = synthetic_eeg(rng, lengths[trial == blinking], latent, profile)
                raw[f"{INITIALS[subject - 1]}_eeg{trial}"] = eeg
                sets = synthetic_band_features(eeg, SFREQ, WINDOW_S)
                features.update({f"{name}{trial}": syn.quantize(sets[name], 2.0 ** -10)
                                 for name in BAND_SETS})
                n_windows = sets["de_LDS"].shape[1]
                windows += n_windows
                values = syn.quantize(
                    syn.eye_features(rng, n_windows, N_EYE, latent, profile).T, 2.0 ** -10)
                if trial == blinking:
                    runs = blink_gaps(blink_rng, n_windows, len(gaps) % 2)
                    for run in runs:
                        rows = slice(None) if run["features"] == "all" else run["features"]
                        values[rows, run["start"]:run["start"] + run["length"]] = np.nan
                    gaps.append({"subject": subject, "session": session, "trial": trial,
                                 "windows": n_windows, "runs": runs})
                eye[f"eye_{trial}"] = values
                trials.append({"subject": subject, "session": session, "trial": trial,
                               "date": date, "windows": n_windows, **latent.to_dict()})
            name = f"{subject}_{date}.mat"
            for folder, content in ((RAW_DIR, raw), (FEATURE_DIR, features), (EYE_DIR, eye)):
                (root / folder / str(session)).mkdir(parents=True, exist_ok=True)
                syn.write_mat(root / folder / str(session) / name, content)
    found, missing = {}, {}
    if nuisances:
        nan_windows = sum(run["length"] for gap in gaps for run in gap["runs"])
        found = {"eye_blink_gaps": gaps,
                 "eye_nan_windows": {
                     "mark_missing": nan_windows,
                     "interpolate": sum(run["length"] for gap in gaps for run in gap["runs"]
                                        if run["length"] > MAX_GAP_WINDOWS)},
                 "raw_trailing_sample": "every raw trial has seconds * 200 + 1 samples",
                 "variable_prefixes": {str(s): INITIALS[s - 1]
                                       for s in range(1, n_subjects + 1)},
                 "artefact_trials": artefacts}
        if nan_windows:
            missing = {"eye": {"invalid_windows": nan_windows}}
    expected = syn.expected_counts(n_subjects, n_subjects * len(SESSIONS) * n_trials, windows,
                                   missing)
    return {"trials": trials, "subjects": profiles, "stimulus_seconds": seconds,
            "n_trials": n_trials, "nuisances": found, "expected": expected}


SPEC = DatasetSpec(
    name="seed_iv",
    title="SEED-IV",
    modalities=("eeg",),
    feature_sets=(*BAND_SETS, "eye"),
    rating_scale=None,
    native_classes=CLASSES,
    n_sessions=len(SESSIONS),
    layout="eeg_raw_data/{1,2,3}/, eeg_feature_smooth/{1,2,3}/, eye_feature_smooth/{1,2,3}/ "
           "<subject>_<date>.mat",
    reader=read,
    writer=write_synthetic,
)
