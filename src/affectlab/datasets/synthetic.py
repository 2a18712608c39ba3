"""Synthetic signals with known emotional effects, shared by every dataset writer.

``affectlab synth`` writes each dataset in its released file format (the writers live next to
the readers, one module per dataset); this module only makes the numbers. Every signal carries
effects of a latent valence / arousal pair in [-1, 1] (and, for datasets with discrete classes, a
small class-specific EEG topography), so methods have something real to learn:

* EEG: alpha power falls and beta / gamma power rise with arousal; frontal alpha asymmetry and
  gamma power follow valence; a per-class theta topography; emotional "events" modulate gamma.
* Face (OpenFace columns): AU06 / AU12 (smile) rise with valence, AU04 / AU15 with negative
  valence, AU01 / AU02 / AU05 / AU26 with arousal; mouth-corner and brow landmarks move with
  them; the face stream lags the EEG by a per-subject 0.2-0.6 s (a small misalignment).
* Peripheral: skin conductance level and responses, heart rate and respiration rate rise with
  arousal; skin temperature drifts down with arousal; zygomatic EMG with positive valence.
* Eye features: pupil diameter rises with arousal; fixation / saccade statistics load on
  valence and arousal through a fixed random loading.

Nuisance structure: per-subject gain, per-subject spectral shift (band centres move by up to
+-1.5 Hz) and per-subject feature offsets; per-session gain drift; about 10 % noisy trials
(broadband noise and spikes). All randomness comes from ``numpy.random.Generator`` objects seeded
from (seed, dataset, subject), so a dataset is reproducible and independent of the others.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np

from affectlab.datasets.channels import BANDS, hemisphere, is_frontal

BAND_EDGES = {"delta": (1.0, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 14.0),
              "beta": (14.0, 31.0), "gamma": (31.0, 50.0)}

# Latent (valence, arousal) of the datasets' discrete emotion classes.
EMOTION_VA = {
    "negative": (-0.85, 0.3), "neutral": (0.0, -0.2), "positive": (0.85, 0.4),
    "sad": (-0.8, -0.6), "fear": (-0.7, 0.9), "happy": (0.85, 0.5), "disgust": (-0.6, 0.35),
}

AU_NAMES = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12", "AU14",
            "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45")
# Loading of every AU on (valence, arousal).
AU_LOADING = {
    "AU01": (-0.2, 0.8), "AU02": (0.0, 0.7), "AU04": (-0.9, 0.2), "AU05": (0.0, 0.8),
    "AU06": (0.9, 0.2), "AU07": (-0.3, 0.3), "AU09": (-0.5, 0.1), "AU10": (-0.3, 0.1),
    "AU12": (1.0, 0.2), "AU14": (0.3, 0.0), "AU15": (-0.7, -0.1), "AU17": (-0.4, 0.0),
    "AU20": (-0.3, 0.5), "AU23": (-0.3, 0.2), "AU25": (0.3, 0.5), "AU26": (0.1, 0.7),
    "AU45": (0.0, -0.3),
}


def stable_seed(*parts: object) -> list[int]:
    """Seed material from strings / ints that does not depend on Python's hash salt."""
    return [zlib.crc32(str(p).encode()) for p in parts]


def rng_for(seed: int, *parts: object) -> np.random.Generator:
    return np.random.default_rng([seed, *stable_seed(*parts)])


@dataclass(frozen=True)
class Difficulty:
    """How hard a synthetic copy is to learn (recorded in the manifest).

    effect_scale: strength of every emotional effect relative to the nuisance variability
        (1 = the loadings of this module as written).
    subject_shift: scale of the per-subject nuisances (gain, spectral shift, band and feature
        offsets, spread of the per-subject effect gain); 1 = as drawn by default.
    subject_specific: 0..1, how far each subject's valence / arousal effect is rotated in the
        valence-arousal plane (a per-subject angle up to ``subject_specific * 180`` degrees) for
        EEG, peripheral and eye signals (faces keep the shared effect): 0 = every subject
        expresses emotion alike, 1 = no shared direction at all. A method that only learns
        one subject's mapping cannot transfer to another.
    """

    effect_scale: float = 0.35
    subject_shift: float = 1.0
    subject_specific: float = 0.0

    def __post_init__(self) -> None:
        if not (self.effect_scale >= 0 and self.subject_shift >= 0
                and 0 <= self.subject_specific <= 1):
            raise ValueError(f"difficulty out of range: {self}")


#: named settings of ``affectlab synth --difficulty``. ``default``: logreg on EEG DE +
#: peripheral statistics under LOSO is clearly above chance and clearly below ceiling
#: (README, "Synthetic data"); ``hard``: weaker and partly subject-specific effects.
DIFFICULTIES = {
    "easy": Difficulty(effect_scale=0.6, subject_shift=0.5),
    "default": Difficulty(),
    "hard": Difficulty(effect_scale=0.25, subject_shift=1.5, subject_specific=0.5),
}
_DIFFICULTY = DIFFICULTIES["default"]


@contextmanager
def difficulty(setting: Difficulty) -> Iterator[Difficulty]:
    """Write synthetic data at ``setting`` inside the ``with`` block (writers read it)."""
    global _DIFFICULTY, EFFECT_SCALE
    previous = _DIFFICULTY
    _DIFFICULTY, EFFECT_SCALE = setting, setting.effect_scale
    try:
        yield setting
    finally:
        _DIFFICULTY, EFFECT_SCALE = previous, previous.effect_scale


def _spread(value: float, centre: float) -> float:
    """``value`` drawn around ``centre`` with its spread scaled by the subject shift."""
    return centre + _DIFFICULTY.subject_shift * (value - centre)


@dataclass
class SubjectProfile:
    """Per-subject nuisance parameters (written to the manifest)."""

    subject: int
    gain: float
    spectral_shift_hz: float
    band_offsets: list[float]
    face_lag_s: float
    hr_bpm: float
    scl_us: float
    pupil_mm: float
    temp_c: float
    resp_hz: float
    feature_offset: float
    effect_gain: float
    effect_angle_deg: float = 0.0

    @classmethod
    def draw(cls, rng: np.random.Generator, subject: int) -> SubjectProfile:
        shift = _DIFFICULTY.subject_shift
        profile = cls(
            subject=subject,
            gain=max(0.2, _spread(float(rng.uniform(0.6, 1.6)), 1.1)),
            spectral_shift_hz=shift * float(rng.uniform(-1.5, 1.5)),
            band_offsets=[shift * float(x) for x in rng.normal(0.0, 0.25, len(BANDS))],
            face_lag_s=float(rng.uniform(0.2, 0.6)),
            hr_bpm=float(rng.uniform(60, 80)),
            scl_us=float(rng.uniform(2.0, 8.0)),
            pupil_mm=float(rng.uniform(3.0, 4.5)),
            temp_c=float(rng.uniform(31.0, 34.0)),
            resp_hz=float(rng.uniform(0.2, 0.3)),
            feature_offset=shift * float(rng.normal(0.0, 0.5)),
            effect_gain=max(0.0, _spread(float(rng.uniform(0.5, 1.5)), 1.0)),
        )
        if _DIFFICULTY.subject_specific:      # its own stream: the draws above stay as they are
            angle_rng = np.random.default_rng(stable_seed("angle", subject, profile.gain))
            profile.effect_angle_deg = float(180 * _DIFFICULTY.subject_specific
                                             * angle_rng.uniform(-1, 1))
        return profile

    def expressed(self, latent: TrialLatent) -> tuple[float, float]:
        """The (valence, arousal) this subject's EEG, peripheral and eye signals express:
        the latent pair rotated by the subject's effect angle."""
        if not self.effect_angle_deg:
            return latent.valence, latent.arousal
        angle = math.radians(self.effect_angle_deg)
        c, s = math.cos(angle), math.sin(angle)
        return (c * latent.valence - s * latent.arousal, s * latent.valence + c * latent.arousal)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrialLatent:
    """The hidden truth of one trial: what the signals were generated from."""

    valence: float
    arousal: float
    class_index: int | None = None
    noisy: bool = False
    session_gain: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


# Strength of every emotional effect relative to the nuisance variability (1 = the loadings
# below as written). Tuned so that a linear baseline is clearly above chance but far from
# perfect, as on the real datasets.
EFFECT_SCALE = 0.35


def rating_from_latent(value: float, low: float, high: float, rng: np.random.Generator,
                       integer: bool = False) -> float:
    """Map a latent value in [-1, 1] to a self-report on [low, high] with report noise."""
    mid, half = (low + high) / 2, (high - low) / 2
    rating = float(np.clip(mid + half * value + rng.normal(0, 0.12 * half), low, high))
    return float(np.rint(rating)) if integer else round(rating, 2)


def draw_latent(rng: np.random.Generator, class_name: str | None = None,
                class_index: int | None = None, session_gain: float = 1.0,
                noisy_rate: float = 0.1) -> TrialLatent:
    """A trial's latent state: from a class (with jitter) or uniformly in the VA plane."""
    if class_name is not None:
        v, a = EMOTION_VA[class_name]
        v, a = v + rng.normal(0, 0.1), a + rng.normal(0, 0.1)
    else:
        v, a = rng.uniform(-1, 1, 2)
    return TrialLatent(float(np.clip(v, -1, 1)), float(np.clip(a, -1, 1)), class_index,
                       bool(rng.random() < noisy_rate), session_gain)


def event_envelope(rng: np.random.Generator, n_times: int, sfreq: float,
                   lag_s: float = 0.0, events: np.ndarray | None = None) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """Emotional events (about one per 8 s) as a sum of 1 s Gaussian bumps, shifted by lag_s.

    Returns ``(envelope (n_times,), event_times_s)``; pass the times back in to make a second,
    lagged modality share the same events.
    """
    duration = n_times / sfreq
    if events is None:
        events = np.sort(rng.uniform(0, duration, max(1, int(duration / 8))))
    t = np.arange(n_times) / sfreq
    env = np.exp(-0.5 * ((t[:, None] - events[None, :] - lag_s) / 0.5) ** 2).sum(axis=1)
    return np.minimum(env, 1.5), events


def band_limited_noise(rng: np.random.Generator, n_channels: int, n_times: int, sfreq: float,
                       low: float, high: float) -> np.ndarray:
    """Unit-variance Gaussian noise restricted to [low, high] Hz, ``(n_channels, n_times)``."""
    spectrum = np.fft.rfft(rng.standard_normal((n_channels, n_times)), axis=1)
    freqs = np.fft.rfftfreq(n_times, 1 / sfreq)
    spectrum[:, (freqs < low) | (freqs >= high)] = 0
    out = np.fft.irfft(spectrum, n=n_times, axis=1)
    return out / (out.std(axis=1, keepdims=True) + 1e-12)


def class_topography(class_index: int, n_channels: int) -> np.ndarray:
    """A fixed spatial pattern per class (same for every subject), values around 0."""
    return np.random.default_rng([977, class_index, n_channels]).normal(0, 1, n_channels)


def eeg_band_log_gains(ch_names: list[str], latent: TrialLatent, profile: SubjectProfile,
                       rng: np.random.Generator) -> np.ndarray:
    """Log amplitude of every (channel, band): effects + subject offsets + trial jitter."""
    effect_scale = EFFECT_SCALE * profile.effect_gain
    n = len(ch_names)
    side = np.array([hemisphere(c) for c in ch_names], float)
    frontal = np.array([is_frontal(c) for c in ch_names], float)
    valence, arousal = profile.expressed(latent)
    v, a = effect_scale * valence, effect_scale * arousal
    gains = np.zeros((n, len(BANDS)))
    gains[:, 0] += 0.1 * a                      # delta
    gains[:, 1] += 0.25 * a                     # theta
    gains[:, 2] += -0.45 * a - 0.3 * v * side * (0.5 + frontal)   # alpha, frontal asymmetry
    gains[:, 3] += 0.35 * a + 0.1 * v           # beta
    gains[:, 4] += 0.4 * v + 0.3 * a            # gamma
    if latent.class_index is not None:
        gains[:, 1] += 0.3 * EFFECT_SCALE * class_topography(latent.class_index, n)
    gains += np.asarray(profile.band_offsets)[None, :]
    gains += rng.normal(0, 0.15, gains.shape)    # trial-to-trial variability
    return gains


def eeg(rng: np.random.Generator, ch_names: list[str], n_times: int, sfreq: float,
        latent: TrialLatent, profile: SubjectProfile, envelope: np.ndarray | None = None,
        scale_uv: float = 10.0) -> np.ndarray:
    """Synthetic EEG in microvolts, ``(n_channels, n_times)`` float64."""
    n = len(ch_names)
    log_gains = eeg_band_log_gains(ch_names, latent, profile, rng)
    pink = {"delta": 2.0, "theta": 1.4, "alpha": 1.2, "beta": 0.7, "gamma": 0.45}
    shift = profile.spectral_shift_hz
    out = np.zeros((n, n_times))
    nyquist = sfreq / 2
    for b, band in enumerate(BANDS):
        low, high = BAND_EDGES[band]
        low, high = max(0.5, low + shift), min(high + shift, nyquist - 1)
        if low >= high:
            continue
        comp = band_limited_noise(rng, n, n_times, sfreq, low, high)
        comp *= (pink[band] * np.exp(log_gains[:, b]))[:, None]
        if band == "gamma" and envelope is not None:
            comp *= 1.0 + 0.6 * envelope[None, :] * (0.5 + 0.5 * latent.arousal)
        out += comp
    out += 0.15 * rng.standard_normal((n, n_times))      # sensor noise
    out *= scale_uv * profile.gain * latent.session_gain
    if latent.noisy:
        out += scale_uv * 3 * rng.standard_normal((n, n_times))
        spikes = rng.integers(0, n_times, size=max(1, n_times // 500))
        out[:, spikes] += scale_uv * 20 * rng.standard_normal((n, spikes.size))
    return out


def quantize(x: np.ndarray, step: float = 1 / 64) -> np.ndarray:
    """Round to an ADC-like step (a power-of-two fraction: exact in float64, compresses well)."""
    return np.round(x / step) * step


def heart_beats(rng: np.random.Generator, duration_s: float, hr_bpm: float) -> np.ndarray:
    rr = 60.0 / hr_bpm
    n = int(duration_s / rr) + 2
    intervals = rr * (1 + rng.normal(0, 0.04, n))
    return np.cumsum(intervals) - intervals[0] * rng.uniform(0, 1)


def heart_rate(latent: TrialLatent, profile: SubjectProfile) -> float:
    return profile.hr_bpm + 9.0 * EFFECT_SCALE * profile.expressed(latent)[1]


def ecg(rng: np.random.Generator, n_times: int, sfreq: float, latent: TrialLatent,
        profile: SubjectProfile, n_leads: int = 2) -> np.ndarray:
    """ECG-like trace (mV): narrow R peaks and T waves at a heart rate that rises with arousal."""
    t = np.arange(n_times) / sfreq
    beats = heart_beats(rng, n_times / sfreq, heart_rate(latent, profile))
    d = t[:, None] - beats[None, :]
    trace = (np.exp(-0.5 * (d / 0.012) ** 2) + 0.25 * np.exp(-0.5 * ((d - 0.25) / 0.04) ** 2))
    trace = trace.sum(axis=1)
    leads = np.stack([trace * (1.0 - 0.2 * i) for i in range(n_leads)])
    return leads + 0.03 * rng.standard_normal(leads.shape)


def ppg(rng: np.random.Generator, n_times: int, sfreq: float, latent: TrialLatent,
        profile: SubjectProfile) -> np.ndarray:
    """Plethysmograph-like pulse wave, ``(n_times,)``."""
    t = np.arange(n_times) / sfreq
    beats = heart_beats(rng, n_times / sfreq, heart_rate(latent, profile))
    d = t[:, None] - beats[None, :]
    pulse = np.where(d > 0, d / 0.1 * np.exp(1 - d / 0.1), 0.0).sum(axis=1)
    return pulse + 0.05 * rng.standard_normal(n_times)


def skin_conductance(rng: np.random.Generator, n_times: int, sfreq: float, latent: TrialLatent,
                     profile: SubjectProfile, envelope: np.ndarray) -> np.ndarray:
    """Skin conductance in microsiemens: tonic level + phasic responses to events."""
    a = EFFECT_SCALE * profile.expressed(latent)[1]
    level = profile.scl_us * (1 + 0.25 * a + rng.normal(0, 0.05))
    drift = np.cumsum(rng.normal(0, 0.002, n_times))
    return level + (0.4 + 0.3 * a) * envelope + drift


def respiration(rng: np.random.Generator, n_times: int, sfreq: float, latent: TrialLatent,
                profile: SubjectProfile) -> np.ndarray:
    t = np.arange(n_times) / sfreq
    arousal = profile.expressed(latent)[1]
    rate = profile.resp_hz * (1 + 0.2 * EFFECT_SCALE * arousal + rng.normal(0, 0.05))
    phase = 2 * np.pi * rate * t + np.cumsum(rng.normal(0, 0.01, n_times))
    return np.sin(phase) * (1 + 0.1 * arousal) + 0.05 * rng.standard_normal(n_times)


def skin_temperature(rng: np.random.Generator, n_times: int, sfreq: float,
                     latent: TrialLatent, profile: SubjectProfile) -> np.ndarray:
    t = np.arange(n_times) / sfreq
    slope = -0.004 * EFFECT_SCALE * profile.expressed(latent)[1] + rng.normal(0, 0.002)
    return profile.temp_c + slope * t + 0.01 * rng.standard_normal(n_times)


def emg(rng: np.random.Generator, n_times: int, sfreq: float, amplitude: float) -> np.ndarray:
    high = min(100.0, sfreq / 2 - 1)
    return amplitude * band_limited_noise(rng, 1, n_times, sfreq, min(20.0, high / 2), high)[0]


def au_intensities(rng: np.random.Generator, n_frames: int, fps: float, latent: TrialLatent,
                   envelope: np.ndarray) -> np.ndarray:
    """AU intensities on OpenFace's 0-5 scale, ``(n_frames, 17)`` in :data:`AU_NAMES` order."""
    load = np.array([AU_LOADING[a] for a in AU_NAMES])        # (17, 2)
    drive = 0.5 * EFFECT_SCALE * load @ np.array([latent.valence, latent.arousal])  # (17,)
    drive = drive + rng.normal(0, 0.3, drive.shape)                      # trial variability
    walk = np.cumsum(rng.normal(0, 0.05, (n_frames, len(AU_NAMES))), axis=0)
    walk -= walk.mean(axis=0)
    level = 0.8 + 0.9 * np.clip(drive, -1, None) + 0.15 * walk
    level = level + (0.8 * np.clip(drive, 0, None))[None, :] * envelope[:, None]
    return np.clip(level + rng.normal(0, 0.15, level.shape), 0, 5)


def face_landmarks_3d(rng: np.random.Generator, n_frames: int, latent: TrialLatent,
                      envelope: np.ndarray, subject_rng: np.random.Generator) -> np.ndarray:
    """68 3-D landmarks in mm, ``(n_frames, 3, 68)`` (X, Y, Z rows as OpenFace writes them)."""
    angle = np.linspace(-0.9 * np.pi, -0.1 * np.pi, 17)
    jaw = np.stack([70 * np.cos(angle), -80 * np.sin(angle) - 10, np.zeros(17)])
    brows = np.stack([np.r_[np.linspace(-55, -10, 5), np.linspace(10, 55, 5)],
                      np.full(10, -45.0), np.full(10, -15.0)])
    nose = np.stack([np.r_[np.zeros(4), np.linspace(-15, 15, 5)],
                     np.r_[np.linspace(-35, -5, 4), np.full(5, 5.0)],
                     np.r_[np.linspace(-20, -35, 4), np.full(5, -25.0)]])
    eye_x = np.r_[np.linspace(-45, -15, 6), np.linspace(15, 45, 6)]
    eyes = np.stack([eye_x, np.tile([-28, -31, -31, -28, -25, -25], 2).astype(float),
                     np.full(12, -10.0)])
    mouth_x = np.r_[np.linspace(-25, 25, 12), np.linspace(-18, 18, 8)]
    mouth = np.stack([mouth_x, np.r_[np.full(12, 30.0), np.full(8, 32.0)], np.full(20, -18.0)])
    template = np.concatenate([jaw, brows, nose, eyes, mouth], axis=1)  # (3, 68)
    template = template * subject_rng.uniform(0.9, 1.1) + subject_rng.normal(0, 1.5, (3, 68))
    frames = np.repeat(template[None], n_frames, axis=0)
    smile = (0.6 * EFFECT_SCALE * latent.valence) * (1 + envelope)  # mouth corners up, out
    frames[:, 1, [48, 54]] -= 4 * smile[:, None]
    frames[:, 0, 48] -= 2 * smile
    frames[:, 0, 54] += 2 * smile
    brow = (0.5 * EFFECT_SCALE * latent.arousal) * (1 + envelope)                 # brows raised
    frames[:, 1, 17:27] -= 3 * brow[:, None]
    head = np.cumsum(rng.normal(0, 0.3, (n_frames, 3, 1)), axis=0)
    frames += head + rng.normal(0, 0.4, frames.shape)
    frames[:, 2, :] += 500.0                                       # distance to the camera
    return frames


def gaze(rng: np.random.Generator, n_frames: int, latent: TrialLatent) -> np.ndarray:
    """Gaze angles in radians, ``(n_frames, 2)``; arousal widens the scan."""
    spread = 0.05 + 0.05 * (latent.arousal + 1)
    return np.cumsum(rng.normal(0, spread / 5, (n_frames, 2)), axis=0) * 0.2 + rng.normal(
        0, spread, (n_frames, 2))


_EYE_LOADING = np.random.default_rng(4242).normal(0, 0.5, (33, 2))
_EYE_LOADING[:12, 1] += 1.0      # pupil features follow arousal
_EYE_LOADING[12:20, 0] += 0.6    # dispersion / fixation follow valence


def eye_features(rng: np.random.Generator, n_windows: int, n_features: int,
                 latent: TrialLatent, profile: SubjectProfile) -> np.ndarray:
    """Eye-movement statistics per window, ``(n_windows, n_features)`` (31 or 33)."""
    drive = EFFECT_SCALE * _EYE_LOADING[:n_features] @ np.array(profile.expressed(latent))
    drive = drive + rng.normal(0, 0.2, drive.shape)
    base = np.linspace(1.0, 3.0, n_features) + profile.feature_offset
    base[:2] = profile.pupil_mm
    walk = np.cumsum(rng.normal(0, 0.1, (n_windows, n_features)), axis=0) * 0.3
    noise = rng.normal(0, 0.6, (n_windows, n_features))
    out = base + 0.8 * drive + walk + noise
    if latent.noisy:
        out += rng.normal(0, 1.5, out.shape)
    return out


class _FastZlib:
    """``zlib`` with compression level 1 (synthetic writers: 4-5x faster, ~10 % larger)."""

    def __getattr__(self, name: str):
        return getattr(zlib, name)

    @staticmethod
    def compress(data, level: int = 1) -> bytes:
        return zlib.compress(data, 1)


def write_mat(path, variables: dict) -> None:
    """``scipy.io.savemat`` with compressed variables, as MATLAB writes by default, but at zlib
    level 1. SciPy offers no level option; the writer module's ``zlib`` is swapped for the call
    (falling back to SciPy's own level if that private module ever moves)."""
    from scipy.io import savemat

    try:
        from scipy.io.matlab import _mio5
    except ImportError:                                     # pragma: no cover
        savemat(path, variables, do_compression=True)
        return
    original = getattr(_mio5, "zlib", None)
    _mio5.zlib = _FastZlib()
    try:
        savemat(path, variables, do_compression=True)
    finally:
        _mio5.zlib = original


# --------------------------------------------------------------------------- manifest helpers

def expected_counts(subjects: int, trials: int, windows: int,
                    missing: dict[str, dict[str, int]] | None = None,
                    trials_without_windows: dict[str, int] | None = None) -> dict:
    """What a reader + the ``default`` data preset (default options) must find in a synthetic
    copy, as recorded in the manifest's ``expected`` entry.

    subjects / trials: distinct subjects and (subject, session, trial) with windows; windows:
    rows of the WindowSet; missing: per modality of the default preset, ``absent_trials``,
    ``absent_windows`` and ``invalid_windows`` (only modalities with a non-zero count need be
    listed); trials_without_windows: trials the release lists but that give no window, by
    the reason the reader gives.
    """
    return {"subjects": int(subjects), "trials": int(trials), "windows": int(windows),
            "missing": {name: {"absent_trials": int(c.get("absent_trials", 0)),
                               "absent_windows": int(c.get("absent_windows", 0)),
                               "invalid_windows": int(c.get("invalid_windows", 0))}
                        for name, c in (missing or {}).items()},
            "trials_without_windows": dict(trials_without_windows or {})}

