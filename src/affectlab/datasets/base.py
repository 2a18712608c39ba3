"""Reader-side data types shared by every dataset module.

A reader turns the released files of one dataset into :class:`Recording` objects, one per
(subject, session, trial). Nothing outside :mod:`affectlab.datasets` knows a file layout.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.io
from scipy.io.matlab import MatReadError

from affectlab.errors import ConfigError, DatasetFormatError

RATING_NAMES = ("valence", "arousal", "dominance", "liking")
#: what a reader does with NaN / Inf inside released signals or features (the default first)
NAN_POLICIES = ("mark_missing", "interpolate", "raise")
DEFAULT_NAN_POLICY = NAN_POLICIES[0]
#: ``interpolate`` fills gaps up to this long: in a signal (seconds) / in a feature set (windows)
MAX_GAP_S = 0.5
MAX_GAP_WINDOWS = 2


@dataclass
class Stream:
    """A continuous signal of one modality.

    data: ``(n_channels, n_times)`` float array at ``sfreq`` Hz.
    onset_s: time of stimulus onset inside ``data``; what precedes it is the pre-stimulus
        baseline (DEAP 3 s, DREAMER 61 s, MAHNOB about 30 s, AMIGOS 5 s).
    valid: optional ``(n_times,)`` boolean mask of usable samples (face frames whose tracking
        failed are ``False``; they are masked, never averaged in).
    """

    data: np.ndarray
    sfreq: float
    ch_names: list[str]
    onset_s: float = 0.0
    valid: np.ndarray | None = None
    units: str = ""

    @property
    def n_times(self) -> int:
        return int(self.data.shape[-1])

    @property
    def stimulus_s(self) -> float:
        """Duration of the stimulus part, in seconds."""
        return self.n_times / self.sfreq - self.onset_s


@dataclass
class Features:
    """Per-window features released with a dataset (SEED DE, SEED-IV eye features, ...).

    data: ``(n_windows, *feature_shape)``; ``axes`` names every axis, e.g.
    ``("window", "channel", "band")``; windows are ``window_s`` long and do not overlap.
    """

    data: np.ndarray
    window_s: float
    axes: tuple[str, ...]
    feature_names: list[str] | None = None

    @property
    def n_windows(self) -> int:
        return int(self.data.shape[0])


@dataclass
class Recording:
    """One trial of one subject in one session, with every modality that was recorded."""

    dataset: str
    subject: int
    session: int
    trial: int
    stimulus: str
    streams: dict[str, Stream] = field(default_factory=dict)
    features: dict[str, Features] = field(default_factory=dict)
    ratings: dict[str, float] = field(default_factory=dict)
    native_label: int | None = None
    missing: set[str] = field(default_factory=set)
    source: str = ""
    #: per modality: samples (streams) or windows (features) that were not finite in the file,
    #: and how many of them ``nan_policy="interpolate"`` filled
    nonfinite: dict[str, dict[str, int]] = field(default_factory=dict)
    #: non-empty for a trial the release lists but that holds no usable data (an empty AMIGOS
    #: cell, a MAHNOB session without ratings): it yields no windows and is counted as skipped
    skipped: str = ""
    #: ratings outside the dataset's scale, as found in the file (they are NaN in ``ratings``)
    invalid_ratings: dict[str, float] = field(default_factory=dict)
    #: per continuous modality: channels whose values are constant over the whole recording
    #: (a dead or disconnected electrode); the data preset marks their values missing (NaN)
    flat_channels: dict[str, list[str]] = field(default_factory=dict)
    #: metadata files of the release that do not list this recording, each with what that
    #: costs (DEAP: a participant absent from participant_ratings.csv -> "face marked missing")
    unlisted: dict[str, str] = field(default_factory=dict)

    def rating(self, name: str) -> float:
        return float(self.ratings.get(name, math.nan))


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is: its modalities, label conventions and how to read / synthesise it."""

    name: str
    title: str
    modalities: tuple[str, ...]
    feature_sets: tuple[str, ...]
    rating_scale: tuple[float, float] | None
    native_classes: tuple[str, ...] | None
    n_sessions: int
    layout: str
    reader: Callable[..., Iterator[Recording]]
    writer: Callable[..., dict]


def flat_channels(stream: Stream) -> list[int]:
    """Indices of the channels of ``stream`` whose values are constant over the whole recording
    (range 0 over the valid samples; samples flagged invalid are left out)."""
    data = stream.data if stream.valid is None else stream.data[:, stream.valid]
    if data.shape[-1] < 2:
        return []
    return [int(i) for i in np.flatnonzero(np.ptp(data, axis=1) == 0)]


def check_nan_policy(nan_policy: str) -> None:
    if nan_policy not in NAN_POLICIES:
        raise ConfigError("nan_policy", f"got {nan_policy!r}; allowed: {', '.join(NAN_POLICIES)}")


def require_dir(path: Path, what: str, expected: str) -> Path:
    """Return ``path`` if it is a folder, else raise naming what should have been there."""
    if not path.is_dir():
        raise DatasetFormatError(path, f"{what} folder not found", expected)
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DatasetFormatError(path, f"{what} not found")
    return path


def resolve_root(root: str | Path, markers: Sequence[str], dataset: str) -> Path:
    """Find the dataset's top folder: ``root`` itself, its parent, or a child holding a marker.

    ``markers`` are names (files or folders) that the top folder must contain. The inner folder
    (for example DEAP's ``data_preprocessed_python``) is accepted when that is unambiguous.
    """
    root = Path(root).expanduser()
    if root.is_file():
        root = root.parent
    if not root.exists():
        raise DatasetFormatError(
            root, f"{dataset} root does not exist", f"a folder holding {' or '.join(markers)}"
        )
    for candidate in (root, root.parent, *sorted(p for p in root.iterdir() if p.is_dir())):
        if any((candidate / marker).exists() for marker in markers):
            return candidate
    if root.name in markers:
        return root.parent
    raise DatasetFormatError(
        root, f"not a {dataset} folder", f"a folder holding {' or '.join(markers)}"
    )


# What scipy.io.loadmat raises on a damaged or foreign file.
MAT_READ_ERRORS = (MatReadError, ValueError, TypeError, LookupError, OSError, EOFError,
                   zlib.error, NotImplementedError)


def load_mat(path: Path, variable_names: Sequence[str] | None = None,
             expected: str = "a MATLAB v5 file") -> dict[str, np.ndarray]:
    """Load a MATLAB v5 file (optionally only some variables), without scipy's ``__`` keys.

    A damaged file raises :class:`DatasetFormatError` naming it.
    """
    try:
        content = scipy.io.loadmat(path, variable_names=variable_names)
    except MAT_READ_ERRORS as exc:
        raise DatasetFormatError(path, f"cannot read the MATLAB file ({type(exc).__name__}: "
                                 f"{exc}); the file is truncated or not a MATLAB v5 file",
                                 expected) from exc
    return {k: v for k, v in content.items() if not k.startswith("__")}


def check_array(
    array: np.ndarray,
    path: str | Path,
    key: str,
    ndim: int | None = None,
    shape: Sequence[int | None] | None = None,
) -> np.ndarray:
    """Check dimensionality / shape of an array read from ``path[key]``; name both on failure.

    ``shape`` entries that are ``None`` match any length.
    """
    array = np.asarray(array)
    if ndim is not None and array.ndim != ndim:
        raise DatasetFormatError(
            path, f"key '{key}' has shape {array.shape}", f"{ndim} dimensions"
        )
    if shape is not None:
        ok = array.ndim == len(shape) and all(
            want is None or want == got for want, got in zip(shape, array.shape, strict=False)
        )
        if not ok:
            wanted = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
            raise DatasetFormatError(path, f"key '{key}' has shape {array.shape}", wanted)
    if not np.issubdtype(array.dtype, np.number):
        raise DatasetFormatError(path, f"key '{key}' has dtype {array.dtype}", "a numeric array")
    return array


def has_nan(array: np.ndarray) -> bool:
    return bool(np.isnan(array).any()) if np.issubdtype(array.dtype, np.floating) else False


def _nan_error(path: str | Path, key: str, modality: str, count: int, unit: str) -> None:
    raise DatasetFormatError(
        path, f"key '{key}' ({modality}) holds {count} non-finite {unit}",
        "finite values; the default nan_policy=mark_missing marks the affected windows missing "
        "(--set data.nan_policy=mark_missing), nan_policy=interpolate fills short gaps")


def _gap_runs(bad: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the runs of True in a 1-D boolean array."""
    edges = np.diff(np.r_[0, bad.astype(np.int8), 0])
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def _short_gaps(bad: np.ndarray, longest: int) -> np.ndarray:
    """The positions of ``bad`` that lie in runs of at most ``longest`` with a good neighbour
    on both sides (gaps at the edges are not interpolated)."""
    short = np.zeros_like(bad)
    for start, stop in _gap_runs(bad):
        if stop - start <= longest and start > 0 and stop < len(bad):
            short[start:stop] = True
    return short


def _fill_linear(data: np.ndarray, bad: np.ndarray, axis: int) -> np.ndarray:
    """``data`` with the positions ``bad`` (along ``axis``) replaced by linear interpolation
    between the nearest good ones (constant beyond the first / last good position)."""
    moved = np.moveaxis(np.array(data, dtype=np.float64), axis, 0)
    flat = moved.reshape(len(moved), -1)
    good = np.flatnonzero(~bad)
    where = np.flatnonzero(bad)
    for column in range(flat.shape[1]):
        flat[where, column] = np.interp(where, good, flat[good, column])
    return np.moveaxis(flat.reshape(moved.shape), 0, axis)


def _count_bad(rec: Recording, modality: str, bad: np.ndarray, path: str | Path, key: str,
               nan_policy: str, unit: str) -> dict[str, int] | None:
    """Raise (``nan_policy="raise"``) or count the bad positions in ``rec.nonfinite``; None
    when none is good (the modality is then missing for the trial)."""
    if nan_policy == "raise":
        _nan_error(path, key, modality, int(bad.sum()), unit)
    counts = {"nonfinite": int(bad.sum()), "interpolated": 0}
    rec.nonfinite[modality] = counts
    if bad.all():
        rec.missing.add(modality)
        return None
    return counts


def add_stream(rec: Recording, modality: str, stream: Stream, path: str | Path, key: str,
               nan_policy: str) -> None:
    """Add ``stream`` to ``rec`` under ``modality``, handling non-finite samples by policy.

    A sample is bad when any channel of it is NaN / Inf. ``mark_missing`` (default) keeps the
    good samples and flags the bad ones in ``stream.valid`` (their values are interpolated from
    their neighbours so that filters see no jump; every window that touches a flagged sample is
    marked missing later, never averaged in); ``interpolate`` additionally accepts gaps of at
    most :data:`MAX_GAP_S` between good samples as valid; ``raise`` stops with an error naming
    the file and key. A stream without a single good sample marks the modality missing.
    """
    bad = ~np.isfinite(stream.data).all(axis=0)
    if not bad.any():
        rec.streams[modality] = stream
        return
    counts = _count_bad(rec, modality, bad, path, key, nan_policy, "samples")
    if counts is None:
        return
    data = _fill_linear(stream.data, bad, axis=1)
    if nan_policy == "interpolate":
        short = _short_gaps(bad, int(round(MAX_GAP_S * stream.sfreq)))
        counts["interpolated"] = int(short.sum())
        bad &= ~short
    valid = ~bad if stream.valid is None else stream.valid & ~bad
    rec.streams[modality] = Stream(data, stream.sfreq, stream.ch_names, stream.onset_s, valid,
                                   stream.units)


def add_features(rec: Recording, modality: str, feats: Features, path: str | Path, key: str,
                 nan_policy: str) -> None:
    """Add a released feature set to ``rec``, handling non-finite windows by policy.

    A window is bad when any of its values is NaN / Inf. ``mark_missing`` (default) keeps such
    windows as NaN, so that the data preset marks exactly those windows missing;
    ``interpolate`` fills runs of at most :data:`MAX_GAP_WINDOWS` bad windows between good ones
    linearly along the window axis (longer runs stay missing); ``raise`` stops with an error. A
    feature set without a single good window marks the modality missing.
    """
    bad = ~np.isfinite(feats.data.reshape(feats.n_windows, -1)).all(axis=1)
    if not bad.any():
        rec.features[modality] = feats
        return
    counts = _count_bad(rec, modality, bad, path, key, nan_policy, "windows")
    if counts is None:
        return
    data = np.where(np.isfinite(feats.data), feats.data, np.nan)
    if nan_policy == "interpolate":
        short = _short_gaps(bad, MAX_GAP_WINDOWS)
        if short.any():
            filled = _fill_linear(data, bad, axis=0)
            data[short] = filled[short]
        counts["interpolated"] = int(short.sum())
    rec.features[modality] = Features(data, feats.window_s, feats.axes, feats.feature_names)


def check_recording(recording: Recording, spec: DatasetSpec) -> None:
    """Conformance check every reader's output passes (used by the reader tests).

    Raises ``AssertionError`` with a description of the first violation.
    """
    where = f"{spec.name} subject {recording.subject} session {recording.session} trial " \
        f"{recording.trial}"
    assert recording.dataset == spec.name, where
    if recording.skipped:       # identifiers may be unknown (0) for a trial without data
        assert not recording.streams and not recording.features, f"{where}: skipped with data"
        return
    assert recording.subject >= 1 and recording.session >= 1 and recording.trial >= 1, where
    assert 1 <= recording.session <= spec.n_sessions, where
    assert recording.stimulus, f"{where}: empty stimulus id"
    known = set(spec.modalities) | set(spec.feature_sets)
    for name, stream in recording.streams.items():
        assert name in spec.modalities, f"{where}: unknown modality {name}"
        assert stream.data.ndim == 2, f"{where}: {name} is not (channels, time)"
        assert stream.data.dtype in (np.float32, np.float64), f"{where}: {name} dtype"
        assert len(stream.ch_names) == stream.data.shape[0], f"{where}: {name} channel names"
        assert stream.sfreq > 0 and stream.onset_s >= 0, f"{where}: {name} sfreq / onset"
        assert stream.onset_s * stream.sfreq < stream.n_times, f"{where}: {name} no stimulus"
        if stream.valid is not None:
            assert stream.valid.shape == (stream.n_times,), f"{where}: {name} mask shape"
            assert stream.valid.dtype == bool, f"{where}: {name} mask dtype"
        assert np.isfinite(stream.data).all(), f"{where}: {name} has non-finite values"
    for name, feats in recording.features.items():
        assert name in spec.feature_sets, f"{where}: unknown feature set {name}"
        assert feats.data.ndim == len(feats.axes), f"{where}: {name} axes"
        assert feats.axes[0] == "window" and feats.window_s > 0, f"{where}: {name} windows"
        finite = np.isfinite(feats.data.reshape(feats.n_windows, -1)).all(axis=1)
        assert finite.any(), f"{where}: {name} has no finite window (should be missing)"
        assert name in recording.nonfinite or finite.all(), f"{where}: {name} NaN not counted"
    assert not (recording.missing & (set(recording.streams) | set(recording.features))), (
        f"{where}: a modality is both present and missing"
    )
    assert recording.missing <= known, f"{where}: unknown missing modality"
    if spec.rating_scale is not None:
        low, high = spec.rating_scale
        for name in ("valence", "arousal"):
            value = recording.rating(name)
            assert low <= value <= high, f"{where}: {name} rating {value} outside {low}-{high}"
    if spec.native_classes is not None:
        assert recording.native_label is not None, f"{where}: no native label"
        assert 0 <= recording.native_label < len(spec.native_classes), f"{where}: native label"
