"""MAHNOB-HCI, emotion-elicitation part: up to 20 film clips per participant, BioSemi BDF at 256 Hz.

Layout read (``--root`` is the folder holding ``Sessions/``; ``Sessions`` itself is accepted)::

    Sessions/<sessionId>/session.xml        <session cutNr mediaFile cutLenSec sessionId date
                                            isStim feltEmo feltArsl feltVlnc feltCtrl feltPred>
                                            <subject id="<p>"/> ...</session>
    Sessions/<sessionId>/Part_<p>_<N|S>_Trial<k>_emotion.bdf
                                            47 channels at 256 Hz: 32 EEG (DEAP order), EXG1-8
                                            (ECG on EXG1-3), GSR1, GSR2, Erg1, Erg2, Resp, Temp,
                                            Status; ~30 s before the clip, ~30 s after
    Sessions/<sessionId>/*C1 trigger*.csv   OpenFace CSV of the frontal-camera video (assumed:
                                            named after the video, e.g. ``P1-Rec1-2009.07.09.
                                            17.53.46_C1 trigger _C_Section_2.csv``); or
                                            ``<face_dir>/<sessionId>.csv`` with ``face_dir=``

Clip onset and offset are the first two trigger events of the ``Status`` channel (with only one
event, offset = onset + ``cutLenSec``). Every stream runs from the recording start to the clip
offset; ``onset_s`` is the clip onset, so the ~30 s before it are the baseline; the after-clip
part is dropped. EEG and ECG are in microvolts; GSR, Resp and Temp keep the physical dimension of
the BDF header (``Stream.units``). The face video is assumed to start with the recording, so the
BDF onset time is the stimulus onset on the video's clock.

Sizes come from the folders found: every numbered folder of ``Sessions/`` is looked at, and
nothing assumes 20 trials per participant or a session numbering. What the release holds besides
usable trials, and what the reader does with it:

* An emotion session that cannot be used (``session.xml`` without felt ratings next to an
  ``*_emotion.bdf``; felt ratings but no BDF; an ``*_emotion.bdf`` without ``session.xml``) is
  yielded as a recording without data whose ``skipped`` says why (``"no felt ratings"``, ``"no
  BDF"``, ``"no session.xml"``), so that it is counted, never silently lost; ``subject`` comes
  from ``<subject id>`` or the BDF name (0 when neither tells) and ``trial`` is 0.
* Folders of other experiments are not emotion trials and are left out, counted in one
  logging message at INFO level: ``isStim="0"``, and folders with neither felt ratings nor an
  ``*_emotion.bdf`` (the implicit-tagging experiment shares the ``Sessions/`` folder).
* BioSemi's large DC offsets (unreferenced CMS/DRL recording) are kept: re-referencing and
  baseline removal are preprocessing. Heavily artefacted trials are read like the others.
* Participants without face video: the face modalities are missing for their trials.
  Untracked face frames (``success = 0``) are masked.

``subject`` is ``int(<subject id>)``; ``session`` is 1; ``trial`` numbers a participant's usable
emotion sessions in ``sessionId`` order (1-based, so gaps in the release are closed up);
``stimulus`` is the stem of ``mediaFile`` (the clip, shared across participants). Ratings:
valence = feltVlnc, arousal = feltArsl, dominance = feltCtrl (1-9); feltEmo and feltPred are not
used. Every channel read must be sampled at the release's 256 Hz (the BDF header's samples
per record over the record duration): another rate is an error naming the file and channel.
BDF samples are integers, so the signals cannot hold NaN (``nan_policy`` is accepted for
symmetry with the other readers).
"""

from __future__ import annotations

import logging
import math
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import mne
import numpy as np

from affectlab import signal as sig
from affectlab.datasets import openface
from affectlab.datasets import synthetic as syn
from affectlab.datasets.base import (
    DEFAULT_NAN_POLICY,
    DatasetSpec,
    Recording,
    Stream,
    check_nan_policy,
    require_dir,
    resolve_root,
)
from affectlab.datasets.channels import DEAP_EEG, MAHNOB_CHANNELS
from affectlab.errors import ConfigError, DatasetFormatError

logger = logging.getLogger(__name__)

SESSIONS_DIR = "Sessions"
SESSION_XML = "session.xml"
SFREQ = 256.0
BDF_PATTERN = re.compile(r"^Part_(\d+)_[A-Za-z]+_Trial(\d+)_emotion\.bdf$", re.IGNORECASE)
FACE_PATTERN = re.compile(r"C1 trigger.*\.csv$", re.IGNORECASE)
SESSION_PATTERN = re.compile(r"^\d+$")
CHANNELS = {
    "eeg": DEAP_EEG,
    "ecg": ["EXG1", "EXG2", "EXG3"],
    "gsr": ["GSR1"],
    "resp": ["Resp"],
    "temp": ["Temp"],
}
MICROVOLT_STREAMS = ("eeg", "ecg")
FACE = tuple(openface.FACE_MODALITIES)
RATINGS = {"valence": "feltVlnc", "arousal": "feltArsl", "dominance": "feltCtrl"}
# MNE multiplies a BDF channel by this factor of its header unit (others stay as stored).
MNE_UNIT_SCALE = {"uV": 1e-6, "\u00b5V": 1e-6, "\u03bcV": 1e-6, "\x83\xcaV": 1e-6, "mV": 1e-3}
TO_MICROVOLT = {"uV": 1.0, "\u00b5V": 1.0, "\u03bcV": 1.0, "\x83\xcaV": 1.0, "mV": 1e3,
                "V": 1e6}


@dataclass
class Session:
    """One emotion-elicitation session folder; ``skipped`` says why one cannot be used."""

    session_id: int
    folder: Path
    bdf: Path | None
    subject: int
    stimulus: str
    ratings: dict[str, float]
    cut_len_s: float | None
    skipped: str = ""


@dataclass
class BdfHeader:
    """What the reader needs from a BDF header."""

    labels: list[str]
    units: list[str]
    #: sampling rate of every channel: samples per data record / record duration
    rates: list[float]


# --------------------------------------------------------------------------- session.xml

def parse_session_xml(path: Path) -> tuple[dict[str, str], str | None]:
    """Attributes of the root ``<session>`` element and the ``<subject id>`` (or None)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(path, f"malformed XML ({exc})",
                                 "a <session> element with felt* attributes") from exc
    if root.tag != "session":
        raise DatasetFormatError(path, f"root element is <{root.tag}>", "<session>")
    subject = root.find("subject")
    return dict(root.attrib), (subject.get("id") if subject is not None else None)


def _rating(attrs: dict[str, str], key: str, path: Path) -> float | None:
    text = attrs.get(key, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 1.0 <= value <= 9.0:
        raise DatasetFormatError(path, f"attribute '{key}' is {text!r}", "an integer rating 1-9")
    return value


def _session(folder: Path, bdf: Path, attrs: dict[str, str], subject_id: str | None,
             path: Path) -> Session:
    """Build a :class:`Session` from a parsed session.xml that has felt ratings."""
    if subject_id is None or not subject_id.strip().isdigit():
        raise DatasetFormatError(path, f"<subject id> is {subject_id!r}",
                                 'a child <subject id="<participant number>"/>')
    ratings = {name: _rating(attrs, key, path) for name, key in RATINGS.items()}
    media = attrs.get("mediaFile", "").strip() or attrs.get("cutNr", "").strip()
    if not media:
        raise DatasetFormatError(path, "attributes 'mediaFile' and 'cutNr' missing",
                                 "the clip shown (mediaFile)")
    try:
        cut_len: float | None = float(attrs.get("cutLenSec", ""))
    except ValueError:
        cut_len = None
    return Session(int(folder.name), folder, bdf, int(subject_id), Path(media).stem,
                   {k: v for k, v in ratings.items() if v is not None}, cut_len)


def _find_bdf(folder: Path) -> Path | None:
    """The emotion BDF of a session folder; a single differently named ``.bdf`` is accepted."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    named = [p for p in files if BDF_PATTERN.match(p.name)]
    if named:
        return named[0]
    other = [p for p in files if p.suffix.lower() == ".bdf"]
    return other[0] if len(other) == 1 else None


def _bdf_subject(bdf: Path | None) -> int | None:
    match = BDF_PATTERN.match(bdf.name) if bdf is not None else None
    return int(match.group(1)) if match else None


def _unusable(folder: Path, bdf: Path | None, attrs: dict[str, str], subject_id: str | None,
              reason: str) -> Session:
    """An emotion session without usable data: identifiers where the folder tells them."""
    subject = int(subject_id) if subject_id and subject_id.strip().isdigit() else \
        (_bdf_subject(bdf) or 0)
    media = attrs.get("mediaFile", "").strip() or attrs.get("cutNr", "").strip()
    return Session(int(folder.name), folder, bdf, subject, Path(media).stem if media else "",
                   {}, None, skipped=reason)


def scan_sessions(sessions_dir: Path) -> tuple[list[Session], Counter]:
    """The emotion sessions in ``sessionId`` order (unusable ones with ``skipped`` set), and the
    folders left out as not being emotion sessions, by reason."""
    folders = sorted((p for p in sessions_dir.iterdir()
                      if p.is_dir() and SESSION_PATTERN.match(p.name)), key=lambda p: int(p.name))
    sessions, ignored = [], Counter()
    for folder in folders:
        xml_path = folder / SESSION_XML
        bdf = _find_bdf(folder)
        emotion_bdf = bdf is not None and BDF_PATTERN.match(bdf.name) is not None
        if not xml_path.is_file():
            if emotion_bdf:
                sessions.append(_unusable(folder, bdf, {}, None, "no session.xml"))
            else:
                ignored["no session.xml and no emotion BDF"] += 1
            continue
        attrs, subject_id = parse_session_xml(xml_path)
        rated = bool(attrs.get("feltVlnc", "").strip() and attrs.get("feltArsl", "").strip())
        if attrs.get("isStim", "1").strip() == "0":
            ignored['isStim="0"'] += 1
        elif not rated and not emotion_bdf:
            ignored["no felt ratings and no emotion BDF"] += 1
        elif bdf is None:
            sessions.append(_unusable(folder, bdf, attrs, subject_id, "no BDF"))
        elif not rated:
            sessions.append(_unusable(folder, bdf, attrs, subject_id, "no felt ratings"))
        else:
            sessions.append(_session(folder, bdf, attrs, subject_id, xml_path))
    return sessions, ignored


# --------------------------------------------------------------------------- BDF

def read_bdf_header(path: Path) -> BdfHeader:
    """Parse the fixed and per-channel BDF header; reject a file shorter than it announces."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(256)
            n_channels = int(head[252:256].decode("ascii"))
            chans = handle.read(256 * n_channels)
        n_records = int(head[236:244].decode("ascii"))
        record_s = float(head[244:252].decode("ascii"))
        if len(chans) < 256 * n_channels:
            raise ValueError(f"only {len(chans)} of {256 * n_channels} channel-header bytes")
        fields = _split_channel_fields(chans, n_channels)
        samples = [int(x) for x in fields["samples"]]
        if not record_s > 0:
            raise ValueError(f"data-record duration {record_s:g} s")
    except (ValueError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(path, f"unreadable BDF header ({exc})",
                                 "a BioSemi BDF file") from exc
    if n_records > 0:
        expected = 256 * (n_channels + 1) + 3 * n_records * sum(samples)
        size = path.stat().st_size
        if size < expected:
            raise DatasetFormatError(path, f"truncated: {size} bytes, the header announces "
                                     f"{n_records} records", f"{expected} bytes")
    return BdfHeader(fields["labels"], fields["units"], [n / record_s for n in samples])


def _split_channel_fields(chans: bytes, n: int) -> dict[str, list[str]]:
    widths = [("labels", 16), ("transducer", 80), ("units", 8), ("pmin", 8), ("pmax", 8),
              ("dmin", 8), ("dmax", 8), ("prefilter", 80), ("samples", 8), ("reserved", 32)]
    out, pos = {}, 0
    for name, width in widths:
        out[name] = [chans[pos + i * width:pos + (i + 1) * width].decode("latin-1").strip()
                     for i in range(n)]
        pos += n * width
    return out


def clip_bounds(raw: mne.io.BaseRaw, path: Path, cut_len_s: float | None) -> tuple[int, int]:
    """Clip onset and offset samples: the first two trigger events of the Status channel."""
    events = mne.find_events(raw, stim_channel="Status", shortest_event=1, verbose="error")
    if len(events) == 0:
        raise DatasetFormatError(path, "the Status channel has no clip-onset trigger",
                                 "trigger events at clip onset and offset")
    onset = int(events[0, 0])
    if len(events) >= 2:
        offset = int(events[1, 0])
    elif cut_len_s is not None and cut_len_s > 0:
        offset = onset + int(round(cut_len_s * raw.info["sfreq"]))
    else:
        raise DatasetFormatError(path, "the Status channel has no clip-offset trigger and "
                                 "session.xml no cutLenSec", "two trigger events")
    if offset > raw.n_times or offset <= onset:
        raise DatasetFormatError(path, f"clip offset at sample {offset} (onset {onset}, "
                                 f"{raw.n_times} samples)", "offset after onset, in the file")
    return onset, offset


def _load_raw(path: Path) -> mne.io.BaseRaw:
    try:
        return mne.io.read_raw_bdf(path, preload=True, stim_channel="Status", verbose="error")
    except (ValueError, RuntimeError, OSError, IndexError) as exc:
        raise DatasetFormatError(path, f"unreadable BDF ({type(exc).__name__}: {exc})",
                                 "a BioSemi BDF file") from exc


def _streams(raw: mne.io.BaseRaw, header: BdfHeader, onset: int, offset: int) -> dict[str, Stream]:
    """Cut every modality from recording start to clip offset, in physical units."""
    units = dict(zip(header.labels, header.units, strict=True))
    index = {name.lower(): i for i, name in enumerate(raw.ch_names)}
    sfreq = float(raw.info["sfreq"])
    data = raw.get_data(stop=offset)
    out = {}
    for modality, names in CHANNELS.items():
        rows = [index[n.lower()] for n in names]
        unit = units.get(raw.ch_names[rows[0]], "")
        scale = np.array([MNE_UNIT_SCALE.get(units.get(raw.ch_names[r], ""), 1.0)
                          for r in rows])
        block = data[rows] / scale[:, None]
        if modality in MICROVOLT_STREAMS and unit in TO_MICROVOLT:
            block, unit = block * TO_MICROVOLT[unit], "uV"
        out[modality] = Stream(np.ascontiguousarray(block, np.float64), sfreq, list(names),
                               onset_s=onset / sfreq, units=unit)
    return out


def _check_channels(header: BdfHeader, path: Path) -> None:
    """The channels read are present and sampled at the release's 256 Hz."""
    have = {label.lower(): rate for label, rate in zip(header.labels, header.rates,
                                                        strict=True)}
    needed = [n for names in CHANNELS.values() for n in names] + ["Status"]
    absent = [n for n in needed if n.lower() not in have]
    if absent:
        raise DatasetFormatError(path, f"channel(s) {absent} missing",
                                 f"the 47 MAHNOB channels ({', '.join(MAHNOB_CHANNELS[32:])})")
    other = [(n, have[n.lower()]) for n in needed if have[n.lower()] != SFREQ]
    if other:
        name, rate = other[0]
        more = f" (and {len(other) - 1} other channel(s))" if len(other) > 1 else ""
        raise DatasetFormatError(path, f"header sampling rate of channel '{name}' (samples "
                                 f"per record / record duration) is {rate:g} Hz{more}",
                                 f"{SFREQ:g} Hz, the rate of the MAHNOB-HCI release")


# --------------------------------------------------------------------------- reader

def read(root: Path, subjects: Sequence[int] | None = None, face_dir: Path | None = None,
         nan_policy: str = DEFAULT_NAN_POLICY, **_: object) -> Iterator[Recording]:
    """Yield MAHNOB-HCI emotion trials (one per emotion session folder), one BDF at a time.

    Unusable emotion sessions are yielded with ``Recording.skipped`` set and nothing else.
    """
    check_nan_policy(nan_policy)
    root = resolve_root(root, [SESSIONS_DIR], "MAHNOB-HCI")
    sessions_dir = require_dir(root / SESSIONS_DIR, "MAHNOB-HCI Sessions",
                               "Sessions/<sessionId>/session.xml and *_emotion.bdf")
    sessions, ignored = scan_sessions(sessions_dir)
    if ignored:
        detail = ", ".join(f"{n} {reason}" for reason, n in sorted(ignored.items()))
        logger.info("MAHNOB-HCI: left out %d session folder(s) under %s that are not emotion "
                    "sessions (%s)", sum(ignored.values()), sessions_dir, detail)
    if not sessions:
        raise DatasetFormatError(sessions_dir, "no emotion-elicitation session folders",
                                 "<sessionId>/session.xml with felt ratings and a "
                                 "Part_<p>_*_Trial<k>_emotion.bdf")
    by_subject: dict[int, list[Session]] = {}
    for session in sessions:
        by_subject.setdefault(session.subject, []).append(session)
    if subjects is not None:
        absent = sorted(set(subjects) - set(by_subject))
        if absent:
            raise DatasetFormatError(sessions_dir, f"no emotion sessions for subject(s) {absent}",
                                     "session folders whose session.xml has <subject id> "
                                     f"{', '.join(map(str, absent))}")
        by_subject = {s: by_subject[s] for s in subjects}
    for subject in sorted(by_subject):
        trial = 0
        for session in by_subject[subject]:
            if session.skipped:
                yield Recording(dataset="mahnob", subject=session.subject, session=1, trial=0,
                                stimulus=session.stimulus, source=str(session.folder),
                                skipped=session.skipped)
                continue
            trial += 1
            yield _recording(session, trial, face_dir)


def _recording(session: Session, trial: int, face_dir: Path | None) -> Recording:
    header = read_bdf_header(session.bdf)
    _check_channels(header, session.bdf)
    raw = _load_raw(session.bdf)
    onset, offset = clip_bounds(raw, session.bdf, session.cut_len_s)
    rec = Recording(dataset="mahnob", subject=session.subject, session=1, trial=trial,
                    stimulus=session.stimulus, ratings=dict(session.ratings),
                    source=str(session.bdf))
    rec.streams.update(_streams(raw, header, onset, offset))
    sfreq = float(raw.info["sfreq"])
    face = _face(session, face_dir, onset / sfreq, (offset - onset) / sfreq)
    rec.streams.update(face)
    rec.missing.update(m for m in FACE if m not in face)
    return rec


def face_file(session: Session, face_dir: Path | None) -> Path | None:
    """The OpenFace CSV of a session's frontal-camera video, if there is one."""
    if face_dir is not None:
        path = Path(face_dir) / f"{session.session_id}.csv"
        return path if path.is_file() else None
    found = sorted(p for p in session.folder.iterdir() if FACE_PATTERN.search(p.name))
    return found[0] if found else None


def _face(session: Session, face_dir: Path | None, onset_s: float,
          clip_s: float) -> dict[str, Stream]:
    """Face streams cut at clip offset; a video that ends before the clip onset is unusable."""
    path = face_file(session, face_dir)
    if path is None:
        return {}
    out = {}
    for modality, stream in openface.read_csv(path, stimulus_onset_s=onset_s).items():
        stop = min(stream.n_times, int(round((stream.onset_s + clip_s) * stream.sfreq)))
        if stop <= int(stream.onset_s * stream.sfreq):
            continue
        valid = None if stream.valid is None else stream.valid[:stop]
        out[modality] = replace(stream, data=stream.data[:, :stop], valid=valid)
    return out


# --------------------------------------------------------------------------- synthetic writer

PRE_S, POST_S = 3.0, 2.0
N_TRIALS = 20
FACE_FPS = 5.0             # real frontal camera: 60 fps; kept low so the CSVs stay small
SESSION_BLOCK = 130        # participant p's emotion sessions are (p - 1) * 130 + 2k, k = 1..20
CLIPS = ["69", "55", "58", "earworm_f", "53", "80", "52", "79", "73", "90", "107", "146", "30",
         "138", "newyork_f", "111", "detroit_f", "cats_f", "dallas_f", "funny_f"]
DIGITAL = (-8388608, 8388607)
# label -> (physical dimension, physical min, physical max)
BDF_RANGES = {
    **{name: ("uV", -262144, 262143) for name in MAHNOB_CHANNELS[:40]},
    "GSR1": ("Ohm", 0, 4000000), "GSR2": ("Ohm", 0, 4000000),
    "Erg1": ("uV", -262144, 262143), "Erg2": ("uV", -262144, 262143),
    "Resp": ("uV", -262144, 262143), "Temp": ("degC", -100, 100),
    "Status": ("Boolean", *DIGITAL),
}
STATUS_HIGH_BITS = 1 << 20     # a BioSemi status bit above the 16 trigger bits


def write_bdf(path: Path, data: np.ndarray, labels: list[str], start: datetime,
              sfreq: float = SFREQ) -> None:
    """Write a BioSemi BDF with 1-s data records.

    data: ``(n_channels, n_records * sfreq)`` physical values (the ``Status`` row holds the raw
    24-bit status word). Ranges and units come from :data:`BDF_RANGES`.
    """
    n_ch, n_times = data.shape
    spr = int(sfreq)
    n_records = n_times // spr
    if n_records * spr != n_times:
        raise ValueError("data length must be a whole number of 1-s records")
    dims = [BDF_RANGES[c][0] for c in labels]
    pmin = np.array([BDF_RANGES[c][1] for c in labels], float)
    pmax = np.array([BDF_RANGES[c][2] for c in labels], float)
    dmin, dmax = DIGITAL
    digital = np.rint((data - pmin[:, None]) / (pmax - pmin)[:, None] * (dmax - dmin) + dmin)
    digital = np.clip(digital, dmin, dmax).astype("<i4")
    records = digital.reshape(n_ch, n_records, spr).transpose(1, 0, 2)
    body = records.reshape(-1, 1).view(np.uint8)[:, :3].tobytes()

    def fields(values, width):
        return "".join(str(v).ljust(width)[:width] for v in values)

    header = (
        "\xffBIOSEMI".ljust(8) + "".ljust(80) + "".ljust(80) + start.strftime("%d.%m.%y")
        + start.strftime("%H.%M.%S") + str(256 * (n_ch + 1)).ljust(8) + "24BIT".ljust(44)
        + str(n_records).ljust(8) + "1".ljust(8) + str(n_ch).ljust(4)
        + fields(labels, 16)
        + fields(["Triggers and Status" if c == "Status" else "Active Electrode"
                  for c in labels], 80)
        + fields(dims, 8) + fields([int(v) for v in pmin], 8) + fields([int(v) for v in pmax], 8)
        + fields([dmin] * n_ch, 8) + fields([dmax] * n_ch, 8)
        + fields(["No filtering" if c == "Status" else "HP: DC; LP: 52 Hz" for c in labels], 80)
        + fields([spr] * n_ch, 8) + fields([""] * n_ch, 32)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header.encode("latin-1") + body)


LONG_FAILURES_PER_SUBJECT = 2      # face trials with a 2-3 s tracking failure, per subject


def write_synthetic(root: Path, n_subjects: int = 4, seed: int = 0,
                    seconds: float | None = None, nuisances: bool = True,
                    n_trials: int | None = None) -> dict:
    """Write a synthetic MAHNOB-HCI ``Sessions/`` folder: XML, BDF and face CSVs per session.

    Clips last up to ``seconds`` (default 6 s; real 35-117 s), with 3 s before and ~2 s after
    (real ~30 s each). ``n_trials`` emotion sessions per participant (default 20 as released,
    at most 20), numbered as in the release. With ``nuisances`` (the release's): unreferenced
    BioSemi DC offsets of up to +-3 mV on the EEG / EXG channels; participant 3 (or the last,
    if fewer) is incomplete: one folder without a BDF, one without felt ratings, one absent
    (17 usable trials of 20); participant 1 also has an implicit-tagging folder (isStim="0", no
    felt ratings); the last participant has no face CSVs; face tracking fails on single frames
    and, in two trials per participant, once for 2-3 s inside the clip; about 10 % of the trials
    carry EEG artefacts. Without: every session complete and clean, faces for everyone.

    Returns the manifest entry: ``trials``, ``nuisances`` (what was written where) and
    ``expected`` (what the reader and the ``default`` data preset find).
    """
    seconds = 6.0 if seconds is None else float(seconds)
    n_trials = N_TRIALS if n_trials is None else int(n_trials)
    if not 1 <= n_trials <= N_TRIALS:
        raise ConfigError("n_trials", f"got {n_trials}; must be 1-{N_TRIALS} (one session per "
                                      "clip)")
    clip_rng = syn.rng_for(seed, "mahnob-clips")
    clip_va = clip_rng.uniform(-0.9, 0.9, (N_TRIALS, 2))
    clip_len = np.round(seconds * clip_rng.uniform(0.75, 1.0, N_TRIALS), 2)
    plan_rng = syn.rng_for(seed, "mahnob-nuisances")
    incomplete = min(3, n_subjects) if nuisances and n_trials >= 4 else None
    no_face = n_subjects if nuisances and n_subjects > 1 else None
    trials, profiles = [], {}
    found: dict = {"session_folders_without_bdf": [], "session_folders_without_ratings": [],
                   "absent_session_folders": [], "implicit_tagging_folders": [],
                   "face_tracking_failures": [], "artefact_trials": []}
    skipped: dict[str, int] = {}
    windows, untracked = 0, 0
    for subject in range(1, n_subjects + 1):
        rng = syn.rng_for(seed, "mahnob", subject)
        profile = syn.SubjectProfile.draw(rng, subject)
        profiles[subject] = profile.to_dict()
        order = rng.permutation(N_TRIALS)
        offsets = rng.uniform(-3000, 3000, len(MAHNOB_CHANNELS) - 7)   # unreferenced DC, uV
        if not nuisances:
            offsets[:] = 0.0
        start = datetime(2009, 7, 9, 17, 0) + timedelta(days=3 * subject)
        with_face = subject != no_face
        long_failure = set()
        if nuisances and with_face:
            long_failure = {int(k) for k in plan_rng.choice(
                np.arange(1, n_trials + 1), min(LONG_FAILURES_PER_SUBJECT, n_trials),
                replace=False)}
        usable = 0
        for k in range(1, n_trials + 1):
            session_id = (subject - 1) * SESSION_BLOCK + 2 * k
            if subject == incomplete and k == n_trials:
                found["absent_session_folders"].append(session_id)
                continue                                      # no folder at all
            clip = int(order[k - 1])
            v, a = np.clip(clip_va[clip] + rng.normal(0, 0.3, 2), -1, 1)
            noisy = bool(rng.random() < (0.1 if nuisances else 0.0))
            latent = syn.TrialLatent(float(v), float(a), None, noisy)
            ctx = _Trial(root / SESSIONS_DIR / str(session_id), subject, k, session_id, clip,
                         float(clip_len[clip]), start + timedelta(minutes=4 * k))
            rated = not (subject == incomplete and k == n_trials - 1)
            ratings = _write_xml(ctx, rng, latent, rated)
            if subject == incomplete and k == n_trials - 2:
                found["session_folders_without_bdf"].append(session_id)
                skipped["no BDF"] = skipped.get("no BDF", 0) + 1
                continue                                      # session.xml but no BDF
            events = _write_bdf_trial(ctx, rng, latent, profile, offsets)
            face = with_face
            if face:
                written = _write_face(ctx, rng, syn.rng_for(seed, "mahnob-face", subject),
                                      latent, events, profile.face_lag_s, nuisances,
                                      k in long_failure)
                if rated:
                    untracked += len(written["untracked_windows"])
                if written["long_failure_s"] is not None:
                    found["face_tracking_failures"].append(
                        {"subject": subject, "session_id": session_id,
                         "trial": usable + 1 if rated else 0,
                         "seconds": written["long_failure_s"],
                         "untracked_windows": written["untracked_windows"]})
            if not rated:
                found["session_folders_without_ratings"].append(session_id)
                skipped["no felt ratings"] = skipped.get("no felt ratings", 0) + 1
                continue
            usable += 1
            windows += sig.n_windows(ctx.offset - ctx.onset, SFREQ, 1.0)
            if noisy:
                found["artefact_trials"].append({"subject": subject, "trial": usable,
                                                 "session_id": session_id})
            trials.append({"subject": subject, "session": 1, "trial": usable,
                           "session_id": session_id, "stimulus": CLIPS[clip],
                           "clip_seconds": ctx.clip_s, "face": face, **latent.to_dict(),
                           **{f"rating_{key}": val for key, val in ratings.items()}})
        if subject == 1 and nuisances:
            found["implicit_tagging_folders"].append(_write_tagging_folder(root, rng, start))
    if nuisances:
        found.update({"eeg_dc_offsets_uv": "uniform in +-3000 per EEG / EXG channel and "
                      "participant (unreferenced BioSemi)",
                      "subjects_without_face": [no_face] if no_face else [],
                      "untracked_face_frames": "about 3 % of the frames, single frames "
                      "(success = 0)", "untracked_face_windows": untracked})
    subjects_with_trials = len({t["subject"] for t in trials})
    expected = syn.expected_counts(subjects_with_trials, len(trials), windows,
                                   trials_without_windows=skipped)
    return {"trials": trials, "subjects": profiles, "stimulus_seconds": seconds,
            "n_trials": n_trials, "nuisances": found if nuisances else {},
            "expected": expected}


@dataclass
class _Trial:
    folder: Path
    subject: int
    k: int
    session_id: int
    clip: int
    clip_s: float
    start: datetime

    @property
    def onset(self) -> int:
        return int(PRE_S * SFREQ)

    @property
    def offset(self) -> int:
        return self.onset + int(round(self.clip_s * SFREQ))

    @property
    def n_times(self) -> int:
        return int(math.ceil(self.offset / SFREQ + POST_S) * SFREQ)


def _felt_emotion(valence: float, arousal: float) -> int:
    """feltEmo code of a latent: 0 neutral, 3 fear, 4 joy, 5 sadness, 11 amusement."""
    if valence > 0.3:
        return 4 if arousal > 0 else 11
    if valence < -0.3:
        return 3 if arousal > 0.3 else 5
    return 0


def _write_xml(ctx: _Trial, rng: np.random.Generator, latent: syn.TrialLatent,
               rated: bool) -> dict:
    """Write session.xml; return the felt ratings written (empty when ``rated`` is False)."""
    ratings = {}
    if rated:
        ratings = {"valence": syn.rating_from_latent(latent.valence, 1, 9, rng, integer=True),
                   "arousal": syn.rating_from_latent(latent.arousal, 1, 9, rng, integer=True),
                   "dominance": float(rng.integers(1, 10))}
    attrs = {"cutNr": str(ctx.clip + 1), "mediaFile": f"{CLIPS[ctx.clip]}.avi",
             "cutLenSec": f"{ctx.clip_s:.2f}", "sessionId": str(ctx.session_id),
             "date": ctx.start.strftime("%Y-%m-%dT%H:%M:%S.0000000+02:00"), "isStim": "1"}
    if rated:
        attrs.update(feltEmo=str(_felt_emotion(latent.valence, latent.arousal)),
                     feltArsl=str(int(ratings["arousal"])), feltVlnc=str(int(ratings["valence"])),
                     feltCtrl=str(int(ratings["dominance"])), feltPred=str(rng.integers(1, 10)))
    session = ET.Element("session", attrs)
    ET.SubElement(session, "subject", {"id": str(ctx.subject)})
    ET.SubElement(session, "track", {"type": "Physiological", "id": "0",
                                     "filename": _bdf_name(ctx)})
    ET.SubElement(session, "track", {"type": "Video", "id": "1", "filename": _video_stem(ctx)
                                     + ".avi"})
    ctx.folder.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(session).write(ctx.folder / SESSION_XML, encoding="utf-8",
                                  xml_declaration=True)
    return ratings


def _bdf_name(ctx: _Trial) -> str:
    return f"Part_{ctx.subject}_{'NS'[ctx.subject % 2]}_Trial{ctx.k}_emotion.bdf"


def _video_stem(ctx: _Trial) -> str:
    return (f"P{ctx.subject}-Rec1-{ctx.start:%Y.%m.%d.%H.%M.%S}_C1 trigger _C_Section_"
            f"{ctx.session_id % SESSION_BLOCK}")


def _write_bdf_trial(ctx: _Trial, rng: np.random.Generator, latent: syn.TrialLatent,
                     profile: syn.SubjectProfile, offsets: np.ndarray) -> np.ndarray:
    """Write the trial's BDF; return the clip-time emotional event times (s)."""
    n, on, off = ctx.n_times, ctx.onset, ctx.offset
    env_clip, events = syn.event_envelope(rng, off - on, SFREQ)
    env = np.zeros(n)
    env[on:off] = env_clip
    calm = syn.TrialLatent(0.0, -0.3, None, latent.noisy, latent.session_gain)
    data = np.zeros((len(MAHNOB_CHANNELS), n))
    data[:32, :on] = syn.eeg(rng, DEAP_EEG, on, SFREQ, calm, profile)
    data[:32, on:off] = syn.eeg(rng, DEAP_EEG, off - on, SFREQ, latent, profile, env_clip)
    data[:32, off:] = syn.eeg(rng, DEAP_EEG, n - off, SFREQ, calm, profile)
    data[32:35] = 1000 * syn.ecg(rng, n, SFREQ, latent, profile, n_leads=3)
    data[35:40] = 20 * rng.standard_normal((5, n))
    data[:40] += offsets[:, None]
    conductance = syn.skin_conductance(rng, n, SFREQ, latent, profile, env)
    data[40] = 1e6 / np.maximum(conductance, 0.5)                 # skin resistance, Ohm
    data[41] = data[40] * 1.02 + rng.normal(0, 50, n)
    data[42] = syn.emg(rng, n, SFREQ, 5 + 4 * syn.EFFECT_SCALE * max(latent.valence, 0))
    data[43] = syn.emg(rng, n, SFREQ, 5)
    data[44] = 1000 * syn.respiration(rng, n, SFREQ, latent, profile)
    data[45] = syn.skin_temperature(rng, n, SFREQ, latent, profile)
    status = np.full(n, STATUS_HIGH_BITS)
    pulse = int(0.1 * SFREQ)
    status[on:on + pulse] |= 1                                    # clip onset trigger
    status[off:off + pulse] |= 2                                  # clip offset trigger
    data[46] = status
    write_bdf(ctx.folder / _bdf_name(ctx), data, MAHNOB_CHANNELS, ctx.start)
    return events


def _write_face(ctx: _Trial, rng: np.random.Generator, subject_rng: np.random.Generator,
                latent: syn.TrialLatent, events: np.ndarray, lag_s: float,
                dropouts: bool = True, long_failure: bool = False) -> dict:
    """OpenFace CSV of the frontal video: from recording start to 1 s after the clip.

    ``dropouts``: single untracked frames (about 3 %); ``long_failure``: one 2-3 s failure
    inside the clip's whole seconds. Returns ``long_failure_s`` (on the video's clock) and the
    clip's 1 s ``untracked_windows``.
    """
    n = int(round((ctx.offset / SFREQ + 1.0) * FACE_FPS))
    n_pre = int(round(PRE_S * FACE_FPS))
    env = syn.event_envelope(rng, n, FACE_FPS, lag_s=PRE_S + lag_s, events=events)[0]
    calm = syn.TrialLatent(0.0, -0.3, None, latent.noisy, latent.session_gain)
    parts = [(calm, slice(0, n_pre)), (latent, slice(n_pre, n))]
    state = subject_rng.bit_generator.state
    au, marks, gaze = [], [], []
    for part_latent, span in parts:
        m = span.stop - span.start
        subject_rng.bit_generator.state = state          # same face template in both parts
        au.append(syn.au_intensities(rng, m, FACE_FPS, part_latent, env[span]))
        marks.append(syn.face_landmarks_3d(rng, m, part_latent, env[span], subject_rng))
        gaze.append(syn.gaze(rng, m, part_latent))
    success = np.ones(n, bool)
    if dropouts:
        success[rng.integers(0, n, size=max(1, n // 30))] = False
    clip_windows = sig.n_windows(ctx.offset - ctx.onset, SFREQ, 1.0)
    failure = openface.add_long_failure(rng.spawn(1)[0], success, FACE_FPS, n_pre,
                                        n_pre + int(round(clip_windows * FACE_FPS))) \
        if long_failure else None
    openface.write_csv(ctx.folder / f"{_video_stem(ctx)}.csv", np.arange(n) / FACE_FPS, success,
                       np.concatenate(au), np.concatenate(marks), np.concatenate(gaze), rng)
    return {"long_failure_s": failure, "untracked_windows": openface.untracked_windows(
        success, FACE_FPS, onset_s=ctx.onset / SFREQ, count=clip_windows)}


def _write_tagging_folder(root: Path, rng: np.random.Generator, start: datetime) -> int:
    """An implicit-tagging session of participant 1 (isStim="0", no felt ratings), left out by
    the reader as not an emotion session; returns its session id."""
    folder, when = root / SESSIONS_DIR / "43", start + timedelta(hours=2)
    session = ET.Element("session", {"cutNr": "0", "mediaFile": "tag_001.jpg",
                                     "cutLenSec": "1.00", "sessionId": "43", "isStim": "0",
                                     "date": when.strftime("%Y-%m-%dT%H:%M:%S")})
    ET.SubElement(session, "subject", {"id": "1"})
    folder.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(session).write(folder / SESSION_XML, encoding="utf-8", xml_declaration=True)
    data = np.zeros((len(MAHNOB_CHANNELS), int(2 * SFREQ)))
    data[:32] = rng.normal(0, 10, (32, data.shape[1]))
    data[-1] = STATUS_HIGH_BITS
    write_bdf(folder / "Part_1_S_Trial1_tagging.bdf", data, MAHNOB_CHANNELS, when)
    return 43


SPEC = DatasetSpec(
    name="mahnob",
    title="MAHNOB-HCI (emotion elicitation)",
    modalities=("eeg", "ecg", "gsr", "resp", "temp", *FACE),
    feature_sets=(),
    rating_scale=(1.0, 9.0),
    native_classes=None,
    n_sessions=1,
    layout="Sessions/<sessionId>/session.xml, Part_<p>_<N|S>_Trial<k>_emotion.bdf, "
           "*C1 trigger*.csv",
    reader=read,
    writer=write_synthetic,
)
