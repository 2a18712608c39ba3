"""Label schemes: thresholds (> not >=), quadrants, grid9 bins, schemes that do not fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from affectlab.errors import ConfigError, UnknownNameError
from affectlab.labels import make_labels


def meta(valence, arousal):
    return pd.DataFrame({"valence": valence, "arousal": arousal,
                         "native_label": -1})


def test_binary_uses_strictly_greater():
    m = meta([5.0, 5.01, 1.0, np.nan], [9.0, 2.0, 5.0, 3.0])
    y = make_labels(m, "deap", "binary_valence").y
    assert y.tolist() == [0, 1, 0, -1]
    assert make_labels(m, "deap", "binary_arousal", threshold=4).y.tolist() == [1, 0, 1, 0]


def test_quadrant_and_grid9():
    m = meta([2.0, 2.0, 8.0, 8.0, 3.0, 6.5], [2.0, 8.0, 2.0, 8.0, 3.5, 6.0])
    assert make_labels(m, "deap", "quadrant").y.tolist()[:4] == [0, 1, 2, 3]
    grid = make_labels(m, "deap", "grid9")
    assert grid.n_classes == 9
    assert grid.y.tolist() == [0, 2, 6, 8, 1, 7]     # bins [1,3], (3,6], (6,9]


def test_dreamer_threshold_is_the_middle_of_its_scale():
    m = meta([3.0, 4.0], [1.0, 5.0])
    assert make_labels(m, "dreamer", "binary_valence").y.tolist() == [0, 1]
    with pytest.raises(ConfigError, match="grid9 needs a 1-9"):
        make_labels(m, "dreamer", "grid9")


def test_native_only_where_it_exists():
    with pytest.raises(ConfigError, match="deap has no native"):
        make_labels(meta([1.0], [1.0]), "deap", "native")
    with pytest.raises(UnknownNameError, match="binary_valence"):
        make_labels(meta([1.0], [1.0]), "deap", "valence")
    with pytest.raises(ConfigError, match="threshold"):
        make_labels(meta([1.0], [1.0]), "deap", "binary_valence", threshold=12)


def test_video_quadrant_uses_each_stimulus_mean_rating():
    m = pd.DataFrame({
        "subject": [1, 1, 1, 2, 2, 3], "session": 1, "trial": [1, 1, 2, 1, 2, 1],
        "stimulus": ["v1", "v1", "v2", "v1", "v2", "v2"],
        "valence": [8.0, 8.0, 2.0, 3.0, 4.0, 9.0], "arousal": [7.0, 7.0, 2.0, 6.0, 1.0, 9.0],
        "native_label": -1})
    labels = make_labels(m, "amigos", "video_quadrant")
    # v1: trials (8, 7) and (3, 6) -> mean (5.5, 6.5) HVHA, the repeated window counted once;
    # v2: (2, 2), (4, 1), (9, 9) -> (5, 4) LVLA (5 is not above the threshold)
    assert labels.y.tolist() == [3, 3, 0, 3, 0, 0]
    assert labels.classes == ("LVLA", "LVHA", "HVLA", "HVHA")
    assert make_labels(m, "amigos", "quadrant").y.tolist() == [3, 3, 0, 1, 0, 3]
    with pytest.raises(ConfigError, match="stimulus"):
        make_labels(m.assign(stimulus=""), "amigos", "video_quadrant")
