"""WindowSet: views, sequences inside trials, persistence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from affectlab.data import WindowSet
from affectlab.errors import ConfigError


def make_set() -> WindowSet:
    rows = [{"subject": s, "session": 1, "trial": t, "window": w, "onset_s": float(w),
             "stimulus": f"v{t}", "valence": 5.0, "arousal": 5.0, "dominance": 5.0,
             "liking": 5.0, "native_label": -1}
            for s in (1, 2) for t in (1, 2) for w in range(4)]
    meta = pd.DataFrame(rows)
    eeg = torch.arange(len(meta) * 6, dtype=torch.float32).reshape(len(meta), 2, 3)
    return WindowSet({"eeg": eeg}, meta, {"dataset": "x"})


def test_subset_is_a_view_on_shared_tensors():
    ws = make_set()
    sub = ws.subset([3, 5, 7])
    assert sub.base["eeg"] is ws.base["eeg"]
    np.testing.assert_array_equal(sub.tensor("eeg").numpy(), ws.tensor("eeg")[[3, 5, 7]])
    nested = sub.subset([2])
    np.testing.assert_array_equal(nested.tensor("eeg").numpy(), ws.tensor("eeg")[[7]])
    assert nested.meta.loc[0, "window"] == 3
    with pytest.raises(IndexError):
        sub.subset([3])


def test_sequences_never_cross_trials_or_gaps():
    ws = make_set()
    idx = ws.sequence_index(3)
    assert idx.shape == (8, 3)                    # 4 trials x 2 runs of 3 in 4 windows
    keys = ws.meta[["subject", "trial"]].to_numpy()
    for row in idx:
        assert (keys[row] == keys[row[0]]).all()
        assert np.diff(ws.meta["window"].to_numpy()[row]).tolist() == [1, 1]
    gapped = ws.subset([0, 1, 3, 4, 5, 6])         # window 2 of trial 1 missing
    assert gapped.sequence_index(3).tolist() == [[3, 4, 5]]   # only trial 2 has a run
    arrays, meta = ws.sequences(4, stride=4)
    assert arrays["eeg"].shape == (4, 4, 2, 3) and len(meta) == 4
    with pytest.raises(ConfigError):
        ws.sequence_index(0)


def test_save_load_round_trip(tmp_path):
    ws = make_set().subset([1, 2, 9])
    path = ws.save(tmp_path / "cache")
    loaded = WindowSet.load(path)
    assert len(loaded) == 3
    torch.testing.assert_close(loaded.tensor("eeg"), ws.tensor("eeg"))
    pd.testing.assert_frame_equal(loaded.meta, ws.meta)


def test_unknown_modality_lists_available():
    with pytest.raises(ConfigError, match="available: eeg"):
        make_set().tensor("eye")
