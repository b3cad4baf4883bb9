"""Atomic file writes: the file is either the old one or complete, never half written, and a
failed write leaves no temporary file behind."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .outputs import OutputError, is_read_only

__all__ = ["write_atomic", "write_json_atomic"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    """Writes `data` to `path` through a temporary file in the same folder and a rename; the
    file gets the mode of a newly created one (0666 less the umask); a read-only `path` is not
    replaced (OutputError)."""
    path = Path(path)
    if path.exists() and is_read_only(path):
        raise OutputError(f"{path} exists and is read-only; it is not replaced")
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".",
                               prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            os.fchmod(f.fileno(), 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_atomic(path: str | os.PathLike, data) -> None:
    """Writes `data` as indented JSON (4 spaces) to `path`, atomically."""
    write_atomic(path, json.dumps(data, indent=4))
