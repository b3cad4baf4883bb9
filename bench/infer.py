"""Inference speed: our DeepPot on our frozen graph against DeePMD-kit 3.2's DeepPot on its frozen
graph of the same architecture, and LAMMPS (`pair_style deepmd`) running each graph.

    python bench/infer.py [--repeats 5] [--lammps-steps 200] [--threads N] [--skip-large]
                          [--keep DIR] [--compressed-only | --deep-pot-only] [--lammps-rounds 3]

Graphs: both programs train DeePMD-kit's se_e2_a_tebd water input (../shared/inputs) for 10 steps
on ../shared/data/water and freeze it: ours with `dp train` / `dp freeze` of this venv, DeePMD-kit's
with `dp --tf train` / `dp --tf freeze` of the oracle venv (tests/reference/deepmd_oracle.py).
DeePMD-kit 3.x builds the type embedding net without biases unless `use_tebd_bias` is true
(DeePMD-kit 2.x, which this package follows, always has them), so DeePMD-kit's input gets
`use_tebd_bias: true`: the two graphs then compute the same function of the same number of
weights. The weights' values do not matter for speed.

Cases: one frame of data_3 (192 atoms), and that frame replicated 4 x 4 x 8 (24,576 atoms). Each
program's DeepPot evaluates energy, forces and virial of the frame; time = median of --repeats
calls after one warm-up call. Ours runs on the training step's kernels (its default on the CPU,
deepmd_tebd/infer/kernel_model.py) and, in a column of its own, on the graph's own ops. Each
runs in a subprocess of its own (ours: this script with --time-ours; DeePMD-kit's:
tests/reference/deepmd_infer_runner.py in its venv), one at a time, so that the memory of one
(about 10 GB for 24,576 atoms in double precision) is free for the next. Before timing, the two
results are compared against each other's graph: each program evaluates the other's frozen
graph as well (agreement to ~1e-12 shows the graphs are interchangeable; the timing compares
each program on its own graph).

LAMMPS: DeePMD-kit's `lmp` (its `lmp` extra, installed into the oracle venv on first use) runs
--lammps-steps NVE steps (0.25 fs, 50 K) of the 192-atom frame and of the frame replicated 2x2x2
(1,536 atoms) with each graph; timesteps per second from LAMMPS's own loop time.

Compressed graphs (first): DeePMD-kit's se_e2_a water example without type embedding, trained
10 steps and frozen by each program; ours compressed by our `dp compress` and by DeePMD-kit's
(the same model), DeePMD-kit's by its own; LAMMPS timesteps per second of each and of our
uncompressed graph, 192 and 1,536 atoms (--skip-large: 192), in --lammps-rounds rounds that
run each graph once (interleaved), the median per graph. Targets: ours compressed / DeePMD-kit
compressed of the same model >= 1.0.

Threads: OMP_NUM_THREADS, TF/DP intra- and inter-op threads = --threads (default: usable cores)
on every side. Targets: DeepPot time ratio (ours / DeePMD-kit) <= 0.5; LAMMPS timesteps per
second with our graph >= with theirs. --deep-pot-only leaves LAMMPS out.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cores import usable_cores

_ROOT = Path(__file__).resolve().parents[1]
_SHARED = _ROOT.parent / "shared"
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))
sys.path.insert(0, str(_ROOT / "tests"))

from reference.deepmd_oracle import _clean_env, oracle_python  # noqa: E402
from reference.lammps import lammps_executable, run_lammps  # noqa: E402

WATER = Path(os.environ.get("DEEPMD_TEBD_WATER", _SHARED / "data" / "water"))
RUNNER = _ROOT / "tests" / "reference" / "deepmd_infer_runner.py"
THREAD_KEYS = ("OMP_NUM_THREADS", "TF_INTRA_OP_PARALLELISM_THREADS",
               "TF_INTER_OP_PARALLELISM_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS",
               "DP_INTER_OP_PARALLELISM_THREADS")


def _progress(message: str) -> None:
    print(f"[bench/infer] {message}", file=sys.stderr, flush=True)


def _input(ours: bool, name: str = "water_se_e2_a_tebd.json") -> dict:
    config = json.loads((_SHARED / "inputs" / name).read_text())
    training = config["training"]
    training.update(numb_steps=10, disp_freq=10, save_freq=10)
    training["training_data"]["systems"] = [f"../data/data_{i}" for i in range(3)]
    training["validation_data"]["systems"] = ["../data/data_3"]
    if not ours and "type_embedding" in config["model"]:
        config["model"]["type_embedding"]["use_tebd_bias"] = True
    return config


def _run(argv, cwd, env, what):
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def _frozen(work: Path, ours: bool, env: dict, python_oracle: str | None,
            name: str = "water_se_e2_a_tebd.json") -> Path:
    root = work / (("ours" if ours else "deepmd") + ("" if "tebd" in name else "-plain"))
    root.mkdir(parents=True)
    (root / "data").symlink_to(WATER, target_is_directory=True)
    run = root / "run"
    run.mkdir()
    (run / "input.json").write_text(json.dumps(_input(ours, name), indent=1))
    if ours:
        dp = [sys.executable, "-m", "deepmd_tebd.cli"]
        _run(dp + ["train", "input.json"], run, env, "our dp train")
        _run(dp + ["freeze", "-o", "graph.pb"], run, env, "our dp freeze")
    else:
        dp = [str(Path(python_oracle).parent / "dp"), "--tf"]
        _run(dp + ["train", "input.json"], run, env, "DeePMD-kit's dp train")
        _run(dp + ["freeze", "-o", "graph.pb"], run, env, "DeePMD-kit's dp freeze")
    return run / "graph.pb"


def water_frame(replicas=(1, 1, 1)):
    """coords [1, n, 3], cell [1, 9], types [n] of data_3's first frame, replicated."""
    base = WATER / "data_3" / "set.000"
    coords = np.load(base / "coord.npy")[0].reshape(-1, 3)
    cell = np.load(base / "box.npy")[0].reshape(3, 3)
    types = np.loadtxt(WATER / "data_3" / "type.raw", dtype=int)
    shifts = np.array([[i, j, k] for i in range(replicas[0]) for j in range(replicas[1])
                       for k in range(replicas[2])], dtype=float) @ cell
    big = (coords[None] + shifts[:, None]).reshape(-1, 3)
    big_cell = cell * np.array(replicas, dtype=float)[:, None]
    return big[None], big_cell.reshape(1, 9), np.tile(types, len(shifts))


def _time_ours_here(graph: str, inputs: str, output: str, repeats: str, kernels: str) -> None:
    """The subprocess side of `_time_ours` (so that its memory is returned when it ends)."""
    from deepmd_tebd.infer import DeepPot

    data = np.load(inputs)
    coords, cell, types = data["coords"], data["cells"], data["types"]
    dp = DeepPot(graph, kernels=kernels == "1")
    dp.eval(coords, cell, types)
    if dp.on_kernels != (kernels == "1"):
        raise SystemExit(f"{graph}: DeepPot on_kernels is {dp.on_kernels}, asked {kernels}")
    times = []
    for _ in range(max(1, int(repeats))):
        t0 = time.perf_counter()
        out = dp.eval(coords, cell, types)
        times.append(time.perf_counter() - t0)
    np.savez(output, energy=out[0], force=out[1], virial=out[2], seconds=np.array(times))


def _timed_eval(command: list, graph: Path, frame, repeats: int, env: dict, work: Path,
                what: str, tail: list = ()) -> tuple[float, tuple]:
    """Runs `command GRAPH IN.npz OUT.npz REPEATS` (a DeepPot timing subprocess) on the frame:
    (median seconds, (energy, force, virial))."""
    coords, cell, types = frame
    np.savez(work / "frame.npz", coords=coords, cells=cell, types=types)
    _run(command + [str(graph), str(work / "frame.npz"), str(work / "out.npz"), str(repeats),
                    *tail], work, env, what)
    with np.load(work / "out.npz") as out:
        return float(np.median(out["seconds"])), (out["energy"], out["force"], out["virial"])


def _time_ours(graph: Path, frame, repeats: int, env: dict, work: Path,
               kernels: bool = True) -> tuple[float, tuple]:
    """Our DeepPot on the training step's kernels (infer/kernel_model.py), or (kernels False)
    on the graph's own ops."""
    return _timed_eval([sys.executable, str(Path(__file__).resolve()), "--time-ours"], graph,
                       frame, repeats, env, work, "our DeepPot",
                       tail=["1" if kernels else "0"])


def _time_theirs(python: str, graph: Path, frame, repeats: int, env: dict,
                 work: Path) -> tuple[float, tuple]:
    return _timed_eval([python, str(RUNNER)], graph, frame, repeats, env, work,
                       "DeePMD-kit's DeepPot")


def _compressed_graphs(work: Path, ours_env: dict, theirs_env: dict, python: str) -> dict:
    """DeePMD-kit's se_e2_a water example (no type embedding, 10 steps) trained and frozen by
    both programs; {label: graph}: ours uncompressed, ours compressed by our `dp compress`, ours
    compressed by DeePMD-kit's `dp compress` (the same model), DeePMD-kit's compressed by its
    own."""
    ours = _frozen(work, True, ours_env, None, "water_se_e2_a.json")
    theirs = _frozen(work, False, theirs_env, python, "water_se_e2_a.json")
    dp = [sys.executable, "-m", "deepmd_tebd.cli", "compress"]
    oracle = [str(Path(python).parent / "dp"), "--tf", "compress"]
    _run(dp + ["-i", "graph.pb", "-o", "ours_c.pb"], ours.parent, ours_env, "our dp compress")
    _run(oracle + ["-i", "graph.pb", "-o", "theirs_c.pb"], ours.parent, theirs_env,
         "DeePMD-kit's dp compress of our graph")
    _run(oracle + ["-i", "graph.pb", "-o", "theirs_c.pb"], theirs.parent, theirs_env,
         "DeePMD-kit's dp compress of its graph")
    return {"ours, uncompressed": ours, "ours, compressed by deepmd_tebd": ours.parent /
            "ours_c.pb", "ours, compressed by DeePMD-kit": ours.parent / "theirs_c.pb",
            "DeePMD-kit's, compressed by DeePMD-kit": theirs.parent / "theirs_c.pb"}


def _lammps_compressed(work: Path, graphs: dict, steps: int, threads: int,
                       rounds: int, small_only: bool = False) -> list[str]:
    """LAMMPS timesteps per second of each graph of `_compressed_graphs`, 192 and 1,536 atoms:
    `rounds` rounds that run every graph once each (interleaved, so that a slow spell of the
    machine falls on all of them), the median per graph; ratios against the same model
    compressed by DeePMD-kit."""
    lines = ["", f"LAMMPS, se_e2_a without type embedding, compressed (step 0.01, extrapolate 5), "
             f"{steps} NVE steps, {threads} threads, median of {rounds} interleaved rounds", "",
             "| case | " + " | ".join(graphs) + " | ours compressed / DeePMD-kit compressed "
             "(same model) | compressed / uncompressed (ours) | ratio per round |",
             "|---" * (len(graphs) + 4) + "|"]
    names = list(graphs)
    cases = (("192 atoms", (1, 1, 1)), ("1,536 atoms (2x2x2)", (2, 2, 2)))
    for label, replicas in cases[:1] if small_only else cases:
        coords, cell, types = water_frame(replicas)
        rates = {name: [] for name in names}
        for r in range(rounds):
            for k, (name, graph) in enumerate(graphs.items()):
                _progress(f"LAMMPS {label}, round {r + 1}/{rounds}: {name}")
                out = run_lammps(work / f"lammps-c{k}-{replicas[0]}-{r}", graph, coords[0],
                                 cell[0], types, ["O", "H"], nve_steps=steps, threads=threads)
                rates[name].append(steps / out["loop_s"])
        median = {name: float(np.median(rates[name])) for name in names}
        per_round = ", ".join(f"{a / b:.2f}" for a, b in zip(rates[names[1]], rates[names[2]]))
        lines.append(f"| {label} | " + " | ".join(f"{median[n]:.2f}" for n in names) +
                     f" | {median[names[1]] / median[names[2]]:.2f} "
                     f"| {median[names[1]] / median[names[0]]:.2f} | {per_round} |")
        _progress(lines[-1])
    return lines


def _max_rel(a, b) -> float:
    return max(float(np.abs(x - y).max() / max(np.abs(y).max(), 1e-300)) for x, y in zip(a, b))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--time-ours"]:
        _time_ours_here(*argv[1:6])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lammps-steps", type=int, default=200)
    parser.add_argument("--lammps-rounds", type=int, default=3,
                        help="interleaved rounds of the compressed-graph LAMMPS runs (median)")
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--skip-large", action="store_true",
                        help="leave out 24,576 atoms (DeepPot) and 1,536 atoms (compressed graphs "
                        "in LAMMPS)")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it")
    parser.add_argument("--compressed-only", action="store_true",
                        help="only the compressed-graph LAMMPS comparison")
    parser.add_argument("--deep-pot-only", action="store_true",
                        help="only the DeepPot comparison (no LAMMPS)")
    args = parser.parse_args(argv)

    python, reason = oracle_python()
    if python is None:
        print(f"DeePMD-kit unavailable: {reason}", file=sys.stderr)
        return 1
    threads = {key: str(args.threads) for key in THREAD_KEYS}
    ours_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **threads)
    ours_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT),
                                                           os.environ.get("PYTHONPATH")]))
    theirs_env = _clean_env({"TF_CPP_MIN_LOG_LEVEL": "3", **threads})

    if args.keep:
        work = Path(args.keep)
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        cleanup = None
    else:
        cleanup = tempfile.TemporaryDirectory(prefix="deepmd_tebd-bench-infer-")
        work = Path(cleanup.name)
    lines = []
    try:
        lmp, why = (None, "--deep-pot-only") if args.deep_pot_only else lammps_executable()
        if lmp is not None:
            _progress("compressed graphs: training, freezing and compressing (10 steps)")
            compressed = _compressed_graphs(work, ours_env, theirs_env, python)
            lines += _lammps_compressed(work, compressed, args.lammps_steps, args.threads,
                                        args.lammps_rounds, args.skip_large)
        if args.compressed_only:
            return _report(lines)
        _progress("training and freezing both graphs (10 steps each)")
        ours_graph = _frozen(work, True, ours_env, None)
        theirs_graph = _frozen(work, False, theirs_env, python)
        cases = [("192 atoms", (1, 1, 1))]
        if not args.skip_large:
            cases.append(("24,576 atoms (4x4x8)", (4, 4, 8)))
        lines += [f"DeepPot, energy + forces + virial of one frame, median of {args.repeats} "
                  f"calls, {args.threads} threads", "",
                  "| case | ours ms | DeePMD-kit ms | ratio | ours on the graph's ops ms | "
                  "cross-check |", "|---|---|---|---|---|---|"]
        for label, replicas in cases:
            frame = water_frame(replicas)
            _progress(f"{label}: our DeepPot")
            ours_s, ours_out = _time_ours(ours_graph, frame, args.repeats, ours_env, work)
            _progress(f"{label}: our DeepPot on the graph's ops")
            graph_s, graph_out = _time_ours(ours_graph, frame, args.repeats, ours_env, work,
                                            kernels=False)
            _progress(f"{label}: DeePMD-kit's DeepPot")
            theirs_s, theirs_out = _time_theirs(python, theirs_graph, frame, args.repeats,
                                                theirs_env, work)
            # each program on the other's graph gives the same numbers
            _, ours_on_theirs = _time_ours(theirs_graph, frame, 1, ours_env, work)
            _, theirs_on_ours = _time_theirs(python, ours_graph, frame, 1, theirs_env, work)
            check = max(_max_rel(ours_on_theirs, theirs_out), _max_rel(theirs_on_ours, ours_out),
                        _max_rel(graph_out, ours_out))
            lines.append(f"| {label} | {1e3 * ours_s:.1f} | {1e3 * theirs_s:.1f} "
                         f"| {ours_s / theirs_s:.2f} | {1e3 * graph_s:.1f} "
                         f"| max rel diff {check:.1e} |")
            _progress(lines[-1])
        if args.deep_pot_only:
            return _report(lines)
        lines += ["", f"LAMMPS pair_style deepmd (DeePMD-kit 3.2 plugin), {args.lammps_steps} NVE "
                  f"steps, {args.threads} threads", ""]
        if lmp is None:
            lines.append(f"skipped: {why}")
        else:
            lines += ["| case | our graph steps/s | DeePMD-kit graph steps/s | ratio |",
                      "|---|---|---|---|"]
            for label, replicas in (("192 atoms", (1, 1, 1)), ("1,536 atoms (2x2x2)", (2, 2, 2))):
                coords, cell, types = water_frame(replicas)
                rates = []
                for name, graph in (("ours", ours_graph), ("deepmd", theirs_graph)):
                    _progress(f"LAMMPS {label} with the {name} graph")
                    out = run_lammps(work / f"lammps-{name}-{replicas[0]}", graph, coords[0],
                                     cell[0], types, ["O", "H"], nve_steps=args.lammps_steps,
                                     threads=args.threads)
                    rates.append(args.lammps_steps / out["loop_s"])
                lines.append(f"| {label} | {rates[0]:.2f} | {rates[1]:.2f} "
                             f"| {rates[0] / rates[1]:.2f} |")
                _progress(lines[-1])
    finally:
        if cleanup is not None:
            cleanup.cleanup()
    return _report(lines)


def _report(lines: list[str]) -> int:
    lines = lines + ["", "Targets: DeepPot ratio <= 0.5; LAMMPS ratio (ours / DeePMD-kit) >= 1.0, "
                     "also for the same model compressed by each program"]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
