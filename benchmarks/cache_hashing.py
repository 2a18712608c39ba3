"""Cost of the dataset cache's file hashing on a DEAP-sized folder.

Writes ``benchmarks/results/cache_hashing.json``. The folder has DEAP's layout and sizes: 32
``data_preprocessed_python/sXX.dat`` of 103 MB (40 trials x 40 channels x 8064 samples of
float64; random bytes: hashing does not look at content), ``metadata_csv`` and, with
``--faces``, face CSVs (22 subjects x 40 trials of ``--face-mb`` MB). Timed:

* the key's fingerprint (stat + sampled blocks; every ``prepare``, cache hit or miss), with the
  files in the page cache (warm) and evicted from it (cold: ``posix_fadvise(DONTNEED)`` per
  file, so the disk is read);
* the full blake2b hashes of the manifest (written once per new entry; ``prepare --verify``),
  warm and cold.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from affectlab import cache
from affectlab.presets import dataset_fingerprint

DAT_BYTES = 40 * 40 * 8064 * 8 + 1205


def write_copy(root: Path, subjects: int, faces: int, face_mb: float) -> None:
    rng = np.random.default_rng(0)
    folder = root / "data_preprocessed_python"
    folder.mkdir(parents=True, exist_ok=True)
    block = rng.bytes(2**24)
    for s in range(1, subjects + 1):
        path = folder / f"s{s:02d}.dat"
        if path.is_file() and path.stat().st_size == DAT_BYTES:
            continue
        with open(path, "wb") as handle:
            left = DAT_BYTES
            while left:
                handle.write(block[: min(left, len(block))])
                left -= min(left, len(block))
    (root / "metadata_csv").mkdir(exist_ok=True)
    (root / "metadata_csv" / "participant_ratings.csv").write_text(
        "Participant_id,Trial,Experiment_id\n" + "".join(
            f"{s},{t},{t}\n" for s in range(1, subjects + 1) for t in range(1, 41)))
    face = rng.bytes(int(face_mb * 1e6))
    for s in range(1, faces + 1):
        (root / "face" / f"s{s:02d}").mkdir(parents=True, exist_ok=True)
        for t in range(1, 41):
            (root / "face" / f"s{s:02d}" / f"s{s:02d}_trial{t:02d}.csv").write_bytes(face)


def evict(root: Path) -> None:
    for _, path in cache.iter_files(root):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def timed(step, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/tmp/affectlab-deap-sized"))
    parser.add_argument("--subjects", type=int, default=32)
    parser.add_argument("--faces", type=int, default=0, help="subjects with face CSVs (22)")
    parser.add_argument("--face-mb", type=float, default=15.0)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "cache_hashing.json")
    args = parser.parse_args()
    write_copy(args.root, args.subjects, args.faces, args.face_mb)
    scope = {"data": args.root}
    files = list(cache.iter_files(args.root))
    total = sum(path.stat().st_size for _, path in files)

    def fast():
        dataset_fingerprint(args.root, "deap")

    def full():
        cache.file_states(scope, full=True)

    fast_warm = timed(fast)
    evict(args.root)
    fast_cold = timed(fast, repeats=1)
    full()
    full_warm = timed(full, repeats=2)
    evict(args.root)
    full_cold = timed(full, repeats=1)
    result = {"files": len(files), "bytes": total, "small_file_bytes": cache.SMALL_FILE,
              "blocks": cache.N_BLOCKS, "block_bytes": cache.BLOCK,
              "fingerprint_s": {"warm": round(fast_warm, 3), "cold": round(fast_cold, 3)},
              "full_hash_s": {"warm": round(full_warm, 2), "cold": round(full_cold, 2)},
              "full_hash_gb_per_s_warm": round(total / full_warm / 1e9, 2),
              "cpus": os.cpu_count(), "python": platform.python_version(),
              "machine": platform.machine()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
