"""What ``affectlab info`` reports about a dataset under a preset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affectlab.errors import ConfigError
from affectlab.labels import SCHEMES, default_scheme, make_labels
from affectlab.presets import prepare


def dataset_info(dataset: str, root: str | Path, preset: str = "default",
                 options: dict | None = None, cache_dir: str | Path | None = None) -> dict:
    """``dataset, n_subjects, sessions, n_trials, n_windows, modalities, sampling_rates,
    labels: {scheme: {class: count}}`` (windows per class; schemes that do not fit are left
    out), plus ``forms``, ``missing`` (per modality: ``windows`` marked missing, of which
    ``absent_windows`` in ``absent_trials`` trials without the source and ``invalid_windows``
    with non-finite or untracked values), ``nonfinite`` (per modality: trials whose files held
    NaN / Inf), ``trials_without_windows``, ``invalid_ratings`` (trials per rating off the
    dataset's scale, marked missing), ``flat_channels`` (per modality: trials with a channel
    constant over the whole recording, their windows, trials per channel; marked missing),
    ``unlisted`` (per metadata file: subjects and trials it does not list, and the cost) and
    ``absent_modalities`` (asked for by the preset, absent from every recording, left out)."""
    windows, _ = prepare(dataset, root, preset, options, cache_dir=cache_dir, progress=True)
    summary = windows.summary()
    labels = {}
    for scheme in SCHEMES:
        try:
            result = make_labels(windows.meta, windows.description["dataset"], scheme)
        except ConfigError:
            continue
        counts = np.bincount(result.y[result.defined], minlength=result.n_classes)
        labels[scheme] = {name: int(c) for name, c in zip(result.classes, counts, strict=True)}
    causes = windows.description.get("missing", {})
    missing = {name: {"windows": int((~windows.available(name)).sum()),
                      **causes.get(name, {})} for name in windows.names}
    return {"dataset": windows.description["dataset"], **summary,
            "sampling_rates": windows.description.get("sampling_rates", {}), "labels": labels,
            "default_labels": default_scheme(windows.description["dataset"]),
            "forms": windows.description.get("forms", {}), "missing": missing,
            "trials_without_windows": windows.description.get("trials_without_windows", {}),
            "invalid_ratings": windows.description.get("invalid_ratings", {}),
            "flat_channels": windows.description.get("flat_channels", {}),
            "unlisted": windows.description.get("unlisted", {}),
            "absent_modalities": windows.description.get("absent_modalities", [])}
