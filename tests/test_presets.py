"""Data presets on synthetic DEAP: shapes, availability flags, caching, option errors."""

from __future__ import annotations

import numpy as np
import pytest

from affectlab.errors import ConfigError, UnknownNameError
from affectlab.presets import prepare


@pytest.fixture(scope="module")
def deap(synthetic_root):
    return synthetic_root("deap", n_subjects=3, seconds=6)


@pytest.mark.parametrize("preset, shapes, per_trial", [
    ("default", {"eeg": [32, 5], "pps": [50]}, 6),
    ("all", {"eeg": [32, 5], "pps": [50], "face_au": [17]}, 6),
    ("m2s", {"eeg": [32, 4], "pps": [48]}, 6),
    ("dhcm_cacl", {"eeg": [32, 5], "face_au": [17]}, 2),
    ("me_mhacl", {"eeg": [32, 128], "gsr": [1, 128], "resp": [1, 128], "temp": [1, 128],
                  "eog": [2, 128], "ppg": [1, 128]}, 6),
    ("raw", {"eeg": [32, 128], "eog": [2, 128], "emg": [2, 128], "gsr": [1, 128],
             "resp": [1, 128], "ppg": [1, 128], "temp": [1, 128]}, 6),
])
def test_preset_shapes_and_window_counts(deap, preset, shapes, per_trial):
    ws, _ = prepare("deap", deap, preset, use_cache=False)
    assert ws.summary()["modalities"] == shapes
    assert len(ws) == 3 * 40 * per_trial
    assert ws.tensor("eeg").dtype.is_floating_point and ws.tensor("eeg").is_contiguous()


def test_face_missing_is_flagged_not_zero_filled(deap):
    ws, _ = prepare("deap", deap, "all", use_cache=False)
    avail = ws.available("face_au")
    subject = ws.meta["subject"].to_numpy()
    assert not avail[subject == 3].any()      # no face video
    assert avail[subject == 1].mean() > 0.9   # some windows untracked (long tracking failures)
    assert np.isnan(ws.numpy("face_au")[~avail]).all()
    counts = ws.description["missing"]["face_au"]
    assert counts["absent_trials"] == 40 + 1          # subject 3, one face file of subject 2
    assert counts["absent_windows"] == 41 * 6
    assert counts["absent_windows"] + counts["invalid_windows"] == int((~avail).sum())


def test_default_preset_uses_what_every_subject_has(deap):
    ws, _ = prepare("deap", deap, "default", use_cache=False)
    assert "face_au" not in ws.names
    for name in ws.names:
        assert ws.available(name).all()
    with pytest.raises(ConfigError, match="face_au"):
        ws.available("face_au")


def test_clmer_face_series(deap):
    ws, _ = prepare("deap", deap, "clmer", {"window_s": 3.0, "stride_s": 3.0}, use_cache=False)
    assert ws.shape("face_landmarks") == (3, 204)
    assert ws.shape("eeg") == (384, 32)


def test_cache_is_reused_and_keyed_by_options(deap, tmp_path):
    first, folder = prepare("deap", deap, "m2s", cache_dir=tmp_path)
    again, folder2 = prepare("deap", deap, "m2s", cache_dir=tmp_path)
    assert folder == folder2 and (folder / "description.json").exists()
    np.testing.assert_array_equal(first.numpy("eeg"), again.numpy("eeg"))
    _, other = prepare("deap", deap, "m2s", {"window_s": 2.0}, cache_dir=tmp_path)
    assert other != folder


def test_cache_key_follows_the_modality_plan(deap, monkeypatch):
    """A preset whose plan changes (e.g. a modality added) must not reuse an old entry."""
    from dataclasses import replace

    from affectlab import presets

    opts = presets.resolve_options(presets.get_preset("me_mhacl"), "deap", {})
    before = presets.cache_key("deap", deap, "me_mhacl", opts)
    chosen = presets.PRESETS["me_mhacl"]
    smaller = replace(chosen, plan=lambda d, o: {"eeg": chosen.plan(d, o)["eeg"]})
    monkeypatch.setitem(presets.PRESETS, "me_mhacl", smaller)
    assert presets.cache_key("deap", deap, "me_mhacl", opts) != before


def test_bad_preset_and_options(deap):
    with pytest.raises(UnknownNameError, match="dhcm_cacl"):
        prepare("deap", deap, "nope", use_cache=False)
    with pytest.raises(ConfigError, match="data.window"):
        prepare("deap", deap, "default", {"window": 2}, use_cache=False)
    with pytest.raises(ConfigError, match="does not support deap"):
        prepare("deap", deap, "uf_ama", use_cache=False)


def test_clmer_band_passes_fast_signals_only(deap):
    ws, _ = prepare("deap", deap, "clmer", {"window_s": 3.0, "stride_s": 3.0}, use_cache=False)
    literal, _ = prepare("deap", deap, "clmer", {"window_s": 3.0, "stride_s": 3.0,
                                                 "slow_bandpass": [4.0, 45.0]}, use_cache=False)
    for name in ("gsr", "resp"):       # slow: left as they are (baseline-corrected)
        kept, filtered = ws.numpy(name), literal.numpy(name)
        assert kept.std() > 5 * filtered.std(), name
    np.testing.assert_array_equal(ws.numpy("eeg"), literal.numpy("eeg"))
