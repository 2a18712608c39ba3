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
    ("default", {"eeg": [32, 5], "pps": [50], "face_au": [17]}, 6),
    ("m2s", {"eeg": [32, 4], "pps": [48]}, 6),
    ("dhcm_cacl", {"eeg": [32, 5], "face_au": [17]}, 2),
    ("me_mhacl", {"eeg": [32, 128], "gsr": [1, 128], "resp": [1, 128], "temp": [1, 128],
                  "eog": [2, 128]}, 6),
    ("raw", {"eeg": [32, 128], "eog": [2, 128], "emg": [2, 128], "gsr": [1, 128],
             "resp": [1, 128], "ppg": [1, 128], "temp": [1, 128]}, 6),
])
def test_preset_shapes_and_window_counts(deap, preset, shapes, per_trial):
    ws, _ = prepare("deap", deap, preset, use_cache=False)
    assert ws.summary()["modalities"] == shapes
    assert len(ws) == 3 * 40 * per_trial
    assert ws.tensor("eeg").dtype.is_floating_point and ws.tensor("eeg").is_contiguous()


def test_face_missing_is_flagged_not_zero_filled(deap):
    ws, _ = prepare("deap", deap, "default", use_cache=False)
    avail = ws.available("face_au")
    assert not avail[ws.meta["subject"].to_numpy() == 3].any()      # no face video
    assert avail[ws.meta["subject"].to_numpy() == 1].all()
    assert np.isnan(ws.numpy("face_au")[~avail]).all()


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


def test_bad_preset_and_options(deap):
    with pytest.raises(UnknownNameError, match="dhcm_cacl"):
        prepare("deap", deap, "nope", use_cache=False)
    with pytest.raises(ConfigError, match="data.window"):
        prepare("deap", deap, "default", {"window": 2}, use_cache=False)
    with pytest.raises(ConfigError, match="does not support deap"):
        prepare("deap", deap, "uf_ama", use_cache=False)
