"""SEED: 15 subjects x 3 sessions x 15 film clips; 62-channel EEG at 200 Hz, DE / PSD features.

Layout read (``--root`` is the folder holding ``Preprocessed_EEG/`` and ``ExtractedFeatures/``)::

    Preprocessed_EEG/<subject>_<yyyymmdd>.mat   one variable <initials>_eeg<k> per trial k (15 in
                                                the release), each (62, n) float64 channel x
                                                time, 200 Hz, n = clip seconds * 200 + 1
    Preprocessed_EEG/label.mat                  label (1, n_trials): 1 positive, 0 neutral,
                                                -1 negative (the release: 15 values)
    ExtractedFeatures/<subject>_<yyyymmdd>.mat  12 feature types per trial (de_LDS7,
                                                dasm_movingAve7, ...), (62, T, 5) = channel x
                                                window x band for de_* / psd_*, 1-s windows,
                                                T = clip seconds
    ExtractedFeatures/label.mat                 the same labels
    Eye_movement_features/<subject>_<yyyymmdd>.mat   optional, ASSUMED form (see below)

Sizes come from the files: the trials are the numbers of the variables found (``de_LDS<k>``,
``<initials>_eeg<k>``), which must be exactly 1 .. len(label.mat) in every file of a session; a
disagreement is an error naming the file. A copy with fewer trials (say five, with a 5-entry
``label.mat``) therefore reads as it is. Sessions are a subject's three files sorted by date
(about one week apart). Raw variables are matched by the suffix ``_eeg(\\d+)$`` (the prefix is
the subject's initials and differs per subject); the trailing partial window that the extra
raw sample makes is ignored by every windowing. Of the 12 feature types only ``de_movingAve``,
``de_LDS``, ``psd_movingAve`` and ``psd_LDS`` are read, as ``(T, 62, 5)`` = window x channel x
band. ``raw=False`` reads the features only (the raw files are about 200 MB per session);
``Preprocessed_EEG/`` may then be absent. All sessions use the same clips: the stimulus id is
``clipNN``. NaN / Inf values are handled by ``nan_policy`` (default ``mark_missing``: the
affected windows stay NaN and are marked missing by the data preset).

Eye movements: the release holds no eye features (neither folder has any), so the ``default``
data preset reads EEG only and every subject is kept; the ``all`` preset adds ``eye``, which is
then marked missing where absent, and reported as an absent modality when no subject has it.
Eye features obtained elsewhere are read in an ASSUMED form: ``Eye_movement_features/<subject>_
<yyyymmdd>.mat`` (the EEG file names), variables ``eye_<k>`` of shape (33, T) = feature x
window with 1-s windows, one per trial of the EEG files. The folder can be moved with the
reader option ``eye_dir`` (relative to the root, or absolute). A subject without an eye file
has ``eye`` marked missing. When the eye and DE window counts of a trial differ, every feature
set of the trial is trimmed to the shortest.

The helpers below (MATLAB loading, numbered variables, released feature sets, synthetic DE) are
shared with :mod:`affectlab.datasets.seed_iv` and :mod:`affectlab.datasets.seed_v`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

import numpy as np
import scipy.fft
import scipy.io
from scipy.ndimage import uniform_filter1d

from affectlab.datasets import synthetic as syn
from affectlab.datasets.base import (
    DEFAULT_NAN_POLICY,
    DatasetSpec,
    Features,
    Recording,
    Stream,
    add_features,
    add_stream,
    check_array,
    check_nan_policy,
    load_mat,
    require_dir,
    resolve_root,
)
from affectlab.datasets.channels import BANDS, SEED_EEG, hemisphere
from affectlab.errors import ConfigError, DatasetFormatError

SFREQ = 200.0
WINDOW_S = 1.0
N_TRIALS = 15           # of the release; a copy's own count (label.mat) is what is read
N_SESSIONS = 3
N_CHANNELS = len(SEED_EEG)
EEG_DIR = "Preprocessed_EEG"
FEATURE_DIR = "ExtractedFeatures"
EYE_DIR = "Eye_movement_features"
LABEL_FILE = "label.mat"
N_EYE = 33
CLIP_SECONDS = (235, 233, 206, 238, 185, 195, 237, 216, 265, 237, 235, 233, 235, 238, 206)
LABELS = (1, 0, -1, -1, 0, 1, -1, 0, 1, 1, 0, -1, 0, 1, -1)   # label.mat, same for everyone
CLASSES = ("negative", "neutral", "positive")                  # native label = label + 1
INITIALS = ("djc", "jl", "jj", "lqj", "ly", "mhw", "phl", "sxy", "wk", "ww", "wsf", "wyw",
            "xyl", "ys", "zjy")
SESSION_DATES = (   # per subject 1..15, sessions 1..3 (file names <subject>_<date>.mat)
    ("20131027", "20131030", "20131107"), ("20140404", "20140413", "20140419"),
    ("20140603", "20140611", "20140629"), ("20140621", "20140702", "20140705"),
    ("20140411", "20140418", "20140506"), ("20130712", "20131016", "20131113"),
    ("20131027", "20131030", "20131106"), ("20140511", "20140514", "20140521"),
    ("20140620", "20140627", "20140704"), ("20131130", "20131204", "20131211"),
    ("20140618", "20140625", "20140630"), ("20131127", "20131201", "20131207"),
    ("20140527", "20140603", "20140610"), ("20140601", "20140615", "20140627"),
    ("20130709", "20131016", "20131105"),
)
FILE_PATTERN = re.compile(r"^(\d+)_(\d{8})\.mat$")
RAW_VARIABLE = re.compile(r"_eeg(\d+)$")
SMOOTHINGS = ("movingAve", "LDS")
BAND_SETS = tuple(f"{kind}_{s}" for kind in ("de", "psd") for s in SMOOTHINGS)
FEATURE_VARIABLE = re.compile(rf"^(?:{'|'.join(BAND_SETS)})(\d+)$")
EYE_VARIABLE = re.compile(r"^eye_(\d+)$")
BAND_AXES = ("window", "channel", "band")
EYE_AXES = ("window", "feature")
# SEED's bands (1-3, 4-7, 8-13, 14-30, 31-50 Hz) as half-open intervals
SEED_BANDS = {"delta": (1.0, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 14.0),
              "beta": (14.0, 31.0), "gamma": (31.0, 51.0)}
# Synthetic offsets that put DE / PSD of microvolt EEG into the released ~10-27 range.
DE_OFFSET = 14.0
PSD_OFFSET = 14.0
RAW_STEP_UV = 0.5       # ADC-like resolution of the synthetic raw EEG (keeps files small)


# --------------------------------------------------------------------------- shared helpers

def require_variable(content: dict[str, np.ndarray], path: Path, name: str,
                     expected: str) -> np.ndarray:
    if name not in content:
        raise DatasetFormatError(path, f"variable '{name}' missing", expected)
    return content[name]


def numbered_variables(content: dict[str, np.ndarray], path: Path, pattern: re.Pattern,
                       trials: Collection[int] | None, expected: str,
                       why: str = "") -> dict[int, str]:
    """Map trial number -> the variable whose name matches ``pattern`` (group 1 = trial).

    ``trials``: the trial numbers the file must hold (those of another file of the session, or
    1 .. len(label.mat)); ``None`` accepts any non-empty set. ``why`` says where ``trials``
    came from, for the error message.
    """
    found: dict[int, str] = {}
    for name in content:
        if match := pattern.search(name):
            trial = int(match.group(1))
            if trial in found:
                raise DatasetFormatError(path, f"variables '{found[trial]}' and '{name}' both "
                                         f"hold trial {trial}", expected)
            found[trial] = name
    if not found or 0 in found:
        raise DatasetFormatError(path, "no trial variables" if not found else
                                 f"variable '{found[0]}' holds trial 0", expected)
    if trials is not None and set(found) != set(trials):
        absent, extra = sorted(set(trials) - set(found)), sorted(set(found) - set(trials))
        problem = f"variables for trial(s) {absent} missing" if absent \
            else f"unexpected trial number(s) {extra}"
        raise DatasetFormatError(path, f"{problem}{why}", expected)
    return dict(sorted(found.items()))


def load_raw(path: Path, trials: Collection[int], what: str,
             why: str = "") -> dict[int, tuple[np.ndarray, str]]:
    """Map trial -> (array, variable name) of a raw file with ``<initials>_eegN`` variables;
    the file must hold exactly ``trials``."""
    if not path.is_file():
        raise DatasetFormatError(path, "raw EEG file not found (pass raw=False to read the "
                                 "features only)", what)
    content = load_mat(path)
    first, last = min(trials), max(trials)
    names = numbered_variables(content, path, RAW_VARIABLE, trials,
                               f"one variable <initials>_eeg<k> per trial, k = {first} .. "
                               f"{last}", why)
    return {trial: (content[name], name) for trial, name in names.items()}


def feature_trials(content: dict[str, np.ndarray], path: Path, trials: Collection[int] | None,
                   why: str = "") -> list[int]:
    """The trial numbers of a feature file: those of its ``de_*<k>`` / ``psd_*<k>`` variables
    (a trial lacking one of the four sets fails later, naming the variable)."""
    found = {int(m.group(1)) for name in content if (m := FEATURE_VARIABLE.match(name))}
    if not found:
        raise DatasetFormatError(path, "no feature variables",
                                 f"{', '.join(f'{n}<k>' for n in BAND_SETS)} for every trial k")
    if trials is not None and found != set(trials):
        absent, extra = sorted(set(trials) - found), sorted(found - set(trials))
        problem = f"feature variables for trial(s) {absent} missing" if absent \
            else f"feature variables for unexpected trial number(s) {extra}"
        raise DatasetFormatError(path, f"{problem}{why}",
                                 "one set of feature variables per trial")
    return sorted(found)


def extra_eye_variables(content: dict[str, np.ndarray], path: Path, trials: Collection[int],
                        other: Path) -> None:
    """Fail when an eye file holds ``eye_<k>`` for a trial that the EEG features lack."""
    extra = sorted(int(m.group(1)) for name in content if (m := EYE_VARIABLE.match(name))
                   and int(m.group(1)) not in set(trials))
    if extra:
        raise DatasetFormatError(path, f"eye variables for trial(s) {extra} that the EEG "
                                 f"feature file {other} does not hold",
                                 "one eye_<k> per trial of the EEG feature file")


def trial_span(trials: Collection[int]) -> str:
    """``"1 .. 24"`` for consecutive trial numbers, else the list."""
    trials = sorted(trials)
    if trials == list(range(trials[0], trials[-1] + 1)):
        return f"{trials[0]} .. {trials[-1]}"
    return str(trials)


def subject_files(folder: Path, pattern: re.Pattern = FILE_PATTERN) -> dict[int, list[Path]]:
    """Map subject -> its files in ``folder`` (group 1 = subject), sorted by name (= date)."""
    found: dict[int, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and (match := pattern.match(path.name)):
            found.setdefault(int(match.group(1)), []).append(path)
    return dict(sorted(found.items()))


def select_subjects(files: dict, subjects: Sequence[int] | None, folder: Path,
                    template: str) -> dict:
    """Keep the requested subjects; ``template`` (with ``{s}``) names a subject's file."""
    if not files:
        raise DatasetFormatError(folder, "no subject files", template.format(s="<subject>"))
    if subjects is None:
        return files
    absent = sorted(set(subjects) - set(files))
    if absent:
        raise DatasetFormatError(folder, f"subject file(s) missing for {absent}",
                                 ", ".join(template.format(s=s) for s in absent))
    return {s: files[s] for s in dict.fromkeys(subjects)}


def add_raw_eeg(rec: Recording, array: np.ndarray, name: str, path: Path,
                nan_policy: str) -> None:
    """Add variable ``name`` ((62, n) channel x time at 200 Hz) as the ``eeg`` stream."""
    data = check_array(array, path, name, shape=(N_CHANNELS, None))
    if data.shape[1] == 0:
        raise DatasetFormatError(path, f"variable '{name}' has no samples", "(62, n), n > 0")
    add_stream(rec, "eeg", Stream(np.asarray(data, np.float64), SFREQ, list(SEED_EEG),
                                  units="uV"), path, name, nan_policy)


def add_band_features(rec: Recording, content: dict[str, np.ndarray], path: Path, trial: int,
                      window_s: float, nan_policy: str) -> None:
    """Add de/psd _movingAve/_LDS of ``trial``: (62, T, 5) in the file -> (T, 62, 5)."""
    for name in BAND_SETS:
        key = f"{name}{trial}"
        array = require_variable(content, path, key,
                                 f"{name}1 ... {name}{trial}, (62, windows, 5) each")
        array = check_array(array, path, key, shape=(N_CHANNELS, None, len(BANDS)))
        feats = Features(np.ascontiguousarray(array.transpose(1, 0, 2), np.float64), window_s,
                         BAND_AXES)
        add_features(rec, name, feats, path, key, nan_policy)


def add_eye_features(rec: Recording, content: dict[str, np.ndarray], path: Path, key: str,
                     n_features: int, window_s: float, nan_policy: str) -> None:
    """Add an eye-feature variable, (n_features, T) in the file -> ``eye`` (T, n_features)."""
    array = require_variable(content, path, key, f"eye_1 ... eye_N, ({n_features}, windows)")
    array = check_array(array, path, key, shape=(n_features, None))
    add_features(rec, "eye", Features(np.ascontiguousarray(array.T, np.float64), window_s,
                                      EYE_AXES), path, key, nan_policy)


def trim_windows(rec: Recording) -> None:
    """Cut every feature set of ``rec`` to the shortest window count (eye vs EEG may differ)."""
    if not rec.features:
        return
    n = min(f.n_windows for f in rec.features.values())
    for feats in rec.features.values():
        feats.data = feats.data[:n]


# --------------------------------------------------------------------------- reader

def read(root: Path, subjects: Sequence[int] | None = None, raw: bool = True,
         eye_dir: str | Path | None = None, nan_policy: str = DEFAULT_NAN_POLICY,
         **_: object) -> Iterator[Recording]:
    """Yield SEED recordings (subject x session x clip): raw EEG, DE / PSD sets, eye features
    where present; the trials are those of ``label.mat`` and of the files, which must agree."""
    check_nan_policy(nan_policy)
    root = resolve_root(root, [FEATURE_DIR, EEG_DIR], "SEED")
    feat_dir = require_dir(root / FEATURE_DIR, "SEED features",
                           "<subject>_<yyyymmdd>.mat files (3 per subject) and label.mat")
    eeg_dir = require_dir(root / EEG_DIR, "SEED raw EEG (pass raw=False to read features only)",
                          "<subject>_<yyyymmdd>.mat files and label.mat") if raw else None
    label_dir = feat_dir
    if eeg_dir is not None and not (feat_dir / LABEL_FILE).is_file():
        label_dir = eeg_dir
    labels = read_labels(label_dir)
    files = select_subjects(subject_files(feat_dir), subjects, feat_dir,
                            "{s}_<yyyymmdd>.mat")
    eye_root = root / (EYE_DIR if eye_dir is None else eye_dir)
    for subject, paths in files.items():
        if len(paths) != N_SESSIONS:
            raise DatasetFormatError(feat_dir, f"subject {subject} has {len(paths)} files "
                                     f"({', '.join(p.name for p in paths)})",
                                     f"{N_SESSIONS} files {subject}_<yyyymmdd>.mat, one per "
                                     "session (sessions are numbered by date)")
        for session, path in enumerate(paths, start=1):
            yield from _session(subject, session, path, eeg_dir, eye_root / path.name,
                                label_dir / LABEL_FILE, labels, nan_policy)


def read_labels(folder: Path) -> list[int]:
    """The native labels (0 negative, 1 neutral, 2 positive) from ``label.mat``, one per trial
    (15 in the release; a copy may hold fewer)."""
    path = folder / LABEL_FILE
    if not path.is_file():
        raise DatasetFormatError(path, "label file not found",
                                 "variable 'label' (1, n_trials), 15 trials in the release")
    values = check_array(require_variable(load_mat(path), path, "label",
                                          "'label' (1, n_trials)"), path, "label")
    values = values.ravel()
    if values.size == 0 or not np.isin(values, (-1, 0, 1)).all():
        raise DatasetFormatError(path, f"variable 'label' holds {values.tolist()}",
                                 "one value in {-1, 0, 1} per trial, at least one")
    return [int(v) + 1 for v in values]


def _session(subject: int, session: int, path: Path, eeg_dir: Path | None, eye_path: Path,
             label_path: Path, labels: list[int], nan_policy: str) -> Iterator[Recording]:
    trials = range(1, len(labels) + 1)
    why = f" ({label_path} holds {len(labels)} labels, for trials 1 .. {len(labels)})"
    features = load_mat(path)
    feature_trials(features, path, trials, why)
    raw_path = None if eeg_dir is None else eeg_dir / path.name
    raw = {} if raw_path is None else load_raw(raw_path, trials, f"the raw EEG of {path.name}",
                                               why)
    eye = load_mat(eye_path) if eye_path.is_file() else None
    if eye is not None:
        extra_eye_variables(eye, eye_path, trials, path)
    for trial in trials:
        rec = Recording(dataset="seed", subject=subject, session=session, trial=trial,
                        stimulus=f"clip{trial:02d}", native_label=labels[trial - 1],
                        source=str(path))
        if raw_path is not None:
            add_raw_eeg(rec, *raw[trial], raw_path, nan_policy)
        add_band_features(rec, features, path, trial, WINDOW_S, nan_policy)
        if eye is None:
            rec.missing.add("eye")
        else:
            add_eye_features(rec, eye, eye_path, f"eye_{trial}", N_EYE, WINDOW_S, nan_policy)
        trim_windows(rec)
        yield rec


# --------------------------------------------------------------------------- synthetic DE

def band_power(eeg: np.ndarray, sfreq: float, window_s: float) -> np.ndarray:
    """Band variance per non-overlapping window: ``(n_channels, n_times)`` -> ``(n_ch, T, 5)``.

    FFT band power (Parseval) in SEED's five bands; the trailing partial window is dropped.
    """
    length = int(round(window_s * sfreq))
    n_windows = eeg.shape[1] // length
    windows = eeg[:, : n_windows * length].reshape(eeg.shape[0], n_windows, length)
    windows = windows - windows.mean(axis=-1, keepdims=True)
    spectrum = 2 * np.abs(np.fft.rfft(windows, axis=-1)) ** 2 / length ** 2
    freqs = np.fft.rfftfreq(length, 1 / sfreq)
    return np.stack([spectrum[..., (freqs >= low) & (freqs < high)].sum(axis=-1)
                     for low, high in SEED_BANDS.values()], axis=-1)


def moving_average(x: np.ndarray, width: int = 5) -> np.ndarray:
    """Centred moving average over windows (axis 1), edges repeated."""
    return uniform_filter1d(x, size=width, axis=1, mode="nearest")


def lds_smooth(x: np.ndarray, process_var: float = 0.05, obs_var: float = 1.0) -> np.ndarray:
    """Kalman filter + RTS smoother of a random walk over windows (axis 1), per series."""
    n = x.shape[1]
    means, variances = np.empty_like(x), np.empty(n)
    mean, var = x[:, 0], obs_var
    for t in range(n):
        if t:
            var = var + process_var
            gain = var / (var + obs_var)
            mean = mean + gain * (x[:, t] - mean)
            var = (1 - gain) * var
        means[:, t], variances[t] = mean, var
    out = means.copy()
    for t in range(n - 2, -1, -1):
        gain = variances[t] / (variances[t] + process_var)
        out[:, t] = means[:, t] + gain * (out[:, t + 1] - means[:, t])
    return out


def synthetic_eeg(rng: np.random.Generator, n_times: int, latent: syn.TrialLatent,
                  profile: syn.SubjectProfile) -> np.ndarray:
    """Synthetic 62-channel EEG at 200 Hz, ``(62, n_times)`` in uV, quantized.

    Generated at an FFT-friendly length (n = seconds * 200 + 1 is often prime) and cut.
    """
    n_fast = scipy.fft.next_fast_len(n_times, real=True)
    envelope, _ = syn.event_envelope(rng, n_fast, SFREQ)
    eeg = syn.eeg(rng, SEED_EEG, n_fast, SFREQ, latent, profile, envelope)
    return syn.quantize(eeg[:, :n_times], RAW_STEP_UV)


def synthetic_band_features(eeg: np.ndarray, sfreq: float, window_s: float
                            ) -> dict[str, np.ndarray]:
    """de/psd _movingAve/_LDS of synthetic EEG, each ``(n_channels, T, 5)`` as in the files.

    DE = 0.5 ln(2 pi e var) and PSD = ln(var / bandwidth) (log power density), plus offsets
    that bring them into the released value range.
    """
    power = band_power(eeg, sfreq, window_s)
    width = np.array([high - low for low, high in SEED_BANDS.values()])
    plain = {"de": 0.5 * np.log(2 * np.pi * np.e * power + 1e-12) + DE_OFFSET,
             "psd": np.log(power / width + 1e-12) + PSD_OFFSET}
    smoothers = {"movingAve": moving_average, "LDS": lds_smooth}
    return {f"{kind}_{s}": smoothers[s](values) for kind, values in plain.items()
            for s in SMOOTHINGS}


# --------------------------------------------------------------------------- synthetic writer

def _pairs() -> tuple[list[int], list[int], list[int], list[int]]:
    """Indices of SEED's 27 left-right pairs and 23 frontal-posterior pairs (for dasm / dcau)."""
    index = {name: i for i, name in enumerate(SEED_EEG)}
    left = [n for n in SEED_EEG if hemisphere(n) == -1]
    right = [re.sub(r"\d+$", lambda m: str(int(m.group()) + 1), n) for n in left]
    front = ["FT7", "FC5", "FC3", "FC1", "FCZ", "FC2", "FC4", "FC6", "FT8", "F7", "F5", "F3",
             "F1", "FZ", "F2", "F4", "F6", "F8", "FP1", "FPZ", "FP2", "AF3", "AF4"]
    back = ["TP7", "CP5", "CP3", "CP1", "CPZ", "CP2", "CP4", "CP6", "TP8", "P7", "P5", "P3",
            "P1", "PZ", "P2", "P4", "P6", "P8", "O1", "OZ", "O2", "CB1", "CB2"]
    return ([index[n] for n in left], [index[n] for n in right], [index[n] for n in front],
            [index[n] for n in back])


def _feature_variables(eeg: np.ndarray, trial: int) -> dict[str, np.ndarray]:
    """The 12 released feature types of one trial, in the release's order."""
    left, right, front, back = _pairs()
    sets = synthetic_band_features(eeg, SFREQ, WINDOW_S)
    out = {name: sets[name] for name in BAND_SETS}
    for s in SMOOTHINGS:
        de = sets[f"de_{s}"]
        out[f"dasm_{s}"] = de[left] - de[right]
        out[f"rasm_{s}"] = de[left] / de[right]
    for s in SMOOTHINGS:
        out[f"asm_{s}"] = np.concatenate([out[f"dasm_{s}"], out[f"rasm_{s}"]])
    for s in SMOOTHINGS:
        out[f"dcau_{s}"] = sets[f"de_{s}"][front] - sets[f"de_{s}"][back]
    order = [f"{kind}_{s}" for kind in ("de", "psd", "dasm", "rasm", "asm", "dcau")
             for s in SMOOTHINGS]
    return {f"{name}{trial}": syn.quantize(out[name], 2.0 ** -10) for name in order}


def check_synthetic_size(n_subjects: int, most: int, seconds: float, window_s: float,
                         dataset: str) -> None:
    if not 1 <= n_subjects <= most:
        raise ConfigError("n_subjects", f"{dataset} has at most {most} subjects; got {n_subjects}")
    if seconds < window_s:
        raise ConfigError("seconds", f"{dataset} needs at least one {window_s:g}-s window; "
                                     f"got {seconds}")


def synthetic_trials(n_trials: int | None, most: int, dataset: str) -> int:
    """The writers' ``n_trials`` (trials per session; default: the release's ``most``)."""
    n_trials = most if n_trials is None else int(n_trials)
    if not 1 <= n_trials <= most:
        raise ConfigError("n_trials", f"{dataset} has 1 .. {most} trials per session; got "
                                      f"{n_trials}")
    return n_trials


def write_synthetic(root: Path, n_subjects: int = 4, seed: int = 0,
                    seconds: float | None = None, nuisances: bool = True,
                    n_trials: int | None = None) -> dict:
    """Write a synthetic SEED: raw EEG, the 12 feature types, label.mat, and eye features only
    without nuisances.

    Stimulus length defaults to 8 s per trial (real: 185-265 s); ``n_trials`` trials per
    session (default 15, as released; ``label.mat`` then holds that many labels) x 3 sessions,
    real file names (subject_date), initials and labels. DE / PSD are computed from the written
    raw EEG (1-s windows); every raw trial has seconds * 200 + 1 samples, as released. With
    ``nuisances`` (the release's): no ``Eye_movement_features/`` at all (the release has no eye
    data) and about 10 % artefact trials. Without: eye features for every subject, no
    artefact trials.
    """
    seconds = 8.0 if seconds is None else float(seconds)
    check_synthetic_size(n_subjects, len(INITIALS), seconds, WINDOW_S, "SEED")
    n_trials = synthetic_trials(n_trials, N_TRIALS, "SEED")
    n_times = int(round(seconds * SFREQ)) + 1
    folders = (EEG_DIR, FEATURE_DIR) if nuisances else (EEG_DIR, FEATURE_DIR, EYE_DIR)
    for folder in folders:
        (root / folder).mkdir(parents=True, exist_ok=True)
    label = np.array([LABELS[:n_trials]], dtype=np.int16)
    for folder in (EEG_DIR, FEATURE_DIR):
        syn.write_mat(root / folder / LABEL_FILE, {"label": label})
        (root / folder / "readme.txt").write_text("synthetic SEED (affectlab)\n")
    trials, profiles, artefacts = [], {}, []
    windows = 0
    for subject in range(1, n_subjects + 1):
        rng = syn.rng_for(seed, "seed", subject)
        profile = syn.SubjectProfile.draw(rng, subject)
        profiles[subject] = profile.to_dict()
        for session, date in enumerate(SESSION_DATES[subject - 1], start=1):
            gain = float(rng.uniform(0.85, 1.15))
            raw, features, eye = {}, {}, {}
            for trial in range(1, n_trials + 1):
                index = LABELS[trial - 1] + 1
                latent = syn.draw_latent(rng, CLASSES[index], index, gain,
                                         noisy_rate=0.1 if nuisances else 0.0)
                if latent.noisy:
                    artefacts.append({"subject": subject, "session": session, "trial": trial})
                eeg = synthetic_eeg(rng, n_times, latent, profile)
                raw[f"{INITIALS[subject - 1]}_eeg{trial}"] = eeg
                features.update(_feature_variables(eeg, trial))
                n_windows = features[f"de_LDS{trial}"].shape[1]
                windows += n_windows
                if not nuisances:
                    eye[f"eye_{trial}"] = syn.quantize(
                        syn.eye_features(rng, n_windows, N_EYE, latent, profile).T, 2.0 ** -10)
                trials.append({"subject": subject, "session": session, "trial": trial,
                               "date": date, "windows": n_windows, "eye": not nuisances,
                               **latent.to_dict()})
            name = f"{subject}_{date}.mat"
            syn.write_mat(root / EEG_DIR / name, raw)
            syn.write_mat(root / FEATURE_DIR / name, features)
            if not nuisances:
                syn.write_mat(root / EYE_DIR / name, eye)
    found = {}
    if nuisances:
        found = {"no_eye_features": f"no {EYE_DIR}/ folder: the release holds no eye data "
                                    "(the default preset reads EEG only; the all preset reports "
                                    "eye as absent)",
                 "raw_trailing_sample": f"every raw trial has seconds * 200 + 1 = {n_times} "
                                        "samples",
                 "variable_prefixes": {str(s): INITIALS[s - 1]
                                       for s in range(1, n_subjects + 1)},
                 "artefact_trials": artefacts}
    expected = syn.expected_counts(n_subjects, n_subjects * N_SESSIONS * n_trials, windows)
    return {"trials": trials, "subjects": profiles, "stimulus_seconds": seconds,
            "n_trials": n_trials, "nuisances": found, "expected": expected}


SPEC = DatasetSpec(
    name="seed",
    title="SEED",
    modalities=("eeg",),
    feature_sets=(*BAND_SETS, "eye"),
    rating_scale=None,
    native_classes=CLASSES,
    n_sessions=N_SESSIONS,
    layout="Preprocessed_EEG/<subject>_<date>.mat (+label.mat), "
           "ExtractedFeatures/<subject>_<date>.mat (+ optional, assumed "
           "Eye_movement_features/<subject>_<date>.mat)",
    reader=read,
    writer=write_synthetic,
)
