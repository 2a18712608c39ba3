"""Signal processing on arrays with an explicit sampling rate (SciPy underneath).

Every function works on the last axis (time) and is vectorised over the leading axes
(trials, channels, windows). Filters are designed once per call, never per channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal as sps

from affectlab.errors import ConfigError


def bandpass(x: np.ndarray, sfreq: float, low: float | None, high: float | None,
             order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth band-pass (or low / high-pass when one edge is None)."""
    nyquist = sfreq / 2
    if high is not None and high >= nyquist:
        high = None
    if low is None and high is None:
        return np.asarray(x, dtype=np.float64)
    if low is not None and high is not None and not 0 < low < high:
        raise ConfigError("bandpass", f"need 0 < low < high, got {low}, {high}")
    if low is None:
        sos = sps.butter(order, high, btype="lowpass", fs=sfreq, output="sos")
    elif high is None:
        sos = sps.butter(order, low, btype="highpass", fs=sfreq, output="sos")
    else:
        sos = sps.butter(order, [low, high], btype="bandpass", fs=sfreq, output="sos")
    padlen = min(3 * (2 * len(sos) + 1), x.shape[-1] - 1)
    return sps.sosfiltfilt(sos, x, axis=-1, padlen=padlen)


def notch(x: np.ndarray, sfreq: float, freq: float = 50.0, quality: float = 30.0) -> np.ndarray:
    """Zero-phase IIR notch at ``freq`` Hz (mains: 50 Hz in the datasets' labs)."""
    if freq >= sfreq / 2:
        return np.asarray(x, dtype=np.float64)
    b, a = sps.iirnotch(freq, quality, fs=sfreq)
    return sps.filtfilt(b, a, x, axis=-1)


def resample(x: np.ndarray, sfreq: float, new_sfreq: float) -> np.ndarray:
    """Polyphase resampling (anti-aliased) from ``sfreq`` to ``new_sfreq``."""
    if np.isclose(sfreq, new_sfreq):
        return np.asarray(x, dtype=np.float64)
    ratio = Fraction(new_sfreq / sfreq).limit_denominator(1000)
    return sps.resample_poly(x, ratio.numerator, ratio.denominator, axis=-1)


def remove_baseline(x: np.ndarray, sfreq: float, onset_s: float, mode: str = "mean",
                    segment_s: float = 1.0) -> np.ndarray:
    """Return the stimulus part of ``x`` with the pre-stimulus baseline removed.

    ``mode="mean"``: subtract each channel's mean over the baseline (DEAP: the 3 pre-stimulus
    seconds). ``mode="template"``: cut the baseline into ``segment_s`` segments, average them into
    one template and subtract it from every ``segment_s`` segment of the stimulus (the DEAP
    convention of TorchEEG's BaselineRemoval and of the SGMC / ME-MHACL code).
    ``mode="none"``: only drop the baseline.
    """
    onset = int(round(onset_s * sfreq))
    base, stim = x[..., :onset], np.asarray(x[..., onset:], dtype=np.float64)
    if mode == "none" or onset == 0:
        return stim.copy()
    if mode == "mean":
        return stim - base.mean(axis=-1, keepdims=True)
    if mode == "template":
        seg = int(round(segment_s * sfreq))
        n_base = base.shape[-1] // seg
        if n_base == 0:
            raise ConfigError("baseline", f"baseline of {onset_s} s is shorter than one segment")
        template = base[..., : n_base * seg].reshape(*base.shape[:-1], n_base, seg).mean(-2)
        n_seg = stim.shape[-1] // seg
        out = stim[..., : n_seg * seg].reshape(*stim.shape[:-1], n_seg, seg) - template[
            ..., None, :]
        return out.reshape(*stim.shape[:-1], n_seg * seg)
    raise ConfigError("baseline", f"got {mode!r}; allowed: mean, template, none")


def n_windows(n_times: int, sfreq: float, window_s: float, stride_s: float | None = None) -> int:
    """How many whole windows fit in ``n_times`` samples."""
    length = int(round(window_s * sfreq))
    step = int(round((stride_s or window_s) * sfreq))
    return 0 if n_times < length else (n_times - length) // step + 1


def windows(x: np.ndarray, sfreq: float, window_s: float,
            stride_s: float | None = None) -> np.ndarray:
    """Cut the last axis into windows: ``(..., n_times) -> (n_windows, ..., window_samples)``.

    Windows start at sample 0 and the trailing partial window is dropped.
    """
    length = int(round(window_s * sfreq))
    step = int(round((stride_s or window_s) * sfreq))
    if length < 1 or step < 1:
        raise ConfigError("window_s", f"window {window_s} s / stride {stride_s} s at {sfreq} Hz")
    if x.shape[-1] < length:
        return np.empty((0, *x.shape[:-1], length), dtype=x.dtype)
    view = sliding_window_view(x, length, axis=-1)[..., ::step, :]
    return np.ascontiguousarray(np.moveaxis(view, -2, 0))


def select_channels(ch_names: Sequence[str], wanted: Sequence[str] | None,
                    option: str = "channels") -> list[int]:
    """Indices of ``wanted`` channel names (case-insensitive); all when ``wanted`` is None."""
    if wanted is None:
        return list(range(len(ch_names)))
    lookup = {name.upper(): i for i, name in enumerate(ch_names)}
    absent = [w for w in wanted if w.upper() not in lookup]
    if absent:
        raise ConfigError(option, f"channel(s) {absent} not found; available: "
                                  f"{', '.join(ch_names)}")
    return [lookup[w.upper()] for w in wanted]
