"""The dataset cache's file side: what a preset reads, fingerprints of those files, atomic
entry folders and the removal of temporary folders left by killed runs.

Fingerprints
------------
An entry of the WindowSet cache is keyed by the state of every file the dataset's reader can
read (:func:`read_scope`): each file's path relative to its scope, size, ``st_mtime_ns``,
``st_ctime_ns``, ``st_ino`` and a content sample (:func:`sample_hash`: blake2b of the whole
file up to :data:`SMALL_FILE`, else of the size and :data:`N_BLOCKS` blocks of
:data:`BLOCK` bytes spread over the file, first and last included). The sample alone can miss
an in-place change inside an unsampled block that keeps size and mtime; the inode change time
(``ctime``) cannot: every write changes it and ``os.utime`` cannot set it back, so such a change
still gives a new key. The other way round, anything that changes ``ctime`` without touching
the content (``chmod``, ``chown``, a copy, a restore from backup) builds a new entry once.

A new entry also stores a manifest of its files with a full blake2b hash of each
(:data:`MANIFEST`); :func:`compare` rechecks the files against it (``affectlab prepare
--verify``), which catches what no stat can: a change written with a forged clock.

Cost, measured on a DEAP-sized folder (``benchmarks/cache_hashing.py``: 32 files of 103 MB and
880 face CSVs of 3 MB, 5.9 GB; 2 shared CPU cores): the key's fingerprint, computed by every
``prepare``, 0.26 s with the files in the page cache and 1.7 s from the disk; the full hashes of
a new entry's manifest (also ``--verify``) about 0.5 GB/s, 12 s (warm) to 24 s (cold).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from affectlab.errors import CacheError, DatasetFormatError

#: files up to this size are hashed whole for the key (metadata, ratings, labels, XML)
SMALL_FILE = 2**20
#: larger files: this many blocks of ``BLOCK`` bytes, first and last included (a few ms per
#: file even from a cold disk: DEAP's 880 face CSVs are sampled, not read)
N_BLOCKS = 8
BLOCK = 16 * 2**10
#: the manifest of an entry: the file states it was built from, with full hashes
MANIFEST = "files.json"
#: a temporary folder older than this is removed whoever made it
STALE_AFTER_S = 3600.0
_TMP = re.compile(r"^(?P<entry>.+)\.tmp(?P<pid>\d+)(?:-(?P<token>[0-9a-f]+)@(?P<host>.+))?$")
_CHUNK = 2**20


# --------------------------------------------------------------------------- what is read

def read_scope(dataset: str, root: str | Path, face_dir: str | Path | None = None,
               ) -> dict[str, Path]:
    """The files and folders the reader of ``dataset`` reads for ``root``: label -> path.

    ``data``: the dataset's top folder as the reader resolves it (``--root`` may name it, its
    inner folder, a child or a file inside it: DEAP at ``data_preprocessed_python/`` reads
    ``metadata_csv/`` and ``face/`` beside it), or the one file read (DREAMER: ``DREAMER.mat``,
    also when ``--root`` names that file). Every file under the folder counts, read or not.
    ``face_dir``: the face folder option, where it lies outside ``data``. A root the reader
    cannot resolve is taken as it is (the reader then refuses it).
    """
    root = Path(root).expanduser()
    try:
        top = _reader_top(dataset, root)
    except (OSError, ValueError, LookupError, DatasetFormatError):
        top = root
    scope = {"data": top}
    if face_dir is not None:
        face = Path(face_dir).expanduser()
        if not _inside(face, top):
            scope["face_dir"] = face
    return scope


def _reader_top(dataset: str, root: Path) -> Path:
    """What the reader of ``dataset`` resolves ``root`` to (the same markers it looks for)."""
    import importlib

    from affectlab.datasets import DATASET_MODULES
    from affectlab.datasets.base import resolve_root

    module = importlib.import_module(DATASET_MODULES[dataset])
    if dataset == "amigos":
        return module.find_root(root)[0]
    if dataset == "dreamer":
        folder = root.parent if root.is_file() else root
        return resolve_root(folder, [module.FILE_NAME], "DREAMER") / module.FILE_NAME
    markers = {"deap": ("PYTHON_DIR",), "seed": ("FEATURE_DIR", "EEG_DIR"),
               "seed_iv": ("FEATURE_DIR", "EYE_DIR", "RAW_DIR"), "seed_v": ("DE_DIR", "EYE_DIR"),
               "mahnob": ("SESSIONS_DIR",)}[dataset]
    return resolve_root(root, [getattr(module, name) for name in markers], dataset)


def _inside(path: Path, folder: Path) -> bool:
    try:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))
    except OSError:
        return False


def iter_files(path: Path, exclude: Iterable[Path] = ()) -> Iterator[tuple[str, Path]]:
    """``(relative name, path)`` of every file under ``path`` (itself, if a file), sorted;
    symbolic links followed (a folder reached twice is walked once), ``exclude``d folders
    (the cache folder, if it lies inside) left out."""
    if path.is_file():
        yield path.name, path
        return
    if not path.is_dir():
        return
    skip = {os.path.realpath(p) for p in exclude}
    seen: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(path, followlinks=True):
        info = os.stat(folder)
        if (info.st_dev, info.st_ino) in seen or os.path.realpath(folder) in skip:
            dirs[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        dirs.sort()
        for name in sorted(files):
            file = Path(folder) / name
            if file.is_file():
                yield file.relative_to(path).as_posix(), file


# --------------------------------------------------------------------------- file states

@dataclass
class FileState:
    """What the key holds of one file; ``full``: its whole-content blake2b (manifests)."""

    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    sample: str
    full: str | None = None

    def key_line(self, name: str) -> str:
        return f"{name}|{self.size}|{self.mtime_ns}|{self.ctime_ns}|{self.ino}|{self.sample}\n"

    def same_stat(self, other: FileState) -> bool:
        return (self.size, self.mtime_ns, self.ctime_ns, self.ino) == \
            (other.size, other.mtime_ns, other.ctime_ns, other.ino)


def sample_hash(path: Path, size: int) -> str:
    """blake2b of a file below :data:`SMALL_FILE`; above, of its size and
    :data:`N_BLOCKS` blocks at evenly spaced offsets (first and last block included)."""
    digest = hashlib.blake2b(str(size).encode(), digest_size=16)
    with open(path, "rb") as handle:
        if size <= SMALL_FILE:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
            return digest.hexdigest()
        last = size - BLOCK
        for k in range(N_BLOCKS):
            handle.seek(last * k // (N_BLOCKS - 1))
            digest.update(handle.read(BLOCK))
    return digest.hexdigest()


def full_hash(path: Path) -> str:
    """blake2b of the whole file."""
    digest = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as handle:
        while chunk := handle.read(4 * _CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_state(path: Path, full: bool = False) -> FileState | None:
    """The state of one file; None if it vanished. A file that cannot be read (the reader
    cannot read it either) is kept, with ``unreadable`` as its hashes."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    try:
        sample, whole = sample_hash(path, info.st_size), full_hash(path) if full else None
    except OSError as exc:
        sample = whole = f"unreadable ({exc.strerror})"
    return FileState(info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, sample,
                     whole if full else None)


def scope_files(scope: dict[str, Path], exclude: Iterable[Path] = ()) -> dict[str, Path]:
    """``label/relative name`` -> path of every file of ``scope``."""
    exclude = list(exclude)
    return {f"{label}/{name}": path for label, top in scope.items()
            for name, path in iter_files(top, exclude)}


def file_states(scope: dict[str, Path], exclude: Iterable[Path] = (), full: bool = False,
                workers: int | None = None) -> dict[str, FileState]:
    """The state of every file of ``scope`` (``full``: with whole-content hashes, computed on
    a few threads: hashlib releases the GIL)."""
    files = scope_files(scope, exclude)
    if not full:
        states = [file_state(path) for path in files.values()]
    else:
        with ThreadPoolExecutor(workers or min(4, os.cpu_count() or 1)) as pool:
            states = list(pool.map(lambda path: file_state(path, full=True), files.values()))
    return {name: state for name, state in zip(files, states, strict=True) if state is not None}


def fingerprint(states: dict[str, FileState]) -> str:
    digest = hashlib.sha256()
    for name, state in sorted(states.items()):
        digest.update(state.key_line(name).encode())
    return digest.hexdigest()


def manifest(scope: dict[str, Path], states: dict[str, FileState], config: str) -> dict:
    """The JSON manifest of an entry: scope, options digest and per-file states."""
    return {"version": 1, "config": config,
            "scope": {label: str(Path(path).resolve()) for label, path in scope.items()},
            "files": {name: vars(state) for name, state in sorted(states.items())}}


def manifest_states(content: dict) -> dict[str, FileState]:
    return {name: FileState(**state) for name, state in content["files"].items()}


@dataclass
class Comparison:
    """Files of an entry's manifest against the files now: which differ and how."""

    changed: list[str] = field(default_factory=list)      # content differs
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    touched: list[str] = field(default_factory=list)      # stat differs, content the same
    n_files: int = 0
    n_bytes: int = 0
    seconds: float = 0.0

    @property
    def stale(self) -> bool:
        return bool(self.changed or self.added or self.removed)


def compare(recorded: dict[str, FileState], scope: dict[str, Path],
            exclude: Iterable[Path] = ()) -> Comparison:
    """Recheck every file of ``scope`` with a full content hash against ``recorded``."""
    start = time.perf_counter()
    now = file_states(scope, exclude, full=True)
    result = Comparison(added=sorted(set(now) - set(recorded)),
                        removed=sorted(set(recorded) - set(now)), n_files=len(now),
                        n_bytes=sum(state.size for state in now.values()))
    for name in sorted(set(now) & set(recorded)):
        old, new = recorded[name], now[name]
        if old.full != new.full or old.size != new.size:
            result.changed.append(name)
        elif not old.same_stat(new):
            result.touched.append(name)
    result.seconds = time.perf_counter() - start
    return result


def locate(scope: dict[str, Path], name: str) -> Path:
    """The path of a file named ``label/relative name`` (as in a manifest) in ``scope``."""
    label, _, relative = name.partition("/")
    top = Path(scope.get(label, label))
    return top if top.name == relative and not top.is_dir() else top / relative


# --------------------------------------------------------------------------- entry folders

def temporary_sibling(path: Path) -> Path:
    """A fresh temporary folder name beside ``path``: ``<name>.tmp<pid>-<token>@<host>``."""
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"
    return path.with_name(f"{path.name}.tmp{os.getpid()}-{secrets.token_hex(4)}@{host}")


def publish(tmp: Path, path: Path, replace: bool = True) -> bool:
    """Rename the complete folder ``tmp`` to ``path``; True if it is now in place.

    ``replace``: an existing ``path`` is swapped out and removed; else an existing ``path``
    (another process renamed the same entry first) wins and ``tmp`` is discarded.
    """
    old = None
    if replace and path.exists():
        old = temporary_sibling(path)
        try:
            os.rename(path, old)
        except FileNotFoundError:
            old = None
    try:
        os.rename(tmp, path)
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not path.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)          # the other copy won
        return False
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: Path, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove the temporary folders (and files) of killed writers in ``folder``: those of a
    process of this host that is no longer alive, and any older than ``older_than_s``.
    Returns what was removed; a folder that cannot be listed or written is left alone."""
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _TMP.match(entry.name)
        if not match:
            continue
        try:
            age = now - entry.lstat().st_mtime
        except OSError:
            continue
        local = match["host"] in (None, host)
        if age > older_than_s or (local and not _alive(int(match["pid"]))):
            try:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            except OSError:
                continue
            removed.append(entry)
    return removed


# --------------------------------------------------------------------------- errors

REMEDY = ("give another cache folder: --cache-dir (affectlab prepare / info), "
          "--set cache_dir=... (affectlab run) or the AFFECTLAB_CACHE environment variable")


def cache_error(folder: Path, exc: BaseException) -> CacheError:
    """A one-line :class:`CacheError` for a failed write in the cache ``folder``."""
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT) or _disk_full(folder, exc):
        problem = f"no space left on the device ({_free(folder)} free)"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        problem = "not writable"
    elif code in (errno.ENOTDIR, errno.EEXIST):
        problem = _file_problem(folder)
    else:
        problem = f"cannot be written ({type(exc).__name__}: {exc})"
    return CacheError(folder, problem, REMEDY)


def _disk_full(folder: Path, exc: BaseException) -> bool:
    """torch's writer reports a full disk as a RuntimeError ("unexpected pos ...")."""
    if not isinstance(exc, RuntimeError):
        return False
    try:
        return shutil.disk_usage(_existing(folder)).free < 64 * 2**20
    except OSError:
        return False


def _free(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(_existing(folder)).free / 2**20:.0f} MiB"
    except OSError:
        return "? MiB"


def _existing(path: Path) -> Path:
    return next(p for p in (path, *path.parents) if p.exists() or p == Path(p.anchor))


def _file_problem(folder: Path) -> str:
    existing = _existing(folder)
    if existing == folder:
        return "is a file, not a folder"
    return f"lies under the file {existing}"


def refuse_file(folder: Path) -> None:
    """:class:`CacheError` if the cache ``folder``, or a folder above it, is a file."""
    if not _existing(folder).is_dir():
        raise CacheError(folder, _file_problem(folder), REMEDY)


def ensure_writable(folder: Path) -> None:
    """Create the cache ``folder``; a file in its place, a folder that cannot be created or
    written raises :class:`CacheError` naming it."""
    refuse_file(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cache_error(folder, exc) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CacheError(folder, "not writable", REMEDY)
