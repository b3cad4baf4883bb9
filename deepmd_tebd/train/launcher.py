"""`dp train --workers N INPUT`: N local worker processes on loopback, one data-parallel run.

Each worker is `dp train` with a TF_CONFIG naming all N workers on 127.0.0.1 (free ports) and
its own index, and its share of the cores (OMP_NUM_THREADS and DP_INTRA_OP_PARALLELISM_THREADS,
unless already set; TF_CPP_MIN_LOG_LEVEL 2 unless set). SIGINT and SIGTERM are passed on to
every worker by pid (they stop together after the same step, with a checkpoint); when the chief
has finished or a worker has failed, the others get GRACE_S to finish before they are killed.
The exit status is the chief's. Imports no TensorFlow."""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

log = logging.getLogger("deepmd_tebd")
GRACE_S = 90.0


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 now (the system's choice)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def without_workers_option(argv: list[str]) -> list[str]:
    """The command line with `--workers N` (or `--workers=N`) removed."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            out.append(arg)
    return out


def worker_environment(rank: int, addresses: list[str], threads: int,
                       environ=os.environ) -> dict:
    """The environment of worker `rank`: TF_CONFIG and its share of the threads."""
    env = dict(environ)
    env["TF_CONFIG"] = json.dumps({"cluster": {"worker": addresses},
                                   "task": {"type": "worker", "index": rank}})
    for name in ("OMP_NUM_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS"):
        if not env.get(name):
            env[name] = str(threads)
    # TensorFlow's C++ errors only (not its INFO lines about the cluster, once per worker)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _status(code: int) -> int:
    """A child's exit status as a shell reports it (128 + signal when killed)."""
    return 128 - code if code < 0 else code


def launch(workers: int, argv: list[str]) -> int:
    """Runs `dp` with argv (a train command line without --workers) in `workers` local
    processes; returns the chief's exit status."""
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, not {workers}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = max(1, (cores or 1) // workers)
    addresses = [f"127.0.0.1:{port}" for port in free_ports(workers)]
    log.info("starting %d workers on %s, %d thread(s) each", workers, ", ".join(addresses),
             threads)
    children: list[subprocess.Popen] = []

    def forward(signum, frame):
        for child in children:
            if child.poll() is None:
                os.kill(child.pid, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for rank in range(workers):
            children.append(subprocess.Popen(
                [sys.executable, "-m", "deepmd_tebd.cli", *argv],
                env=worker_environment(rank, addresses, threads)))
        return _wait(children)
    finally:
        for child in children:
            if child.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
                child.wait()
        for s, handler in previous.items():
            signal.signal(s, handler)


def _wait(children: list[subprocess.Popen]) -> int:
    """Waits for the workers; once the chief has finished or one has failed, the others get
    GRACE_S. The chief's exit status."""
    deadline = None
    while True:
        codes = [child.poll() for child in children]
        if all(code is not None for code in codes):
            return _status(codes[0])
        if deadline is None and (codes[0] is not None or any(codes)):
            deadline = time.monotonic() + GRACE_S
        if deadline is not None and time.monotonic() > deadline:
            for rank, (child, code) in enumerate(zip(children, codes)):
                if code is None:
                    log.error("worker %d did not stop within %.0f s: killed", rank, GRACE_S)
                    os.kill(child.pid, signal.SIGKILL)
                    child.wait()
            return _status(children[0].wait())
        time.sleep(0.2)
