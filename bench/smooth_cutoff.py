"""se_a_ebd_v2 with and without `smooth_type_embedding`: accuracy and energy conservation.

    python bench/smooth_cutoff.py [--steps 2000] [--seeds 3] [--reuse DIR] [--nve-steps 600]
                                  [--threads N] [--out DIR]

Models: for each seed shift r (0..K-1) the tebd_v2 input of bench/train.py with that script's
changes and seeds, once as it is ("default", DeePMD-kit's se_a_ebd_v2, discontinuous at the
cutoff) and once with model/descriptor/smooth_type_embedding true ("smooth"). Each is trained by
this package's `dp train`, frozen, and evaluated on every frame of the validation system data_3 by
`dp test` (bench/train.py's job runner and whole-validation evaluation). With --reuse DIR the
default models are taken from `bench/train.py --only tebd_v2 --keep DIR` (its
tebd_v2-ours-r<r>/run/graph.pb, trained with the same --steps) instead of being trained again.

Energy conservation: each frozen model in LAMMPS (`pair_style deepmd` of DeePMD-kit 3.2 from the
oracle venv, tests/reference/lammps.py) on the first frame of data_3, NVE for --nve-steps steps of
0.25 fs from velocities at 50 K; drift = max |E_tot - E_tot(0)|, swing = max - min of the
potential energy, both in eV.

Targets: smooth / default whole-validation RMSEs (means over the seeds) <= 1.05; the smooth
models' drift <= 1 % of their swing. Timing is not measured, so the machine need not be idle.
Outputs in --out: results.json and each job's run folder.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from cores import usable_cores
from train import _ROOT, VALIDATION, _commands, _input, _progress, _run_job, _whole_validation

if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from tests.reference.lammps import run_lammps  # noqa: E402

VARIANTS = ("default", "smooth")
RMSE_TARGET = 1.05
DRIFT_TARGET = 0.01


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="numb_steps of every model")
    parser.add_argument("--seeds", type=int, default=3, help="seed shifts 0..K-1 (default 3)")
    parser.add_argument("--reuse", metavar="DIR",
                        help="take the default models from bench/train.py --keep DIR")
    parser.add_argument("--nve-steps", type=int, default=600, help="LAMMPS NVE steps")
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--out", metavar="DIR",
                        default=str(Path(tempfile.gettempdir()) / "deepmd_tebd-bench-smooth"))
    return parser.parse_args(argv)


def _script(variant: str, steps: int, shift: int) -> dict:
    config = _input("tebd_v2", steps, shift)
    if variant == "smooth":
        config["model"]["descriptor"]["smooth_type_embedding"] = True
    return config


def _model(variant: str, shift: int, args, out: Path, commands: dict) -> dict:
    """Train (or reuse) one model; its frozen graph and whole-validation RMSEs."""
    label = f"{variant} r {shift}"
    if variant == "default" and args.reuse:
        run_dir = Path(args.reuse) / f"tebd_v2-ours-r{shift}" / "run"
        if not (run_dir / "graph.pb").is_file():
            raise SystemExit(f"--reuse: {run_dir / 'graph.pb'} is missing")
        result = {"graph": run_dir / "graph.pb", "reused": str(run_dir)}
    else:
        argv, env = commands["ours"]
        job = _run_job(label, argv, env, out / f"{variant}-r{shift}",
                       _script(variant, args.steps, shift), timeout=7200.0)
        if job["rc"] != 0:
            raise SystemExit(f"{label}: dp train failed, see {job['log']}")
        run_dir = job["log"].parent
        result = {"graph": run_dir / "graph.pb", "train_wall_s": job["wall_s"]}
    errors = _whole_validation(run_dir, "ours", commands, timeout=1800.0)
    if "whole_error" in errors:
        raise SystemExit(f"{label}: {errors['whole_error']}")
    return {**result, **errors}


def _nve(graph: Path, workdir: Path, args) -> dict:
    """Drift and potential-energy swing of an NVE run of the graph in LAMMPS."""
    water = _ROOT.parent / "shared" / "data" / "water" / VALIDATION
    coords = np.load(water / "set.000" / "coord.npy")[0].reshape(-1, 3)
    cell = np.load(water / "set.000" / "box.npy")[0].reshape(3, 3)
    types = np.loadtxt(water / "type.raw", dtype=int)
    run = run_lammps(workdir, graph, coords, cell, types, ["O", "H"], nve_steps=args.nve_steps,
                     timestep_ps=0.00025, temperature=50.0, threads=args.threads)
    thermo = run["thermo"]
    drift = float(np.abs(thermo[:, 3] - thermo[0, 3]).max())
    swing = float(thermo[:, 1].max() - thermo[:, 1].min())
    return {"drift_ev": drift, "pe_swing_ev": swing, "drift_per_swing": drift / swing,
            "drift_mev_per_atom": 1e3 * drift / len(types)}


def main(argv=None) -> int:
    args = _parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    commands = _commands(args.threads)
    results = {v: [] for v in VARIANTS}
    for shift in range(args.seeds):
        for variant in VARIANTS:
            model = _model(variant, shift, args, out, commands)
            _progress(f"{variant} r {shift}: whole validation rmse_e {model['rmse_e_all']:.4e}, "
                      f"rmse_f {model['rmse_f_all']:.4e}; NVE in LAMMPS")
            model.update(_nve(model["graph"], out / f"nve-{variant}-r{shift}", args))
            model["graph"] = str(model["graph"])
            results[variant].append(model)
            (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"se_a_ebd_v2, {args.steps} steps, seeds shifted 0..{args.seeds - 1}; "
          f"NVE {args.nve_steps} x 0.25 fs from 50 K in LAMMPS")
    print(f"{'':8s} {'rmse_e/atom':>12s} {'rmse_f':>10s} {'drift eV':>10s} {'swing eV':>10s} "
          f"{'drift/swing':>11s} {'meV/atom':>9s}")
    for variant in VARIANTS:
        for shift, m in enumerate(results[variant]):
            print(f"{variant[:6]} r{shift} {m['rmse_e_all']:12.4e} {m['rmse_f_all']:10.4e} "
                  f"{m['drift_ev']:10.3e} {m['pe_swing_ev']:10.3e} {m['drift_per_swing']:11.4f} "
                  f"{m['drift_mev_per_atom']:9.4f}")
    ok = True
    for key in ("rmse_e_all", "rmse_f_all"):
        means = {v: statistics.mean(m[key] for m in results[v]) for v in VARIANTS}
        ratio = means["smooth"] / means["default"]
        ok &= ratio <= RMSE_TARGET
        print(f"{key}: smooth / default (means) = {ratio:.3f} (target <= {RMSE_TARGET})")
    worst = max(m["drift_per_swing"] for m in results["smooth"])
    ok &= worst <= DRIFT_TARGET
    print(f"smooth drift / swing, worst seed: {worst:.4f} (target <= {DRIFT_TARGET}); default: "
          + ", ".join(f"{m['drift_per_swing']:.4f}" for m in results["default"]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
