"""SEED-V: 16 subjects x 3 sessions x 15 film clips; released EEG DE features and eye features.

Layout read (``--root`` is the folder holding the two folders below)::

    EEG_DE_features/<subject>_123.npz         keys 'data' and 'label', each the bytes of a
                                              pickle of a dict {k: array} (k = 0..44 in the
                                              release)
    Eye_movement_features/<subject>_123.npz   the same container; data[k] is (m_k, 33)

Key ``k`` is session ``k // 15 + 1``, trial ``k % 15 + 1`` (15 trials per session is what that
encoding means, so keys run below 45). The trials read are the keys found: ``data`` and
``label`` must hold the same keys and the eye file the same keys as the DE file (a disagreement
is an error naming the file), so a copy with fewer trials reads as it is. ``data[k]`` is
(n_k, 310): one row per 4-s window, 310 = 62 channels x 5 bands, channel-major (band fastest),
read as ``de_LDS`` (n_k, 62, 5) = window x channel x band; ``label[k]`` is (n_k,) per-window
classes (0 disgust, 1 fear, 2 sad, 3 neutral, 4 happy), constant within a trial: the trial's
class is the native label (a trial whose labels vary is an error). The class of every session
position is fixed (:data:`LABELS`; sessions 2 and 3 share one order) and each session shows its
own clips: the stimulus id is ``s<session>_clip<NN>``.

Eye windows m_k may fall short of (or exceed) the DE windows n_k by one, as in the release: both
are trimmed to the shorter, so a trial has min(n_k, m_k) windows and nothing is marked missing.
A subject without an eye file has ``eye`` marked missing. NaN / Inf values are handled by
``nan_policy`` (default ``mark_missing``: the affected windows are marked missing by the data
preset).

Not read: the raw recordings ``EEG_raw/*.cnt`` (Neuroscan CNT, 1000 Hz, 66 channels), so this
reader gives the released DE features and the eye features only; the synthetic writer does not
write them either (CNT cannot be written with the available libraries). Assumed: the released
DE is LDS-smoothed like SEED's and SEED-IV's ``de_LDS`` (the release does not say), so it
carries that name.

Unpickling runs code from the file: read only SEED-V files from a trusted source.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from affectlab.datasets import synthetic as syn
from affectlab.datasets.base import (
    DEFAULT_NAN_POLICY,
    DatasetSpec,
    Features,
    Recording,
    add_features,
    check_array,
    check_nan_policy,
    require_dir,
    resolve_root,
)
from affectlab.datasets.channels import BANDS, SEED_EEG
from affectlab.datasets.seed import (
    BAND_AXES,
    EYE_AXES,
    SFREQ,
    check_synthetic_size,
    select_subjects,
    subject_files,
    synthetic_band_features,
    synthetic_eeg,
    synthetic_trials,
    trim_windows,
)
from affectlab.errors import DatasetFormatError

WINDOW_S = 4.0
N_SUBJECTS = 16
N_TRIALS = 15           # per session: what the encoding key k -> session k // 15 implies
N_SESSIONS = 3
N_KEYS = N_SESSIONS * N_TRIALS
N_CHANNELS = len(SEED_EEG)
N_EYE = 33
DE_DIR = "EEG_DE_features"
EYE_DIR = "Eye_movement_features"
DE_SET = "de_LDS"
CLASSES = ("disgust", "fear", "sad", "neutral", "happy")
LABELS = {
    1: (4, 1, 3, 2, 0, 4, 1, 3, 2, 0, 4, 1, 3, 2, 0),
    2: (2, 1, 3, 0, 4, 4, 0, 3, 2, 1, 3, 4, 1, 2, 0),
    3: (2, 1, 3, 0, 4, 4, 0, 3, 2, 1, 3, 4, 1, 2, 0),
}
FILE_PATTERN = re.compile(r"^(\d+)_123\.npz$")
CONTAINER = "an .npz whose keys hold the bytes of a pickled dict {0..44: array}"


def load_container(path: Path, keys: Sequence[str]) -> dict[str, dict[int, np.ndarray]]:
    """Read ``keys`` of a SEED-V .npz and unpickle each into ``{k: array}`` (k = 0..44 in the
    release); every key must hold the same trials."""
    try:
        npz = np.load(path)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with npz:
            present = list(npz.files)
            blobs = {key: npz[key].tobytes() for key in keys if key in present}
    except Exception as exc:  # zipfile, zlib and numpy raise many types on damaged files
        raise DatasetFormatError(path, f"cannot read ({type(exc).__name__}: {exc}); the file is "
                                 "truncated or not an .npz", CONTAINER) from exc
    for key in keys:
        if key not in blobs:
            raise DatasetFormatError(path, f"key '{key}' missing (keys: {present})",
                                     f"keys {', '.join(repr(k) for k in keys)}")
    tables = {key: _unpickle(blobs[key], path, key) for key in keys}
    first = keys[0]
    for key in keys[1:]:
        check_same_trials(tables[first], tables[key], path, f"key '{first}'", path, f"key '{key}'")
    return tables


def check_same_trials(table: dict, other: dict, path: Path, what: str, other_path: Path,
                      other_what: str) -> None:
    """Fail, naming ``other_path``, when two ``{k: array}`` tables hold different trials."""
    if set(table) == set(other):
        return
    only, lacking = sorted(set(other) - set(table)), sorted(set(table) - set(other))
    where = "" if other_path == path else f" of {path}"
    parts = [f"entries {only} that {what}{where} lacks"] if only else []
    parts += [f"no entries {lacking} that {what}{where} holds"] if lacking else []
    raise DatasetFormatError(other_path, f"{other_what} has {' and '.join(parts)}",
                             "the same trial keys in 'data', 'label' and the eye file")


def _unpickle(blob: bytes, path: Path, key: str) -> dict[int, np.ndarray]:
    try:
        content = pickle.loads(blob, encoding="latin1")
    except Exception as exc:  # a damaged pickle raises EOFError, UnpicklingError, ValueError...
        raise DatasetFormatError(path, f"key '{key}': cannot unpickle ({type(exc).__name__}: "
                                 f"{exc}); the pickle is truncated or damaged", CONTAINER) \
            from exc
    if not isinstance(content, dict):
        raise DatasetFormatError(path, f"key '{key}' holds a {type(content).__name__}",
                                 CONTAINER)
    try:
        table = {int(k): v for k, v in content.items()}
    except (TypeError, ValueError) as exc:
        raise DatasetFormatError(path, f"key '{key}' has non-integer entries "
                                 f"({sorted(map(str, content))[:5]})", CONTAINER) from exc
    if not table:
        raise DatasetFormatError(path, f"key '{key}' holds no trial entries", CONTAINER)
    outside = sorted(k for k in table if not 0 <= k < N_KEYS)
    if outside:
        raise DatasetFormatError(path, f"key '{key}': entries {outside} outside 0..{N_KEYS - 1}",
                                 f"k = 15 * (session - 1) + trial - 1 for {N_SESSIONS} sessions "
                                 f"of {N_TRIALS} trials")
    return dict(sorted(table.items()))


def read(root: Path, subjects: Sequence[int] | None = None, nan_policy: str = DEFAULT_NAN_POLICY,
         **_: object) -> Iterator[Recording]:
    """Yield SEED-V recordings (subject x session x clip): released DE and eye features, for
    the trial keys the files hold."""
    check_nan_policy(nan_policy)
    root = resolve_root(root, [DE_DIR, EYE_DIR], "SEED-V")
    de_dir = require_dir(root / DE_DIR, "SEED-V DE features", "<subject>_123.npz files")
    files = {s: paths[0] for s, paths in subject_files(de_dir, FILE_PATTERN).items()}
    for subject, path in select_subjects(files, subjects, de_dir, "{s}_123.npz").items():
        content = load_container(path, ("data", "label"))
        eye_path = root / EYE_DIR / path.name
        eye = load_container(eye_path, ("data",))["data"] if eye_path.is_file() else None
        if eye is not None:
            check_same_trials(content["data"], eye, path, "key 'data'", eye_path, "key 'data'")
        for k in content["data"]:
            rec = _recording(subject, k, content["data"][k], content["label"][k], path,
                             nan_policy)
            if eye is None:
                rec.missing.add("eye")
            else:
                _add_eye(rec, eye[k], eye_path, k, nan_policy)
            trim_windows(rec)
            yield rec


def trial_class(labels: np.ndarray, n_windows: int, path: Path, k: int) -> int:
    """The class of trial ``k`` from its per-window labels (which must be constant)."""
    labels = check_array(labels, path, f"label[{k}]").ravel()
    if labels.size != n_windows or n_windows == 0:
        raise DatasetFormatError(path, f"key 'label[{k}]' has {labels.size} values for "
                                 f"{n_windows} windows of data[{k}]",
                                 "one label per window, at least one window")
    values = np.unique(labels)
    if values.size != 1:
        raise DatasetFormatError(path, f"key 'label[{k}]': per-window labels vary within the "
                                 f"trial ({values.tolist()})", "one class per trial")
    value = float(values[0])
    if not (value.is_integer() and 0 <= value < len(CLASSES)):
        raise DatasetFormatError(path, f"key 'label[{k}]' holds {value}",
                                 f"a class in 0..{len(CLASSES) - 1}")
    return int(value)


def _recording(subject: int, k: int, data: np.ndarray, labels: np.ndarray, path: Path,
               nan_policy: str) -> Recording:
    session, trial = k // N_TRIALS + 1, k % N_TRIALS + 1
    key = f"data[{k}]"
    data = check_array(data, path, key, shape=(None, N_CHANNELS * len(BANDS)))
    rec = Recording(dataset="seed_v", subject=subject, session=session, trial=trial,
                    stimulus=f"s{session}_clip{trial:02d}",
                    native_label=trial_class(labels, data.shape[0], path, k), source=str(path))
    values = np.asarray(data, np.float64).reshape(-1, N_CHANNELS, len(BANDS))
    add_features(rec, DE_SET, Features(values, WINDOW_S, BAND_AXES), path, key, nan_policy)
    return rec


def _add_eye(rec: Recording, data: np.ndarray, path: Path, k: int, nan_policy: str) -> None:
    key = f"data[{k}]"
    data = check_array(data, path, key, shape=(None, N_EYE))
    add_features(rec, "eye", Features(np.asarray(data, np.float64), WINDOW_S, EYE_AXES), path,
                 key, nan_policy)


# --------------------------------------------------------------------------- synthetic writer

def save_container(path: Path, data: dict[int, np.ndarray], label: dict[int, np.ndarray]) -> None:
    """Write the release's container: an .npz of two 0-d byte strings, each a pickled dict."""
    np.savez(path, data=np.array(pickle.dumps(data)), label=np.array(pickle.dumps(label)))


def _eye_windows(n_windows: int, k: int) -> int:
    """Eye windows of trial ``k`` with nuisances: one fewer than EEG in trials k % 10 == 7 (as
    released) and one more in trials k % 10 == 3."""
    if k % 10 == 3:
        return n_windows + 1
    return n_windows - 1 if k % 10 == 7 and n_windows > 1 else n_windows


def write_synthetic(root: Path, n_subjects: int = 4, seed: int = 0,
                    seconds: float | None = None, nuisances: bool = True,
                    n_trials: int | None = None) -> dict:
    """Write a synthetic SEED-V: DE features (computed from in-memory EEG) and eye features.

    Stimulus length defaults to 24 s per trial (6 windows of 4 s); ``n_trials`` trials per
    session (default 15, as released: keys k = 15 * (session - 1) + trial - 1) x 3 sessions in
    one file per subject. With ``nuisances`` (the release's): the eye features of trials
    k % 10 == 7 have one window fewer than the DE features, those of k % 10 == 3 one more (the
    reader trims both to the shorter), and about 10 % of the trials carry artefacts. Without:
    equal window counts, no artefact trials. No raw ``.cnt`` is written.
    """
    seconds = 24.0 if seconds is None else float(seconds)
    check_synthetic_size(n_subjects, N_SUBJECTS, seconds, WINDOW_S, "SEED-V")
    n_trials = synthetic_trials(n_trials, N_TRIALS, "SEED-V")
    n_times = int(round(seconds * SFREQ))
    for folder in (DE_DIR, EYE_DIR):
        (root / folder).mkdir(parents=True, exist_ok=True)
    trials, profiles, artefacts, differ = [], {}, [], []
    windows = 0
    for subject in range(1, n_subjects + 1):
        rng = syn.rng_for(seed, "seed_v", subject)
        profile = syn.SubjectProfile.draw(rng, subject)
        profiles[subject] = profile.to_dict()
        gains = rng.uniform(0.85, 1.15, len(LABELS))
        de, de_labels, eye, eye_labels = {}, {}, {}, {}
        for k in range(N_KEYS):
            session, trial = k // N_TRIALS + 1, k % N_TRIALS + 1
            if trial > n_trials:
                continue
            index = LABELS[session][trial - 1]
            latent = syn.draw_latent(rng, CLASSES[index], index, float(gains[session - 1]),
                                     noisy_rate=0.1 if nuisances else 0.0)
            if latent.noisy:
                artefacts.append({"subject": subject, "session": session, "trial": trial,
                                  "key": k})
            eeg = synthetic_eeg(rng, n_times, latent, profile)
            values = synthetic_band_features(eeg, SFREQ, WINDOW_S)[DE_SET]   # (62, T, 5)
            de[k] = np.ascontiguousarray(values.transpose(1, 0, 2)).reshape(values.shape[1], -1)
            de_labels[k] = np.full(len(de[k]), float(index))
            n_eye = _eye_windows(len(de[k]), k) if nuisances else len(de[k])
            if n_eye != len(de[k]):
                differ.append({"subject": subject, "session": session, "trial": trial, "key": k,
                               "de_windows": len(de[k]), "eye_windows": n_eye})
            eye[k] = syn.eye_features(rng, n_eye, N_EYE, latent, profile)
            eye_labels[k] = np.full(n_eye, float(index))
            windows += min(len(de[k]), n_eye)
            trials.append({"subject": subject, "session": session, "trial": trial, "key": k,
                           "windows": len(de[k]), "eye_windows": n_eye, **latent.to_dict()})
        save_container(root / DE_DIR / f"{subject}_123.npz", de, de_labels)
        save_container(root / EYE_DIR / f"{subject}_123.npz", eye, eye_labels)
    found = {}
    if nuisances:
        found = {"eye_windows_differ": differ,
                 "eye_windows_fewer": sum(d["eye_windows"] < d["de_windows"] for d in differ),
                 "eye_windows_more": sum(d["eye_windows"] > d["de_windows"] for d in differ),
                 "artefact_trials": artefacts}
    expected = syn.expected_counts(n_subjects, n_subjects * len(LABELS) * n_trials, windows)
    return {"trials": trials, "subjects": profiles, "stimulus_seconds": seconds,
            "n_trials": n_trials, "nuisances": found, "expected": expected}


SPEC = DatasetSpec(
    name="seed_v",
    title="SEED-V",
    modalities=(),
    feature_sets=(DE_SET, "eye"),
    rating_scale=None,
    native_classes=CLASSES,
    n_sessions=len(LABELS),
    layout="EEG_DE_features/<subject>_123.npz, Eye_movement_features/<subject>_123.npz "
           "(pickled dicts in .npz; raw .cnt not read)",
    reader=read,
    writer=write_synthetic,
)
