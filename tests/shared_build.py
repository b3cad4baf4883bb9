"""What the test processes of one session share (pytest-xdist workers): `built_once` makes a
folder once per session, whichever process asks first, and the others use it."""
import fcntl
import os
import shutil
from pathlib import Path


def built_once(tmp_path_factory, name: str, build) -> Path:
    """The folder `name` made by build(folder) once per test session, whichever test process
    asks first (the others wait for it, then use it): trained models, frozen graphs and
    DeePMD-kit's outputs that tests in several processes read. A build that fails leaves no
    folder, and the next caller builds it again."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "built_once"
    root.mkdir(parents=True, exist_ok=True)
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not done.exists():
                if folder.exists():  # a failed build's leftovers
                    shutil.rmtree(folder)
                folder.mkdir()
                try:
                    build(folder)
                except BaseException:
                    shutil.rmtree(folder, ignore_errors=True)
                    raise
                done.write_text("")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return folder
