"""``WindowSet``: the container every protocol and method works on.

Modalities are contiguous float32 tensors shaped ``(n_windows, ...)``; ``meta`` is a pandas
DataFrame with one row per window (``subject, session, trial, window, onset_s, stimulus, valence,
arousal, dominance, liking, native_label`` and ``avail_<modality>`` booleans). A subset is a view:
it shares the base tensors and keeps an index, so selecting a fold copies nothing until a method
asks for the arrays.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from affectlab.errors import AffectlabError, ConfigError

if TYPE_CHECKING:
    import mne

    from affectlab.labels import Labels

META_COLUMNS = ("subject", "session", "trial", "window", "onset_s", "stimulus", "valence",
                "arousal", "dominance", "liking", "native_label")
#: the window table's columns every item of ``WindowSet[i]`` carries
ITEM_COLUMNS = {"subject": int, "session": int, "trial": int, "window": int, "stimulus": str}
#: MNE channel type of each continuous modality (others: ``misc``)
MNE_CHANNEL_TYPES = {"eeg": "eeg", "eog": "eog", "emg": "emg", "ecg": "ecg", "gsr": "gsr",
                     "resp": "resp", "temp": "temperature", "ppg": "bio"}


@dataclass
class WindowSet:
    """Windows of every modality plus one metadata row per window.

    A WindowSet is a map-style PyTorch dataset: ``len(ws)`` and ``ws[i]`` (a dict, see
    :meth:`__getitem__`), so ``torch.utils.data.DataLoader(ws.with_labels(y), batch_size=8)``
    yields batches with the default collate.

    Parameters
    ----------
    base : dict of name -> Tensor ``(n_base_windows, ...)`` float32, shared by all subsets.
    meta : DataFrame with one row per window of this set (index 0..n-1).
    description : dataset, preset, per-modality form (e.g. ``{"eeg": "de (channel, band)"}``),
        window length, and whatever the preset records about its processing.
    index : rows of ``base`` this set holds (``None``: all of them, in order).
    y : optional ``(n,)`` int class per window (:meth:`with_labels`), carried by views and
        returned as ``label`` by ``ws[i]``.
    """

    base: dict[str, torch.Tensor]
    meta: pd.DataFrame
    description: dict = field(default_factory=dict)
    index: np.ndarray | None = None
    y: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.meta) if self.index is None else len(self.index)
        if len(self.meta) != n:
            raise AffectlabError(f"meta has {len(self.meta)} rows for {n} windows")
        if self.y is not None and np.shape(self.y) != (n,):
            raise AffectlabError(f"{np.shape(self.y)} labels for {n} windows; give one class "
                                 "per window")
        for name, tensor in self.base.items():
            if self.index is None and tensor.shape[0] != n:
                raise AffectlabError(f"modality {name} has {tensor.shape[0]} windows, meta {n}")

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.meta)

    def __getitem__(self, i: int) -> dict[str, Any]:
        """Window ``i``: every modality as a float32 tensor of its per-window shape, ``label``
        (int; only when labels are attached, :meth:`with_labels`), and ``subject``,
        ``session``, ``trial``, ``window`` (int) and ``stimulus`` (str) from the window table.
        Slices and index arrays are refused: use :meth:`subset`."""
        if not isinstance(i, int | np.integer) or isinstance(i, bool):
            raise TypeError(f"a WindowSet is indexed by one integer, got {type(i).__name__}; "
                            "use ws.subset(indices) for several windows")
        if not -len(self) <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        i = int(i) % len(self)
        row = i if self.index is None else int(self.index[i])
        item: dict[str, Any] = {name: tensor[row].to(torch.float32)
                                for name, tensor in self.base.items()}
        if self.y is not None:
            item["label"] = int(self.y[i])
        for column, kind in ITEM_COLUMNS.items():
            if column in self.meta:
                item[column] = kind(self.meta[column].iat[i])
        return item

    def with_labels(self, y: np.ndarray | Labels) -> WindowSet:
        """A view of this set with one class per window attached (``(n,)`` ints, or the
        :class:`~affectlab.labels.Labels` of :func:`~affectlab.labels.make_labels`): ``ws[i]``
        then holds ``label``. Undefined labels (-1) stay -1: drop them first
        (:func:`usable_windows`)."""
        y = np.asarray(getattr(y, "y", y))
        if not np.issubdtype(y.dtype, np.integer):
            raise AffectlabError(f"labels must be integer classes, got dtype {y.dtype}")
        return WindowSet(self.base, self.meta, self.description, self.index,
                         y.astype(np.int64))

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
        y = None if self.y is None else self.y[idx]
        return WindowSet(self.base, meta, self.description, base_idx, y)

    def select_modalities(self, names: Sequence[str]) -> WindowSet:
        """A view holding only ``names`` (order kept)."""
        for name in names:
            self._base(name)
        return WindowSet({n: self.base[n] for n in names}, self.meta, self.description,
                         self.index, self.y)

    # ------------------------------------------------------------------ other libraries
    def to_mne(self, modality: str, scale: float = 1.0) -> mne.EpochsArray:
        """The windows of a continuous modality as ``mne.EpochsArray`` of shape
        ``(n_windows, channels, samples)``, with the modality's channel names and sampling rate
        and the window table as ``metadata`` (plus ``label`` when attached). Continuous means
        raw windows or signal series (presets ``raw``, ``me_mhacl``, ``clmer``). ``scale``
        multiplies the data (MNE expects volts: ``1e-6`` for signals in microvolts)."""
        import mne

        data = self._continuous(modality)
        n_channels, n_samples = data.shape[1:]
        names = self.description.get("channels", {}).get(modality) or \
            [f"{modality}{k + 1}" for k in range(n_channels)]
        rate = self.description.get("signal_rates", {}).get(modality) or \
            n_samples / float(self.description["options"]["window_s"])
        info = mne.create_info(list(names), float(rate),
                               [MNE_CHANNEL_TYPES.get(modality, "misc")] * n_channels)
        metadata = self.meta.copy()
        if self.y is not None:
            metadata["label"] = self.y
        return mne.EpochsArray(data.astype(np.float64) * scale, info, tmin=0.0,
                               metadata=metadata, verbose="error")

    def _continuous(self, modality: str) -> np.ndarray:
        """``(n, channels, samples)`` of a raw-window or signal-series modality."""
        form = self.description.get("forms", {}).get(modality, "")
        data = self.numpy(modality)
        if form.startswith("signal series"):
            return np.swapaxes(data, 1, 2)
        if form.startswith("raw window") and data.ndim == 3:
            return data
        raise ConfigError("modality", f"'{modality}' is {form or 'not a continuous signal'}; "
                                      "to_mne takes raw windows (presets raw, me_mhacl, clmer)")

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
    def save(self, path: str | Path, replace: bool = True,
             extra_files: dict[str, str] | None = None) -> Path:
        """Write to ``path`` (a folder): tensors, metadata, description and ``extra_files``
        (name -> text), all into a temporary sibling folder renamed into place once complete,
        so that ``path`` is never seen half written. A failed write removes the temporary
        folder and raises. ``replace``: an existing ``path`` is replaced; else it is kept
        (another process saved the same entry first) and this copy is discarded."""
        from affectlab.cache import publish, temporary_sibling

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_sibling(path)
        try:
            tmp.mkdir()
            full = self if self.index is None else self.subset(np.arange(len(self)))
            tensors = {name: full.tensor(name).contiguous() for name in full.base}
            torch.save(tensors, tmp / "modalities.pt")
            full.meta.to_pickle(tmp / "meta.pkl")
            (tmp / "description.json").write_text(json.dumps(full.description, indent=1,
                                                             default=str))
            for name, text in (extra_files or {}).items():
                (tmp / name).write_text(text)
            publish(tmp, path, replace=replace)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
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


class Usable(NamedTuple):
    """What :func:`usable_windows` keeps and drops."""

    index: np.ndarray           #: ``(n_kept,)`` positions of the windows kept, ascending
    dropped: dict[str, int]     #: windows dropped per reason (reasons with none left out)


def usable_windows(windows: WindowSet, labels: Labels | np.ndarray | None = None,
                   modalities: Sequence[str] | None = None) -> Usable:
    """The windows the runner keeps: a defined label and every modality in ``modalities``
    (default: all of the set's) available.

    labels: :class:`~affectlab.labels.Labels` or ``(n,)`` ints with -1 for undefined; ``None``:
        the labels attached to ``windows`` (:meth:`WindowSet.with_labels`), else no label check.
    Drops are counted per reason, ``undefined_label`` then ``missing_<modality>`` in order (a
    window missing two modalities counts under the first).
    """
    y = windows.y if labels is None else np.asarray(getattr(labels, "y", labels))
    ok = np.ones(len(windows), bool) if y is None else y >= 0
    dropped = {"undefined_label": int((~ok).sum())}
    for name in windows.names if modalities is None else modalities:
        available = windows.available(name)
        dropped[f"missing_{name}"] = int((ok & ~available).sum())
        ok &= available
    return Usable(np.flatnonzero(ok), {k: v for k, v in dropped.items() if v})


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
