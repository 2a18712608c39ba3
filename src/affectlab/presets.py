"""Data presets: how recordings become a :class:`~affectlab.data.WindowSet`.

A preset is a *plan*: for every output modality, a *form* (how to compute it per window) and a
source modality of the recordings, plus the window grid (length, stride) and the signal
preprocessing. Presets are named after the papers whose preprocessing they follow; options
can be overridden (``--set data.window_s=2``).

The first output of a plan defines the window grid of a trial: its stimulus part (after the
pre-stimulus baseline) cut into windows of ``window_s`` with ``stride_s``, or the windows of a
released feature set. Other outputs are computed on the same grid; where a source modality is
missing for a trial, or a face window holds no valid frame, the values are NaN and the
window's ``avail_<modality>`` flag is False (never zero-filled).

Forms
-----
``de`` / ``psd``     EEG-like stream -> ``(channel, band)`` differential entropy / log Welch PSD
``released``         a released feature set (SEED DE, SEED-IV eye features, ...) as it is
``raw``              the windowed signal ``(channel, samples)``
``stats``            peripheral statistics, several modalities concatenated -> ``(features,)``
``face``             masked mean of face frames per window -> ``(features,)``
``face_series``      face frames averaged on a ``step_s`` grid inside each window ->
                     ``(steps, features)`` (CLMER's serialization)
``series``           a stream resampled and cut into the window -> ``(samples, channels)``
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from affectlab import cache as cache_files
from affectlab import features as feat
from affectlab import signal as sig
from affectlab.cache import read_scope
from affectlab.data import WindowSet, concat_meta
from affectlab.datasets import DATASET_NAMES, get_spec, iter_recordings
from affectlab.datasets.base import (
    DEFAULT_NAN_POLICY,
    NAN_POLICIES,
    RATING_NAMES,
    Recording,
    Stream,
)
from affectlab.datasets.channels import DEAP_EEG
from affectlab.errors import (
    AffectlabError,
    ConfigError,
    DatasetFormatError,
    UnknownNameError,
    config_error,
)

log = logging.getLogger("affectlab.presets")
CACHE_VERSION = 4          # 3: ratings off the dataset scale marked missing; 4: flat channels
                           # marked missing, recordings unlisted in metadata counted
SEED_FAMILY = ("seed", "seed_iv", "seed_v")
FACE_DATASETS = ("deap", "amigos", "mahnob")


@dataclass(frozen=True)
class Preset:
    """A named data preset: ``plan(dataset, options) -> (outputs, grid options)``."""

    name: str
    summary: str
    datasets: tuple[str, ...]
    defaults: dict[str, Any]
    plan: Callable[[str, dict[str, Any]], dict[str, dict[str, Any]]]


# --------------------------------------------------------------------------- plans

def _eeg_de_plan(dataset: str, opts: dict) -> dict[str, dict[str, Any]]:
    """EEG DE: the released smoothed features in the SEED family, computed from raw elsewhere."""
    if dataset in SEED_FAMILY and opts["eeg_source"] == "released":
        return {"eeg": {"form": "released", "source": opts["released_eeg"]}}
    return {"eeg": {"form": "de", "source": "eeg", "bands": opts["bands"]}}


def _eye_plan(dataset: str) -> dict[str, dict[str, Any]]:
    return {"eye": {"form": "released", "source": "eye"}} if dataset in SEED_FAMILY else {}


def _complete_eye_plan(dataset: str) -> dict[str, dict[str, Any]]:
    """Eye features where every subject of the release has them (SEED-IV, SEED-V; SEED's
    release holds none)."""
    return _eye_plan(dataset) if dataset in ("seed_iv", "seed_v") else {}


def _peripheral_plan(dataset: str) -> dict[str, dict[str, Any]]:
    sources = {
        "deap": ("eog", "emg", "gsr", "resp", "ppg", "temp"),
        "dreamer": ("ecg",), "amigos": ("ecg", "gsr"), "mahnob": ("ecg", "gsr", "resp", "temp"),
    }.get(dataset)
    return {"pps": {"form": "stats", "sources": list(sources)}} if sources else {}


def _face_plan(dataset: str) -> dict[str, dict[str, Any]]:
    return {"face_au": {"form": "face", "source": "face_au"}} if dataset in FACE_DATASETS else {}


def plan_default(dataset: str, opts: dict) -> dict[str, dict[str, Any]]:
    """The modalities every subject of the release has: EEG DE, eye features (SEED-IV,
    SEED-V), peripheral statistics. Faces (DEAP: 22 of 32 subjects) and SEED's eye data (not in
    the release) are left to the ``all`` preset, so that a default run keeps every subject."""
    return {**_eeg_de_plan(dataset, opts), **_complete_eye_plan(dataset),
            **_peripheral_plan(dataset)}


def plan_all(dataset: str, opts: dict) -> dict[str, dict[str, Any]]:
    """Every modality the dataset can have, including those only some subjects have (faces,
    SEED eye data); windows without them are marked missing."""
    return {**_eeg_de_plan(dataset, opts), **_eye_plan(dataset),
            **_peripheral_plan(dataset), **_face_plan(dataset)}


def plan_uf_ama(dataset: str, opts: dict) -> dict[str, dict[str, Any]]:
    return {**_eeg_de_plan(dataset, opts), **_eye_plan(dataset)}


def plan_m2s(dataset: str, opts: dict) -> dict[str, dict[str, Any]]:
    """M2S: EEG DE + the second modality (EYE for the SEED family, PPS 48 for DEAP, ECG 10)."""
    if dataset == "deap":
        return {"eeg": {"form": "de", "source": "eeg", "bands": dict(feat.FOUR_BANDS)},
                "pps": {"form": "stats", "sources": ["eog", "emg", "gsr", "resp", "ppg",
                                                     "temp"], "kind": "plain"}}
    if dataset == "dreamer":
        return {"eeg": {"form": "de", "source": "eeg", "bands": opts["bands"]},
                "ecg": {"form": "stats", "sources": ["ecg"]}}
    return plan_uf_ama(dataset, opts)


def plan_dhcm_cacl(dataset: str, opts: dict) -> dict[str, dict[str, Any]]:
    """DHCM-CACL: EEG log-PSD in 5 bands per 3 s window + 17 AU means per window."""
    return {"eeg": {"form": "psd", "source": "eeg", "bands": opts["bands"],
                    "channels": DEAP_EEG},
            "face_au": {"form": "face", "source": "face_au"}}


def plan_me_mhacl(dataset: str, opts: dict) -> dict[str, dict[str, Any]]:
    """ME-MHACL: raw 1 s windows of EEG 32 + GSR + respiration + temperature (+ EOG and the
    plethysmograph on DEAP).

    ``eeg_channels``: EEG channel names to keep (default: the 32 of DEAP / MAHNOB-HCI).
    """
    plan = {"eeg": {"form": "raw", "source": "eeg",
                    "channels": list(opts.get("eeg_channels") or DEAP_EEG)},
            "gsr": {"form": "raw", "source": "gsr",
                    "channels": ["GSR1"] if dataset == "mahnob" else None},
            "resp": {"form": "raw", "source": "resp"},
            "temp": {"form": "raw", "source": "temp"}}
    if dataset == "deap":
        plan["eog"] = {"form": "raw", "source": "eog"}
        plan["ppg"] = {"form": "raw", "source": "ppg"}   # Table III's 36th channel (paper)
    return plan


SLOW_SIGNALS = ("gsr", "resp", "temp")


def plan_clmer(dataset: str, opts: dict) -> dict[str, dict[str, Any]]:
    """CLMER: physiology as a 128 Hz series + the face serialized at 1 s.

    Every recorded physiological channel is kept, as in the paper (DEAP: 32 EEG + 2 EOG + 2 EMG
    + GSR + respiration + plethysmograph + temperature = its "40 channels"; AMIGOS: 14 EEG +
    2 ECG + GSR = its "17 channels"); the face gives 68 3-D landmarks, 17 AU intensities and gaze.
    EEG and the other fast signals (EOG, EMG, ECG, PPG) are band-passed at ``bandpass`` (the
    paper's 4-45 Hz); the slow ones (GSR, respiration, temperature: their content lies below
    4 Hz, so that band would leave only noise) get ``slow_bandpass`` (default ``None``: only
    resampled and baseline-corrected).
    """
    plan: dict[str, dict[str, Any]] = {
        "eeg": {"form": "series", "source": "eeg"},
    }
    for name in ("eog", "emg", "gsr", "ecg", "ppg", "resp", "temp"):
        if name in get_spec(dataset).modalities:
            plan[name] = {"form": "series", "source": name}
            if name in SLOW_SIGNALS:
                plan[name]["bandpass"] = opts["slow_bandpass"]
    for name in ("face_landmarks", "face_au", "gaze"):
        plan[name] = {"form": "face_series", "source": name}
    return plan


def plan_raw(dataset: str, opts: dict) -> dict[str, dict[str, Any]]:
    spec = get_spec(dataset)
    streams = [m for m in spec.modalities if not m.startswith(("face", "gaze"))]
    return {m: {"form": "raw", "source": m} for m in streams}


# --------------------------------------------------------------------------- option schema

Finite = Annotated[float, Field(allow_inf_nan=False)]
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]


def _band(edges: tuple[float, float]) -> tuple[float, float]:
    if not 0 <= edges[0] < edges[1]:
        raise ValueError(f"a band is [low, high] Hz with 0 <= low < high, got {list(edges)}")
    return edges


def _passband(edges: tuple[float | None, float | None]) -> tuple[float | None, float | None]:
    low, high = edges
    if any(edge is not None and edge <= 0 for edge in edges) or (
            low is not None and high is not None and low >= high):
        raise ValueError(f"a pass band is [low, high] Hz with 0 < low < high (either may be "
                         f"null), got {list(edges)}")
    return edges


Band = Annotated[tuple[Finite, Finite], AfterValidator(_band)]
Passband = Annotated[tuple[Finite | None, Finite | None], AfterValidator(_passband)]
Folder = Annotated[str, BeforeValidator(lambda v: os.fspath(v) if isinstance(v, os.PathLike)
                                        else v)]


class DataOptions(BaseModel):
    """Every data option a preset may take (``--set data.<option>=value``), with its type and
    range. A preset's ``defaults`` say which of them it takes; the preset-specific ones
    (``eeg_channels``, ``slow_bandpass``) default to None here."""

    model_config = ConfigDict(extra="forbid")
    window_s: Seconds | None = Field(description="window length in s (default 1; 4 on SEED-IV "
                                     "and SEED-V)")
    stride_s: Seconds | None = Field(description="window step in s (default: window_s)")
    bands: dict[str, Band] = Field(min_length=1, description="EEG bands: name -> [low, high] Hz")
    baseline: Literal["mean", "template", "none"]
    bandpass: Passband | None = Field(description="[low, high] Hz band-pass of the signals")
    resample: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        description="sampling rate (Hz) the signals are resampled to")
    eeg_source: Literal["released", "raw"]
    released_eeg: str = Field(min_length=1, description="released EEG feature set (SEED "
                              "family), e.g. de_LDS, de_movingAve")
    nan_policy: Literal[NAN_POLICIES]  # type: ignore[valid-type]
    face_dir: Folder | None
    psd_log: bool
    face_step_s: Seconds
    subjects: list[Annotated[int, Field(ge=1)]] | None = Field(
        min_length=1, description="subject numbers to read, e.g. [1, 2] (default: all)")
    long_videos: bool = Field(description="AMIGOS: also read the long-video cells (17-20)")
    eeg_channels: list[str] | None = Field(None, min_length=1)
    slow_bandpass: Passband | None = None


def validate_data_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` checked against :class:`DataOptions` (types and ranges) and returned with
    their validated values; errors name ``data.<option>``, the value and what is allowed."""
    try:
        checked = DataOptions.model_validate(options)
    except ValidationError as exc:
        raise config_error(exc.errors(), "data", DataOptions) from None
    return checked.model_dump(include=set(options))


_COMMON = {"window_s": None, "stride_s": None, "bands": dict(feat.DEFAULT_BANDS),
           "baseline": "mean", "bandpass": None, "resample": None, "eeg_source": "released",
           "released_eeg": "de_LDS", "nan_policy": DEFAULT_NAN_POLICY, "face_dir": None,
           "psd_log": True, "face_step_s": 1.0, "subjects": None, "long_videos": False}

PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("default", "the modalities every subject has: EEG DE per window (released "
           "SEED-family features), eye features (SEED-IV, SEED-V), peripheral statistics",
           DATASET_NAMES, dict(_COMMON), plan_default),
    Preset("all", "default + the modalities only some subjects have (AU means of face CSVs, "
           "SEED eye features); windows without them are marked missing", DATASET_NAMES,
           dict(_COMMON), plan_all),
    Preset("uf_ama", "EEG DE 62x5 (released de_LDS) + eye features (UF-AMA)", SEED_FAMILY,
           dict(_COMMON), plan_uf_ama),
    Preset("m2s", "EEG DE + second modality: EYE (SEED family), PPS 48 (DEAP), ECG 10 "
           "(DREAMER) (M2S)", (*SEED_FAMILY, "deap", "dreamer"), dict(_COMMON), plan_m2s),
    Preset("dhcm_cacl", "EEG log-PSD 5 bands per 3 s window + 17 AU means (DHCM-CACL)",
           ("deap", "mahnob"), {**_COMMON, "window_s": 3.0}, plan_dhcm_cacl),
    Preset("me_mhacl", "raw 1 s windows, EEG 32 + GSR + Resp + Temp (+EOG, PPG on DEAP), "
           "baseline template subtracted (ME-MHACL)", ("deap", "mahnob"),
           {**_COMMON, "window_s": 1.0, "baseline": "template", "eeg_channels": None},
           plan_me_mhacl),
    Preset("clmer", "all physiological channels resampled to 128 Hz, fast ones band-passed "
           "4-45 Hz (GSR, resp, temp not), face serialized at 1 s (landmarks, AUs, gaze), 5 s "
           "windows (CLMER)",
           ("deap", "amigos", "mahnob"),
           {**_COMMON, "window_s": 5.0, "stride_s": 5.0, "resample": 128.0,
            "bandpass": [4.0, 45.0], "slow_bandpass": None}, plan_clmer),
    Preset("raw", "raw windows of every continuous modality", DATASET_NAMES, dict(_COMMON),
           plan_raw),
]}

DEFAULT_WINDOW_S = {"seed_iv": 4.0, "seed_v": 4.0}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UnknownNameError("preset", name, PRESETS)
    return PRESETS[name]


def resolve_options(preset: Preset, dataset: str, overrides: dict[str, Any] | None) -> dict:
    """Preset defaults <- overrides, with unknown options rejected by name."""
    opts = copy.deepcopy(preset.defaults)
    for key, value in (overrides or {}).items():
        if key not in opts:
            raise ConfigError(f"data.{key}", f"unknown data option; valid: {', '.join(opts)}")
        opts[key] = value
    opts = validate_data_options(opts)
    if opts["long_videos"] and dataset != "amigos":
        raise ConfigError("data.long_videos", f"got true for {dataset}; only AMIGOS has long "
                                              "videos")
    if opts["window_s"] is None:
        opts["window_s"] = DEFAULT_WINDOW_S.get(dataset, 1.0)
    if opts["stride_s"] is None:
        opts["stride_s"] = opts["window_s"]
    return opts


def check_data_options(dataset: str, preset: str,
                       options: dict[str, Any] | None) -> dict[str, Any]:
    """The resolved options of ``preset`` on ``dataset``; an unknown dataset or preset, a preset
    that does not support the dataset, or a bad option raises here, before any file is read."""
    spec = get_spec(dataset)
    chosen = get_preset(preset)
    if spec.name not in chosen.datasets:
        raise ConfigError("preset", f"preset '{preset}' does not support {spec.name}; it "
                                    f"supports {', '.join(chosen.datasets)}")
    return resolve_options(chosen, spec.name, options)


# --------------------------------------------------------------------------- computing forms

class _Grid:
    """Window start times (s, stimulus clock) and length of one trial."""

    def __init__(self, starts: np.ndarray, window_s: float):
        self.starts, self.window_s = starts, window_s

    def __len__(self) -> int:
        return len(self.starts)


def _prepared_stimulus(stream: Stream, opts: dict, form: dict) -> tuple[np.ndarray, float]:
    """Channel selection, resampling, band-pass, baseline removal -> stimulus part, sfreq."""
    data = stream.data
    if form.get("channels"):
        data = data[sig.select_channels(stream.ch_names, form["channels"], "channels")]
    sfreq = stream.sfreq
    if opts["resample"]:
        data, sfreq = sig.resample(data, sfreq, opts["resample"]), float(opts["resample"])
    band = form["bandpass"] if "bandpass" in form else opts["bandpass"]
    if band:
        low, high = band
        data = sig.bandpass(data, sfreq, low, high)
    return sig.remove_baseline(data, sfreq, stream.onset_s, opts["baseline"],
                               segment_s=opts["window_s"]), sfreq


def _stream_windows(stream: Stream, grid: _Grid, opts: dict, form: dict) -> np.ndarray:
    """``(n_windows, channels, samples)`` of the stimulus part on the grid."""
    data, sfreq = _prepared_stimulus(stream, opts, form)
    length = _samples("window_s", grid.window_s, sfreq)
    starts = np.round(grid.starts * sfreq).astype(int)
    if len(starts) and starts[-1] + length > data.shape[-1]:
        raise DatasetFormatError("(recording)", "stream shorter than the window grid")
    idx = starts[:, None] + np.arange(length)[None, :]
    return np.ascontiguousarray(np.moveaxis(data[:, idx], 1, 0))


def _samples(option: str, seconds: float, sfreq: float) -> int:
    """``seconds`` in samples at ``sfreq``; less than one sample is refused, naming the option."""
    count = int(round(seconds * sfreq))
    if count < 1:
        raise ConfigError(f"data.{option}", f"got {seconds}; less than one sample at "
                                            f"{sfreq:g} Hz (allowed: at least {1 / sfreq:g} s)")
    return count


def _grid_for(rec: Recording, first: dict, opts: dict) -> _Grid:
    if first["form"] == "released":
        feats = rec.features[first["source"]]
        return _Grid(np.arange(feats.n_windows) * feats.window_s, feats.window_s)
    sources = first.get("sources") or [first["source"]]
    stream = rec.streams[sources[0]]
    n_samples = stream.n_times - int(round(stream.onset_s * stream.sfreq))
    for option in ("window_s", "stride_s"):
        _samples(option, opts[option], stream.sfreq)
    count = sig.n_windows(n_samples, stream.sfreq, opts["window_s"], opts["stride_s"])
    return _Grid(np.arange(count) * opts["stride_s"], opts["window_s"])


def _compute(rec: Recording, form: dict, grid: _Grid, opts: dict) -> np.ndarray | None:
    """The form's ``(n_windows, ...)`` array, or None when its source is missing.

    Windows that touch a sample a reader flagged invalid (``Stream.valid``: non-finite in the
    file) are NaN, so that they are marked missing; so are the values of a channel that is
    flat over the whole recording (``Recording.flat_channels``: the channel's entries of a
    ``de`` / ``psd`` / ``raw`` / ``series`` form, the source's block of a ``stats`` form). Face
    forms average the valid frames only.
    """
    kind = form["form"]
    if kind == "released":
        feats = rec.features.get(form["source"])
        if feats is None:
            return None
        if feats.n_windows < len(grid):
            raise DatasetFormatError(rec.source, f"feature set {form['source']} has "
                                     f"{feats.n_windows} windows, grid {len(grid)}")
        return feats.data[: len(grid)]
    if kind in ("face", "face_series"):
        return _face_form(rec, form, grid, opts)
    sources = form["sources"] if kind == "stats" else [form["source"]]
    if any(name not in rec.streams for name in sources):
        return None
    values = []
    for name in sources:
        stream = rec.streams[name]
        windows = _stream_windows(stream, grid, opts, form)
        sfreq = opts["resample"] or stream.sfreq
        if kind == "stats":
            windows = feat.peripheral_features(
                windows, sfreq, "plain" if form.get("kind") == "plain" else name)
        else:
            windows = _stream_form(kind, windows, sfreq, form, opts)
        values.append(_flat_missing(windows, rec.flat_channels.get(name), stream, form))
    out = np.concatenate(values, axis=1) if kind == "stats" else values[0]
    bad = np.zeros(len(grid), bool)
    for name in sources:
        bad |= ~_valid_windows(rec.streams[name], grid)
    if bad.any():
        out = out.astype(np.float64, copy=True)
        out[bad] = np.nan
    return out


def _flat_missing(values: np.ndarray, flat: list[str] | None, stream: Stream,
                  form: dict) -> np.ndarray:
    """``values`` (one source's windows of a form) with the flat channels' entries NaN."""
    if not flat:
        return values
    values = values.astype(np.float64, copy=True)
    if form["form"] == "stats":
        values[:] = np.nan                  # statistics mix the source's channels
        return values
    picked = [stream.ch_names[i]
              for i in sig.select_channels(stream.ch_names, form.get("channels") or None)]
    where = [k for k, name in enumerate(picked) if name in flat]
    if form["form"] == "series":            # (windows, samples, channels)
        values[:, :, where] = np.nan
    else:                                   # (windows, channels, ...)
        values[:, where] = np.nan
    return values


def _stream_form(kind: str, windows: np.ndarray, sfreq: float, form: dict,
                 opts: dict) -> np.ndarray:
    """A stream form from ``(n_windows, channels, samples)`` windows."""
    if kind == "raw":
        return windows
    if kind == "series":
        return np.ascontiguousarray(np.swapaxes(windows, 1, 2))
    if kind == "de":
        return feat.differential_entropy(windows, sfreq, form["bands"])
    if kind == "psd":
        psd = feat.band_psd(windows, sfreq, form["bands"])
        return np.log(psd + 1e-12) if opts["psd_log"] else psd
    raise ConfigError("form", f"unknown form {kind!r}")


def _valid_windows(stream: Stream, grid: _Grid) -> np.ndarray:
    """``(n_windows,)``: True where the window holds no sample flagged invalid."""
    if stream.valid is None or stream.valid.all():
        return np.ones(len(grid), bool)
    onset = int(round(stream.onset_s * stream.sfreq))
    invalid = np.r_[0, np.cumsum(~stream.valid[onset:])]
    starts = np.round(grid.starts * stream.sfreq).astype(int)
    stops = np.minimum(starts + int(round(grid.window_s * stream.sfreq)), len(invalid) - 1)
    return invalid[stops] - invalid[starts] == 0


def _face_form(rec: Recording, form: dict, grid: _Grid, opts: dict) -> np.ndarray | None:
    """AU / landmark / gaze means per window (``face``) or per step (``face_series``)."""
    stream = rec.streams.get(form["source"])
    if stream is None:
        return None
    times = np.arange(stream.n_times) / stream.sfreq - stream.onset_s
    if form["form"] == "face":
        means, ok = feat.masked_window_mean(stream.data, stream.valid, times, grid.starts,
                                            grid.window_s)
        return np.where(ok[:, None], means, np.nan)
    step = opts["face_step_s"]
    n_steps = int(round(grid.window_s / step))
    starts = (grid.starts[:, None] + step * np.arange(n_steps)[None, :]).reshape(-1)
    means, ok = feat.masked_window_mean(stream.data, stream.valid, times, starts, step)
    series = means.reshape(len(grid), n_steps, -1)
    return _fill_series_gaps(series, ok.reshape(len(grid), n_steps))


def _fill_series_gaps(series: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Inside a window, steps without a valid frame take the nearest valid step's value.

    A window with no valid step at all stays NaN (and is flagged unavailable).
    """
    out = series.copy()
    for w in np.flatnonzero(ok.any(axis=1) & ~ok.all(axis=1)):
        good = np.flatnonzero(ok[w])
        nearest = good[np.abs(np.arange(ok.shape[1])[:, None] - good[None, :]).argmin(axis=1)]
        out[w] = series[w, nearest]
    return out


# --------------------------------------------------------------------------- building

def build_windowset(dataset: str, recordings: Iterable[Recording], preset: str = "default",
                    options: dict[str, Any] | None = None, progress: bool = False) -> WindowSet:
    """Turn recordings into a WindowSet following a preset (no caching).

    Where a modality's source is absent from a trial, its windows are NaN with
    ``avail_<modality>`` False; a modality absent from every recording is left out of the
    WindowSet (with a warning; ``description["absent_modalities"]`` names it). Every loss is
    counted in ``description["missing"]`` (per modality: trials and windows where the source
    is absent, windows with non-finite or untracked values) and
    ``description["trials_without_windows"]`` (trials that produce no window, by reason);
    what the readers flagged is counted too: ``invalid_ratings`` (trials per rating off the
    scale), ``flat_channels`` (per modality: trials with a channel constant over the whole
    recording, their windows, trials per channel; the channel's values are NaN, so those
    windows of a modality computed from it are marked missing) and ``unlisted`` (per metadata
    file: the subjects and trials it does not list, and what that costs).
    """
    opts = check_data_options(dataset, preset, options)
    spec, chosen = get_spec(dataset), get_preset(preset)
    plan = chosen.plan(spec.name, opts)
    builder = _Builder(plan, opts)
    tracker = _progress(progress, f"{spec.name}/{preset}")
    for rec in recordings:
        builder.add(rec)
        tracker.advance()
    tracker.close()
    if builder.skipped:
        log.warning("%s: trials without windows: %s", spec.name, builder.skipped)
    if not builder.rows and builder.skipped and all(
            reason.startswith("shorter than") for reason in builder.skipped):
        raise ConfigError("data.window_s", f"got {opts['window_s']}; longer than the stimulus "
                                           f"part of every trial of {spec.name}")
    if not builder.rows:
        raise DatasetFormatError(spec.name, "no windows produced",
                                 "recordings with at least one whole window")
    tensors, absent = builder.tensors()
    if absent:
        log.warning("%s: modality %s is absent from every recording and left out", spec.name,
                    ", ".join(absent))
    meta = concat_meta(builder.rows)
    meta = meta.drop(columns=[f"avail_{name}" for name in absent])
    description = {"dataset": spec.name, "preset": preset, "options": opts,
                   "forms": {name: _describe(form) for name, form in plan.items()
                             if name not in absent},
                   "sampling_rates": builder.rates, "trials_without_windows": builder.skipped,
                   "invalid_ratings": builder.invalid_ratings,
                   "flat_channels": builder.flat_summary(), "unlisted": builder.unlisted,
                   "channels": builder.channels, "signal_rates": builder.signal_rates,
                   "missing": {name: counts for name, counts in builder.missing_counts().items()
                               if name not in absent},
                   "absent_modalities": absent, "cache_version": CACHE_VERSION}
    return WindowSet(tensors, meta, description)


class _Builder:
    """Collects the windows of one trial after another; NaN blocks for absent sources are
    shaped once the first trial holding the modality has been seen."""

    def __init__(self, plan: dict[str, dict], opts: dict):
        self.plan, self.opts = plan, opts
        self.parts: dict[str, list[np.ndarray | int]] = {name: [] for name in plan}
        self.rows: list[dict] = []
        self.rates: dict[str, float] = {}
        self.channels: dict[str, list[str]] = {}          # continuous modalities only
        self.signal_rates: dict[str, float] = {}
        self.skipped: dict[str, int] = {}
        self.absent_trials = dict.fromkeys(plan, 0)
        self.absent_windows = dict.fromkeys(plan, 0)
        self.invalid_windows = dict.fromkeys(plan, 0)
        self.invalid_ratings: dict[str, int] = {}     # trials per rating off the scale
        # per modality: trials with a flat channel, windows they hold, trials per channel
        self.flat: dict[str, dict[str, Any]] = {}
        # per metadata file: subjects and trials it does not list, and what that costs
        self.unlisted: dict[str, dict[str, Any]] = {}

    def add(self, rec: Recording) -> None:
        for key in rec.invalid_ratings:
            self.invalid_ratings[key] = self.invalid_ratings.get(key, 0) + 1
        for path, effect in rec.unlisted.items():
            entry = self.unlisted.setdefault(path, {"subjects": [], "trials": 0,
                                                    "effect": effect})
            entry["trials"] += 1
            if rec.subject not in entry["subjects"]:
                entry["subjects"] = sorted([*entry["subjects"], rec.subject])
        n_before = len(self.rows)
        reason = rec.skipped or self._add(rec)
        for modality, names in rec.flat_channels.items():
            entry = self.flat.setdefault(modality, {"trials": 0, "windows": 0, "channels": {}})
            entry["trials"] += 1
            entry["windows"] += len(self.rows) - n_before
            for name in names:
                entry["channels"][name] = entry["channels"].get(name, 0) + 1
        if reason:
            self.skipped[reason] = self.skipped.get(reason, 0) + 1
        for name, stream in rec.streams.items():
            self.rates.setdefault(name, float(stream.sfreq))
        for name, feats in rec.features.items():
            self.rates.setdefault(name, 1.0 / feats.window_s)

    def _add(self, rec: Recording) -> str:
        """Append a trial's windows; return "" or why the trial produced none."""
        first_name, first = next(iter(self.plan.items()))
        try:
            grid = _grid_for(rec, first, self.opts)
        except KeyError:
            return f"no {first_name}"       # the grid's modality is missing for this trial
        if len(grid) == 0:
            return f"shorter than one {self.opts['window_s']} s window"
        avail = {}
        for name, form in self.plan.items():
            values = _compute(rec, form, grid, self.opts)
            if values is None:
                self.parts[name].append(len(grid))          # shaped later
                self.absent_trials[name] += 1
                self.absent_windows[name] += len(grid)
                avail[name] = np.zeros(len(grid), bool)
                continue
            if form["form"] in ("raw", "series") and name not in self.channels:
                self._record_signal(name, rec.streams[form["source"]], form)
            ok = np.isfinite(values.reshape(len(grid), -1)).all(axis=1)
            self.invalid_windows[name] += int((~ok).sum())
            self.parts[name].append(values)
            avail[name] = ok
        for k, start in enumerate(grid.starts):
            row = {"subject": rec.subject, "session": rec.session, "trial": rec.trial,
                   "window": k, "onset_s": float(start), "stimulus": rec.stimulus,
                   **{r: rec.rating(r) for r in RATING_NAMES},
                   "native_label": -1 if rec.native_label is None else rec.native_label}
            row.update({f"avail_{name}": bool(avail[name][k]) for name in self.plan})
            self.rows.append(row)
        return ""

    def _record_signal(self, name: str, stream: Stream, form: dict) -> None:
        """Channel names and sampling rate of a continuous modality's windows."""
        picked = sig.select_channels(stream.ch_names, form.get("channels") or None)
        self.channels[name] = [stream.ch_names[i] for i in picked]
        self.signal_rates[name] = float(self.opts["resample"] or stream.sfreq)

    def tensors(self) -> tuple[dict[str, torch.Tensor], list[str]]:
        """Stacked float32 tensors, and the modalities absent from every trial."""
        tensors, absent = {}, []
        for name, parts in self.parts.items():
            shape = next((p.shape[1:] for p in parts if not isinstance(p, int)), None)
            if shape is None:
                absent.append(name)
                continue
            blocks = [np.full((p, *shape), np.nan) if isinstance(p, int) else p for p in parts]
            stacked = np.concatenate(blocks, axis=0).astype(np.float32)
            tensors[name] = torch.from_numpy(np.ascontiguousarray(stacked))
        return tensors, absent

    def flat_summary(self) -> dict[str, dict[str, Any]]:
        """``flat_channels`` of the description: per modality, the trials with a flat channel,
        their windows (of which the modality's are marked missing where the preset uses it)
        and the trials per channel."""
        return {name: dict(entry, channels=dict(sorted(entry["channels"].items())))
                for name, entry in sorted(self.flat.items())}

    def missing_counts(self) -> dict[str, dict[str, int]]:
        return {name: {"absent_trials": self.absent_trials[name],
                       "absent_windows": self.absent_windows[name],
                       "invalid_windows": self.invalid_windows[name]} for name in self.plan}


def _describe(form: dict) -> str:
    kind = form["form"]
    return {"de": "differential entropy (channel, band)", "psd": "log Welch PSD (channel, band)",
            "released": f"released features '{form.get('source')}'",
            "raw": "raw window (channel, samples)", "stats": "statistics (features,)",
            "face": "mean of valid frames (features,)",
            "face_series": "face serialized (steps, features)",
            "series": "signal series (samples, channels)"}[kind]


class _progress:
    """A rich progress line over recordings (counts; the total is unknown while streaming)."""

    def __init__(self, enabled: bool, label: str):
        self.bar = None
        if enabled:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                TextColumn("{task.completed} recordings"), TimeElapsedColumn(),
                                transient=True)
            self.bar.start()
            self.task = self.bar.add_task(f"preparing {label}", total=None)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


# --------------------------------------------------------------------------- cache

def default_cache_dir() -> Path:
    return Path(os.environ.get("AFFECTLAB_CACHE", Path.home() / ".cache" / "affectlab"))


def dataset_fingerprint(root: str | Path, dataset: str | None = None,
                        face_dir: str | Path | None = None,
                        exclude: Iterable[Path] = ()) -> str:
    """Hash of the state of every file ``dataset``'s reader can read for ``root``
    (:func:`affectlab.cache.read_scope`: the dataset's top folder as the reader resolves it,
    or the one file read, and ``face_dir``; without ``dataset``: everything under ``root``, or
    ``root`` itself if it is a file): per file its relative path, size, ``st_mtime_ns``,
    ``st_ctime_ns``, ``st_ino`` and a content sample (whole files up to 1 MiB, 8 blocks of
    16 KiB of larger ones; see :mod:`affectlab.cache`). The sample alone could miss an in-place
    change of an unsampled block with the same size and mtime; the change time cannot (any
    write sets it, ``os.utime`` cannot set it back). ``exclude``: folders left out (the cache
    folder, where it lies inside the dataset)."""
    scope = read_scope(dataset, root, face_dir) if dataset else {"data": Path(root)}
    return cache_files.fingerprint(cache_files.file_states(scope, exclude))


def _config_digest(dataset: str, preset: str, options: dict) -> str:
    """Hash of the preset, its options, the modality plan they give and the cache version."""
    plan = get_preset(preset).plan(dataset, options)
    payload = json.dumps({"dataset": dataset, "preset": preset, "options": options,
                          "plan": plan, "version": CACHE_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def _entry_key(config: str, files: str) -> str:
    return hashlib.sha256(f"{config}|{files}".encode()).hexdigest()[:16]


def cache_key(dataset: str, root: Path, preset: str, options: dict,
              cache_dir: str | Path | None = None) -> str:
    """Hash of the dataset's files (:func:`dataset_fingerprint`), the preset, its options and
    the modality plan they give (a changed plan, e.g. a modality added to a preset, builds a
    new entry). ``cache_dir``: left out of the files where it lies inside the dataset."""
    exclude = [Path(cache_dir)] if cache_dir is not None else []
    files = dataset_fingerprint(root, dataset, options.get("face_dir"), exclude)
    return _entry_key(_config_digest(dataset, preset, options), files)


@dataclass
class _Entry:
    """A cache entry as the files are now: its folder, what was fingerprinted and how."""

    folder: Path
    scope: dict[str, Path]
    states: dict[str, cache_files.FileState]
    config: str

    @property
    def exclude(self) -> list[Path]:
        return [self.folder.parent]


def _entry(dataset: str, root: Path, preset: str, opts: dict, cache: Path) -> _Entry:
    scope = read_scope(dataset, root, opts["face_dir"])
    states = cache_files.file_states(scope, [cache])
    config = _config_digest(dataset, preset, opts)
    key = _entry_key(config, cache_files.fingerprint(states))
    return _Entry(cache / f"{dataset}-{preset}-{key}", scope, states, config)


def _reader_options(spec, chosen: Preset, opts: dict) -> dict[str, Any]:
    """Reader keyword options: NaN policy, face folder, and whether raw signals are needed."""
    reader_opts: dict[str, Any] = {"nan_policy": opts["nan_policy"]}
    if opts["face_dir"]:
        reader_opts["face_dir"] = Path(opts["face_dir"])
    if opts["long_videos"]:
        reader_opts["long_videos"] = True
    if "raw" in inspect.signature(spec.reader).parameters:
        plan = chosen.plan(spec.name, opts)
        reader_opts["raw"] = any(form["form"] != "released" for form in plan.values())
    return reader_opts


def _cache_folder(cache_dir: str | Path | None) -> Path:
    """The cache folder, with the temporary folders of killed writers removed; a file in its
    place is refused (:class:`~affectlab.errors.CacheError`)."""
    cache = Path(cache_dir or default_cache_dir()).expanduser()
    cache_files.refuse_file(cache)
    for path in cache_files.remove_stale_temporaries(cache):
        log.info("removed %s, left by a writer that was killed", path)
    return cache


def prepare(dataset: str, root: str | Path, preset: str = "default",
            options: dict[str, Any] | None = None, cache_dir: str | Path | None = None,
            progress: bool = False, use_cache: bool = True) -> tuple[WindowSet, Path | None]:
    """Read, preprocess and cache a dataset; returns the WindowSet and its cache folder.

    The cache is keyed by the content of every file the dataset's reader can read (see
    :func:`dataset_fingerprint`: the dataset folder as the reader resolves ``root``, or the
    one file read, and the ``face_dir`` folder), the preset options and the modality plan, so a
    changed file, option or plan builds a new entry; the options are saved beside the tensors
    and a manifest of the files with full content hashes (``files.json``, rechecked by
    :func:`verify_cache`). An entry is written into a temporary folder and renamed into place
    once complete: of concurrent writers of one entry the first wins and the others discard
    their copy; temporary folders of killed writers are removed by the next prepare. A cache
    folder that is a file, cannot be written or fills up raises
    :class:`~affectlab.errors.CacheError` naming it (an existing entry is still read from a
    read-only folder). Returns a ``None`` folder when the files changed while being read.
    """
    opts = check_data_options(dataset, preset, options)
    spec, chosen = get_spec(dataset), get_preset(preset)
    root = Path(root)
    reader_opts = _reader_options(spec, chosen, opts)
    if not use_cache:
        recs = iter_recordings(spec.name, root, subjects=opts["subjects"], **reader_opts)
        return build_windowset(spec.name, recs, preset, opts, progress), None
    if not root.exists():
        iter_recordings(spec.name, root).__next__()  # raises the reader's own error
    cache = _cache_folder(cache_dir)
    entry = _entry(spec.name, root, preset, opts, cache)
    broken = False
    if (entry.folder / cache_files.MANIFEST).is_file():
        try:
            return WindowSet.load(entry.folder), entry.folder
        except AffectlabError as exc:
            log.warning("%s; rebuilding it", exc)
            broken = True
    cache_files.ensure_writable(cache)              # before any data is read
    recs = iter_recordings(spec.name, root, subjects=opts["subjects"], **reader_opts)
    windows = build_windowset(spec.name, recs, preset, opts, progress)
    windows.description["root"] = str(root.resolve())
    return windows, _store(windows, entry, replace=broken)


def _store(windows: WindowSet, entry: _Entry, replace: bool = False) -> Path | None:
    """Save ``windows`` as ``entry`` with the manifest of its files; ``None`` (nothing saved)
    if the files changed while they were read."""
    start = time.perf_counter()
    now = cache_files.file_states(entry.scope, entry.exclude, full=True)
    changed = sorted(name for name in set(now) | set(entry.states)
                     if name not in now or name not in entry.states
                     or not now[name].same_stat(entry.states[name])
                     or now[name].sample != entry.states[name].sample)
    if changed:
        log.warning("%s: %d file(s) changed while they were read (%s); the WindowSet is not "
                    "cached", entry.folder.name, len(changed), ", ".join(changed[:3]))
        return None
    log.info("hashed %d files (%.1f MB) for the cache manifest in %.2f s", len(now),
             sum(s.size for s in now.values()) / 1e6, time.perf_counter() - start)
    text = json.dumps(cache_files.manifest(entry.scope, now, entry.config), indent=1)
    try:
        windows.save(entry.folder, replace=replace, extra_files={cache_files.MANIFEST: text})
    except (OSError, RuntimeError) as exc:
        raise cache_files.cache_error(entry.folder.parent, exc) from None
    return entry.folder


@dataclass
class CacheCheck:
    """What :func:`verify_cache` found.

    folder: the entry checked: the one :func:`prepare` would load for the files as they are now
        (``current``), else the newest entry of the same dataset, preset and options built
        from other files (``current`` False), else None (no entry).
    comparison: the entry's files against the files now, by full content hash.
    removed: the stale current entry was removed (the next prepare rebuilds it).
    """

    folder: Path | None
    current: bool
    comparison: cache_files.Comparison | None
    scope: dict[str, Path]
    removed: bool = False

    @property
    def ok(self) -> bool:
        return self.current and self.comparison is not None and not self.comparison.stale


def verify_cache(dataset: str, root: str | Path, preset: str = "default",
                 options: dict[str, Any] | None = None, cache_dir: str | Path | None = None,
                 remove_stale: bool = True) -> CacheCheck:
    """Recheck the cache entry of ``dataset`` / ``preset`` / ``options`` against the files,
    by full content hash (``affectlab prepare --verify``).

    The entry's manifest (written with the entry) holds each file's size, times, inode,
    sampled and full blake2b hashes; every file of the dataset is hashed whole again and
    compared: ``changed`` (content differs), ``added``, ``removed``, ``touched`` (times or
    inode differ, content the same). A stale entry that :func:`prepare` would still load (a
    change no stat shows) is removed when ``remove_stale``. Where the files changed in a way
    the key sees, :func:`prepare` builds a new entry anyway; the newest older entry of the
    same options is compared, to say which files changed. Nothing is read or built.
    """
    opts = check_data_options(dataset, preset, options)
    name = get_spec(dataset).name
    root = Path(root)
    if not root.exists():
        iter_recordings(name, root).__next__()      # raises the reader's own error
    cache = Path(cache_dir or default_cache_dir()).expanduser()
    cache_files.refuse_file(cache)
    entry = _entry(name, root, preset, opts, cache)
    current = (entry.folder / cache_files.MANIFEST).is_file()
    folder = entry.folder if current else _newest_entry(cache, name, preset, entry.config)
    if folder is None:
        return CacheCheck(None, False, None, entry.scope)
    recorded = cache_files.manifest_states(
        json.loads((folder / cache_files.MANIFEST).read_text()))
    comparison = cache_files.compare(recorded, entry.scope, entry.exclude)
    check = CacheCheck(folder, current, comparison, entry.scope)
    if current and comparison.stale and remove_stale:
        shutil.rmtree(folder, ignore_errors=True)
        check.removed = not folder.exists()
    return check


def _newest_entry(cache: Path, dataset: str, preset: str, config: str) -> Path | None:
    """The newest entry of ``dataset`` / ``preset`` built with the options digest ``config``."""
    found = []
    for folder in cache.glob(f"{dataset}-{preset}-*"):
        path = folder / cache_files.MANIFEST
        try:
            if ".tmp" not in folder.name and json.loads(path.read_text())["config"] == config:
                found.append((path.stat().st_mtime, folder))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return max(found)[1] if found else None
