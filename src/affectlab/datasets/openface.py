"""OpenFace 2.x FeatureExtraction CSVs: the facial-feature format affectlab reads.

One row per video frame; header and rows separated by ", " (comma + space). Columns are selected
by name, never by position, because OpenFace's flags can drop whole blocks. Frames whose tracking
failed (``success == 0``, or a confidence below ``min_confidence``) are kept in the time line but
marked invalid, so that later averaging masks them instead of averaging zeros in; a window
without a single tracked frame is marked missing by the data preset.

The synthetic writers use :func:`synthesize_face`: besides short runs of untracked frames (a few
per cent, as OpenFace leaves on blinks and fast head turns), some trials get one tracking failure
of two to three seconds (the face turned away or covered), long enough that at least one whole
1 s window holds no tracked frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from affectlab.datasets.base import Stream
from affectlab.errors import DatasetFormatError

AU_INTENSITY = [f"{a}_r" for a in ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09",
                                   "AU10", "AU12", "AU14", "AU15", "AU17", "AU20", "AU23",
                                   "AU25", "AU26", "AU45")]
AU_PRESENCE = [f"{a}_c" for a in ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09",
                                  "AU10", "AU12", "AU14", "AU15", "AU17", "AU20", "AU23",
                                  "AU25", "AU26", "AU28", "AU45")]
LANDMARKS_3D = [f"{axis}_{i}" for axis in "XYZ" for i in range(68)]
GAZE = ["gaze_0_x", "gaze_0_y", "gaze_0_z", "gaze_1_x", "gaze_1_y", "gaze_1_z",
        "gaze_angle_x", "gaze_angle_y"]
FACE_MODALITIES = {"face_au": AU_INTENSITY, "face_landmarks": LANDMARKS_3D, "gaze": GAZE}


def full_header() -> list[str]:
    """The 714 columns of OpenFace's default full output, in order."""
    cols = ["frame", "face_id", "timestamp", "confidence", "success"]
    cols += GAZE
    cols += [f"eye_lmk_{axis}_{i}" for axis in ("x", "y", "X", "Y", "Z") for i in range(56)]
    cols += ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"]
    cols += [f"{axis}_{i}" for axis in ("x", "y") for i in range(68)] + LANDMARKS_3D
    cols += ["p_scale", "p_rx", "p_ry", "p_rz", "p_tx", "p_ty"] + [f"p_{i}" for i in range(34)]
    return cols + AU_INTENSITY + AU_PRESENCE


def write_csv(path: Path, timestamps: np.ndarray, success: np.ndarray, au: np.ndarray,
              landmarks: np.ndarray, gaze_angles: np.ndarray,
              rng: np.random.Generator) -> None:
    """Write one OpenFace CSV with the blocks ``-aus -gaze -3Dfp -pose`` produce.

    au: ``(n_frames, 17)``; landmarks: ``(n_frames, 3, 68)``; gaze_angles: ``(n_frames, 2)``.
    The 2-D landmark, eye-landmark and shape-parameter blocks are left out (as with those
    flags), which keeps the synthetic files small; readers select columns by name either way.
    """
    n = len(timestamps)
    ok = success.astype(bool)
    blocks: dict[str, np.ndarray | list] = {
        "frame": np.arange(1, n + 1), "face_id": np.zeros(n, int),
        "timestamp": [f"{t:.3f}" for t in timestamps],
        "confidence": np.where(ok, rng.uniform(0.85, 0.98, n), rng.uniform(0.0, 0.2, n)).round(2),
        "success": ok.astype(int),
    }
    gx, gy = gaze_angles[:, 0], gaze_angles[:, 1]
    vec = np.stack([np.sin(gx), np.sin(gy), -np.cos(gx) * np.cos(gy)], axis=1)
    for eye in (0, 1):
        for k, axis in enumerate("xyz"):
            blocks[f"gaze_{eye}_{axis}"] = (vec[:, k] * ok).round(6)
    blocks["gaze_angle_x"], blocks["gaze_angle_y"] = (gx * ok).round(3), (gy * ok).round(3)
    head = landmarks.mean(axis=2)
    for k, axis in enumerate(("Tx", "Ty", "Tz")):
        blocks[f"pose_{axis}"] = (head[:, k] * ok).round(1)
    for axis in ("Rx", "Ry", "Rz"):
        blocks[f"pose_{axis}"] = (rng.normal(0, 0.05, n) * ok).round(3)
    for k, axis in enumerate("XYZ"):
        for i in range(68):
            blocks[f"{axis}_{i}"] = (landmarks[:, k, i] * ok).round(1)
    for j, name in enumerate(AU_INTENSITY):
        blocks[name] = (au[:, j] * ok).round(2)
    for name in AU_PRESENCE:
        source = name.replace("_c", "_r")
        blocks[name] = (np.asarray(blocks[source]) > 1.0).astype(float) if source in blocks \
            else np.zeros(n)
    frame = pd.DataFrame(blocks)
    path.parent.mkdir(parents=True, exist_ok=True)
    # OpenFace separates fields with ", "; no value contains a comma.
    path.write_text(frame.to_csv(index=False, lineterminator="\n").replace(",", ", "))


def read_csv(path: Path, stimulus_onset_s: float = 0.0,
             min_confidence: float = 0.5) -> dict[str, Stream]:
    """Read one OpenFace CSV into the streams ``face_au``, ``face_landmarks`` and ``gaze``.

    A block that the CSV does not hold (OpenFace run without its flag) is left out of the
    result. ``stimulus_onset_s`` is the time of stimulus onset on the video's clock. Frames with
    ``success == 0`` or confidence below ``min_confidence`` are marked invalid.
    """
    try:
        table = pd.read_csv(path, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(path, f"not a readable OpenFace CSV ({exc})") from exc
    table.columns = [c.strip() for c in table.columns]
    for column in ("timestamp", "success"):
        if column not in table.columns:
            raise DatasetFormatError(path, f"column '{column}' missing",
                                     "OpenFace FeatureExtraction output")
    if len(table) < 2:
        raise DatasetFormatError(path, f"only {len(table)} frame(s)", "at least 2 frames")
    times = table["timestamp"].to_numpy(float)
    step = float(np.median(np.diff(times)))
    if not step > 0:
        raise DatasetFormatError(path, "timestamps do not increase", "one row per frame")
    valid = table["success"].to_numpy() == 1
    if "confidence" in table.columns:
        valid &= table["confidence"].to_numpy(float) >= min_confidence
    streams: dict[str, Stream] = {}
    for modality, columns in FACE_MODALITIES.items():
        if not set(columns) <= set(table.columns):
            continue
        data = table[columns].to_numpy(np.float64).T
        if not np.isfinite(data[:, valid]).all():
            raise DatasetFormatError(path, f"non-finite values in {modality} columns")
        data = np.where(valid[None, :], data, 0.0)
        streams[modality] = Stream(
            data=data, sfreq=round(1.0 / step, 3), ch_names=list(columns),
            onset_s=max(0.0, stimulus_onset_s - float(times[0])), valid=valid.copy(),
        )
    if not streams:
        raise DatasetFormatError(path, "no AU, 3-D landmark or gaze columns",
                                 "OpenFace output with -aus, -3Dfp or -gaze")
    return streams


#: length of the one long tracking failure of a trial, seconds (draws uniformly in the range)
LONG_FAILURE_S = (2.0, 3.0)
#: share of trials with a long tracking failure when :func:`synthesize_face` draws it
LONG_FAILURE_RATE = 0.1
SHORT_RUN_FRAMES = 5


def short_dropouts(rng: np.random.Generator, n: int, dropout_rate: float,
                   run_frames: int = SHORT_RUN_FRAMES) -> np.ndarray:
    """``(n,)`` success mask with about ``dropout_rate`` of the frames untracked, in runs of
    ``run_frames`` at random positions (none at all when ``dropout_rate`` is 0)."""
    success = np.ones(n, bool)
    if dropout_rate > 0:
        for start in rng.integers(0, n, size=max(1, int(n * dropout_rate / run_frames))):
            success[start:start + run_frames] = False
    return success


def add_long_failure(rng: np.random.Generator, success: np.ndarray, fps: float,
                     first: int = 0, stop: int | None = None,
                     seconds: tuple[float, float] = LONG_FAILURE_S) -> list[float] | None:
    """Mark one run of ``seconds`` (drawn in the range) untracked inside frames
    ``[first, stop)`` of ``success`` (in place); returns ``[start_s, stop_s]`` on the video's
    clock, or None when the span holds no frame. A run of at least 2 s always covers one whole
    1 s window of any grid aligned to whole seconds of the span."""
    stop = len(success) if stop is None else min(int(stop), len(success))
    span = stop - first
    if span <= 0:
        return None
    length = min(span, max(1, int(round(rng.uniform(*seconds) * fps))))
    begin = first + int(rng.integers(0, span - length + 1))
    success[begin:begin + length] = False
    return [round(begin / fps, 3), round((begin + length) / fps, 3)]


def untracked_windows(success: np.ndarray, fps: float, onset_s: float = 0.0,
                      window_s: float = 1.0, count: int | None = None) -> list[int]:
    """The windows (``window_s`` long, from ``onset_s`` on the video's clock) that hold no
    tracked frame: those a preset marks missing. ``count`` limits the grid (default: every
    whole window of the video after ``onset_s``)."""
    times = np.arange(len(success)) / fps - onset_s
    if count is None:
        count = max(0, int(np.floor((len(success) / fps - onset_s) / window_s + 1e-9)))
    out = []
    for w in range(count):
        inside = (times >= w * window_s) & (times < (w + 1) * window_s)
        if not success[inside].any():
            out.append(w)
    return out


def synthesize_face(path: Path, rng: np.random.Generator, subject_rng: np.random.Generator,
                    duration_s: float, fps: float, latent, events: np.ndarray, lag_s: float,
                    dropout_rate: float = 0.03, long_failure: bool | None = None) -> dict:
    """Make and write the face CSV of one trial, starting at stimulus onset.

    ``events`` are the stimulus-time emotional events shared with the other modalities; the face
    reacts ``lag_s`` later (the small face / EEG misalignment). About ``dropout_rate`` of the
    frames fail tracking (``success = 0``), in short runs. ``long_failure``: whether the trial
    also has one failure of :data:`LONG_FAILURE_S` inside its whole seconds; None draws it with
    probability :data:`LONG_FAILURE_RATE` when ``dropout_rate`` > 0 (``dropout_rate=0`` and
    ``long_failure=None`` write a face tracked throughout). The long failure is drawn from a
    generator spawned from ``rng``, so ``rng``'s own stream is the same with or without it.

    Returns what was written: ``untracked_frames``, ``long_failure_s`` (``[start, stop]`` or
    None) and ``untracked_windows`` (1 s windows from the start without a tracked frame).
    """
    from affectlab.datasets import synthetic as syn

    n = int(round(duration_s * fps))
    env = syn.event_envelope(rng, n, fps, lag_s=lag_s, events=events)[0]
    success = short_dropouts(rng, n, dropout_rate)
    child = rng.spawn(1)[0]
    if long_failure is None:
        long_failure = dropout_rate > 0 and bool(child.random() < LONG_FAILURE_RATE)
    whole = int(np.floor(duration_s + 1e-9))
    failure = add_long_failure(child, success, fps, 0, int(round(whole * fps))) \
        if long_failure else None
    write_csv(path, np.arange(n) / fps, success, syn.au_intensities(rng, n, fps, latent, env),
              syn.face_landmarks_3d(rng, n, latent, env, subject_rng), syn.gaze(rng, n, latent),
              rng)
    return {"untracked_frames": int((~success).sum()), "long_failure_s": failure,
            "untracked_windows": untracked_windows(success, fps, count=whole)}
