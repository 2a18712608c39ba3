"""``WindowSet``: the container every protocol and method works on.

Modalities are contiguous float32 tensors shaped ``(n_windows, ...)``; ``meta`` is a pandas
DataFrame with one row per window (``subject, session, trial, window, onset_s, stimulus, valence,
arousal, dominance, liking, native_label`` and ``avail_<modality>`` booleans). A subset is a view:
it shares the base tensors and keeps an index, so selecting a fold copies nothing until a method
asks for the arrays.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from affectlab.errors import AffectlabError, ConfigError

META_COLUMNS = ("subject", "session", "trial", "window", "onset_s", "stimulus", "valence",
                "arousal", "dominance", "liking", "native_label")


@dataclass
class WindowSet:
    """Windows of every modality plus one metadata row per window.

    Parameters
    ----------
    base : dict of name -> Tensor ``(n_base_windows, ...)`` float32, shared by all subsets.
    meta : DataFrame with one row per window of this set (index 0..n-1).
    description : dataset, preset, per-modality form (e.g. ``{"eeg": "de (channel, band)"}``),
        window length, and whatever the preset records about its processing.
    index : rows of ``base`` this set holds (``None``: all of them, in order).
    """

    base: dict[str, torch.Tensor]
    meta: pd.DataFrame
    description: dict = field(default_factory=dict)
    index: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.meta) if self.index is None else len(self.index)
        if len(self.meta) != n:
            raise AffectlabError(f"meta has {len(self.meta)} rows for {n} windows")
        for name, tensor in self.base.items():
            if self.index is None and tensor.shape[0] != n:
                raise AffectlabError(f"modality {name} has {tensor.shape[0]} windows, meta {n}")

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.meta)

    @property
    def names(self) -> list[str]:
        return list(self.base)

    def shape(self, name: str) -> tuple[int, ...]:
        """Per-window shape of a modality."""
        return tuple(self._base(name).shape[1:])

    def _base(self, name: str) -> torch.Tensor:
        if name not in self.base:
            raise ConfigError("modality", f"'{name}' not in this WindowSet; available: "
                                          f"{', '.join(self.base)}")
        return self.base[name]

    def tensor(self, name: str, device: str | torch.device | None = None) -> torch.Tensor:
        """The modality's windows of this set as one contiguous tensor ``(n, ...)``."""
        base = self._base(name)
        out = base if self.index is None else base[torch.as_tensor(self.index)]
        return out.to(device) if device is not None else out

    def numpy(self, name: str) -> np.ndarray:
        return self.tensor(name).numpy()

    def available(self, name: str) -> np.ndarray:
        """Boolean ``(n,)``: the modality was recorded for the window (not missing)."""
        self._base(name)                    # an unknown modality is an error, not "all there"
        column = f"avail_{name}"
        if column not in self.meta:
            return np.ones(len(self), bool)
        return self.meta[column].to_numpy(bool)

    @property
    def modalities(self) -> dict[str, torch.Tensor]:
        """All modalities of this set, gathered (a copy for subsets)."""
        return {name: self.tensor(name) for name in self.base}

    # ------------------------------------------------------------------ views
    def subset(self, idx: Sequence[int] | np.ndarray) -> WindowSet:
        """A view on rows ``idx`` of this set (positions, not meta labels)."""
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"subset index out of range for {len(self)} windows")
        base_idx = idx if self.index is None else self.index[idx]
        meta = self.meta.iloc[idx].reset_index(drop=True)
        return WindowSet(self.base, meta, self.description, base_idx)

    def select_modalities(self, names: Sequence[str]) -> WindowSet:
        """A view holding only ``names`` (order kept)."""
        for name in names:
            self._base(name)
        return WindowSet({n: self.base[n] for n in names}, self.meta, self.description,
                         self.index)

    def sequence_index(self, length: int, stride: int = 1) -> np.ndarray:
        """Positions ``(n_seq, length)`` of runs of consecutive windows inside one trial.

        Windows are consecutive when they share (subject, session, trial) and their ``window``
        numbers follow each other; a run never crosses a trial boundary or a gap.
        """
        if length < 1 or stride < 1:
            raise ConfigError("sequence_length", f"length {length}, stride {stride} must be >= 1")
        meta = self.meta
        order = np.lexsort((meta["window"].to_numpy(), meta["trial"].to_numpy(),
                            meta["session"].to_numpy(), meta["subject"].to_numpy()))
        keys = meta[["subject", "session", "trial"]].to_numpy()[order]
        win = meta["window"].to_numpy()[order]
        breaks = np.r_[True, (keys[1:] != keys[:-1]).any(axis=1) | (np.diff(win) != 1)]
        run_id = np.cumsum(breaks) - 1
        run_start = np.flatnonzero(breaks)
        pos_in_run = np.arange(len(order)) - run_start[run_id]
        run_len = np.bincount(run_id)
        starts = np.flatnonzero((pos_in_run % stride == 0)
                                & (pos_in_run + length <= run_len[run_id]))
        return order[starts[:, None] + np.arange(length)[None, :]]

    def sequences(self, length: int, stride: int = 1) -> tuple[dict[str, torch.Tensor],
                                                                pd.DataFrame]:
        """Modalities as ``(n_seq, length, ...)`` tensors and the meta row of each first window."""
        idx = self.sequence_index(length, stride)
        arrays = {name: self.tensor(name)[torch.as_tensor(idx.reshape(-1))].reshape(
            len(idx), length, *self.shape(name)) for name in self.base}
        return arrays, self.meta.iloc[idx[:, 0]].reset_index(drop=True) if len(idx) else \
            self.meta.iloc[[]]

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write to ``path`` (a folder): tensors, metadata and description; atomic rename."""
        path = Path(path)
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        full = self if self.index is None else self.subset(np.arange(len(self)))
        tensors = {name: full.tensor(name).contiguous() for name in full.base}
        torch.save(tensors, tmp / "modalities.pt")
        full.meta.to_pickle(tmp / "meta.pkl")
        (tmp / "description.json").write_text(json.dumps(full.description, indent=1,
                                                         default=str))
        if path.exists():
            shutil.rmtree(path)
        try:
            tmp.rename(path)
        except OSError:                     # another process saved the same entry meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
        return path

    @classmethod
    def load(cls, path: str | Path) -> WindowSet:
        path = Path(path)
        try:
            tensors = torch.load(path / "modalities.pt", weights_only=True)
            meta = pd.read_pickle(path / "meta.pkl")
            description = json.loads((path / "description.json").read_text())
        except (OSError, ValueError, RuntimeError) as exc:
            raise AffectlabError(f"{path}: not a readable WindowSet cache ({exc})") from exc
        return cls(tensors, meta, description)

    def summary(self) -> dict:
        """Counts used by ``affectlab info``."""
        meta = self.meta
        return {
            "n_subjects": int(meta["subject"].nunique()),
            "sessions": sorted(int(s) for s in meta["session"].unique()),
            "n_trials": int(meta.groupby(["subject", "session", "trial"]).ngroups),
            "n_windows": len(self),
            "modalities": {name: list(self.shape(name)) for name in self.base},
        }


def concat_meta(rows: list[dict]) -> pd.DataFrame:
    """Build a meta table with the standard column order from per-window dicts."""
    table = pd.DataFrame(rows)
    first = [c for c in META_COLUMNS if c in table.columns]
    return table[first + [c for c in table.columns if c not in first]]


def recording_rows(meta: pd.DataFrame) -> list[np.ndarray]:
    """Row indices of every recording (one ``(subject, session)``) in ``meta``, in order of
    first appearance."""
    recording = pd.MultiIndex.from_frame(meta[["subject", "session"]]).factorize()[0]
    return [np.flatnonzero(recording == key) for key in range(recording.max(initial=-1) + 1)]
