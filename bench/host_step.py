"""Host work per training step: the sampling-state snapshot, the batch and its conversion.

    python bench/host_step.py [--systems 400] [--atoms 6] [--frames 2000] [--sets 4]
                              [--steps 2000] [--keep DIR]

Writes --systems small periodic systems (--atoms atoms of two types, --frames frames split over
--sets sets, energy and force labels; random numbers) into a temporary directory, builds the
training DataSystem as `dp train` does (batch_size "auto", labels energy and force, both required)
and times what the trainer does on the host each step: `get_state()` of the training data, then
`get_batch()` and the conversion of the batch to tensors of the traced step's signature. Before
the timing every system gives one batch, so that each has read its first set (a set is read when
its system is first drawn). Also timed, per call: the JSON conversion of a snapshot,
`state.to_json()` (what get_state cost every step before it returned a snapshot) and
`json.dumps(state.to_json())` (what a checkpoint costs).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the step module imports TensorFlow
_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from deepmd_tebd.data.data_system import DataSystem  # noqa: E402
from deepmd_tebd.train.step import batch_signature, step_input  # noqa: E402

LABELS = ["energy", "force"]


def write_systems(root: Path, nsystems: int, natoms: int, nframes: int, nsets: int,
                  seed: int = 0) -> list[Path]:
    """nsystems systems of natoms atoms (types 0 and 1), nframes frames over nsets sets."""
    rng = np.random.default_rng(seed)
    atype = np.arange(natoms) % 2
    box = np.tile(10.0 * np.eye(3).reshape(9), (nframes, 1))
    paths = []
    for k in range(nsystems):
        path = root / f"sys.{k:04d}"
        path.mkdir(parents=True)
        (path / "type.raw").write_text(" ".join(map(str, atype)) + "\n")
        coord = rng.uniform(0.0, 10.0, (nframes, natoms * 3))
        force = rng.normal(size=(nframes, natoms * 3))
        energy = rng.normal(size=nframes)
        for s, frames in enumerate(np.array_split(np.arange(nframes), nsets)):
            set_dir = path / f"set.{s:03d}"
            set_dir.mkdir()
            np.save(set_dir / "coord.npy", coord[frames])
            np.save(set_dir / "box.npy", box[frames])
            np.save(set_dir / "energy.npy", energy[frames])
            np.save(set_dir / "force.npy", force[frames])
        paths.append(path)
    return paths


def time_steps(data: DataSystem, nsteps: int) -> dict:
    """Per-step times (s) of the trainer's host work, in total and by part."""
    signature = batch_signature(LABELS)
    parts = {"get_state": [], "get_batch": [], "to_tensors": [], "step": []}
    for _ in range(nsteps):
        t0 = time.perf_counter()
        state = data.get_state()
        t1 = time.perf_counter()
        batch = data.get_batch()
        t2 = time.perf_counter()
        batch = step_input(batch, signature)
        t3 = time.perf_counter()
        parts["get_state"].append(t1 - t0)
        parts["get_batch"].append(t2 - t1)
        parts["to_tensors"].append(t3 - t2)
        parts["step"].append(t3 - t0)
    del state, batch
    return parts


def time_call(function, repeats: int) -> list[float]:
    """Wall times (s) of repeats calls of function()."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        function()
        times.append(time.perf_counter() - t0)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", type=int, default=400)
    parser.add_argument("--atoms", type=int, default=6)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--sets", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--json-repeats", type=int, default=20)
    parser.add_argument("--keep", type=Path, help="write the systems here and keep them")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="deepmd_tebd-bench-host-") as tmp:
        root = args.keep or Path(tmp)
        t0 = time.perf_counter()
        paths = write_systems(root, args.systems, args.atoms, args.frames, args.sets)
        print(f"wrote {args.systems} systems x {args.frames} frames x {args.atoms} atoms "
              f"({args.sets} sets) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        data = DataSystem(paths, "auto", ["A", "B"], seed=1, labels=LABELS, required=LABELS)
        for k in range(data.nsystems):  # every system reads its first set
            data.get_batch(sys_idx=k)
        parts = time_steps(data, args.steps)
        state = data.get_state()
        to_json = time_call(state.to_json, args.json_repeats)
        dumps = time_call(lambda: json.dumps(state.to_json()), args.json_repeats)

    ms = 1e3
    print(f"{args.systems} systems, batch size {data.batch_size[0]}, {args.steps} steps")
    print("| per step | mean ms | median ms |")
    print("|---|---|---|")
    for name in ("get_state", "get_batch", "to_tensors", "step"):
        values = parts[name]
        label = "host work (all three)" if name == "step" else name
        print(f"| {label} | {ms * statistics.fmean(values):.4f} | "
              f"{ms * statistics.median(values):.4f} |")
    print(f"| state.to_json() (old get_state) | {ms * statistics.fmean(to_json):.3f} | "
          f"{ms * statistics.median(to_json):.3f} |")
    print(f"| json.dumps(state.to_json()) (checkpoint) | {ms * statistics.fmean(dumps):.3f} | "
          f"{ms * statistics.median(dumps):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
