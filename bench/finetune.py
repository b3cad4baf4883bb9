"""Is fine-tuning worth it? A se_atten_v2 model pretrained on the 7-metal alloy data, fine-tuned
on 20 frames of an alloy the pretraining never saw, against the same model trained from scratch
on those 20 frames; DeePMD-kit 3.2 (TensorFlow backend) fine-tunes the same pretrained graph.

    python bench/finetune.py [--pretrain-steps 2000] [--steps 1000] [--frames 20]
                             [--threads N] [--out DIR] [--keep DIR] [--no-deepmd]

Data (this package's generator, deepmd_tebd.tools.alloy):
- pretraining: the generator's default 7-metal data (examples/alloy's: 8 systems of 60 frames,
  seed 0); data_0 ... data_6 train, data_7 validates;
- the new system: one more system of 60 frames from seed 11 (its own composition of the seven
  metals, strain and temperature), never seen in pretraining; its first --frames frames train,
  the others are the whole validation set.

Runs (examples/alloy/se_atten_v2.json; decay_steps = steps / 20, disp_freq 100):
1. pretrain: ours, --pretrain-steps steps, frozen to pretrained.pb;
2. fine-tuned: ours, `dp train --finetune pretrained.pb`, --steps steps on the new frames (the
   type map from their type_map.raw: those types' energy bias re-fitted);
3. scratch: ours, the same script from fresh weights for --steps steps;
4. DeePMD-kit fine-tuned: `dp --tf train --finetune pretrained.pb` on the same script.
Figures: energy RMSE per atom and force RMSE of each final model on every validation frame of the
new system (one evaluator, our `dp test`), and fine-tuned / scratch (target: force RMSE <= 0.5).
Outputs in --out: results.json, finetune.png (validation force RMSE of the learning curves).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import species
import train as bench_train
from cores import usable_cores

TARGET = 0.5
DISP_FREQ = 100
NEW_SEED = 11


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pretrain-steps", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=1000,
                        help="steps of fine-tuning and of training from scratch")
    parser.add_argument("--frames", type=int, default=20,
                        help="frames of the new system that train (the rest validate)")
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--out", default="bench-finetune-out")
    parser.add_argument("--keep", default=None, help="work folder to keep (data reused)")
    parser.add_argument("--no-deepmd", action="store_true", help="ours alone")
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds per run")
    args = parser.parse_args(argv)
    if min(args.pretrain_steps, args.steps) < DISP_FREQ or args.frames < 1:
        parser.error(f"steps of at least {DISP_FREQ}, at least one training frame")
    return args


def _progress(message: str) -> None:
    print(f"[finetune {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def new_system(work: Path, frames: int) -> tuple[Path, Path]:
    """(training frames, validation frames) of an alloy system made with another seed."""
    from deepmd_tebd.tools import alloy

    raw = work / f"new-seed{NEW_SEED}"
    if not raw.exists():
        _progress(f"generating the new system in {raw}")
        assert alloy.main([str(raw), "--systems", "1", "--seed", str(NEW_SEED), "--quiet"]) == 0
    source = raw / "data_0"
    parts = {name: species.frames_of(source, work / f"new-{name}-{frames}", rows)
             for name, rows in (("train", slice(0, frames)), ("valid", slice(frames, None)))}
    if len(np.load(parts["valid"] / "set.000" / "energy.npy")) == 0:
        raise SystemExit(f"--frames {frames} leaves no validation frame of the 60")
    return parts["train"], parts["valid"]


def _script(train: list, valid: Path, steps: int, type_map=None) -> dict:
    """examples/alloy's se_atten_v2 input (bench/species.py's changes, decay_steps steps / 20)."""
    return species.script("atten", train, [valid], steps, type_map, species.ATTEN_SEL,
                          short_schedule=True)


def train_and_freeze(label: str, program: str, commands: dict, run: Path, config: dict,
                     extra: list, timeout: float) -> dict:
    """Trains (bench/train.py's runner: progress lines) and freezes to run/graph.pb;
    {"wall_s", "steps"} or {"error"}."""
    argv, env = commands[program]
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    job = bench_train.run_training(label, argv + extra, env, run, config, timeout)
    if job["rc"] != 0 or job["timed_out"]:
        text = job["log"].read_text(errors="replace")
        return {"error": "\n".join(text.splitlines()[-30:])}
    freeze = subprocess.run(argv[:-2] + ["freeze", "-o", "graph.pb"], cwd=run, env=env,
                            capture_output=True, text=True, timeout=timeout)
    if freeze.returncode != 0:
        return {"error": freeze.stderr[-2000:]}
    return {"wall_s": job["wall_s"], "steps": config["training"]["numb_steps"]}


def _curve(lcurve: Path):
    """(steps, validation force RMSE) of a learning curve."""
    names = lcurve.read_text().splitlines()[0].lstrip("#").split()
    data = np.loadtxt(lcurve, ndmin=2)
    return data[:, 0], data[:, names.index("rmse_f_val")]


def plot(work: Path, results: dict, out: Path) -> str:
    """finetune.png: the validation force RMSE along each run (one frame per display)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot: matplotlib is not installed (pip install matplotlib)"
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("finetuned", "scratch", "deepmd_finetuned"):
        lcurve = work / key / "lcurve.out"
        if key in results and "error" not in results[key] and lcurve.exists():
            ax.plot(*_curve(lcurve), label=key.replace("_", " "))
    ax.set(xlabel="step", ylabel="validation force RMSE (eV/A)", yscale="log",
           title="20 frames of an unseen alloy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "finetune.png", dpi=120)
    return f"plot: {out / 'finetune.png'}"


def report(results: dict, args) -> list[str]:
    """The table and the fine-tuned / scratch ratios."""
    lines = [f"{args.frames} training frames of the new system, {args.steps} steps each, "
             f"pretraining {args.pretrain_steps} steps; whole validation (our dp test):",
             f"{'run':<20} {'rmse_e (eV/atom)':>17} {'rmse_f (eV/A)':>14} {'wall (s)':>9}"]
    for key in ("pretrain", "finetuned", "scratch", "deepmd_finetuned"):
        figures = results.get(key)
        if figures is None:
            continue
        if "error" in figures:
            lines.append(f"{key:<20} error: {figures['error'].splitlines()[-1][:80]}")
            continue
        lines.append(f"{key:<20} {species._cell(figures.get('rmse_e'), fmt='{:.4g}'):>17} "
                     f"{species._cell(figures.get('rmse_f'), fmt='{:.4g}'):>14} "
                     f"{figures['wall_s']:>9.0f}")
    tuned, scratch = results.get("finetuned", {}), results.get("scratch", {})
    if "rmse_f" in tuned and "rmse_f" in scratch:
        ratio = tuned["rmse_f"] / scratch["rmse_f"]
        lines.append(f"force RMSE fine-tuned / scratch: {ratio:.3f} (target <= {TARGET}: "
                     f"{'met' if ratio <= TARGET else 'NOT met'}); energy: "
                     f"{tuned['rmse_e'] / scratch['rmse_e']:.3f}")
    return lines


def main(argv=None) -> int:
    args = _parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    commands = bench_train._commands(args.threads)
    if args.no_deepmd or isinstance(commands["deepmd"], str):
        if not args.no_deepmd:
            _progress(f"DeePMD-kit cannot run: {commands['deepmd']}")
        commands.pop("deepmd")
    cleanup = None if args.keep else tempfile.TemporaryDirectory(prefix="deepmd_tebd-finetune-")
    work = Path(args.keep or cleanup.name)
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    t0 = time.perf_counter()
    try:
        metals = species._systems(species._metals(work, 7))
        train, valid = new_system(work, args.frames)
        pretrained = work / "pretrain" / "graph.pb"
        runs = [("pretrain", "ours", _script(metals[:-1], metals[-1], args.pretrain_steps,
                                             list(species.METALS)), [], metals[-1]),
                ("finetuned", "ours", _script([train], valid, args.steps),
                 ["--finetune", str(pretrained)], valid),
                ("scratch", "ours", _script([train], valid, args.steps, list(species.METALS)),
                 [], valid)]
        if "deepmd" in commands:
            runs.append(("deepmd_finetuned", "deepmd", _script([train], valid, args.steps),
                         ["--finetune", str(pretrained)], valid))
        for key, program, config, extra, system in runs:
            figures = train_and_freeze(key, program, commands, work / key, config, extra,
                                       args.timeout)
            if "error" not in figures:
                figures.update(species.test_graph(work / key, system, commands, args.timeout))
            results[key] = figures
            if key == "pretrain" and "error" in figures:
                break
        lines = report(results, args) + [plot(work, results, out)]
    finally:
        (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        if cleanup is not None:
            cleanup.cleanup()
    print("\n".join(lines + [f"total {time.perf_counter() - t0:.0f} s"]))
    return 1 if any("error" in figures for figures in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
