"""Helpers for reader tests that break copies of a synthetic dataset."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import scipy.io


def copy_dataset(src: Path, root: Path, *modify: str, drop: tuple[str, ...] = ()) -> Path:
    """A copy of a dataset folder at ``root``: top-level folders in ``modify`` are copied (so
    they can be broken), those in ``drop`` left out, the others linked."""
    root.mkdir()
    for folder in src.iterdir():
        if folder.name in modify:
            shutil.copytree(folder, root / folder.name)
        elif folder.name not in drop:
            (root / folder.name).symlink_to(folder)
    return root


def edit_mat(path: Path, edit: Callable[[dict], None]) -> None:
    """Rewrite a MATLAB file after ``edit`` changed its variables in place."""
    content = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    edit(content)
    scipy.io.savemat(path, content, do_compression=True)
