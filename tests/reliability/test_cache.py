"""The dataset cache never goes stale and never leaves a half-written entry (issue 19, items 3
and 5): the key follows the content of every file the reader can read (changed in place with
the same size and mtime, a root naming a file or an inner folder, a face folder outside the
root), ``prepare --verify`` names the files that changed, cache folders that are files, read
only or full give one clear line and leave no temporary folder, temporary folders of killed
writers are removed and concurrent writers of one entry do not corrupt it."""

from __future__ import annotations

import builtins
import errno
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from affectlab import cache
from affectlab.errors import CacheError, DatasetFormatError
from affectlab.presets import cache_key, check_data_options, prepare, verify_cache

DATS = "data_preprocessed_python"


@pytest.fixture
def deap_copy(deap, tmp_path) -> Path:
    """A writable copy of the small synthetic DEAP (3 subjects, 4 s trials)."""
    return Path(shutil.copytree(deap, tmp_path / "deap"))


def unsampled_offset(path: Path) -> int:
    """An offset of ``path`` outside every block the key's content sample reads (the middle
    of a small file, hashed whole)."""
    size = path.stat().st_size
    if size <= cache.SMALL_FILE:
        return size // 2
    last = size - cache.BLOCK
    starts = [last * k // (cache.N_BLOCKS - 1) for k in range(cache.N_BLOCKS)]
    offset = starts[1] + cache.BLOCK + 1000
    assert offset + 8 < starts[2]
    return offset


def flip_in_place(path: Path, offset: int, n: int = 64) -> None:
    """Change the bytes at ``offset`` in place, then set the mtime back (same size and
    mtime: what the old (path, size, mtime) key could not see)."""
    before = os.stat(path)
    time.sleep(0.01)                        # a change time distinct from the copy's
    with open(path, "r+b") as handle:
        handle.seek(offset)
        data = handle.read(n)
        handle.seek(offset)
        # ASCII bytes only, to another ASCII byte: the file stays readable (DEAP's pickles
        # hold the arrays as UTF-8 text) while the values change
        assert any(b < 0x80 for b in data)
        handle.write(bytes(b ^ 0x01 if b < 0x80 else b for b in data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


# --------------------------------------------------------------------------- stale keys

def test_in_place_change_with_same_size_and_mtime_rebuilds(deap_copy, tmp_path):
    cache_dir = tmp_path / "cache"
    first, folder = prepare("deap", deap_copy, "m2s", cache_dir=cache_dir)
    dat = deap_copy / DATS / "s01.dat"
    assert dat.stat().st_size > cache.SMALL_FILE, "the test needs a file hashed by blocks"
    sample = cache.sample_hash(dat, dat.stat().st_size)
    flip_in_place(dat, unsampled_offset(dat))
    # the content sample alone cannot see it; the change time (not settable by utime) does
    assert cache.sample_hash(dat, dat.stat().st_size) == sample
    again, folder2 = prepare("deap", deap_copy, "m2s", cache_dir=cache_dir)
    assert folder2 != folder and (folder2 / cache.MANIFEST).is_file()
    manifest = json.loads((folder2 / cache.MANIFEST).read_text())
    old = json.loads((folder / cache.MANIFEST).read_text())
    name = f"data/{DATS}/s01.dat"
    assert manifest["files"][name]["full"] != old["files"][name]["full"]


def test_a_small_file_changed_in_place_rebuilds(deap_copy, tmp_path):
    ratings = deap_copy / "metadata_csv" / "participant_ratings.csv"
    opts = check_data_options("deap", "m2s", None)
    before = cache_key("deap", deap_copy, "m2s", opts)
    text = ratings.read_text()
    stat = ratings.stat()
    ratings.write_text(text.replace(",1,", ",2,", 1) if ",1," in text else text[::-1])
    os.utime(ratings, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert ratings.stat().st_size == stat.st_size
    assert cache_key("deap", deap_copy, "m2s", opts) != before


def test_root_at_the_inner_folder_sees_face_deletions(deap_copy):
    inner = deap_copy / DATS
    assert cache.read_scope("deap", inner) == {"data": deap_copy}
    opts = check_data_options("deap", "all", None)
    before = cache_key("deap", inner, "all", opts)
    face = next((deap_copy / "face").rglob("*.csv"))
    face.unlink()
    assert cache_key("deap", inner, "all", opts) != before


def test_root_at_a_file_hashes_that_file(synthetic_root, tmp_path):
    dreamer = Path(shutil.copytree(synthetic_root("dreamer", n_subjects=2, seconds=4),
                                   tmp_path / "dreamer"))
    mat = dreamer / "DREAMER.mat"
    assert cache.read_scope("dreamer", mat) == {"data": mat}
    cache_dir = tmp_path / "cache"
    _, folder = prepare("dreamer", mat, "default", cache_dir=cache_dir)
    manifest = json.loads((folder / cache.MANIFEST).read_text())
    assert list(manifest["files"]) == ["data/DREAMER.mat"]
    from affectlab.datasets import synth

    stat = mat.stat()
    synth(tmp_path / "other", ["dreamer"], n_subjects=2, seed=1, seconds=4)
    os.replace(tmp_path / "other" / "dreamer" / "DREAMER.mat", mat)    # another recording
    os.utime(mat, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    _, folder2 = prepare("dreamer", mat, "default", cache_dir=cache_dir)
    assert folder2 != folder


def test_face_dir_outside_the_root_is_part_of_the_key(deap_copy, tmp_path):
    faces = tmp_path / "faces"
    shutil.move(deap_copy / "face", faces)
    options = {"face_dir": str(faces)}
    assert cache.read_scope("deap", deap_copy, faces) == {"data": deap_copy,
                                                          "face_dir": faces}
    cache_dir = tmp_path / "cache"
    windows, folder = prepare("deap", deap_copy, "all", options, cache_dir=cache_dir)
    assert "face_au" in windows.names
    manifest = json.loads((folder / cache.MANIFEST).read_text())
    assert any(name.startswith("face_dir/") for name in manifest["files"])
    victim = sorted(faces.rglob("*.csv"))[0]
    victim.unlink()
    _, folder2 = prepare("deap", deap_copy, "all", options, cache_dir=cache_dir)
    assert folder2 != folder
    # a face folder inside the root is hashed once, as part of it
    assert cache.read_scope("deap", deap_copy, deap_copy / "x") == {"data": deap_copy}


def test_a_cache_folder_inside_the_dataset_is_left_out(deap_copy):
    cache_dir = deap_copy / "cache"
    _, folder = prepare("deap", deap_copy, "m2s", cache_dir=cache_dir)
    _, folder2 = prepare("deap", deap_copy, "m2s", cache_dir=cache_dir)
    assert folder2 == folder


def test_files_changed_while_read_are_not_cached(deap_copy, tmp_path, monkeypatch):
    import affectlab.presets as presets

    build = presets.build_windowset

    def build_and_touch(*args, **kwargs):
        windows = build(*args, **kwargs)
        (deap_copy / "metadata_csv" / "new.txt").write_text("written meanwhile")
        return windows

    monkeypatch.setattr(presets, "build_windowset", build_and_touch)
    windows, folder = prepare("deap", deap_copy, "m2s", cache_dir=tmp_path / "cache")
    assert folder is None and len(windows)
    assert not list((tmp_path / "cache").iterdir())


DATASETS = ["deap", "seed", "seed_iv", "seed_v", "dreamer", "amigos", "mahnob"]


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_file_a_reader_opens_is_in_the_scope(dataset, synthetic_root, monkeypatch):
    """The scope is resolved as the reader resolves its root, from the top folder, from an
    inner folder and from a file inside it."""
    from affectlab.datasets import iter_recordings

    top = synthetic_root(dataset, n_subjects=2, seconds=4)
    files = sorted(p for _, p in cache.iter_files(top))
    some_file = next((p for p in files if p.parent != top), files[0])
    opened: list[Path] = []
    real_open = builtins.open

    def recording_open(file, *args, **kwargs):
        if isinstance(file, str | os.PathLike):
            opened.append(Path(file).resolve())
        return real_open(file, *args, **kwargs)

    for root in (top, some_file.parent, some_file):
        scope = cache.read_scope(dataset, root)
        files = {Path(p).resolve() for p in cache.scope_files(scope).values()}
        opened.clear()
        monkeypatch.setattr(builtins, "open", recording_open)
        try:
            list(itertools.islice(iter_recordings(dataset, root), 3))
        except DatasetFormatError:          # a root the reader refuses too (MAHNOB's sessions)
            continue
        finally:
            monkeypatch.setattr(builtins, "open", real_open)
        read = [p for p in opened if p.is_relative_to(top.resolve().parent)]
        assert read, f"{dataset}: no file opened from {root}"
        assert set(read) <= files, f"{dataset} from {root}: {set(read) - files}"


# --------------------------------------------------------------------------- prepare --verify

def test_verify_reports_a_file_changed_in_place(cli, deap_copy, tmp_path):
    cache_dir = tmp_path / "cache"
    args = ["prepare", "deap", "--root", str(deap_copy), "--preset", "m2s",
            "--cache-dir", str(cache_dir)]
    assert cli([*args, "--verify"]).code == 1                       # no entry yet
    assert cli(args).code == 0
    ok = cli([*args, "--verify"])
    assert ok.code == 0 and "up to date" in ok.out, ok
    dat = deap_copy / DATS / "s02.dat"
    flip_in_place(dat, unsampled_offset(dat))
    stale = cli([*args, "--verify"])
    assert stale.code == 1, stale
    assert f"changed: {dat}" in stale.out and "stale" in stale.out
    assert "s01.dat" not in stale.out


def test_verify_removes_a_current_entry_whose_content_changed(deap_copy, tmp_path):
    """A change no stat shows (forged clock): simulated by a wrong full hash in the manifest."""
    cache_dir = tmp_path / "cache"
    _, folder = prepare("deap", deap_copy, "m2s", cache_dir=cache_dir)
    assert verify_cache("deap", deap_copy, "m2s", cache_dir=cache_dir).ok
    path = folder / cache.MANIFEST
    manifest = json.loads(path.read_text())
    name = f"data/{DATS}/s01.dat"
    manifest["files"][name]["full"] = "0" * 64
    path.write_text(json.dumps(manifest))
    check = verify_cache("deap", deap_copy, "m2s", cache_dir=cache_dir)
    assert check.current and not check.ok and check.comparison.changed == [name]
    assert check.removed and not folder.exists()
    _, folder2 = prepare("deap", deap_copy, "m2s", cache_dir=cache_dir)
    assert folder2 == folder and verify_cache("deap", deap_copy, "m2s",
                                              cache_dir=cache_dir).ok


# --------------------------------------------------------------------------- cache folder faults

def test_cache_dir_a_regular_file_is_one_clear_line(cli, deap, tmp_path):
    blocker = tmp_path / "cache-file"
    blocker.write_text("not a folder")
    for cache_dir in (blocker, blocker / "below"):
        with pytest.raises(CacheError) as error:
            prepare("deap", deap, "m2s", cache_dir=cache_dir)
        message = str(error.value)
        assert str(cache_dir) in message and "--cache-dir" in message
        assert "AFFECTLAB_CACHE" in message and "\n" not in message
    result = cli(["prepare", "deap", "--root", str(deap), "--preset", "m2s",
                  "--cache-dir", str(blocker)])
    assert result.code == 2 and "Traceback" not in result.err
    assert result.err.strip().startswith("error: dataset cache folder") and \
        len(result.err.strip().splitlines()) == 1, result.err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_cache_dir_is_one_clear_line(deap, tmp_path):
    cache_dir = tmp_path / "cache"
    _, folder = prepare("deap", deap, "m2s", cache_dir=cache_dir)
    cache_dir.chmod(0o555)
    try:
        again, folder2 = prepare("deap", deap, "m2s", cache_dir=cache_dir)   # still read
        assert folder2 == folder
        with pytest.raises(CacheError, match="not writable.*--cache-dir"):
            prepare("deap", deap, "m2s", {"window_s": 2.0}, cache_dir=cache_dir)
    finally:
        cache_dir.chmod(0o755)


@pytest.mark.parametrize("fault", ["access", "erofs"])
def test_an_unwritable_cache_dir_is_refused_before_any_data_is_read(fault, deap, tmp_path,
                                                                     monkeypatch):
    """What a read-only folder gives where chmod does not bind (as root): simulated."""
    import affectlab.data
    import affectlab.presets as presets

    def refuse(*args, **kwargs):
        raise AssertionError("data was read before the cache folder was checked")

    monkeypatch.setattr(presets, "build_windowset", refuse)
    if fault == "access":
        monkeypatch.setattr(cache.os, "access", lambda path, mode: False)
    else:
        def read_only(self, *args, **kwargs):
            raise OSError(errno.EROFS, "Read-only file system", str(self))

        monkeypatch.setattr(affectlab.data.Path, "mkdir", read_only)
    cache_dir = tmp_path / "cache"
    with pytest.raises(CacheError, match="not writable; give another cache folder") as error:
        prepare("deap", deap, "m2s", cache_dir=cache_dir)
    assert str(cache_dir) in str(error.value)


@pytest.mark.parametrize("fault", ["enospc", "torch"])
def test_a_full_disk_is_one_clear_line_and_leaves_no_temporary_folder(
        fault, deap, tmp_path, monkeypatch):
    import affectlab.data

    def full_disk(*args, **kwargs):
        if fault == "enospc":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 896 "
                           "vs 790")

    monkeypatch.setattr(affectlab.data.torch, "save", full_disk)
    if fault == "torch":
        monkeypatch.setattr(cache.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(
            100 * 2**20, 100 * 2**20 - 4096, 4096))
    cache_dir = tmp_path / "cache"
    with pytest.raises(CacheError, match="no space left on the device") as error:
        prepare("deap", deap, "m2s", cache_dir=cache_dir)
    assert str(cache_dir) in str(error.value) and "AFFECTLAB_CACHE" in str(error.value)
    assert list(cache_dir.iterdir()) == []


# --------------------------------------------------------------------------- temporaries

def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporary_folders_of_killed_writers_are_removed(deap, tmp_path):
    cache_dir = tmp_path / "cache"
    host = cache.temporary_sibling(cache_dir / "x").name.rsplit("@", 1)[1]
    pid = dead_pid()
    dead = cache_dir / f"deap-m2s-0123456789abcdef.tmp{pid}-00aa11bb@{host}"
    legacy = cache_dir / f"deap-m2s-0123456789abcdef.tmp{pid}"          # older versions
    old_other_host = cache_dir / "deap-m2s-fedcba9876543210.tmp1-00aa11bb@elsewhere"
    live = cache_dir / f"deap-m2s-0123456789abcdef.tmp{os.getpid()}-00aa11bb@{host}"
    young_other_host = cache_dir / f"deap-m2s-0123456789abcdef.tmp{pid}-00aa11bb@elsewhere"
    for folder in (dead, legacy, old_other_host, live, young_other_host):
        folder.mkdir(parents=True)
        (folder / "modalities.pt").write_bytes(b"\0" * 1000)
    hours_ago = time.time() - 2 * 3600
    os.utime(old_other_host, (hours_ago, hours_ago))
    _, folder = prepare("deap", deap, "m2s", cache_dir=cache_dir)
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted(
        [folder.name, live.name, young_other_host.name])


def test_a_second_writer_of_one_entry_discards_its_copy(deap, tmp_path):
    windows, _ = prepare("deap", deap, "m2s", use_cache=False)
    path = tmp_path / "entry"
    windows.description["writer"] = "first"
    windows.save(path, replace=False)
    windows.description["writer"] = "second"
    windows.save(path, replace=False)
    assert json.loads((path / "description.json").read_text())["writer"] == "first"
    windows.save(path)                                  # replace=True: the last one wins
    assert json.loads((path / "description.json").read_text())["writer"] == "second"
    assert leftovers(tmp_path) == []


CONCURRENT = """
import sys
from affectlab.presets import prepare
windows, folder = prepare("deap", sys.argv[1], "m2s", cache_dir=sys.argv[2])
print(folder, len(windows))
"""


def test_concurrent_prepares_of_one_entry(deap, tmp_path):
    cache_dir = tmp_path / "cache"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(deap), str(cache_dir)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    assert len({out for out, _ in outputs}) == 1
    entries = list(cache_dir.iterdir())
    assert len(entries) == 1 and leftovers(cache_dir) == []
    assert verify_cache("deap", deap, "m2s", cache_dir=cache_dir).ok
