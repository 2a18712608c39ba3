"""Feature extraction, vectorised over windows and channels.

Inputs are windows shaped ``(n_windows, n_channels, n_times)`` (see
:func:`affectlab.signal.windows`) unless stated otherwise; outputs keep the leading axes and
replace time by the feature axis.

Interpretation
--------------
* Differential entropy (DE) of a band assumes a Gaussian band-limited signal:
  ``DE = 0.5 * ln(2 pi e sigma^2)`` where ``sigma^2`` is the band's variance. The band variance of
  a window is taken from its periodogram (Parseval: the sum of the one-sided power in the band),
  which is what SEED's STFT-based features do up to a constant offset. Absolute values therefore
  do not match the released SEED numbers; differences between windows do.
* PSD per band is Welch's mean power spectral density (SciPy) inside the band, with segments of
  at most 1 s and 50 % overlap.
* LDS smoothing is a random-walk Kalman filter + Rauch-Tung-Striebel smoother along windows,
  independently per feature, with the observation noise set from the first differences (the
  SEED "LDS" features are of this kind; their exact parameters are not published).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import signal as sps

from affectlab.errors import ConfigError

DEFAULT_BANDS: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 14.0),
    "beta": (14.0, 31.0), "gamma": (31.0, 50.0),
}
# DEAP-style four bands (no delta: DEAP is band-passed from 4 Hz).
FOUR_BANDS = {k: v for k, v in DEFAULT_BANDS.items() if k != "delta"}


def _check_bands(bands: Mapping[str, tuple[float, float]], sfreq: float) -> None:
    for name, (low, high) in bands.items():
        if not 0 <= low < high:
            raise ConfigError("bands", f"band {name} = ({low}, {high}) is not an interval")
        if low >= sfreq / 2:
            raise ConfigError("bands", f"band {name} starts above Nyquist ({sfreq / 2} Hz)")


def band_variance(x: np.ndarray, sfreq: float,
                  bands: Mapping[str, tuple[float, float]] = DEFAULT_BANDS) -> np.ndarray:
    """Variance of each band from the periodogram: ``(..., n_times) -> (..., n_bands)``."""
    _check_bands(bands, sfreq)
    n = x.shape[-1]
    x = x - x.mean(axis=-1, keepdims=True)
    power = np.abs(np.fft.rfft(x, axis=-1)) ** 2 / n**2
    power[..., 1:] *= 2.0                        # one-sided spectrum (Parseval)
    if n % 2 == 0:
        power[..., -1] /= 2.0
    freqs = np.fft.rfftfreq(n, 1.0 / sfreq)
    masks = np.stack([(freqs >= lo) & (freqs < hi) for lo, hi in bands.values()], axis=1)
    return power @ masks.astype(power.dtype)


def differential_entropy(x: np.ndarray, sfreq: float,
                         bands: Mapping[str, tuple[float, float]] = DEFAULT_BANDS,
                         eps: float = 1e-12) -> np.ndarray:
    """DE per band, ``(..., n_times) -> (..., n_bands)``: 0.5 ln(2 pi e var_band)."""
    return 0.5 * np.log(2 * np.pi * np.e * (band_variance(x, sfreq, bands) + eps))


def band_psd(x: np.ndarray, sfreq: float,
             bands: Mapping[str, tuple[float, float]] = DEFAULT_BANDS,
             segment_s: float = 1.0) -> np.ndarray:
    """Welch PSD averaged inside each band, ``(..., n_times) -> (..., n_bands)``."""
    _check_bands(bands, sfreq)
    nperseg = min(x.shape[-1], int(round(segment_s * sfreq)))
    freqs, psd = sps.welch(x, fs=sfreq, nperseg=nperseg, axis=-1)
    out = []
    for low, high in bands.values():
        mask = (freqs >= low) & (freqs < high)
        if not mask.any():                      # band narrower than the frequency resolution
            mask = np.abs(freqs - (low + high) / 2) == np.abs(freqs - (low + high) / 2).min()
        out.append(psd[..., mask].mean(axis=-1))
    return np.stack(out, axis=-1)


def moving_average(x: np.ndarray, width: int = 5) -> np.ndarray:
    """Centred moving average along axis 0 (windows), shrinking at the edges."""
    if width <= 1 or x.shape[0] < 2:
        return x.copy()
    kernel = np.ones(width)
    flat = x.reshape(x.shape[0], -1)
    sums = np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="same"), 0, flat)
    counts = np.convolve(np.ones(x.shape[0]), kernel, mode="same")[:, None]
    return (sums / counts).reshape(x.shape)


def lds_smooth(x: np.ndarray, process_ratio: float = 0.1) -> np.ndarray:
    """Kalman + RTS smoothing of a random walk along axis 0, vectorised over the other axes.

    Observation noise per feature is half the variance of the first differences; process noise
    is ``process_ratio`` times that.
    """
    n = x.shape[0]
    if n < 3:
        return x.copy()
    flat = x.reshape(n, -1).astype(np.float64)
    r = 0.5 * np.var(np.diff(flat, axis=0), axis=0) + 1e-12
    q = process_ratio * r
    mean = np.empty_like(flat)
    var = np.empty_like(flat)
    m, p = flat[0], r.copy()
    for t in range(n):                     # forward filter (loop over windows only)
        if t:
            p = p + q
        gain = p / (p + r)
        m = m + gain * (flat[t] - m)
        p = (1 - gain) * p
        mean[t], var[t] = m, p
    out = mean.copy()
    for t in range(n - 2, -1, -1):         # backward smoother
        gain = var[t] / (var[t] + q)
        out[t] = mean[t] + gain * (out[t + 1] - mean[t])
    return out.reshape(x.shape)


def signal_statistics(x: np.ndarray) -> np.ndarray:
    """Picard's six statistics per channel, ``(..., n_times) -> (..., 6)``.

    Mean, standard deviation, mean absolute first difference, the same on the z-scored signal,
    mean absolute second difference, the same on the z-scored signal.
    """
    mean = x.mean(axis=-1)
    std = x.std(axis=-1) + 1e-12
    d1 = np.abs(np.diff(x, axis=-1)).mean(axis=-1)
    d2 = np.abs(x[..., 2:] - x[..., :-2]).mean(axis=-1)
    return np.stack([mean, std, d1, d1 / std, d2, d2 / std], axis=-1)


def dominant_frequency(x: np.ndarray, sfreq: float, low: float, high: float) -> np.ndarray:
    """Frequency (Hz) of the largest periodogram peak inside [low, high], ``(...,)``."""
    n = x.shape[-1]
    spectrum = np.abs(np.fft.rfft(x - x.mean(axis=-1, keepdims=True), n=max(n, 4 * int(sfreq)),
                                  axis=-1))
    freqs = np.fft.rfftfreq(max(n, 4 * int(sfreq)), 1.0 / sfreq)
    mask = (freqs >= low) & (freqs <= high)
    if not mask.any():
        raise ConfigError("window_s", f"window too short to resolve {low}-{high} Hz")
    return freqs[mask][np.argmax(spectrum[..., mask], axis=-1)]


def heart_rate_bpm(x: np.ndarray, sfreq: float) -> np.ndarray:
    """Heart rate from ECG / PPG windows via the dominant frequency in 0.7-3 Hz, ``(...,)``."""
    return 60.0 * dominant_frequency(x, sfreq, 0.7, 3.0)


def peripheral_features(x: np.ndarray, sfreq: float, kind: str) -> np.ndarray:
    """Per-window features of a channel group: ``(n_windows, n_ch, n_times) -> (n_windows, F)``.

    gsr: 6 statistics + mean slope; resp: 6 statistics + breathing rate; temp: 6 statistics +
    slope; ecg / ppg: 4 statistics (mean, std, |d1|, |d2|) + heart rate per channel; other
    kinds: the 6 statistics per channel.
    """
    stats = signal_statistics(x)                       # (w, c, 6)
    t = np.arange(x.shape[-1]) / sfreq
    slope = ((x - x.mean(-1, keepdims=True)) * (t - t.mean())).sum(-1) / ((t - t.mean()) ** 2).sum()
    if kind in ("gsr", "temp"):
        extra = slope[..., None]
    elif kind == "resp":
        extra = dominant_frequency(x, sfreq, 0.1, 0.7)[..., None]
    elif kind in ("ecg", "ppg"):
        stats = stats[..., [0, 1, 2, 4]]
        extra = heart_rate_bpm(x, sfreq)[..., None]
    else:
        return stats.reshape(len(x), -1)
    return np.concatenate([stats, extra], axis=-1).reshape(len(x), -1)


def masked_window_mean(frames: np.ndarray, valid: np.ndarray | None, frame_times: np.ndarray,
                       starts: np.ndarray, window_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Average irregular frames onto a window grid, ignoring invalid frames.

    frames: ``(n_features, n_frames)``; frame_times: ``(n_frames,)`` seconds on the stimulus
    clock; starts: ``(n_windows,)`` window start times. Returns ``(n_windows, n_features)``
    means and a ``(n_windows,)`` boolean "has at least one valid frame" (windows without one are
    NaN, to be handled as missing, never zero-filled).
    """
    ok = np.ones(frames.shape[1], bool) if valid is None else valid.astype(bool)
    inside = (frame_times[None, :] >= starts[:, None]) & (
        frame_times[None, :] < starts[:, None] + window_s) & ok[None, :]
    counts = inside.sum(axis=1)
    sums = inside.astype(np.float64) @ frames.T
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts[:, None]
    return means, counts > 0
