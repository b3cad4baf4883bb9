"""Importing the op library fails with one clear error, naming the fix, when the library is
missing, cannot be loaded, or was built against another TensorFlow."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import deepmd_tebd

pytestmark = pytest.mark.slow

PACKAGE = Path(deepmd_tebd.__file__).resolve().parent


def import_from_copy(tmp_path, mutate):
    copy = tmp_path / "deepmd_tebd"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    mutate(copy / "op")
    env = dict(os.environ, PYTHONPATH=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="3")
    code = ("import deepmd_tebd.op\n")
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_missing_library_names_the_rebuild_command(tmp_path):
    def remove(op):
        for lib in op.glob("_op_library*.so"):
            lib.unlink()

    result = import_from_copy(tmp_path, remove)
    assert result.returncode != 0
    assert "OpLibraryError: The deepmd_tebd op library is missing" in result.stderr
    assert "pip install --no-build-isolation" in result.stderr


def test_library_built_for_another_tensorflow_is_refused(tmp_path):
    def retag(op):
        info = json.loads((op / "build_info.json").read_text())
        info["tensorflow"] = "1.15.0"
        (op / "build_info.json").write_text(json.dumps(info))

    result = import_from_copy(tmp_path, retag)
    assert result.returncode != 0
    assert "built against TensorFlow 1.15.0" in result.stderr
    assert "Rebuild it against the installed TensorFlow" in result.stderr


def test_library_that_fails_to_load_is_reported(tmp_path):
    def corrupt(op):
        for lib in op.glob("_op_library*.so"):
            lib.write_bytes(b"not a shared object")

    result = import_from_copy(tmp_path, corrupt)
    assert result.returncode != 0
    assert "failed to load" in result.stderr
    assert "Traceback" in result.stderr  # an ImportError, not a crash
