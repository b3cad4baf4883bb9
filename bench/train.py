"""Trains deepmd_tebd and DeePMD-kit 3.2.0 (TensorFlow backend) on the same inputs and compares them.

    python bench/train.py [--steps 2000] [--seeds 3] [--first-seed 0]
                          [--only tebd|se_e2_a|tebd_v2|atten]
                          [--keep DIR] [--threads N] [--out DIR]
    python bench/train.py --combine DIR [DIR ...] [--steps 2000] [--out DIR]

Inputs: DeePMD-kit's example scripts ../shared/inputs/water_se_e2_a_tebd.json ("tebd"),
water_se_e2_a.json ("se_e2_a"), water_se_a_ebd_v2.json ("tebd_v2", DeePMD-kit's current
type-embedding example) and water_se_atten.json ("atten", DPA-1's se_atten_v2: DeePMD-kit's
examples/water/se_atten) beside the checkout, changed only in numb_steps (--steps),
decay_steps 100, disp_freq 100 and save_freq max(2000, --steps), with training systems
data_0..data_2 and validation system data_3 of ../shared/data/water. Each job runs in its own work
dir <tmp>/<job>/run next to a link <tmp>/<job>/data -> the water data, so the inputs' own
"../data/data_N" paths hold.

Model: DeePMD-kit 3.x reads the tebd input as a type embedding net WITHOUT biases (its
`use_tebd_bias` defaults to false), while DeePMD-kit 2.x, whose model this package trains, gives
every type-embedding layer a bias. DeePMD-kit's copy of the tebd input therefore gets
`use_tebd_bias: true`: both programs then train the same model, with the same number of weights
(its frozen graph and ours evaluate the same function, see bench/infer.py).

Seeds: with --seeds K every input runs K times on each side, run r (0..K-1) with every seed of the
input moved by r (the model's type_embedding, descriptor and fitting_net seeds 1 + r, the
training seed 10 + r; run 0 is the upstream input). From the same model seeds both programs start
from the same initial weights. The training seed drives the data RNG, which DeePMD-kit 2.x (and
this package, data/sampling.py: make_data_rng) seeds with seed + rank and DeePMD-kit 3.x with
the pair [rank, seed]: the two programs see different batches and validation frames, and with decay_steps 100 the first few
hundred steps decide where a run ends, so one run per side compares two draws more than two
programs. The RMSE ratios are of the means over the K runs.

Programs: ours is `dp train input.json` of this interpreter's venv; DeePMD-kit's is
`<oracle venv>/bin/dp --tf train input.json` (tests/reference/deepmd_oracle.py, created on first use).
The jobs run one after the other, never two at once, with the same thread settings:
OMP_NUM_THREADS, TF_/DP_{INTRA,INTER}_OP_PARALLELISM_THREADS and TF_NUM_{INTRA,INTER}OP_THREADS all
set to --threads (default: the number of usable cores), TF_CPP_MIN_LOG_LEVEL=2.

Figures per job:
- rmse_e_val, rmse_f_val: the last row of lcurve.out (columns found by their header names); per
  input and program, the mean over the seeds (each run's value in results.json and the table).
  That row is one validation draw of 3 frames, so single runs scatter widely.
- whole-validation rmse_e (per atom), rmse_f: each run's final model on every frame of data_3,
  frozen by its own program (`dp freeze`, `dp --tf freeze`) and evaluated by this package's
  `dp test` for both (it gives DeePMD-kit's numbers on either graph, tests/infer); mean over the
  seeds.
- wall ms/step: median over the display intervals ending at steps 300..N of the interval's wall time
  / disp_freq. Both programs log a wall time at every display step: ours the time since training
  started ("batch %7d training time %.2f s, testing time %.2f s, total wall time %.2f s"; the
  interval's share is the difference of consecutive values), DeePMD-kit 3.2.0 the time since the
  previous display ("Batch %7d: total wall time = %.2f s, ..."). It covers the training steps, the
  batch loading and the display's evaluations, measured the same way on both sides.
- train ms/step: the training steps alone, as both programs report at the end
  ("average training time: %.4f s/batch (exclude first 100 batches)": the mean over steps 101..N).
  Where a program logs each interval's training time (ours; DeePMD-kit 2.x), the median over the
  intervals ending at 300..N is shown as well.
  Per input and program, the median over the seeds' figures.
Targets: rmse ratio (ours / DeePMD-kit, means over the seeds) <= 1.10, step-time ratio <= 1.0.

Outputs in --out (default <tmp>/deepmd_tebd-bench-train): each job's lcurve and log,
results.json, and lcurves.png when matplotlib can be imported. --combine runs nothing: it reports
the runs of earlier outputs together (e.g. `--seeds 1` on one day, `--seeds 2 --first-seed 1` on
another), each seed taken from one of them.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cores import usable_cores

_ROOT = Path(__file__).resolve().parents[1]
_SHARED = _ROOT.parent / "shared"
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from deepmd_tebd.train.lcurve import read_lcurve  # noqa: E402
from tests.reference.deepmd_oracle import _clean_env, oracle_python  # noqa: E402

INPUTS = {"tebd": "water_se_e2_a_tebd.json", "se_e2_a": "water_se_e2_a.json",
          "tebd_v2": "water_se_a_ebd_v2.json", "atten": "water_se_atten.json"}
PROGRAMS = ("ours", "deepmd")
VALIDATION = "data_3"  # the validation system; data_0..data_2 train
LABELS = {"ours": "deepmd_tebd", "deepmd": "DeePMD-kit"}
DISP_FREQ = 100
DECAY_STEPS = 100
MIN_SAVE_FREQ = 2000
SKIP_BEFORE = 200           # intervals ending at steps <= this are warm-up
# per input: (rmse ratio, step-time ratio) targets
TARGETS = {"tebd": (1.10, 1.0), "se_e2_a": (1.10, 1.0), "tebd_v2": (1.05, 0.8),
           "atten": (1.05, 0.8)}
PROGRESS_EVERY_S = 60.0

# ours, and DeePMD-kit 2.x: training and testing time of the interval, wall time (see docstring)
_TIMING_LINE = re.compile(r"batch\s+(\d+) training time ([\d.]+) s, testing time ([\d.]+) s, "
                          r"total wall time ([\d.]+) s")
# DeePMD-kit 3.x: wall time of the interval
_WALL_LINE = re.compile(r"Batch\s+(\d+): total wall time = ([\d.]+) s")
_AVERAGE_LINE = re.compile(r"average training time: ([\d.]+) s/batch")
_STEP_LINE = re.compile(r"[Bb]atch\s+(\d+)")


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="numb_steps of every job")
    parser.add_argument("--seeds", type=int, default=3,
                        help="runs per input and program, seeds moved by 0..K-1 (default 3)")
    parser.add_argument("--first-seed", type=int, default=0, metavar="R",
                        help="seed shift of the first run (runs R..R+K-1; default 0)")
    parser.add_argument("--only", choices=sorted(INPUTS), help="run one input only")
    parser.add_argument("--keep", metavar="DIR", help="make the work dirs under DIR and keep them")
    parser.add_argument("--threads", type=int, default=usable_cores(),
                        help="OMP / TF intra- and inter-op threads for every job")
    parser.add_argument("--out", metavar="DIR",
                        default=str(Path(tempfile.gettempdir()) / "deepmd_tebd-bench-train"),
                        help="where lcurves, logs, results.json and the plot go")
    parser.add_argument("--timeout", type=float, default=7200.0,
                        help="seconds after which a job is stopped and counted as failed")
    parser.add_argument("--combine", nargs="+", metavar="DIR",
                        help="run nothing: report together the runs of earlier --out DIRs "
                             "(seeds run at different times, each run once; --steps as they had)")
    args = parser.parse_args(argv)
    if args.steps < DISP_FREQ:
        parser.error(f"--steps must be at least disp_freq ({DISP_FREQ})")
    return args


def _progress(message: str) -> None:
    print(f"[bench/train] {message}", file=sys.stderr, flush=True)


def shift_seeds(config: dict, shift: int) -> dict:
    """`config` with the seeds of its type embedding, descriptor, fitting net and training
    moved by `shift` (absent seeds count as DeePMD-kit's examples' 1 and 10)."""
    for section in ("type_embedding", "descriptor", "fitting_net"):
        part = config["model"].get(section)
        if part is not None:
            part["seed"] = part.get("seed", 1) + shift
    config["training"]["seed"] = config["training"].get("seed", 10) + shift
    return config


def _input(name: str, steps: int, seed_shift: int = 0) -> dict:
    """The example input with the benchmark's changes (see the module docstring)."""
    config = shift_seeds(json.loads((_SHARED / "inputs" / INPUTS[name]).read_text()),
                         seed_shift)
    config["learning_rate"]["decay_steps"] = DECAY_STEPS
    training = config["training"]
    training["numb_steps"] = steps
    training["disp_freq"] = DISP_FREQ
    training["save_freq"] = max(MIN_SAVE_FREQ, steps)
    training["training_data"]["systems"] = [f"../data/data_{i}/" for i in range(3)]
    training["validation_data"]["systems"] = [f"../data/{VALIDATION}"]
    return config


def _for_program(config: dict, program: str) -> dict:
    """DeePMD-kit 3.x builds the type embedding net without biases unless `use_tebd_bias` is
    true; DeePMD-kit 2.x, whose model this package trains, always has them. DeePMD-kit's input
    gets `use_tebd_bias: true`, so that both programs train the same model."""
    if program != "deepmd" or config["model"].get("type_embedding") is None:
        return config
    config = json.loads(json.dumps(config))
    config["model"]["type_embedding"]["use_tebd_bias"] = True
    return config


def _thread_env(base: dict, threads: int) -> dict:
    env = dict(base)
    for key in ("OMP_NUM_THREADS", "TF_INTRA_OP_PARALLELISM_THREADS",
                "TF_INTER_OP_PARALLELISM_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS",
                "DP_INTER_OP_PARALLELISM_THREADS", "TF_NUM_INTRAOP_THREADS",
                "TF_NUM_INTEROP_THREADS"):
        env[key] = str(threads)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def _commands(threads: int) -> dict:
    """program -> (argv, env), or program -> reason string when it cannot be run."""
    commands = {}
    ours_dp = Path(sys.executable).parent / "dp"
    if ours_dp.exists():
        commands["ours"] = ([str(ours_dp), "train", "input.json"],
                            _thread_env(os.environ, threads))
    else:
        env = _thread_env(os.environ, threads)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
        commands["ours"] = ([sys.executable, "-m", "deepmd_tebd.cli", "train", "input.json"], env)
    python, reason = oracle_python()
    if python is None:
        commands["deepmd"] = reason
    else:
        commands["deepmd"] = ([str(Path(python).parent / "dp"), "--tf", "train", "input.json"],
                              _thread_env(_clean_env(), threads))
    return commands


def _last_step(log: Path) -> int | None:
    """The last display step in a log being written (for progress lines)."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
            tail = f.read().decode(errors="replace")
    except OSError:
        return None
    steps = [int(m.group(1)) for m in _STEP_LINE.finditer(tail)]
    return steps[-1] if steps else None


def _run_job(label: str, argv: list, env: dict, job_dir: Path, config: dict,
             timeout: float) -> dict:
    run_dir = job_dir / "run"
    run_dir.mkdir(parents=True)
    (job_dir / "data").symlink_to(_SHARED / "data" / "water", target_is_directory=True)
    return run_training(label, argv, env, run_dir, config, timeout)


def run_training(label: str, argv: list, env: dict, run_dir: Path, config: dict,
                 timeout: float) -> dict:
    """Runs `argv` (a `dp train`) in `run_dir` on `config` (written as input.json), with a
    progress line every PROGRESS_EVERY_S; {"rc", "timed_out", "wall_s", "log", "lcurve"}."""
    (run_dir / "input.json").write_text(json.dumps(config, indent=2) + "\n")
    log = run_dir / "train.log"
    _progress(f"{label}: started ({' '.join(argv)} in {run_dir})")
    t0 = time.perf_counter()
    next_report = t0 + PROGRESS_EVERY_S
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=run_dir, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            while proc.poll() is None:
                time.sleep(1.0)
                now = time.perf_counter()
                if now - t0 > timeout:
                    proc.terminate()
                    try:
                        proc.wait(30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                    break
                if now >= next_report:
                    step = _last_step(log)
                    where = f"step {step}" if step is not None else "setting up"
                    _progress(f"{label}: running, {now - t0:.0f} s elapsed, {where}")
                    next_report = now + PROGRESS_EVERY_S
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    wall = time.perf_counter() - t0
    rc = proc.returncode
    timed_out = wall > timeout
    _progress(f"{label}: {'timed out' if timed_out else 'finished'} with status {rc} "
              f"after {wall:.0f} s")
    return {"rc": rc, "timed_out": timed_out, "wall_s": wall, "log": log,
            "lcurve": run_dir / config["training"]["disp_file"]}


_TEST_LINE = re.compile(r"(Energy RMSE/Natoms|Force  RMSE)\s*:\s*([0-9.eE+-]+)")


def _whole_validation(run_dir: Path, program: str, commands: dict, timeout: float) -> dict:
    """The final model on every frame of the validation system: the program freezes its own
    checkpoint, and one evaluator, this package's `dp test` (the same numbers as DeePMD-kit's
    DeepPot on either graph, tests/infer), gives the energy RMSE per atom and the force RMSE."""
    freeze_argv, freeze_env = commands[program]
    test_argv, test_env = commands["ours"]
    steps = [(freeze_argv[:-2] + ["freeze", "-o", "graph.pb"], freeze_env),
             (test_argv[:-2] + ["test", "-m", "graph.pb", "-s", f"../data/{VALIDATION}",
                                "-n", "1000000"], test_env)]
    for argv, env in steps:
        proc = subprocess.run(argv, cwd=run_dir, env=env, capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0:
            return {"whole_error": f"{' '.join(argv)}: status {proc.returncode}\n"
                                   + proc.stderr[-2000:]}
    found = dict(_TEST_LINE.findall(proc.stdout + proc.stderr))
    return {"rmse_e_all": float(found["Energy RMSE/Natoms"]),
            "rmse_f_all": float(found["Force  RMSE"])}


def _per_step_median(intervals: list[tuple[int, float]]) -> float | None:
    """Median seconds per step of [(end step, interval seconds)], warm-up intervals left out
    (all but the first interval when the run is too short to have any after the warm-up)."""
    chosen = [t for step, t in intervals if step > SKIP_BEFORE]
    if not chosen:
        chosen = [t for step, t in intervals[1:]] or [t for _, t in intervals]
    return statistics.median(chosen) / DISP_FREQ if chosen else None


def parse_log(text: str) -> dict:
    """Timings from a training log: wall_s_per_step, train_s_per_step (median, where the log has
    each interval's training time), mean_train_s_per_step (the program's closing average)."""
    timing = [(int(m.group(1)), float(m.group(2)), float(m.group(3)), float(m.group(4)))
              for m in _TIMING_LINE.finditer(text)]
    walls = [(int(m.group(1)), float(m.group(2))) for m in _WALL_LINE.finditer(text)]
    result = {"wall_s_per_step": None, "train_s_per_step": None, "mean_train_s_per_step": None}
    if timing:
        result["train_s_per_step"] = _per_step_median([(s, train) for s, train, _, _ in timing])
        # The logged wall time is either the time since training started (ours) or the time since
        # the previous display (DeePMD-kit 2.x): a running total is near the sum of all intervals'
        # training and testing times, a per-interval one is a small fraction of it.
        total = sum(train + test for _, train, test, _ in timing)
        if len(timing) >= 3 and timing[-1][3] >= 0.9 * total:
            ends = [0.0] + [wall for *_, wall in timing]
            walls = [(s, ends[i + 1] - ends[i]) for i, (s, *_) in enumerate(timing)]
        elif not walls:
            walls = [(s, wall) for s, _, _, wall in timing]
    if walls:
        result["wall_s_per_step"] = _per_step_median(walls)
    averages = _AVERAGE_LINE.findall(text)
    if averages:
        result["mean_train_s_per_step"] = float(averages[-1])
    return result


def _metrics(job: dict) -> dict:
    metrics = {"rc": job["rc"], "wall_s": job["wall_s"]}
    text = job["log"].read_text(errors="replace") if job["log"].exists() else ""
    if job["rc"] != 0 or job["timed_out"]:
        metrics["error"] = "\n".join(text.splitlines()[-40:])
        return metrics
    metrics.update(parse_log(text))
    metrics["curve"] = _curve(job["lcurve"])
    metrics.update(step=int(metrics["curve"]["step"][-1]),
                   rmse_e_val=metrics["curve"]["rmse_e_val"][-1],
                   rmse_f_val=metrics["curve"]["rmse_f_val"][-1])
    return metrics


def _curve(lcurve: Path) -> dict:
    """{column: values} of an lcurve file."""
    names, rows = read_lcurve(str(lcurve))
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}


def combine(dirs: list, steps: int) -> dict:
    """{input: {program: [run, ...]}} of earlier outputs (--out DIRs: results.json and the
    lcurve files), each (input, program, seed) from one DIR only, every run of `steps` steps."""
    runs: dict = {}
    for folder in map(Path, dirs):
        saved = json.loads((folder / "results.json").read_text())
        for name, pair in saved.items():
            for program, agg in pair.items():
                have = runs.setdefault(name, {p: [] for p in PROGRAMS})[program]
                for run in agg["runs"]:
                    r = run.get("r")
                    if any(other.get("r") == r for other in have):
                        raise SystemExit(f"bench/train.py: {name} / {LABELS[program]} / r {r} "
                                         f"is in more than one of {', '.join(dirs)}")
                    if run.get("step") not in (None, steps):
                        raise SystemExit(f"bench/train.py: {folder}: {name} / {LABELS[program]}"
                                         f" / r {r} ran {run['step']} steps, not --steps {steps}")
                    lcurve = folder / f"{name}-{program}-r{r}.lcurve.out"
                    if lcurve.exists():
                        run["curve"] = _curve(lcurve)
                    have.append(run)
                have.sort(key=lambda run: run.get("r", 0))
    return runs


_MEANS = ("rmse_e_val", "rmse_f_val", "rmse_e_all", "rmse_f_all")
_MEDIANS = ("wall_s_per_step", "train_s_per_step", "mean_train_s_per_step")


def aggregate(runs: list[dict]) -> dict:
    """One program's figures over its seeds: mean final RMSEs, median step times (of the runs
    that finished); `runs` kept as they are."""
    done = [run for run in runs if "error" not in run and "skipped" not in run]
    out: dict = {"runs": runs}
    for key in _MEANS + _MEDIANS:
        values = [run[key] for run in done if run.get(key) is not None]
        if values:
            out[key] = (statistics.fmean if key in _MEANS else statistics.median)(values)
    if len(done) < len(runs):
        out["error"] = f"{len(runs) - len(done)} of {len(runs)} runs did not finish"
    skipped = [run["skipped"] for run in runs if "skipped" in run]
    if skipped:
        out["skipped"] = skipped[0]
    return out


def _fmt(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind == "rmse":
        return f"{value:.2e}"
    if kind == "ms":
        return f"{1e3 * value:.1f}"
    return f"{value:.2f}"


def _ratio(ours, theirs):
    if ours is None or theirs is None or not theirs:
        return None
    return ours / theirs


def _verdict(ratio, target) -> str:
    if ratio is None:
        return "n/a"
    return "met" if ratio <= target else "NOT met"


def _whole_validation_lines(results: dict) -> list[str]:
    """Per run and over the seeds: the final models on every validation frame."""
    lines = [f"The final models on every frame of {VALIDATION} (energy RMSE per atom, force RMSE; "
             "frozen by each program, evaluated by one `dp test`):", "",
             "| input | r | ours rmse_e | DeePMD rmse_e | ours rmse_f | DeePMD rmse_f |",
             "|---|---|---|---|---|---|"]
    for name, pair in results.items():
        ours, theirs = pair.get("ours", {}), pair.get("deepmd", {})
        for a, b in zip(ours.get("runs", []), theirs.get("runs", [])):
            lines.append(f"| {name} | {a.get('r', '-')} | {_fmt(a.get('rmse_e_all'), 'rmse')} "
                         f"| {_fmt(b.get('rmse_e_all'), 'rmse')} "
                         f"| {_fmt(a.get('rmse_f_all'), 'rmse')} "
                         f"| {_fmt(b.get('rmse_f_all'), 'rmse')} |")
        lines.append(
            f"| {name} | mean | {_fmt(ours.get('rmse_e_all'), 'rmse')} "
            f"| {_fmt(theirs.get('rmse_e_all'), 'rmse')} (ratio "
            f"{_fmt(_ratio(ours.get('rmse_e_all'), theirs.get('rmse_e_all')), 'r')}) "
            f"| {_fmt(ours.get('rmse_f_all'), 'rmse')} "
            f"| {_fmt(theirs.get('rmse_f_all'), 'rmse')} (ratio "
            f"{_fmt(_ratio(ours.get('rmse_f_all'), theirs.get('rmse_f_all')), 'r')}) |")
        for run in ours.get("runs", []) + theirs.get("runs", []):
            if "whole_error" in run:
                lines.append(f"- r {run.get('r')}: {run['whole_error']}")
    return lines + [""]


def report(results: dict, args) -> list[str]:
    """The comparison as markdown-style lines (also returned for the caller to print)."""
    lines = [f"{args.steps} steps, disp_freq {DISP_FREQ}, decay_steps {DECAY_STEPS}, "
             f"{args.threads} threads per job, {args.seeds} seed(s) per input and program; "
             f"step times over the intervals ending at steps "
             f"{SKIP_BEFORE + DISP_FREQ}..{args.steps}", "",
             "Final validation RMSEs of each run (seed shift r: model seeds 1 + r, training "
             "seed 10 + r):", "",
             "| input | r | ours rmse_e_val | DeePMD rmse_e_val | ours rmse_f_val "
             "| DeePMD rmse_f_val | ours ms/step | DeePMD ms/step |",
             "|" + "---|" * 8]
    for name, pair in results.items():
        ours, theirs = pair.get("ours", {}).get("runs", []), pair.get("deepmd", {}).get(
            "runs", [])
        for k in range(max(len(ours), len(theirs))):
            a = ours[k] if k < len(ours) else {}
            b = theirs[k] if k < len(theirs) else {}
            r = a.get("r", b.get("r", k))
            lines.append(f"| {name} | {r} | {_fmt(a.get('rmse_e_val'), 'rmse')} "
                         f"| {_fmt(b.get('rmse_e_val'), 'rmse')} "
                         f"| {_fmt(a.get('rmse_f_val'), 'rmse')} "
                         f"| {_fmt(b.get('rmse_f_val'), 'rmse')} "
                         f"| {_fmt(a.get('wall_s_per_step'), 'ms')} "
                         f"| {_fmt(b.get('wall_s_per_step'), 'ms')} |")
    lines += ["", "Over the seeds (RMSE: mean; ms/step: median):", ""]
    header = ("| input | ours rmse_e_val | DeePMD rmse_e_val | ratio | ours rmse_f_val "
              "| DeePMD rmse_f_val | ratio | ours ms/step | DeePMD ms/step | ratio |")
    lines += [header, "|" + "---|" * 10]
    checks = []
    for name, pair in results.items():
        ours, theirs = pair.get("ours", {}), pair.get("deepmd", {})
        ratios = {key: _ratio(ours.get(key), theirs.get(key))
                  for key in ("rmse_e_val", "rmse_f_val", "wall_s_per_step",
                              "mean_train_s_per_step")}
        lines.append(
            f"| {name} | {_fmt(ours.get('rmse_e_val'), 'rmse')} "
            f"| {_fmt(theirs.get('rmse_e_val'), 'rmse')} | {_fmt(ratios['rmse_e_val'], 'r')} "
            f"| {_fmt(ours.get('rmse_f_val'), 'rmse')} | {_fmt(theirs.get('rmse_f_val'), 'rmse')} "
            f"| {_fmt(ratios['rmse_f_val'], 'r')} | {_fmt(ours.get('wall_s_per_step'), 'ms')} "
            f"| {_fmt(theirs.get('wall_s_per_step'), 'ms')} "
            f"| {_fmt(ratios['wall_s_per_step'], 'r')} |")
        ratios.update({key: _ratio(ours.get(key), theirs.get(key))
                       for key in ("rmse_e_all", "rmse_f_all")})
        checks.append((name, ratios))
    lines += ["", "ms/step: median interval wall time / disp_freq (training steps, batch loading "
              "and the display's evaluations).", "",
              "Training steps alone (train ms/step):", "",
              "| input | ours median | ours mean | DeePMD median | DeePMD mean | ratio of means |",
              "|---|---|---|---|---|---|"]
    for name, ratios in checks:
        ours, theirs = results[name].get("ours", {}), results[name].get("deepmd", {})
        lines.append(f"| {name} | {_fmt(ours.get('train_s_per_step'), 'ms')} "
                     f"| {_fmt(ours.get('mean_train_s_per_step'), 'ms')} "
                     f"| {_fmt(theirs.get('train_s_per_step'), 'ms')} "
                     f"| {_fmt(theirs.get('mean_train_s_per_step'), 'ms')} "
                     f"| {_fmt(ratios['mean_train_s_per_step'], 'r')} |")
    lines += ["", "median: over the intervals ending at steps "
              f"{SKIP_BEFORE + DISP_FREQ}..{args.steps} (DeePMD-kit 3.2.0 does not log each "
              "interval's training time: '-'); mean: each program's closing 'average training "
              f"time' (steps {DISP_FREQ + 1}..{args.steps}).", "",
              ] + _whole_validation_lines(results) + ["Targets (rmse ratio, step-time ratio): "
                                                     + ", ".join(f"{n} <= {r:.2f}, {t:.1f}"
                                                                 for n, (r, t) in TARGETS.items()
                                                                 if n in results)]
    for name, ratios in checks:
        rmse_target, time_target = TARGETS[name]
        lines.append(
            f"- {name}: rmse_e_val {_verdict(ratios['rmse_e_val'], rmse_target)}, "
            f"rmse_f_val {_verdict(ratios['rmse_f_val'], rmse_target)}, "
            f"whole-validation rmse_e {_verdict(ratios['rmse_e_all'], rmse_target)}, "
            f"rmse_f {_verdict(ratios['rmse_f_all'], rmse_target)}, "
            f"ms/step {_verdict(ratios['wall_s_per_step'], time_target)}, "
            f"train ms/step (means) {_verdict(ratios['mean_train_s_per_step'], time_target)}")
    lines += ["", "Per-run wall times (whole `dp train` process):"]
    for name, pair in results.items():
        for program in PROGRAMS:
            for k, job in enumerate(pair.get(program, {}).get("runs", [])):
                r = job.get("r", k)
                if "skipped" in job:
                    lines.append(f"- {name} / {LABELS[program]} / r {r}: skipped "
                                 f"({job['skipped']})")
                else:
                    state = "ok" if "error" not in job else f"FAILED (status {job['rc']})"
                    lines.append(f"- {name} / {LABELS[program]} / r {r}: {job['wall_s']:.0f} s, "
                                 f"{state}")
    return lines


def _plot(results: dict, out: Path) -> str:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not importable here: no plot written"
    keys = ("rmse_e_val", "rmse_f_val")
    fig, axes = plt.subplots(len(results), 2, figsize=(10, 3.5 * len(results)), squeeze=False)
    for row, (name, pair) in enumerate(results.items()):
        for col, key in enumerate(keys):
            ax = axes[row][col]
            for program, color in zip(PROGRAMS, ("C0", "C1")):
                for r, run in enumerate(pair.get(program, {}).get("runs", [])):
                    curve = run.get("curve")
                    if curve and key in curve:
                        ax.semilogy(curve["step"], curve[key], color=color, alpha=0.7,
                                    label=LABELS[program] if r == 0 else None)
            ax.set_title(f"{name}: {key}")
            ax.set_xlabel("step")
            if ax.lines:
                ax.legend()
    fig.tight_layout()
    path = out / "lcurves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"learning curves plotted to {path}"


def _run_all(names: list, args, commands: dict, work: Path, out: Path) -> dict:
    """{input: {program: [run metrics, ...]}}: every job, one after the other."""
    runs: dict = {name: {program: [] for program in PROGRAMS} for name in names}
    total = len(names) * len(PROGRAMS) * args.seeds
    count = 0
    t0 = time.perf_counter()
    for name in names:
        for r in range(args.first_seed, args.first_seed + args.seeds):
            config = _input(name, args.steps, r)
            for program in PROGRAMS:
                count += 1
                label = f"({count}/{total}) {name} / {LABELS[program]} / r {r}"
                command = commands[program]
                if isinstance(command, str):
                    _progress(f"{label}: skipped: {command}")
                    runs[name][program].append({"skipped": command, "r": r})
                    continue
                job_dir = work / f"{name}-{program}-r{r}"
                if job_dir.exists():
                    shutil.rmtree(job_dir)
                job = _run_job(label, *command, job_dir, _for_program(config, program),
                               args.timeout)
                metrics = _metrics(job)
                if "error" not in metrics:
                    metrics.update(_whole_validation(job_dir / "run", program, commands,
                                                     args.timeout))
                metrics["r"] = r
                runs[name][program].append(metrics)
                for path, suffix in ((job["log"], "log"), (job["lcurve"], "lcurve.out")):
                    if path.exists():
                        shutil.copyfile(path, out / f"{name}-{program}-r{r}.{suffix}")
                if "error" in metrics:
                    _progress(f"{label}: failed; the end of its output:\n"
                              f"{metrics['error']}")
                _progress(f"total elapsed {time.perf_counter() - t0:.0f} s")
    return runs


def main(argv=None) -> int:
    args = _parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = [args.only] if args.only else list(INPUTS)
    if args.seeds < 1:
        raise SystemExit("bench/train.py: --seeds must be at least 1")
    if args.combine:
        if any(Path(d).resolve() == out.resolve() for d in args.combine):
            raise SystemExit("bench/train.py: --out must differ from the --combine DIRs")
        runs = combine(args.combine, args.steps)
        args.seeds = max(len(per) for pair in runs.values() for per in pair.values())
    else:
        commands = _commands(args.threads)
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
        with (contextlib.nullcontext(args.keep) if args.keep else
              tempfile.TemporaryDirectory(prefix="deepmd_tebd-bench-train-")) as work:
            runs = _run_all(names, args, commands, Path(work), out)
    results = {name: {program: aggregate(per) for program, per in pair.items()}
               for name, pair in runs.items()}
    lines = report(results, args)
    lines += ["", _plot(results, out)]
    print("\n".join(lines))
    saved = {name: {program: {**{k: v for k, v in agg.items() if k != "runs"},
                              "runs": [{k: v for k, v in run.items() if k != "curve"}
                                       for run in agg["runs"]]}
                    for program, agg in pair.items()} for name, pair in results.items()}
    (out / "results.json").write_text(json.dumps(saved, indent=2) + "\n")
    print(f"lcurves, logs and results.json in {out}")
    failed = any("error" in agg for pair in results.values() for agg in pair.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
