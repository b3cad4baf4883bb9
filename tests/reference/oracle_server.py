"""Runs in DeePMD-kit's venv (deepmd_oracle.py: OracleSession): one process that runs many oracle
scripts, so that DeePMD-kit and TensorFlow are imported once per test process, not once per
script.

Requests come on stdin, one JSON line each: {"argv": [script, arg, ...], "cwd": folder}. The
script runs as `python script arg ...` would run it (run_name "__main__", sys.argv, the working
folder), its Python stdout and stderr captured; the answer goes out on the protocol stream, one
JSON line: {"returncode": int, "stdout": str, "stderr": str}. The process's own file descriptor
1 is pointed at its stderr, so that C++ code printing to stdout cannot break the protocol.
Only the standard library is imported here.
"""
import contextlib
import io
import json
import os
import runpy
import sys
import traceback


def _run(argv: list, cwd: str) -> dict:
    out, err = io.StringIO(), io.StringIO()
    here, saved_argv, saved_path = os.getcwd(), sys.argv, list(sys.path)
    code = 0
    try:
        os.chdir(cwd)
        sys.argv = list(argv)
        sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(argv[0], run_name="__main__")
            except SystemExit as stop:
                if isinstance(stop.code, int) or stop.code is None:
                    code = stop.code or 0
                else:
                    print(stop.code, file=sys.stderr)
                    code = 1
            except BaseException:  # what the interpreter prints for an uncaught exception
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(here)
        sys.argv, sys.path[:] = saved_argv, saved_path
    return {"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def main() -> None:
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # C-level writes to stdout go to stderr
    sys.stdout = os.fdopen(1, "w", closefd=False)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        protocol.write(json.dumps(_run(request["argv"], request["cwd"])) + "\n")
        protocol.flush()


if __name__ == "__main__":
    main()
