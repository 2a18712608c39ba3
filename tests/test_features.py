"""Features: DE against the Gaussian closed form, PSD, smoothing, peripheral and face means."""

from __future__ import annotations

import numpy as np
import pytest

from affectlab import features as feat
from affectlab.errors import ConfigError


def test_de_of_a_sinusoid_matches_closed_form():
    sfreq, n = 128, 256
    t = np.arange(n) / sfreq
    x = 3.0 * np.sin(2 * np.pi * 10 * t)            # 10 Hz lies on a frequency bin
    de = feat.differential_entropy(x, sfreq)
    alpha = list(feat.DEFAULT_BANDS).index("alpha")
    assert de[alpha] == pytest.approx(0.5 * np.log(2 * np.pi * np.e * 4.5), rel=1e-6)
    assert all(de[i] < de[alpha] - 10 for i in range(5) if i != alpha)


def test_band_variances_of_white_noise_sum_to_in_band_variance():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 2.0, size=(200, 1280))
    bands = {"all": (0.0, 64.01)}
    var = feat.band_variance(x, 128, bands)[:, 0]
    np.testing.assert_allclose(var, x.var(axis=1), rtol=1e-8)


def test_de_vectorised_equals_per_window_loop():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 4, 128))
    batched = feat.differential_entropy(x, 128)
    loop = np.array([[feat.differential_entropy(x[w, c], 128) for c in range(4)]
                     for w in range(6)])
    np.testing.assert_allclose(batched, loop)


def test_psd_peak_band_and_bad_band():
    t = np.arange(3 * 128) / 128
    x = np.sin(2 * np.pi * 20 * t)
    psd = feat.band_psd(x, 128)
    assert list(feat.DEFAULT_BANDS)[int(np.argmax(psd))] == "beta"
    with pytest.raises(ConfigError, match="bands"):
        feat.band_psd(x, 128, {"bad": (10.0, 5.0)})


def test_lds_smoothing_reduces_noise_and_keeps_shape():
    rng = np.random.default_rng(2)
    truth = np.linspace(0, 1, 60)[:, None, None] * np.ones((60, 3, 5))
    noisy = truth + rng.normal(0, 0.3, truth.shape)
    smooth = feat.lds_smooth(noisy)
    assert smooth.shape == noisy.shape
    assert np.abs(smooth - truth).mean() < 0.5 * np.abs(noisy - truth).mean()
    avg = feat.moving_average(noisy, 5)
    assert np.abs(avg - truth).mean() < np.abs(noisy - truth).mean()


def test_heart_rate_of_a_pulse_train():
    sfreq, rate = 128.0, 72.0
    t = np.arange(int(10 * sfreq)) / sfreq
    beats = np.arange(0, 10, 60 / rate)
    pulse = np.exp(-0.5 * ((t[:, None] - beats[None]) / 0.02) ** 2).sum(axis=1)
    assert feat.heart_rate_bpm(pulse[None, None], sfreq)[0, 0] == pytest.approx(rate, abs=2)


def test_peripheral_feature_sizes():
    x = np.random.default_rng(3).normal(size=(4, 2, 256))
    assert feat.peripheral_features(x, 128, "ecg").shape == (4, 10)
    assert feat.peripheral_features(x[:, :1], 128, "gsr").shape == (4, 7)
    assert feat.peripheral_features(x, 128, "plain").shape == (4, 12)


def test_masked_window_mean_ignores_invalid_frames():
    frames = np.array([[1.0, 100.0, 3.0, 5.0, 7.0, 9.0]])
    valid = np.array([True, False, True, True, False, False])
    times = np.arange(6) * 0.5                            # 2 frames per second
    means, ok = feat.masked_window_mean(frames, valid, times, np.array([0.0, 1.0, 2.0]), 1.0)
    np.testing.assert_allclose(means[:2, 0], [1.0, 4.0])
    assert ok.tolist() == [True, True, False] and np.isnan(means[2, 0])
