"""Checks of a command's output paths, made before it computes anything: the folder exists and
can be written, the path is not a folder, a read-only file is not replaced, and no output is one
of the command's inputs (which it would destroy)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["OutputError", "check_output", "is_read_only"]


class OutputError(Exception):
    """An output path that the command must not or cannot write."""


def is_read_only(path: str | os.PathLike) -> bool:
    """Whether the existing file `path` is read-only: this user may not write it, or its mode
    gives nobody write permission (which the superuser would otherwise ignore)."""
    mode = os.stat(path).st_mode
    return not os.access(path, os.W_OK) or not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def check_output(path: str | os.PathLike, what: str, inputs=()) -> None:
    """OutputError unless `path` (named `what` in the message, e.g. "the frozen model (-o)")
    can be written, atomically beside itself, without destroying one of `inputs`."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputError(f"{path}: {what} is a folder; give a file name")
    if not folder.is_dir():
        raise OutputError(f"{path}: the folder of {what} does not exist: {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: the folder of {what} cannot be written: {folder}")
    if path.exists():
        if is_read_only(path):
            raise OutputError(f"{path}: {what} exists and is read-only; it is not replaced")
        for source in inputs:
            if source is not None and Path(source).exists() and os.path.samefile(path, source):
                raise OutputError(f"{path}: {what} is the input {source}, which it would "
                                  "replace; give another file name")
