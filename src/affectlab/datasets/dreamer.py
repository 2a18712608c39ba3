"""DREAMER: 23 participants x 18 film clips, Emotiv EEG (14 ch, 128 Hz) and ECG (2 ch, 256 Hz).

Layout read (``--root`` is the folder holding the file, or the file itself)::

    DREAMER.mat    one MATLAB v5 variable ``DREAMER``, a 1x1 struct with fields Data,
                   EEG_SamplingRate, ECG_SamplingRate, EEG_Electrodes, noOfSubjects,
                   noOfVideoSequences, Disclaimer, Provider, Version, Acknowledgement

``DREAMER.Data`` is a 1xS cell of structs (Age, Gender, EEG, ECG, ScoreValence, ScoreArousal,
ScoreDominance), S = 23 in the release. ``EEG.baseline`` / ``EEG.stimuli`` are Tx1 cells of
``(n, 14)`` **time x channel** arrays (T = 18 clips in the release); ``ECG`` the same with
``(n, 2)``; the scores are ``(T, 1)`` integers 1-5. With scipy's defaults a stimulus is
``m['DREAMER'][0,0]['Data'][0,s]['EEG'][0,0]['stimuli'][0,0][t,0]``.

Sizes come from the file, never from the release's counts: the subjects are the cells of
``Data``, a subject's clips the cells of its ``EEG.stimuli``; ``EEG.baseline``, ``ECG.baseline``,
``ECG.stimuli`` and the three score vectors must hold as many, or the field that disagrees is
named in the error (``noOfSubjects`` / ``noOfVideoSequences`` are not relied on).

Each stream is the baseline followed by the stimulus, transposed to ``(channels, time)``;
``onset_s`` is the baseline length divided by the sampling rate read from the file (61 s in the
release, 4 s in the synthetic copy). ``EEG_SamplingRate`` / ``ECG_SamplingRate`` must be the
release's 128 / 256 Hz: another value is an error naming the field. The EEG keeps Emotiv's DC
offset of about 4000 uV: removing it is preprocessing, not reading (the data presets subtract
the baseline mean and band-pass before spectral features, so the offset does not reach them).
Heavily artefacted clips are read like the others. NaN / Inf samples (none are known in the
release) are handled by ``nan_policy``: by default the affected windows are marked missing.
``scipy.io.loadmat`` reads the whole file at once (about 2 GB in memory for the release);
recordings are then yielded subject by subject.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from affectlab import signal as sig
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
    resolve_root,
)
from affectlab.datasets.channels import EMOTIV_EEG
from affectlab.errors import ConfigError, DatasetFormatError

FILE_NAME = "DREAMER.mat"
VARIABLE = "DREAMER"
N_TRIALS = 18               # of the release; a subject's own stimuli cells are what is read
# modality -> (struct field, sampling-rate field, channel names)
MODALITIES = {
    "eeg": ("EEG", "EEG_SamplingRate", EMOTIV_EEG),
    "ecg": ("ECG", "ECG_SamplingRate", ["ECG1", "ECG2"]),
}
SFREQ = {"eeg": 128.0, "ecg": 256.0}    # the release's EEG_SamplingRate / ECG_SamplingRate
SCORES = {"valence": "ScoreValence", "arousal": "ScoreArousal", "dominance": "ScoreDominance"}


def load_struct(path: Path) -> np.void:
    """Load ``DREAMER.mat`` and return the 1x1 ``DREAMER`` struct as one record."""
    content = load_mat(path, [VARIABLE], f"a MATLAB v5 file with the variable '{VARIABLE}'")
    if VARIABLE not in content:
        found = sorted(content)
        raise DatasetFormatError(path, f"variable '{VARIABLE}' missing (variables: {found})",
                                 f"a 1x1 struct '{VARIABLE}'")
    return _record(content[VARIABLE], path, VARIABLE)


def _record(node: object, path: Path, where: str) -> np.void:
    """A MATLAB struct as scipy loads it (1x1 record array, or one element of one)."""
    if isinstance(node, np.ndarray) and node.dtype.names and node.size == 1:
        node = node.ravel()[0]
    if not isinstance(node, np.void) or node.dtype.names is None:
        raise DatasetFormatError(path, f"'{where}' is not a struct", "a 1x1 MATLAB struct")
    return node


def _field(node: np.void, name: str, path: Path, where: str) -> object:
    if name not in node.dtype.names:
        raise DatasetFormatError(path, f"field '{where}.{name}' missing (fields: "
                                 f"{list(node.dtype.names)})", f"a struct field '{name}'")
    return node[name]


def _cells(node: object, path: Path, where: str, count: int | None = None) -> list:
    """The elements of a MATLAB cell array (any orientation), optionally of a known count."""
    if not isinstance(node, np.ndarray) or node.dtype != object:
        raise DatasetFormatError(path, f"'{where}' is not a cell array", "a MATLAB cell")
    if count is not None and node.size != count:
        raise DatasetFormatError(path, f"'{where}' has {node.size} cells", f"{count} cells")
    return list(node.ravel())


def sampling_rate(top: np.void, name: str, path: Path, release: float) -> float:
    """A sampling-rate field of the file, checked to be one positive number equal to the
    release's (``release``: EEG 128 Hz, ECG 256 Hz): another rate means the file is not the
    DREAMER release (or was edited) and the signals would be timed wrongly."""
    value = np.asarray(_field(top, name, path, VARIABLE))
    if value.size != 1 or not np.issubdtype(value.dtype, np.number) or not (
            np.isfinite(value).all() and float(value.ravel()[0]) > 0):
        raise DatasetFormatError(path, f"field '{VARIABLE}.{name}' is {value!r}",
                                 "one positive number (Hz)")
    rate = float(value.ravel()[0])
    if rate != release:
        raise DatasetFormatError(path, f"field '{VARIABLE}.{name}' is {rate:g} Hz",
                                 f"{release:g} Hz, the rate of the DREAMER release")
    return rate


def electrode_names(top: np.void) -> list[str]:
    """``EEG_Electrodes`` as 14 strings; the Emotiv column order if the field is unusable."""
    if "EEG_Electrodes" not in top.dtype.names:
        return list(EMOTIV_EEG)
    cells = top["EEG_Electrodes"]
    if not isinstance(cells, np.ndarray) or cells.dtype != object or cells.size != 14:
        return list(EMOTIV_EEG)
    names = ["".join(np.asarray(c).ravel().astype(str)).strip() for c in cells.ravel()]
    return names if all(names) else list(EMOTIV_EEG)


def read(root: Path, subjects: Sequence[int] | None = None, nan_policy: str = DEFAULT_NAN_POLICY,
         **_: object) -> Iterator[Recording]:
    """Yield DREAMER recordings (one per subject x clip) with ``eeg`` and ``ecg`` streams."""
    check_nan_policy(nan_policy)
    root = Path(root).expanduser()
    path = resolve_root(root.parent if root.is_file() else root, [FILE_NAME], "DREAMER") \
        / FILE_NAME
    if not path.is_file():
        raise DatasetFormatError(path, "not a file", "the DREAMER.mat MATLAB file")
    top = load_struct(path)
    rates = {m: sampling_rate(top, rate, path, SFREQ[m])
             for m, (_f, rate, _n) in MODALITIES.items()}
    names = {"eeg": electrode_names(top), "ecg": MODALITIES["ecg"][2]}
    data = _cells(_field(top, "Data", path, VARIABLE), path, f"{VARIABLE}.Data")
    if not data:
        raise DatasetFormatError(path, f"'{VARIABLE}.Data' has no cells", "one cell per subject")
    wanted = list(range(1, len(data) + 1)) if subjects is None else list(subjects)
    absent = sorted(set(wanted) - set(range(1, len(data) + 1)))
    if absent:
        raise DatasetFormatError(path, f"subject(s) {absent} not in the file "
                                 f"('{VARIABLE}.Data' has {len(data)} cells)",
                                 f"subjects 1 .. {len(data)}")
    for subject in wanted:
        yield from _subject(subject, data[subject - 1], path, rates, names, nan_policy)


def _subject(subject: int, node: object, path: Path, rates: dict[str, float],
             names: dict[str, list[str]], nan_policy: str) -> Iterator[Recording]:
    where = f"{VARIABLE}.Data{{{subject}}}"
    record = _record(node, path, where)
    cells = {}
    for modality, (field, _rate, _names) in MODALITIES.items():
        struct = _record(_field(record, field, path, where), path, f"{where}.{field}")
        for part in ("baseline", "stimuli"):
            cells[modality, part] = _cells(_field(struct, part, path, f"{where}.{field}"),
                                           path, f"{where}.{field}.{part}")
    reference = f"{where}.EEG.stimuli"
    n_trials = len(cells["eeg", "stimuli"])
    if n_trials == 0:
        raise DatasetFormatError(path, f"'{reference}' has no cells", "one cell per clip")
    for (modality, part), items in cells.items():
        if len(items) != n_trials:
            key = f"{where}.{MODALITIES[modality][0]}.{part}"
            raise DatasetFormatError(path, f"'{key}' has {len(items)} cells but "
                                     f"'{reference}' {n_trials}", "one cell per clip in every "
                                     "baseline / stimuli field")
    ratings = {name: _scores(record, field, path, where, n_trials)
               for name, field in SCORES.items()}
    for t in range(n_trials):
        rec = Recording(dataset="dreamer", subject=subject, session=1, trial=t + 1,
                        stimulus=f"video{t + 1:02d}",
                        ratings={name: float(v[t]) for name, v in ratings.items()},
                        source=str(path))
        for modality, (field, _rate, _names) in MODALITIES.items():
            _add_stream(rec, modality, cells[modality, "baseline"][t],
                        cells[modality, "stimuli"][t], f"{where}.{field}", rates[modality],
                        names[modality], path, nan_policy)
        yield rec


def _scores(record: np.void, field: str, path: Path, where: str, n_trials: int) -> np.ndarray:
    key = f"{where}.{field}"
    values = check_array(_field(record, field, path, where), path, key).ravel()
    if values.size != n_trials:
        raise DatasetFormatError(path, f"key '{key}' has {values.size} values but "
                                 f"'{where}.EEG.stimuli' {n_trials} cells",
                                 f"({n_trials}, 1) scores, one per clip")
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise DatasetFormatError(path, f"key '{key}' contains NaN", "integer scores 1-5")
    return values


def _add_stream(rec: Recording, modality: str, baseline: object, stimulus: object, where: str,
                sfreq: float, ch_names: list[str], path: Path, nan_policy: str) -> None:
    """Check one trial's baseline + stimulus arrays and add them as one stream."""
    n_ch = len(ch_names)
    blocks = []
    for part, array in (("baseline", baseline), ("stimuli", stimulus)):
        key = f"{where}.{part}{{{rec.trial}}}"
        block = check_array(array, path, key, shape=(None, n_ch))
        if part == "stimuli" and block.shape[0] == 0:
            raise DatasetFormatError(path, f"key '{key}' has no samples", f"(n, {n_ch}), n > 0")
        blocks.append(block)
    data = np.ascontiguousarray(np.concatenate(blocks, axis=0).T, dtype=np.float64)
    add_stream(rec, modality, Stream(data, sfreq, list(ch_names),
                                     onset_s=blocks[0].shape[0] / sfreq),
               path, f"{where}.baseline/stimuli{{{rec.trial}}}", nan_policy)


# --------------------------------------------------------------------------- synthetic writer

SYNTH_BASELINE_S = 4.0      # real: 61 s; the reader derives onset_s from the baseline length


def _struct(**fields: object) -> np.ndarray:
    """A 1x1 MATLAB struct for ``scipy.io.savemat`` (a record array of objects)."""
    out = np.empty((1, 1), dtype=[(name, object) for name in fields])
    for name, value in fields.items():
        out[name][0, 0] = value
    return out


def _cell(items: Sequence[object], shape: tuple[int, int]) -> np.ndarray:
    """A MATLAB cell array for ``scipy.io.savemat``."""
    out = np.empty(shape, dtype=object)
    for i, item in enumerate(items):
        out.flat[i] = item
    return out


DC_OFFSET_UV = (4000.0, 60.0)      # Emotiv's per-channel DC offset: mean, spread across channels


def write_synthetic(root: Path, n_subjects: int = 4, seed: int = 0,
                    seconds: float | None = None, nuisances: bool = True,
                    n_trials: int | None = None) -> dict:
    """Write a synthetic ``DREAMER.mat`` with ``n_subjects`` subjects x ``n_trials`` clips.

    ``n_trials`` defaults to the release's 18. Stimuli last 10 s by default (real: 65-393 s)
    and baselines 4 s (real: 61 s); sampling rates, channel counts, axis order (time x
    channel), struct fields and cell shapes are as released. With ``nuisances`` (the
    release's): the EEG carries a per-channel DC offset around 4000 uV like Emotiv's output, and
    about 10 % of the clips carry EEG artefacts. Without: no offset, no artefacts.
    """
    seconds = 10.0 if seconds is None else float(seconds)
    n_trials = N_TRIALS if n_trials is None else int(n_trials)
    if n_trials < 1:
        raise ConfigError("n_trials", f"got {n_trials}; must be >= 1")
    root.mkdir(parents=True, exist_ok=True)
    data, trials_manifest, profiles = [], [], {}
    offsets, artefacts = {}, []
    for subject in range(1, n_subjects + 1):
        rng = syn.rng_for(seed, "dreamer", subject)
        profile = syn.SubjectProfile.draw(rng, subject)
        profiles[subject] = profile.to_dict()
        offset = syn.quantize(DC_OFFSET_UV[0] + rng.normal(0, DC_OFFSET_UV[1],
                                                           (1, len(EMOTIV_EEG))))
        if not nuisances:
            offset = np.zeros_like(offset)
        offsets[subject] = [round(float(offset.min()), 1), round(float(offset.max()), 1)]
        parts: dict[tuple[str, str], list[np.ndarray]] = {
            (m, p): [] for m in SFREQ for p in ("baseline", "stimuli")}
        scores = np.zeros((n_trials, 3), np.uint8)
        for t in range(n_trials):
            latent = syn.draw_latent(rng, noisy_rate=0.1 if nuisances else 0.0)
            if latent.noisy:
                artefacts.append({"subject": subject, "trial": t + 1})
            for (modality, part), array in _synth_trial(rng, latent, profile, seconds).items():
                parts[modality, part].append(array + (offset if modality == "eeg" else 0))
            scores[t] = [syn.rating_from_latent(latent.valence, 1, 5, rng, integer=True),
                         syn.rating_from_latent(latent.arousal, 1, 5, rng, integer=True),
                         int(rng.integers(1, 6))]
            trials_manifest.append({"subject": subject, "session": 1, "trial": t + 1,
                                    "stimulus": f"video{t + 1:02d}", **latent.to_dict()})
        signals = {field: _struct(**{p: _cell(parts[m, p], (n_trials, 1))
                                     for p in ("baseline", "stimuli")})
                   for m, (field, _rate, _names) in MODALITIES.items()}
        data.append(_struct(
            Age=str(int(rng.integers(22, 34))), Gender=str(rng.choice(["male", "female"])),
            **signals, ScoreValence=scores[:, :1], ScoreArousal=scores[:, 1:2],
            ScoreDominance=scores[:, 2:]))
    top = _struct(
        Data=_cell(data, (1, n_subjects)), EEG_SamplingRate=SFREQ["eeg"],
        ECG_SamplingRate=SFREQ["ecg"], EEG_Electrodes=_cell(EMOTIV_EEG, (1, len(EMOTIV_EEG))),
        noOfSubjects=float(n_subjects), noOfVideoSequences=float(n_trials),
        Disclaimer="Synthetic data written by affectlab; not the DREAMER release.",
        Provider="affectlab", Version="synthetic", Acknowledgement="none")
    syn.write_mat(root / FILE_NAME, {VARIABLE: top})
    found = {}
    if nuisances:
        found = {"eeg_dc_offset_uv": {"every EEG channel": f"{DC_OFFSET_UV[0]:.0f} +- "
                                      f"{DC_OFFSET_UV[1]:.0f} (per channel)",
                                      "range_per_subject": offsets},
                 "artefact_trials": artefacts}
    windows_per_trial = sig.n_windows(int(round(seconds * SFREQ["eeg"])), SFREQ["eeg"], 1.0)
    n_total = n_subjects * n_trials
    expected = syn.expected_counts(n_subjects, n_total, n_total * windows_per_trial) \
        if windows_per_trial else syn.expected_counts(0, 0, 0, trials_without_windows={
            "shorter than one 1.0 s window": n_total})
    return {"trials": trials_manifest, "subjects": profiles, "stimulus_seconds": seconds,
            "baseline_seconds": SYNTH_BASELINE_S, "n_trials": n_trials, "nuisances": found,
            "expected": expected}


def _synth_trial(rng: np.random.Generator, latent: syn.TrialLatent,
                 profile: syn.SubjectProfile, seconds: float) -> dict[tuple[str, str],
                                                                     np.ndarray]:
    """One clip's baseline and stimulus arrays, ``(n_times, n_channels)`` per part."""
    calm = syn.TrialLatent(0.0, -0.3, None, latent.noisy, latent.session_gain)
    out = {}
    for modality, sfreq in SFREQ.items():
        for part, state, duration in (("baseline", calm, SYNTH_BASELINE_S),
                                      ("stimuli", latent, seconds)):
            n = int(round(duration * sfreq))
            if modality == "eeg":
                env = syn.event_envelope(rng, n, sfreq)[0] if part == "stimuli" else None
                signal = syn.eeg(rng, EMOTIV_EEG, n, sfreq, state, profile, env)
            else:
                signal = syn.ecg(rng, n, sfreq, state, profile, n_leads=2)
            out[modality, part] = syn.quantize(signal.T)
    return out


SPEC = DatasetSpec(
    name="dreamer",
    title="DREAMER",
    modalities=("eeg", "ecg"),
    feature_sets=(),
    rating_scale=(1.0, 5.0),
    native_classes=None,
    n_sessions=1,
    layout="DREAMER.mat (struct DREAMER: Data{s}.EEG/ECG.baseline/stimuli{t}, time x channel)",
    reader=read,
    writer=write_synthetic,
)
