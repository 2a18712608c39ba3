"""DE + PSD extraction throughput: vectorised path vs a naive per-window, per-channel loop.

Writes ``benchmarks/results/features.json``. The input is a DEAP-sized EEG set by default
(32 subjects x 40 trials x 32 channels x 60 s at 128 Hz = 2.5 GB of float64), generated subject by
subject (only extraction is timed; memory stays at one subject, as in ``affectlab prepare``);
``--subjects`` scales it down. The naive path is timed on a sample of windows and extrapolated
(it would take minutes on the whole set); both paths are checked to agree.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from scipy import signal as sps

from affectlab import features as feat
from affectlab import signal as sig

SFREQ = 128.0


def naive_de_psd(window: np.ndarray, sfreq: float) -> tuple[np.ndarray, np.ndarray]:
    """One window, one channel at a time: periodogram DE and Welch PSD per band."""
    n_ch = window.shape[0]
    de = np.zeros((n_ch, len(feat.DEFAULT_BANDS)))
    psd = np.zeros_like(de)
    for c in range(n_ch):
        x = window[c] - window[c].mean()
        power = np.abs(np.fft.rfft(x)) ** 2 / len(x) ** 2
        power[1:] *= 2
        if len(x) % 2 == 0:
            power[-1] /= 2
        freqs = np.fft.rfftfreq(len(x), 1 / sfreq)
        f_w, p_w = sps.welch(window[c], fs=sfreq, nperseg=min(len(x), int(sfreq)))
        for b, (low, high) in enumerate(feat.DEFAULT_BANDS.values()):
            var = power[(freqs >= low) & (freqs < high)].sum()
            de[c, b] = 0.5 * np.log(2 * np.pi * np.e * (var + 1e-12))
            psd[c, b] = p_w[(f_w >= low) & (f_w < high)].mean()
    return de, psd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=32)
    parser.add_argument("--naive-windows", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" /
                        "features.json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n_trials = args.subjects * 40
    vectorised_s, megabytes = 0.0, 0.0
    for _ in range(args.subjects):
        data = rng.normal(0, 10, (40, 32, int(60 * SFREQ)))      # one subject
        megabytes += data.nbytes / 1e6
        start = time.perf_counter()
        windows = sig.windows(data, SFREQ, 1.0)                   # (60, trials, 32, 128)
        de = feat.differential_entropy(windows, SFREQ)
        psd = feat.band_psd(windows, SFREQ)
        vectorised_s += time.perf_counter() - start

    flat = windows.reshape(-1, 32, 128)                           # the last subject
    n_windows = n_trials * 60
    sample = rng.choice(len(flat), size=min(args.naive_windows, len(flat)), replace=False)
    start = time.perf_counter()
    naive = [naive_de_psd(flat[i], SFREQ) for i in sample]
    naive_s = (time.perf_counter() - start) * n_windows / len(sample)
    de_flat, psd_flat = de.reshape(-1, 32, 5), psd.reshape(-1, 32, 5)
    agree = all(np.allclose(d, de_flat[i]) and np.allclose(p, psd_flat[i], rtol=1e-6)
                for i, (d, p) in zip(sample, naive, strict=True))
    result = {
        "benchmark": "features: DE + Welch PSD, 5 bands, 1 s windows",
        "input": {"subjects": args.subjects, "trials": n_trials, "channels": 32,
                  "seconds_per_trial": 60, "sfreq": SFREQ, "megabytes_float64": round(megabytes,
                                                                                    1),
                  "windows": int(n_windows)},
        "vectorised": {"seconds": round(vectorised_s, 3),
                       "mb_per_second": round(megabytes / vectorised_s, 1)},
        "naive_loop": {"seconds_extrapolated": round(naive_s, 1),
                       "mb_per_second": round(megabytes / naive_s, 2),
                       "windows_timed": int(len(sample))},
        "speedup": round(naive_s / vectorised_s, 1),
        "results_agree": bool(agree),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "python": platform.python_version()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
