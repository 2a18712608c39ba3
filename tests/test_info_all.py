"""``affectlab info`` on every synthetic dataset: the published counting conventions hold."""

from __future__ import annotations

import pytest

from affectlab.datasets import DATASET_NAMES
from affectlab.inspect import dataset_info

# trials per subject and session, sessions, native classes, rating scale of each dataset
CONVENTIONS = {
    "deap": {"trials": 40, "sessions": [1], "native": None},
    "seed": {"trials": 15, "sessions": [1, 2, 3], "native": 3},
    "seed_iv": {"trials": 24, "sessions": [1, 2, 3], "native": 4},
    "seed_v": {"trials": 15, "sessions": [1, 2, 3], "native": 5},
    "dreamer": {"trials": 18, "sessions": [1], "native": None},
    "amigos": {"trials": 16, "sessions": [1], "native": None},
    "mahnob": {"trials": None, "sessions": [1], "native": None},
}


def test_conventions_cover_every_dataset():
    assert set(CONVENTIONS) == set(DATASET_NAMES)


@pytest.mark.parametrize("dataset", DATASET_NAMES)
def test_info_counts(dataset, synthetic_root, windowset_cache):
    info = dataset_info(dataset, synthetic_root(dataset, n_subjects=3), "default",
                        cache_dir=windowset_cache)
    expected = CONVENTIONS[dataset]
    assert info["dataset"] == dataset and info["n_subjects"] == 3
    assert info["sessions"] == expected["sessions"]
    if expected["trials"] is not None:
        assert info["n_trials"] == 3 * len(expected["sessions"]) * expected["trials"]
    assert info["n_windows"] >= info["n_trials"]
    assert "eeg" in info["modalities"] and info["sampling_rates"]
    if expected["native"]:
        assert len(info["labels"]["native"]) == expected["native"]
        assert sum(info["labels"]["native"].values()) == info["n_windows"]
    else:
        assert "native" not in info["labels"]
        assert sum(info["labels"]["quadrant"].values()) == info["n_windows"]
