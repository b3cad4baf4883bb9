"""Data-parallel training against threads on one node: frames trained per second and the wall
time to reach the same whole-validation force RMSE.

    python bench/parallel.py [--steps 1000] [--save-every 100] [--rounds 1] [--keep DIR]
                             [--out DIR]

Input: the water example (examples/water/se_e2_a_tebd/input.json) with numb_steps --steps and a
checkpoint every --save-every steps (all kept), training systems data_0..data_2 of
../shared/data/water. Four runs, one after the other, each with its own work dir (--rounds R:
R rounds of the four, interleaved so that a slow spell of the machine falls on all of them;
each figure is the median over the rounds):

    1w x 1t   `dp train`              OMP/DP_INTRA/DP_INTER threads 1
    2w x 1t   `dp train --workers 2`  1 thread per worker (2 x the frames per step)
    1p x 2t   `dp train`              threads 2
    1p x 2r   DP_CPU_REPLICAS=2 `dp train`  one process, 2 replicas (MirroredStrategy on 2
              logical CPU devices, the multi-GPU path), threads 2 (2 x the frames per step)

Frames per second: frames per step (batch size x workers) x steps between the first and the
last checkpoint / the time between their writes (startup, statistics and tracing excluded).
Whole-validation force RMSE: every checkpoint frozen and evaluated on all frames of data_3
(DeepPot); the target is the largest final RMSE of the runs (one all of them reach), and
each run's time to target is the write time of its first checkpoint at or below it, counted from
the run's first step (the training is seeded, so the RMSE of a checkpoint is the same in
every round: it is evaluated in the first). Printed: each run's progress and frames/s, the table,
parallel efficiency (2w frames/s / (2 x 1w frames/s)), 2w / 1p x 2t (and its bound at
efficiency 1: 2 / the threads' speed-up) and 1p x 2r / 1p x 2t frames/s; written to
OUT/results.json. Run it on an idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WATER = Path(os.environ.get("DEEPMD_TEBD_WATER", ROOT.parent / "shared/data/water"))
sys.path.insert(0, str(ROOT))  # this checkout's package for the evaluation
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# name: (workers, threads, replicas per process)
RUNS = {"1w x 1t": (1, 1, 1), "2w x 1t": (2, 1, 1), "1p x 2t": (1, 2, 1), "1p x 2r": (1, 2, 2)}


def _script(steps: int, save_every: int) -> dict:
    script = json.loads((ROOT / "examples/water/se_e2_a_tebd/input.json").read_text())
    training = script["training"]
    training.update(numb_steps=steps, disp_freq=save_every, save_freq=save_every,
                    max_ckpt_keep=steps // save_every + 2)
    return script


def _env(threads: int, replicas: int = 1) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", DP_CPU_REPLICAS=str(replicas))
    for name in ("OMP_NUM_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS",
                 "DP_INTER_OP_PARALLELISM_THREADS", "TF_INTRA_OP_PARALLELISM_THREADS",
                 "TF_INTER_OP_PARALLELISM_THREADS"):
        env[name] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _progress(message: str) -> None:
    print(f"[bench/parallel] {message}", flush=True)


def train(name: str, workdir: Path, steps: int, save_every: int) -> dict:
    """One run: its work dir, wall time, and the write time of every checkpoint by step; the
    trainer's progress lines are shown as they come."""
    workers, threads, replicas = RUNS[name]
    run = workdir / name.replace(" ", "")
    run.mkdir(parents=True)
    (run.parent / "data").exists() or (run.parent / "data").symlink_to(WATER)
    (run / "input.json").write_text(json.dumps(_script(steps, save_every)))
    argv = [sys.executable, "-m", "deepmd_tebd.cli", "train", "input.json"]
    if workers > 1:
        argv += ["--workers", str(workers)]
    t0 = time.time()
    proc = subprocess.Popen(argv, cwd=run, env=_env(threads, replicas), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    tail = []
    for line in proc.stderr:
        tail = (tail + [line])[-60:]
        if "steps/s, ETA" in line:
            _progress(f"{name}: {line.split('INFO', 1)[-1].strip()}")
    wall = time.time() - t0
    if proc.wait():
        raise SystemExit(f"{name} failed:\n{''.join(tail)}")
    written = {int(p.name.split("-")[1].split(".")[0]): p.stat().st_mtime
               for p in run.glob("model.ckpt-*.index")}
    batch_size = json.loads((run / "out.json").read_text())["training"]["training_data"][
        "batch_size"]
    return {"run": str(run), "workers": workers, "replicas": replicas, "threads": threads,
            "wall_s": wall,
            "written": dict(sorted(written.items())), "batch_size": batch_size}


def force_rmse(run: Path, step: int) -> float:
    """Whole-validation force RMSE (all frames of data_3) of checkpoint model.ckpt-<step>."""
    from deepmd_tebd.infer import DeepPot
    from deepmd_tebd.infer.frozen import freeze

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "checkpoint").write_text(
            f'model_checkpoint_path: "{run / f"model.ckpt-{step}"}"\n')
        freeze(tmp, Path(tmp) / "graph.pb")
        dp = DeepPot(Path(tmp) / "graph.pb")
        errors = []
        system = WATER / "data_3"
        atype = np.loadtxt(system / "type.raw", dtype=int)
        for set_dir in sorted(system.glob("set.*")):
            coord, box = np.load(set_dir / "coord.npy"), np.load(set_dir / "box.npy")
            force = np.load(set_dir / "force.npy")
            _, f, _ = dp.eval(coord, box, atype)
            errors.append((f.reshape(force.shape) - force).ravel())
        return float(np.sqrt(np.mean(np.concatenate(errors) ** 2)))


def _rates(r: dict) -> None:
    steps = sorted(r["written"])
    first, last = steps[0], steps[-1]
    r["steps_per_s"] = (last - first) / (r["written"][last] - r["written"][first])
    batch = int(r["batch_size"]) if str(r["batch_size"]).isdigit() else 1  # water: auto = 1
    r["frames_per_s"] = r["steps_per_s"] * r["workers"] * r["replicas"] * batch


def summarise(rounds: list[dict]) -> dict:
    """Frames/s, RMSE per checkpoint, time to the common target, medians over the rounds and
    the ratios; {name: per-configuration summary} under "runs"."""
    first = rounds[0]
    for name, r in first.items():
        _progress(f"{name}: whole-validation force RMSE of {len(r['written'])} checkpoints")
        r["rmse_f"] = {s: force_rmse(Path(r["run"]), s) for s in sorted(r["written"])}
    target = max(r["rmse_f"][max(r["rmse_f"])] for r in first.values())
    runs = {}
    for name in RUNS:
        frames, reach = [], []
        for results in rounds:
            r = results[name]
            rmse = first[name]["rmse_f"]
            # step 0 is not checkpointed: its time extrapolated back from the first checkpoint
            start = r["written"][min(r["written"])] - min(r["written"]) / r["steps_per_s"]
            reached = [s for s in sorted(rmse) if rmse[s] <= target]
            frames.append(r["frames_per_s"])
            reach.append(r["written"][reached[0]] - start if reached else None)
        runs[name] = dict(first[name], frames_per_s=float(np.median(frames)),
                          frames_per_s_rounds=frames, time_to_target_rounds=reach,
                          time_to_target_s=(None if None in reach else float(np.median(reach))),
                          wall_s=float(np.median([res[name]["wall_s"] for res in rounds])))
    one, two, threads, replicas = (runs[k]["frames_per_s"] for k in RUNS)
    return {"runs": runs, "target_rmse_f": target, "efficiency": two / (2 * one),
            "workers_vs_threads": two / threads, "threads_vs_one": threads / one,
            "replicas_vs_threads": replicas / threads}


def main() -> None:
    """Runs the four trainings and prints the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1,
                        help="interleaved rounds of the four runs (medians)")
    parser.add_argument("--keep", default=None, help="work dir to keep (default: temporary)")
    parser.add_argument("--out", default=".", help="where results.json goes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.keep or tmp)
        rounds = []
        for k in range(args.rounds):
            results = {}
            for name in RUNS:
                _progress(f"round {k + 1}/{args.rounds}: {name}, {args.steps} steps")
                results[name] = train(name, workdir / f"round{k + 1}", args.steps,
                                      args.save_every)
                _rates(results[name])
                _progress(f"{name}: {results[name]['frames_per_s']:.2f} frames/s")
            rounds.append(results)
        summary = summarise(rounds)
    results = summary["runs"]
    print(f"{'run':10s} {'frames/s':>9s} {'wall s':>8s} {'final rmse_f':>12s} "
          f"{'s to target':>11s}  frames/s per round")
    for name, r in results.items():
        final = r["rmse_f"][max(r["rmse_f"])]
        reach = "-" if r["time_to_target_s"] is None else f"{r['time_to_target_s']:.1f}"
        per_round = ", ".join(f"{f:.2f}" for f in r["frames_per_s_rounds"])
        print(f"{name:10s} {r['frames_per_s']:9.2f} {r['wall_s']:8.1f} {final:12.4f} "
              f"{reach:>11s}  {per_round}")
    print(f"target rmse_f {summary['target_rmse_f']:.4f}; parallel efficiency "
          f"{summary['efficiency']:.2f} (target >= 0.9); 2 workers / 1 process x 2 threads "
          f"{summary['workers_vs_threads']:.2f}x (target >= 1.2; at efficiency 1 it would be "
          f"{2 / summary['threads_vs_one']:.2f}x); threads alone "
          f"{summary['threads_vs_one']:.2f}x; 2 replicas in 1 process / 1 process x 2 threads "
          f"{summary['replicas_vs_threads']:.2f}x")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.out, "results.json").write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
