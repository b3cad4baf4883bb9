"""DeePMD-kit 3.2.0 as an oracle for the custom ops, run in its own virtual environment.

DeePMD-kit's op library registers the same op names as deepmd_tebd's, so the two can never be
loaded into one process. This module finds (or creates) a venv holding ``deepmd-kit[cpu,lmp]==3.2.0``
and runs ``deepmd_ops_runner.py`` there in a subprocess, exchanging arrays through .npz files.

    python, reason = oracle_python()          # (None, "why") when the venv cannot be had
    run = run_deepmd_ops(cases)               # run.outputs[i]["descrpt"], ...
    run = run_deepmd_ops(cases, want_timing=True, repeats=5, threads=2)   # run.timings[i]
    run = run_deepmd_ops([], want_opdefs=True)                            # run.opdefs["ProdEnvMatA"]

The venv is ``$DEEPMD_ORACLE_VENV`` (default /tmp/deepmd_tebd-oracle-venv). Creating it downloads
DeePMD-kit and tensorflow-cpu 2.21.0 from PyPI (a few minutes); a lock file next to it makes
concurrent callers wait for one creation. Only NumPy and the standard library are used here.

Scripts run in one long-lived oracle process per test process (``run_oracle``: oracle_server.py),
which imports DeePMD-kit and TensorFlow once; a script that needs a process of its own (thread
settings made before TensorFlow starts) gets a subprocess.
"""
from __future__ import annotations

import atexit
import dataclasses
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

DEEPMD_VERSION = "3.2.0"
REQUIREMENT = f"deepmd-kit[cpu,lmp]=={DEEPMD_VERSION}"  # lmp: LAMMPS with its plugin
DEFAULT_VENV = "/tmp/deepmd_tebd-oracle-venv"
RUNNER = Path(__file__).resolve().parent / "deepmd_ops_runner.py"
SERVER = Path(__file__).resolve().parent / "oracle_server.py"

# Written into a venv this module created, once the install has been verified; a venv created
# here without it is a leftover of an interrupted creation and is rebuilt.
_CREATED_MARK = ".deepmd_tebd_oracle_created"
_READY_MARK = ".deepmd_tebd_oracle_ready"

_INSTALL_TIMEOUT_S = 1800
_cached: tuple[str | None, str] | None = None


class OracleError(RuntimeError):
    """The DeePMD-kit subprocess failed."""


def venv_path() -> Path:
    return Path(os.environ.get("DEEPMD_ORACLE_VENV") or DEFAULT_VENV)


def _python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def _log(message: str) -> None:
    print(f"[deepmd-oracle] {message}", file=sys.stderr, flush=True)


def _installed_version(python: Path) -> str | None:
    """deepmd-kit's version in the venv of ``python`` (read from package metadata, no import)."""
    try:
        proc = subprocess.run(
            [str(python), "-c",
             "import importlib.metadata as m; print(m.version('deepmd-kit'))"],
            capture_output=True, text=True, timeout=120, env=_clean_env(),
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the oracle's python: no path settings leaking from the caller's venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if extra:
        env.update(extra)
    return env


def _run_logged(cmd: list[str], log_path: Path) -> None:
    """Run an install step, appending its output to log_path; raise with the log's tail."""
    _log("$ " + " ".join(cmd))
    with open(log_path, "a") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                              timeout=_INSTALL_TIMEOUT_S, env=_clean_env())
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise OracleError(f"`{' '.join(cmd)}` exited with status {proc.returncode}:\n{tail}")


def _create(venv: Path) -> None:
    """Create the venv and install DeePMD-kit into it (minutes; needs PyPI)."""
    if venv.exists() and (venv / _CREATED_MARK).exists():
        _log(f"removing the incomplete oracle venv {venv}")
        # renamed first: a removal cut short (the test session ends) leaves no half venv
        # without its mark at the venv's path, which would pass for somebody else's
        doomed = Path(tempfile.mkdtemp(dir=venv.parent, prefix=f".{venv.name}.removed-"))
        os.replace(venv, doomed / venv.name)
        shutil.rmtree(doomed, ignore_errors=True)
    base_python = shutil.which("python3") or sys.executable
    log_path = Path(str(venv) + ".install.log")
    log_path.write_text("")
    _log(f"creating the DeePMD-kit oracle venv {venv} with {REQUIREMENT} "
         f"(takes a few minutes; log: {log_path})")
    if not _python_of(venv).exists():
        venv.mkdir(parents=True, exist_ok=True)
        (venv / _CREATED_MARK).write_text("")  # first: whatever is there from now on is ours
        _run_logged([base_python, "-m", "venv", str(venv)], log_path)
    python = str(_python_of(venv))
    _run_logged([python, "-m", "pip", "install", "--disable-pip-version-check",
                 "--progress-bar", "off", "--retries", "2", "--timeout", "60",
                 REQUIREMENT], log_path)
    version = _installed_version(_python_of(venv))
    if version != DEEPMD_VERSION:
        raise OracleError(f"after installation deepmd-kit's version is {version!r}, "
                          f"not {DEEPMD_VERSION}")
    (venv / _READY_MARK).write_text(DEEPMD_VERSION + "\n")
    _log(f"oracle venv ready: {python}")


def _locate() -> tuple[str | None, str]:
    venv = venv_path()
    python = _python_of(venv)
    if (venv / _READY_MARK).exists() and python.exists():
        return str(python), ""
    lock_path = Path(str(venv) + ".lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(lock_path, "a")
    except OSError as err:
        return None, f"cannot open the lock file {lock_path}: {err}"
    with lock:
        # One creator at a time; the others wait here and then find the venv ready.
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if (venv / _READY_MARK).exists() and python.exists():
                return str(python), ""
            # A venv made by someone else (not by this module): use it if it has the right
            # DeePMD-kit, never delete it.
            if python.exists() and not (venv / _CREATED_MARK).exists():
                version = _installed_version(python)
                if version == DEEPMD_VERSION:
                    return str(python), ""
                return None, (f"{venv} exists but has deepmd-kit {version or 'not installed'}, "
                              f"not {DEEPMD_VERSION}; point DEEPMD_ORACLE_VENV elsewhere")
            try:
                _create(venv)
            except (OSError, subprocess.SubprocessError, OracleError) as err:
                return None, f"DeePMD-kit oracle venv could not be created at {venv}: {err}"
            return str(python), ""
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def oracle_python() -> tuple[str | None, str]:
    """``(path of a python with deepmd-kit 3.2.0, "")``, or ``(None, reason)``.

    Creates the venv on first use (see the module docstring); the answer, a failure included, is
    cached per process so that a failed creation is not retried by every caller.
    """
    global _cached
    if _cached is None:
        _cached = _locate()
    return _cached


@dataclasses.dataclass
class DeepmdRun:
    """What one runner subprocess produced.

    outputs: per case, {"descrpt", "descrpt_deriv", "rij", "nlist", "force", "virial",
             "atom_virial"[, "grad_net_force", "grad_net_virial"]} -> ndarray.
    timings: per case, {"ProdEnvMatA", "ProdForceSeA", "ProdVirialSeA"} -> median seconds
             (empty dicts unless timing was asked for).
    opdefs:  op name -> OpDef in protobuf text format (empty unless asked for).
    """

    outputs: list[dict[str, np.ndarray]]
    timings: list[dict[str, float]]
    opdefs: dict[str, str]


_CASE_ARRAYS = ("coord", "atype", "natoms", "box", "mesh", "davg", "dstd", "net_deriv")


class OracleSession:
    """One oracle process (oracle_server.py) that runs scripts on request; `run` answers as
    subprocess.run would for `python SCRIPT ARGS`. The process ends with this test process
    (atexit), or when a script outlives its timeout (the next request starts a new one)."""

    def __init__(self, python: str):
        self.python = python
        self.proc = None
        self.log = None

    def _start(self) -> None:
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([self.python, str(SERVER)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env=_clean_env({"TF_CPP_MIN_LOG_LEVEL": "3"}))

    def stop(self) -> None:
        """Ends the oracle process (by its id) and waits for it."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def _log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def run(self, argv: list, cwd, timeout: float = 600) -> subprocess.CompletedProcess:
        """`python ARGV` in `cwd`, run by the oracle process; OracleError when the process dies
        or the script runs longer than `timeout` seconds (the process is then ended)."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        request = json.dumps({"argv": [str(a) for a in argv], "cwd": str(cwd)})
        try:
            self.proc.stdin.write(request + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            what = "died" if self.proc.poll() is not None else f"timed out after {timeout} s"
            tail = self._log_tail()
            self.stop()
            raise OracleError(f"the oracle process {what} running {argv[0]}:\n{tail}")
        answer = json.loads(line)
        return subprocess.CompletedProcess([self.python, *map(str, argv)], answer["returncode"],
                                           answer["stdout"], answer["stderr"])


_session: OracleSession | None = None


def run_oracle(argv: list, cwd, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python ARGV` in `cwd` with the oracle's interpreter, run by this test process's oracle
    process (OracleSession); skips the calling test when the oracle is unavailable."""
    global _session
    python = require_oracle()
    if _session is None:
        _session = OracleSession(python)
        atexit.register(_session.stop)
    return _session.run(argv, cwd, timeout)


def require_oracle() -> str:
    """The oracle's python, or skip the calling test saying why it is unavailable."""
    python, reason = oracle_python()
    if python is None:
        import pytest

        pytest.skip(f"DeePMD-kit oracle unavailable: {reason}")
    return python


def run_oracle_script(source: str, args: dict, workdir: Path, timeout: int = 600) -> str:
    """Runs the Python script `source` with the oracle's interpreter, its JSON `args` as argv[1]
    (the script file goes to `workdir`). Skips the calling test when the oracle is unavailable;
    fails it with the script's stderr when the script fails. Returns the last line of stdout."""
    script = Path(workdir) / "oracle_script.py"
    script.write_text(source)
    proc = run_oracle([script, json.dumps(args)], workdir, timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def split_case(case) -> tuple[dict, dict[str, np.ndarray]]:
    """A case dict as the runner's ``run_case`` takes it: (JSON-able meta, arrays)."""
    dtype = np.dtype(case.get("dtype", "float64")).name
    if dtype not in ("float64", "float32"):
        raise ValueError(f"case {case.get('name')}: dtype must be float64 or float32, not {dtype}")
    grads = "grad_force" in case and "grad_virial" in case
    meta = {"name": str(case.get("name", "")), "dtype": dtype,
            "rcut": float(case["rcut"]), "rcut_smth": float(case["rcut_smth"]),
            "sel": [int(s) for s in case["sel"]], "grads": grads,
            "mixed": bool(case.get("mixed", False))}
    keys = _CASE_ARRAYS + (("grad_force", "grad_virial") if grads else ())
    return meta, {key: np.asarray(case[key]) for key in keys}


def _pack(cases, path: Path) -> None:
    """Write the cases in the runner's input layout (see deepmd_ops_runner.py)."""
    arrays: dict[str, np.ndarray] = {}
    metas = []
    for i, case in enumerate(cases):
        meta, case_arrays = split_case(case)
        metas.append(meta)
        for key, value in case_arrays.items():
            arrays[f"c{i}/{key}"] = value
    arrays["meta"] = np.array(json.dumps(metas))
    np.savez(path, **arrays)


def run_deepmd_ops(cases, want_timing: bool = False, repeats: int = 5, warmup: int = 1,
                   want_opdefs: bool = False, threads: int | None = None,
                   timeout: float = 1800) -> DeepmdRun:
    """Run DeePMD-kit's ops on ``cases`` in one subprocess of the oracle python.

    Each case is a dict: ``dtype`` ("float64" or "float32"), ``coord`` [nf, 3*nall],
    ``atype`` [nf, nall], ``natoms`` [2+T], ``box`` [nf, 9], ``mesh`` (length 0 or 6), ``davg``,
    ``dstd`` [T, 4*nnei], ``rcut``, ``rcut_smth``, ``sel`` (list, length T), ``net_deriv``
    [nf, nloc*4*nnei], and optionally ``grad_force`` [nf, 3*nall] and ``grad_virial`` [nf, 9] to
    also run ProdForceSeAGrad / ProdVirialSeAGrad. Local atoms must be sorted by type.

    ``threads`` (if given) sets OMP_NUM_THREADS and TF's intra-/inter-op threads in the subprocess.
    Raises OracleError when the oracle is unavailable or the subprocess fails.
    """
    python, reason = oracle_python()
    if python is None:
        raise OracleError(reason)
    with tempfile.TemporaryDirectory(prefix="deepmd_oracle_") as tmp:
        in_path, out_path = Path(tmp) / "cases.npz", Path(tmp) / "results.npz"
        cmd = [python, str(RUNNER), "--output", str(out_path)]
        if cases:
            _pack(cases, in_path)
            cmd += ["--input", str(in_path)]
        if want_timing:
            cmd += ["--timing", "--repeats", str(repeats), "--warmup", str(warmup)]
        if want_opdefs:
            cmd += ["--opdefs"]
        if threads:
            cmd += ["--threads", str(threads)]
        try:
            if threads:  # thread pools are sized before TensorFlow starts: a process of its own
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                      env=_clean_env())
            else:
                proc = run_oracle(cmd[1:], tmp, timeout)
        except subprocess.TimeoutExpired as err:
            raise OracleError(f"the DeePMD-kit runner timed out after {timeout} s") from err
        if proc.returncode != 0 or not out_path.exists():
            tail = "\n".join(line for line in proc.stderr.splitlines()
                             if "libcudart" not in line)[-4000:]
            raise OracleError(
                f"the DeePMD-kit runner ({' '.join(cmd)}) exited with status "
                f"{proc.returncode}; stderr tail:\n{tail}")
        with np.load(out_path, allow_pickle=False) as data:
            results = {key: data[key] for key in data.files}
    outputs, timings = [], []
    for i in range(len(cases)):
        prefix = f"c{i}/"
        outputs.append({k[len(prefix):]: v for k, v in results.items()
                        if k.startswith(prefix) and not k.startswith(prefix + "time/")})
        timings.append({k[len(prefix + "time/"):]: float(v) for k, v in results.items()
                        if k.startswith(prefix + "time/")})
    opdefs = {k[len("opdef/"):]: str(v) for k, v in results.items() if k.startswith("opdef/")}
    return DeepmdRun(outputs=outputs, timings=timings, opdefs=opdefs)
