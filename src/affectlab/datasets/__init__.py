"""Dataset readers and synthetic writers, one module per dataset.

Each module defines ``SPEC`` (a :class:`~affectlab.datasets.base.DatasetSpec`) with a reader that
yields :class:`~affectlab.datasets.base.Recording` objects from the released file layout and a
writer that produces a synthetic copy in that same layout. Nothing outside this package knows a
file layout.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from affectlab.datasets.base import DatasetSpec, Recording, flat_channels
from affectlab.errors import DatasetFormatError, UnknownNameError

if TYPE_CHECKING:
    from affectlab.datasets.synthetic import Difficulty

DATASET_MODULES = {
    "deap": "affectlab.datasets.deap",
    "seed": "affectlab.datasets.seed",
    "seed_iv": "affectlab.datasets.seed_iv",
    "seed_v": "affectlab.datasets.seed_v",
    "dreamer": "affectlab.datasets.dreamer",
    "amigos": "affectlab.datasets.amigos",
    "mahnob": "affectlab.datasets.mahnob",
}
DATASET_NAMES = tuple(DATASET_MODULES)
#: the ratings that labels are made of, checked against a dataset's ``rating_scale``
SCALED_RATINGS = ("valence", "arousal")

log = logging.getLogger("affectlab.datasets")


def get_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of a dataset; an unknown name lists the valid ones."""
    key = name.lower().replace("-", "_")
    if key not in DATASET_MODULES:
        raise UnknownNameError("dataset", name, DATASET_MODULES)
    return importlib.import_module(DATASET_MODULES[key]).SPEC


def iter_recordings(name: str, root: str | Path, subjects: Sequence[int] | None = None,
                    **options) -> Iterator[Recording]:
    """Yield the recordings of dataset ``name`` found under ``root``.

    ``options`` go to the reader (``face_dir``, ``nan_policy``, ...). Checked here for every
    reader: a valence or arousal rating outside the dataset's scale (DEAP 12, DREAMER 0) is
    marked missing (NaN, so no label is made of it), kept in ``Recording.invalid_ratings`` and
    logged with its file; a native label outside the dataset's class set is an error naming the
    file; a channel of a continuous signal (EEG, peripheral; not the face streams) that is
    constant over the whole recording (a dead electrode, a channel of zeros) is logged with its
    file and kept in ``Recording.flat_channels``, and the data preset marks its values missing
    (``nan_policy="raise"`` stops with an error instead).
    """
    spec = get_spec(name)
    recordings = spec.reader(Path(root), subjects=subjects, **options)
    return _flat(spec, _in_class_set(spec, _on_scale(spec, recordings)),
                 options.get("nan_policy", "mark_missing"))


def _on_scale(spec: DatasetSpec, recordings: Iterator[Recording]) -> Iterator[Recording]:
    """The recordings with off-scale ratings marked missing (see :func:`iter_recordings`)."""
    if spec.rating_scale is None:
        yield from recordings
        return
    low, high = spec.rating_scale
    for rec in recordings:
        for key in SCALED_RATINGS:
            value = rec.ratings.get(key, math.nan)
            if math.isfinite(value) and not low <= value <= high:
                rec.invalid_ratings[key] = value
                rec.ratings[key] = math.nan
                log.warning("%s: %s %g of subject %d trial %d (%s) is outside the %g-%g scale; "
                            "marked missing", spec.name, key, value, rec.subject, rec.trial,
                            rec.source or "?", low, high)
        yield rec


def _in_class_set(spec: DatasetSpec, recordings: Iterator[Recording]) -> Iterator[Recording]:
    """The recordings, each native label checked to be one of the dataset's classes."""
    for rec in recordings:
        label = rec.native_label
        if spec.native_classes is not None and not rec.skipped and (
                label is None or not 0 <= label < len(spec.native_classes)):
            classes = ", ".join(f"{k} {c}" for k, c in enumerate(spec.native_classes))
            raise DatasetFormatError(rec.source or spec.name, f"subject {rec.subject} session "
                                     f"{rec.session} trial {rec.trial} has label {label}",
                                     f"a class of {spec.title}: {classes}")
        yield rec


def _flat(spec: DatasetSpec, recordings: Iterator[Recording],
          nan_policy: str) -> Iterator[Recording]:
    """The recordings with their flat channels listed (see :func:`iter_recordings`)."""
    from affectlab.datasets.openface import FACE_MODALITIES

    for rec in recordings:
        for modality, stream in rec.streams.items():
            if modality in FACE_MODALITIES:
                continue
            flat = flat_channels(stream)
            if not flat:
                continue
            names = [stream.ch_names[i] for i in flat]
            value = float(stream.data[flat[0], 0])
            where = f"subject {rec.subject} session {rec.session} trial {rec.trial}"
            if nan_policy == "raise":
                raise DatasetFormatError(
                    rec.source or spec.name, f"{modality} channel(s) {', '.join(names)} of "
                    f"{where} constant ({value:g}) over the whole recording",
                    "a varying signal; the default nan_policy=mark_missing marks the channel "
                    "missing")
            rec.flat_channels[modality] = names
            log.warning("%s: %s channel(s) %s of %s (%s) constant (%g) over the whole "
                        "recording; marked missing", spec.name, modality, ", ".join(names),
                        where, rec.source or "?", value)
        yield rec


def synth(out: str | Path, datasets: Sequence[str] | None = None, n_subjects: int = 3,
          seed: int = 0, seconds: float | None = None, progress=None,
          nuisances: bool = True, difficulty: str | Difficulty = "default") -> dict:
    """Write synthetic copies of ``datasets`` (all by default) under ``out/<name>/``.

    Returns the manifest (also written to ``out/manifest.json``): per dataset, the latent labels
    and nuisance parameters that generated each trial, the release nuisances written
    (``nuisances``: name -> what and where) and the counts a reader must find with default
    options (``expected``). ``seconds`` overrides each dataset's default (shortened) stimulus
    length; ``nuisances=False`` writes clean data (every modality for every subject, no NaN, no
    artefact trials). ``difficulty``: a name of
    :data:`~affectlab.datasets.synthetic.DIFFICULTIES` or a
    :class:`~affectlab.datasets.synthetic.Difficulty` (effect size, subject shift, subject
    specificity), recorded in the manifest.
    """
    from affectlab.datasets import synthetic

    if isinstance(difficulty, str):
        if difficulty not in synthetic.DIFFICULTIES:
            raise UnknownNameError("difficulty", difficulty, synthetic.DIFFICULTIES)
        difficulty = synthetic.DIFFICULTIES[difficulty]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    for name in datasets or DATASET_NAMES:
        spec = get_spec(name)
        start = time.perf_counter()
        with synthetic.difficulty(difficulty):
            entry = spec.writer(out / spec.name, n_subjects=n_subjects, seed=seed,
                                seconds=seconds, nuisances=nuisances)
        entry["seconds_to_write"] = round(time.perf_counter() - start, 2)
        entry.update(seed=seed, n_subjects=n_subjects, layout=spec.layout,
                     nuisances_on=nuisances, difficulty=asdict(difficulty))
        manifest[spec.name] = entry
        if progress is not None:
            progress(spec.name, entry)
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest
