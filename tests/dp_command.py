"""`dp` as the tests run it: `run_dp(cwd, *args)` is `python -m deepmd_tebd.cli ARGS` in `cwd`,
run in this process (TensorFlow is imported once per test process, not once per command), with
what a subprocess would give: the exit status and everything written to stdout and stderr,
Python's streams and the file descriptors alike (so TensorFlow's C++ messages too).

A command that raises prints its traceback to stderr and exits 1, as the interpreter does; a
command that runs longer than `timeout` seconds ends the test process with every thread's stack
(faulthandler), so a hang is a failure with a message. Commands that need a process of their own
(signals to it, several worker processes, thread or device settings made before TensorFlow
starts, imports at start-up) are run with `subprocess` by their tests.
"""
from __future__ import annotations

import contextlib
import faulthandler
import io
import logging
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

COMMAND = [sys.executable, "-m", "deepmd_tebd.cli"]


@contextlib.contextmanager
def _captured_fd(fd: int):
    """Everything written to file descriptor `fd` inside the block, read after it (a list that
    receives the text)."""
    text: list[str] = []
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(fd)
        os.dup2(sink.fileno(), fd)
        try:
            yield text
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            text.append(sink.read().decode(errors="replace"))


def run_dp(cwd, *args, timeout: float = 900) -> subprocess.CompletedProcess:
    """`dp ARGS` in `cwd`, in this process; see the module docstring."""
    from deepmd_tebd.cli import main

    logger = logging.getLogger("deepmd_tebd")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    out, err = io.StringIO(), io.StringIO()
    here = Path.cwd()
    sys.stdout.flush()
    sys.stderr.flush()
    watch = os.fdopen(os.dup(2), "w")  # stderr as it is outside the command
    faulthandler.dump_traceback_later(timeout, exit=True, file=watch)
    try:
        with _captured_fd(1) as fd_out, _captured_fd(2) as fd_err, \
                contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            os.chdir(cwd)
            try:
                code = main([str(a) for a in args])
            except SystemExit as stop:  # argparse, or a command that exits
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None
                                                                     else 1)
                if stop.code is not None and not isinstance(stop.code, int):
                    print(stop.code, file=sys.stderr)
            except Exception:  # what the interpreter prints for an uncaught exception
                traceback.print_exc()
                code = 1
            finally:
                os.chdir(here)
                for stream in (sys.stdout, sys.stderr):
                    stream.flush()
    finally:
        faulthandler.cancel_dump_traceback_later()
        watch.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
    return subprocess.CompletedProcess(COMMAND + [str(a) for a in args], code or 0,
                                       out.getvalue() + fd_out[0], err.getvalue() + fd_err[0])
