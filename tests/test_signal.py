"""Signal processing: filters, resampling, baseline removal, windowing, channel selection."""

from __future__ import annotations

import numpy as np
import pytest

from affectlab import signal as sig
from affectlab.errors import ConfigError


def sine(freq: float, sfreq: float, seconds: float, amplitude: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * sfreq)) / sfreq
    return amplitude * np.sin(2 * np.pi * freq * t)


def test_bandpass_keeps_in_band_and_removes_out_of_band():
    x = sine(10, 128, 8) + sine(40, 128, 8)
    y = sig.bandpass(x, 128, 4, 20)
    core = slice(128, -128)
    residual = y[core] - sine(10, 128, 8)[core]
    assert np.std(residual) < 0.05


def test_bandpass_is_vectorised_over_leading_axes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 512))
    batched = sig.bandpass(x, 128, 4, 45)
    single = sig.bandpass(x[1, 2], 128, 4, 45)
    np.testing.assert_allclose(batched[1, 2], single)


def test_notch_removes_mains():
    x = sine(50, 250, 4) + sine(10, 250, 4)
    y = sig.notch(x, 250, 50)
    assert np.std((y - sine(10, 250, 4))[250:-250]) < 0.1


def test_resample_changes_length_and_keeps_frequency():
    x = sine(5, 200, 4)
    y = sig.resample(x, 200, 128)
    assert y.shape == (512,)
    spectrum = np.abs(np.fft.rfft(y))
    assert np.fft.rfftfreq(512, 1 / 128)[spectrum.argmax()] == pytest.approx(5, abs=0.3)


def test_remove_baseline_mean_and_template():
    sfreq = 4
    base = np.tile([1.0, 2.0, 3.0, 4.0], 3)            # 3 s of baseline with a 1 s pattern
    stim = np.tile([11.0, 12.0, 13.0, 14.0], 2)        # 2 s of stimulus
    x = np.r_[base, stim][None, :]
    mean_removed = sig.remove_baseline(x, sfreq, onset_s=3, mode="mean")
    np.testing.assert_allclose(mean_removed, stim[None] - 2.5)
    template_removed = sig.remove_baseline(x, sfreq, onset_s=3, mode="template")
    np.testing.assert_allclose(template_removed, np.full((1, 8), 10.0))
    assert sig.remove_baseline(x, sfreq, 3, mode="none").shape == (1, 8)
    with pytest.raises(ConfigError, match="baseline"):
        sig.remove_baseline(x, sfreq, 3, mode="median")


def test_windows_shape_content_and_count():
    x = np.arange(2 * 10, dtype=float).reshape(2, 10)
    w = sig.windows(x, sfreq=2, window_s=2, stride_s=1)
    assert w.shape == (4, 2, 4)
    np.testing.assert_array_equal(w[1, 0], [2, 3, 4, 5])
    assert w.flags["C_CONTIGUOUS"]
    assert sig.n_windows(10, 2, 2, 1) == 4
    assert sig.windows(x, sfreq=2, window_s=10).shape == (0, 2, 20)


def test_select_channels_case_insensitive_and_error_lists_names():
    assert sig.select_channels(["Fp1", "Cz", "O2"], ["cz", "O2"]) == [1, 2]
    with pytest.raises(ConfigError, match="available: Fp1, Cz, O2"):
        sig.select_channels(["Fp1", "Cz", "O2"], ["Pz"])
