"""The cost of training as chemical species grow: deepmd_tebd and DeePMD-kit 3.2 (TensorFlow
backend) on the same alloy inputs at 2 to 64 species.

    python bench/species.py [--species 2,4,7,16,32,64] [--descriptors atten,ebd_v2,tebd,se_e2_a]
                            [--steps 300] [--accuracy-steps 0] [--accuracy-seeds 0]
                            [--plain-max 16] [--threads N] [--out DIR] [--keep DIR]

Data (made in the work dir by this package's generator, deepmd_tebd.tools.alloy, seed 0):
- 2 and 4 species: fcc alloys of the first 2 or 4 of Cu, Ag, Au, Ni, Pd, Pt, Al (4 systems of
  20 frames, 108 atoms);
- 7 species: the generator's default data, that of examples/alloy (8 systems of 60 frames);
- 16, 32 and 64 species: the 7-metal data with each element split into pseudo-species (element
  e into about N/7 of them, "Cu0", "Cu1", ...; each atom drawn at random, seed 0) that keep the
  element's labels. They measure cost only: the labels do not depend on the pseudo-species.
Every system but the last trains; the last validates (numb_btch 1).

Inputs: examples/alloy's four scripts (se_atten_v2 "atten", se_a_ebd_v2 "ebd_v2", se_e2_a +
type embedding "tebd", se_e2_a with per-type nets "se_e2_a") with the data's type map,
se_a_ebd_v2 without `smooth_type_embedding` (DeePMD-kit 3.2 refuses the key: both programs train
DeePMD-kit's se_a_ebd_v2),
numb_steps --steps, disp_freq 100, save_freq --steps. sel: "auto" (each program's own neighbour
statistics, part of its start-up) for the descriptors with one block per type; a fixed 88 (the
7-metal data's largest neighbour count x 1.1, rounded up to 4) for se_atten_v2 at every species
count, so that its times compare one sel. se_e2_a without type embedding builds N^2 embedding
nets (4096 at 64 species); it runs up to --plain-max species. DeePMD-kit's copies of the inputs
with a type_embedding section get `use_tebd_bias: true` (bench/train.py: both then train the same
model).

Figures per (descriptor, species, program), each job alone on the machine with --threads
threads (bench/train.py's settings), after each program has imported its training code once
(the file cache warm for every job):
- step: the program's closing "average training time" (steps 101..N, training alone);
- statistics (the start-up this benchmark's target is about): the neighbour statistics plus the
  data statistics (descriptor davg/dstd and the energy bias), each from the log line that opens
  the phase to the one that closes it, by the lines' time stamps in the log file that each
  program writes with `-l stamped.log`: "Calculate neighbor statistics" to the maximal
  neighbour sizes, "data stating" to "initialize model from scratch" (ours) or DeePMD-kit's
  energy-bias line;
- start-up: from the launch of `dp train` until its lcurve row of step 100 (disp_freq) appears,
  less 100 steps at the mean step time (interpreter and TensorFlow start, data loading,
  neighbour statistics for sel "auto", data statistics, graph construction, the step-0
  evaluation, and the graph work of the first steps: ours traces the training step while
  step 0 is evaluated and optimises it on the first call, DeePMD-kit builds its graph before
  step 0); the time of the step-0 row is kept too (first_row_s);
- peak memory: the training process's maximum resident set (/proc's VmHWM, read every 50 ms);
- graph: the size of the frozen model that the program's own `dp freeze` writes;
- DeepPot: the program's own DeepPot on its own graph, one 108-atom validation frame, energy,
  forces and virial, median of 5 calls after a warm-up (bench/infer.py's runners).
With --accuracy-steps N > 0, on the 7-metal data split by frames (each system's first 48 frames
train, its last 12 are held out and validate: every composition the model trains on is
validated, on frames it never saw): each descriptor trained N steps by both programs
(decay_steps N/20), and ours again for the steps it trains in DeePMD-kit's training time of N
steps (N x DeePMD-kit's step / ours, to a multiple of 100: the step times of the 7-species timing
jobs, else of these runs; --results FILE keeps the jobs of an earlier run that ended without
an error, timing and accuracy runs alike, and runs the rest);
--accuracy-seeds R,R,... repeats the same-step runs with every seed of the inputs moved by R
(bench/train.py's shift_seeds; the report gives the mean over the seeds and each seed's ratio;
the same-time run is made for shift 0 only);
whole-validation energy RMSE per atom and force RMSE of each final model on every held-out frame
(one evaluator, our `dp test`, as bench/train.py: the weighted average over the systems); and
that energy error split by system (our DeepPot): the mean error per atom of each system (a system
has one composition, so its mean is an offset that depends on composition alone) and the spread
within a system.

Targets (printed with each figure): step time ours / DeePMD-kit <= 0.8 at every species count;
se_atten_v2 at 64 species <= 1.3 x its time at 2; statistics ours / DeePMD-kit <= 0.5 (the
whole start-up is reported beside it, without a target: importing TensorFlow alone is about half
of DeePMD-kit's);
whole-validation errors ours / DeePMD-kit <= 1.05. Outputs in --out: results.json, species.png
(cost against species), the logs (console and time-stamped).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

import infer as bench_infer
import train as bench_train
from cores import usable_cores

_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = _ROOT / "examples" / "alloy"
DESCRIPTORS = {"atten": "se_atten_v2.json", "ebd_v2": "se_a_ebd_v2.json",
               "tebd": "se_e2_a_tebd.json", "se_e2_a": "se_e2_a.json"}
METALS = ("Cu", "Ag", "Au", "Ni", "Pd", "Pt", "Al")
ATTEN_SEL = 88
HELD_OUT = 12  # accuracy runs: the last frames of each 7-metal system validate
DISP_FREQ = 100
REPEATS = 5
TARGETS = {"step": 0.8, "atten_64_over_2": 1.3, "statistics": 0.5, "rmse": 1.05}
_TEST_LINE = re.compile(r"(Energy RMSE/Natoms|Force  RMSE)\s*:\s*([0-9.eE+-]+)")


def _progress(message: str) -> None:
    print(f"[bench/species] {message}", file=sys.stderr, flush=True)


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--species", default="2,4,7,16,32,64",
                        help="species counts (2, 4, 7: metals; more: pseudo-species)")
    parser.add_argument("--descriptors", default=",".join(DESCRIPTORS),
                        help=f"of {','.join(DESCRIPTORS)}")
    parser.add_argument("--steps", type=int, default=300,
                        help="training steps of a timing job (0: no timing jobs)")
    parser.add_argument("--accuracy-steps", type=int, default=0,
                        help="steps of the 7-metal accuracy runs (0: none)")
    parser.add_argument("--accuracy-seeds", default="0",
                        help="seed shifts of the accuracy runs (R,R,...: every seed of the "
                             "inputs moved by R); the same-time run is made for shift 0")
    parser.add_argument("--results", metavar="FILE",
                        help="results.json of an earlier run: its figures are kept, its jobs "
                             "not run again")
    parser.add_argument("--plain-max", type=int, default=16,
                        help="largest species count for se_e2_a without type embedding")
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per job")
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) /
                                             "deepmd_tebd-bench-species"))
    parser.add_argument("--keep", metavar="DIR", help="make the work dirs under DIR, keep them")
    args = parser.parse_args(argv)
    args.species = [int(s) for s in args.species.split(",")]
    args.descriptors = args.descriptors.split(",")
    args.accuracy_seeds = [int(r) for r in args.accuracy_seeds.split(",")]
    unknown = [d for d in args.descriptors if d not in DESCRIPTORS]
    # DeePMD-kit 3.2 (TF) saves its checkpoint at display steps and, at the end, only where
    # numb_steps is not a multiple of save_freq: numb_steps a multiple of disp_freq has one
    steps_ok = all(n >= 2 * DISP_FREQ and n % DISP_FREQ == 0
                   for n in (args.steps or 2 * DISP_FREQ, args.accuracy_steps or 2 * DISP_FREQ))
    if unknown or any(n < 2 or n in (3, 5, 6) for n in args.species) or not steps_ok:
        parser.error("--descriptors of atten,ebd_v2,tebd,se_e2_a; --species of 2, 4, 7 and "
                     f"counts above 7; --steps and --accuracy-steps multiples of {DISP_FREQ}, "
                     f"at least {2 * DISP_FREQ}")
    return args


# ---------------------------------------------------------------- data


def _metals(root: Path, count: int) -> Path:
    """Alloy data of the first `count` metals (7: the generator's default, examples/alloy's)."""
    from deepmd_tebd.tools import alloy

    path = root / f"metals{count}"
    if not path.exists():
        options = [] if count == 7 else ["--elements", ",".join(METALS[:count]), "--systems",
                                         "4", "--frames", "20"]
        _progress(f"generating {count}-metal data in {path}")
        assert alloy.main([str(path), "--quiet"] + options) == 0
    return path


def _pseudo(root: Path, count: int) -> Path:
    """The 7-metal data with each element split into pseudo-species (module docstring)."""
    path = root / f"pseudo{count}"
    if path.exists():
        return path
    source = _metals(root, 7)
    splits = [count // 7 + (1 if e < count % 7 else 0) for e in range(7)]
    offsets = np.concatenate([[0], np.cumsum(splits)[:-1]])
    names = [f"{METALS[e]}{j}" for e in range(7) for j in range(splits[e])]
    rng = np.random.default_rng(0)
    for system in sorted(source.glob("data_*")):
        types = np.loadtxt(system / "type.raw", dtype=int)
        pseudo = offsets[types] + rng.integers(0, np.array(splits)[types])
        (path / system.name).mkdir(parents=True)
        (path / system.name / "type.raw").write_text("".join(f"{t}\n" for t in pseudo))
        (path / system.name / "type_map.raw").write_text("".join(f"{n}\n" for n in names))
        (path / system.name / "set.000").symlink_to(system / "set.000")
    return path


def frames_of(source: Path, dest: Path, rows: slice) -> Path:
    """A copy of the system `source` holding the frames `rows` of its set.000 (made once)."""
    if not dest.exists():
        (dest / "set.000").mkdir(parents=True)
        for text in ("type.raw", "type_map.raw"):
            shutil.copy(source / text, dest / text)
        for array in (source / "set.000").glob("*.npy"):
            np.save(dest / "set.000" / array.name, np.load(array)[rows])
    return dest


def held_out(root: Path) -> tuple[list, Path]:
    """The 7-metal data split by frames: each system's first frames train and its last HELD_OUT
    validate. (training systems, the folder of the validation systems)."""
    train, valid = [], root / "held-out" / "valid"
    for system in _systems(_metals(root, 7)):
        train.append(frames_of(system, root / "held-out" / "train" / system.name,
                               slice(None, -HELD_OUT)))
        frames_of(system, valid / system.name, slice(-HELD_OUT, None))
    return train, valid


def _data(root: Path, count: int) -> Path:
    return _metals(root, count) if count <= 7 else _pseudo(root, count)


def _systems(data: Path) -> list:
    """data_0, data_1, ... of a data folder in numeric order (the last validates)."""
    return sorted(data.glob("data_*"), key=lambda p: int(p.name.split("_")[1]))


def script(name: str, train: list, valid: list, steps: int, type_map=None,
           sel="auto", short_schedule: bool = False) -> dict:
    """examples/alloy's input `name` training on the systems `train` and validating on the
    systems `valid` (numb_btch 1), numb_steps and save_freq `steps`, disp_freq 100; type_map
    None: the script names none; sel "auto" or a number (se_atten_v2); short_schedule:
    decay_steps steps / 20, so that the learning rate reaches stop_lr in `steps` steps with the
    same number of decays."""
    config = json.loads((EXAMPLES / DESCRIPTORS[name]).read_text())
    if type_map is None:
        config["model"].pop("type_map", None)
    else:
        config["model"]["type_map"] = list(type_map)
    config["model"]["descriptor"]["sel"] = sel
    # DeePMD-kit 3.2 has no smooth se_a_ebd_v2: both programs train its se_a_ebd_v2
    config["model"]["descriptor"].pop("smooth_type_embedding", None)
    if short_schedule:
        config["learning_rate"]["decay_steps"] = max(1, steps // 20)
    training = config["training"]
    training.update(numb_steps=steps, disp_freq=DISP_FREQ, save_freq=steps)
    training["training_data"]["systems"] = [str(p) for p in train]
    training["validation_data"].update(systems=[str(p) for p in valid], numb_btch=1)
    return config


def _input(name: str, data: Path, steps: int) -> dict:
    """A timing job's `script` on a data folder: every system but the last trains, with its type
    map; sel 88 for se_atten_v2, else "auto"."""
    systems = _systems(data)
    return script(name, systems[:-1], systems[-1:], steps,
                  (systems[0] / "type_map.raw").read_text().split(),
                  ATTEN_SEL if name == "atten" else "auto")


# ---------------------------------------------------------------- one job


def _high_water_mib(pid: int) -> float:
    """The process's peak resident set so far (/proc's VmHWM) in MiB; 0 once it has gone.
    Not wait4's ru_maxrss, which counts the parent's resident set at the fork."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _lcurve_steps(lcurve: Path) -> list:
    """The steps of the rows written to an lcurve so far."""
    if not lcurve.exists():
        return []
    rows = [line.split() for line in lcurve.read_text(errors="replace").splitlines()
            if line.strip() and not line.startswith("#")]
    return [int(float(row[0])) for row in rows if row]


def _startup_and_memory(argv, env, run: Path, lcurve: Path, timeout: float) -> tuple:
    """Runs `dp train`; (rc, {step: seconds from the launch until lcurve's row of that step
    appeared} for steps 0 and DISP_FREQ, peak RSS in MiB, wall s)."""
    t0 = time.perf_counter()
    rows, peak = {}, 0.0
    with open(run / "train.log", "wb") as log:
        proc = subprocess.Popen(argv, cwd=run, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        try:
            while True:
                peak = max(peak, _high_water_mib(proc.pid))  # read before the exit is reaped
                pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                now = time.perf_counter()
                if DISP_FREQ not in rows:
                    for step in _lcurve_steps(lcurve):
                        rows.setdefault(step, now - t0)
                if now - t0 > timeout:
                    proc.kill()
                    pid, status, _ = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.05)
        except BaseException:
            proc.kill()
            raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, rows, peak, time.perf_counter() - t0


def _startup(rows: dict, step: float | None) -> float | None:
    """Seconds from the launch until the row of step DISP_FREQ appeared, less DISP_FREQ steps
    at the mean step time: everything done before training and on the first steps beyond
    steady training (ours traces the step on its first call, DeePMD-kit builds its graph
    before step 0), whichever log format the program writes."""
    if DISP_FREQ not in rows or step is None:
        return None
    return rows[DISP_FREQ] - DISP_FREQ * step


_STAMP = re.compile(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
# figure: (the line that opens a statistics phase, the lines that may close it) in either
# program's log
_PHASES = {"neighbour_stat_s": ("Calculate neighbor statistics",
                                ("max nbor size", "maximum neighbor size")),
           "data_stat_s": ("data stating", ("initialize model from scratch",
                                            "after linear regression"))}


def statistics_seconds(text: str) -> dict:
    """The seconds of the neighbour statistics and of the data statistics in a `dp train` log,
    and their sum statistics_s (the module docstring: statistics), from the time stamps of the
    lines that open and close each phase; {} when a phase or a stamp is missing."""
    stamped = []
    for line in text.splitlines():
        match = _STAMP.search(line)
        if match:
            when = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            stamped.append((when, line))
    figures = {}
    for figure, (opening, closings) in _PHASES.items():
        start = next((k for k, (_, line) in enumerate(stamped) if opening in line), None)
        end = None if start is None else next(
            (k for k in range(start + 1, len(stamped))
             if any(closing in stamped[k][1] for closing in closings)), None)
        if end is None:
            return {}
        figures[figure] = stamped[end][0] - stamped[start][0]
    return {**figures, "statistics_s": sum(figures.values())}


def run_job(label: str, program: str, commands: dict, job_dir: Path, config: dict,
            frame, timeout: float) -> dict:
    """Trains, freezes and times one program on one input (module docstring: Figures)."""
    argv, env = commands[program]
    run = job_dir / "run"
    run.mkdir(parents=True)
    (run / "input.json").write_text(json.dumps(bench_train._for_program(config, program),
                                               indent=1))
    _progress(f"{label}: training")
    rc, rows, rss, wall = _startup_and_memory(argv + ["-l", "stamped.log"], env, run,
                                              run / "lcurve.out", timeout)
    text = (run / "train.log").read_text(errors="replace")
    if rc != 0:
        return {"error": "\n".join(text.splitlines()[-30:])}
    step = bench_train.parse_log(text)["mean_train_s_per_step"]
    stamped = run / "stamped.log"
    figures = {"statistics_s": None,
               **statistics_seconds(stamped.read_text(errors="replace")
                                    if stamped.exists() else ""),
               "startup_s": _startup(rows, step), "first_row_s": rows.get(0), "peak_mib": rss,
               "wall_s": wall, "step_s": step}
    freeze = subprocess.run(argv[:-2] + ["freeze", "-o", "graph.pb"], cwd=run, env=env,
                            capture_output=True, text=True, timeout=timeout)
    if freeze.returncode != 0:
        return {**figures, "error": freeze.stderr[-2000:]}
    figures["graph_mib"] = (run / "graph.pb").stat().st_size / 2 ** 20
    if program == "ours":
        seconds, _ = bench_infer._time_ours(run / "graph.pb", frame, REPEATS, env, run)
    else:
        seconds, _ = bench_infer._time_theirs(_python(program, commands), run / "graph.pb",
                                              frame, REPEATS, env, run)
    figures["deeppot_s"] = seconds
    _progress(f"{label}: step {1e3 * (figures['step_s'] or float('nan')):.1f} ms, statistics "
              f"{figures['statistics_s'] or float('nan'):.2f} s (neighbours "
              f"{figures.get('neighbour_stat_s', float('nan')):.2f} s), start-up "
              f"{figures['startup_s'] or float('nan'):.1f} s (first row "
              f"{rows.get(0, float('nan')):.1f} s), peak {rss:.0f} MiB")
    return figures


def _frame(data: Path):
    """The first frame of the last (validation) system: coords [1, n, 3], cell [1, 9], types."""
    system = _systems(data)[-1]
    coords = np.load(system / "set.000" / "coord.npy")[:1]
    cells = np.load(system / "set.000" / "box.npy")[:1]
    return coords.reshape(1, -1, 3), cells, np.loadtxt(system / "type.raw", dtype=int)


def test_graph(run: Path, system: Path, commands: dict, timeout: float) -> dict:
    """{"rmse_e", "rmse_f"}: our `dp test` of the run's graph.pb on every frame of `system` (a
    system, or a folder of systems: their weighted average) (energy RMSE per atom, force RMSE),
    or {"error"}."""
    argv, env = commands["ours"]
    test = subprocess.run(argv[:-2] + ["test", "-m", "graph.pb", "-s", str(system), "-n",
                                       "1000000"], cwd=run, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if test.returncode != 0:
        return {"error": test.stderr[-2000:]}
    found = dict(_TEST_LINE.findall(test.stdout + test.stderr))
    return {"rmse_e": float(found["Energy RMSE/Natoms"]), "rmse_f": float(found["Force  RMSE"])}


def energy_offsets(graph: Path, systems: list) -> dict:
    """How the energy error per atom splits on `systems` (all frames, our DeepPot): its mean over
    a system's frames (one composition: an offset that a per-type energy shift would remove) and
    its spread within the system. {"offset": mean |offset|, "spread": mean within-system
    standard deviation}."""
    from deepmd_tebd.infer import DeepPot
    from deepmd_tebd.infer.change_bias import counts_and_energies

    dp = DeepPot(graph)
    offsets, spreads = [], []
    for system in systems:
        counts, labels, predicted = counts_and_energies(dp, [system], 0)
        error = (predicted - labels) / counts.sum(axis=1)
        offsets.append(abs(float(error.mean())))
        spreads.append(float(error.std()))
    dp.close()
    return {"offset": float(np.mean(offsets)), "spread": float(np.mean(spreads))}


def _sel(run: Path):
    """The sel a program trained with (its out.json), summed over the blocks."""
    try:
        sel = json.loads((run / "out.json").read_text())["model"]["descriptor"]["sel"]
    except (OSError, ValueError, KeyError):
        return None
    return sum(sel) if isinstance(sel, list) else sel


# ---------------------------------------------------------------- report


def _ratio(results: dict, key: str, name: str, count: int):
    ours = results.get(f"{name}/{count}/ours", {}).get(key)
    theirs = results.get(f"{name}/{count}/deepmd", {}).get(key)
    return ours / theirs if ours and theirs else None


def _cell(value, scale=1.0, fmt="{:.1f}"):
    return "-" if value is None else fmt.format(value * scale)


def report(results: dict, args) -> list[str]:
    """The tables (markdown) and the verdicts against the targets."""
    lines = [f"{args.steps or 'no'} steps per timing job, {args.threads} threads; counts above "
             "7 are pseudo-species of the 7-metal data (timing only)", "",
             "| descriptor | species | sel (ours/DeePMD) | step ms ours | DeePMD | ratio "
             "| statistics s ours | DeePMD | ratio | start-up s ours | DeePMD | ratio "
             "| first row s ours | DeePMD | peak MiB ours | DeePMD | graph MiB ours | DeePMD "
             "| DeepPot ms ours | DeePMD |",
             "|" + "---|" * 20]
    verdicts = []
    for name in args.descriptors:
        for count in args.species:
            a = results.get(f"{name}/{count}/ours", {})
            b = results.get(f"{name}/{count}/deepmd", {})
            if not a and not b:
                continue
            if "skipped" in a:
                lines.append(f"| {name} | {count} | skipped: {a['skipped']} |")
                continue
            step, start = _ratio(results, "step_s", name, count), _ratio(
                results, "startup_s", name, count)
            stats = _ratio(results, "statistics_s", name, count)
            lines.append(
                f"| {name} | {count} | {a.get('sel', '-')}/{b.get('sel', '-')} "
                f"| {_cell(a.get('step_s'), 1e3)} | {_cell(b.get('step_s'), 1e3)} "
                f"| {_cell(step, fmt='{:.2f}')} | {_cell(a.get('statistics_s'), fmt='{:.2f}')} "
                f"| {_cell(b.get('statistics_s'), fmt='{:.2f}')} | {_cell(stats, fmt='{:.2f}')} "
                f"| {_cell(a.get('startup_s'))} "
                f"| {_cell(b.get('startup_s'))} | {_cell(start, fmt='{:.2f}')} "
                f"| {_cell(a.get('first_row_s'))} | {_cell(b.get('first_row_s'))} "
                f"| {_cell(a.get('peak_mib'), fmt='{:.0f}')} "
                f"| {_cell(b.get('peak_mib'), fmt='{:.0f}')} "
                f"| {_cell(a.get('graph_mib'), fmt='{:.2f}')} "
                f"| {_cell(b.get('graph_mib'), fmt='{:.2f}')} "
                f"| {_cell(a.get('deeppot_s'), 1e3)} | {_cell(b.get('deeppot_s'), 1e3)} |")
            for key, ratio, target in (("step", step, TARGETS["step"]),
                                       ("statistics", stats, TARGETS["statistics"])):
                if ratio is not None and ratio > target:
                    verdicts.append(f"NOT met: {name} at {count} species, {key} ratio "
                                    f"{ratio:.2f} > {target}")
            for program, figures in (("ours", a), ("DeePMD-kit", b)):
                if "error" in figures:
                    verdicts.append(f"{name} at {count} species, {program} failed:\n"
                                    f"{figures['error']}")
    low, high = results.get("atten/2/ours", {}), results.get("atten/64/ours", {})
    if low.get("step_s") and high.get("step_s"):
        growth = high["step_s"] / low["step_s"]
        verdicts.append(f"se_atten_v2 step time at 64 species / at 2 (sel {ATTEN_SEL}): "
                        f"{growth:.2f} ({'met' if growth <= TARGETS['atten_64_over_2'] else 'NOT met'}"
                        f", target {TARGETS['atten_64_over_2']})")
    lines += ["", *(verdicts or ["every step-time and statistics target met"])]
    accuracy = [key for key in results if key.startswith("accuracy/")]
    if accuracy:
        steps = next((results[k].get("steps") for k in accuracy if k.endswith("/deepmd")), "-")
        lines += ["", f"7-metal data, whole validation (the last {HELD_OUT} frames of each "
                      f"system, held out of training) after {steps} steps (the mean over the "
                      "seed shifts, and each seed's ratio) and after DeePMD-kit's training "
                      "time of them (seed shift 0):", "",
                  "| descriptor | seeds | rmse_e/atom ours | DeePMD | ratio | per seed "
                  "| rmse_f ours | DeePMD | ratio | per seed | same-time steps ours | rmse_e "
                  "| ratio | rmse_f | ratio |", "|" + "---|" * 15]
        for name in args.descriptors:
            runs = _seeds_of(results, name)
            c = results.get(f"accuracy/{name}/ours_same_time", {})
            b = results.get(f"accuracy/{name}/deepmd", {})
            cells = [name, ",".join(str(shift) for shift, _, _ in runs) or "-"]
            for key in ("rmse_e", "rmse_f"):
                pairs = [(a[key], d[key]) for _, a, d in runs if a.get(key) and d.get(key)]
                ours = float(np.mean([x for x, _ in pairs])) if pairs else None
                theirs = float(np.mean([y for _, y in pairs])) if pairs else None
                cells += [_cell(ours, fmt="{:.2e}"), _cell(theirs, fmt="{:.2e}"),
                          _cell(ours / theirs if pairs else None, fmt="{:.2f}"),
                          "/".join(f"{x / y:.2f}" for x, y in pairs) or "-"]
            cells.append(str(c.get("steps", "-")))
            for key in ("rmse_e", "rmse_f"):
                ratio = c[key] / b[key] if c.get(key) and b.get(key) else None
                cells += [_cell(c.get(key), fmt="{:.2e}"), _cell(ratio, fmt="{:.2f}")]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "Energy error per atom on the held-out frames split by system: |mean| "
                      "(a composition's offset), averaged over the systems, and the spread "
                      "within a system:", "", "| descriptor | run | offset | spread |",
                  "|---|---|---|---|"]
        for name in args.descriptors:
            for key in sorted(k for k in accuracy if k.startswith(f"accuracy/{name}/")):
                f = results[key]
                if "spread" in f:
                    run = key[len(f"accuracy/{name}/"):]
                    lines.append(f"| {name} | {run} | {f['offset']:.4f} | {f['spread']:.4f} |")
    return lines


def plot(results: dict, args, out: Path) -> str:
    """species.png: each cost against the species count, a line per descriptor and program."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not importable here: no plot written"
    panels = (("step_s", "training step (ms)", 1e3), ("statistics_s", "statistics (s)", 1.0),
              ("startup_s", "start-up (s)", 1.0),
              ("peak_mib", "peak memory (MiB)", 1.0), ("graph_mib", "frozen graph (MiB)", 1.0),
              ("deeppot_s", "DeepPot, 108 atoms (ms)", 1e3))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8))
    for ax, (key, title, scale) in zip(axes, panels):
        for k, name in enumerate(args.descriptors):
            for program, style in (("ours", "-"), ("deepmd", "--")):
                points = [(n, results[f"{name}/{n}/{program}"][key] * scale)
                          for n in args.species
                          if results.get(f"{name}/{n}/{program}", {}).get(key)]
                if points:
                    ax.plot(*zip(*points), style, marker="o", color=f"C{k}",
                            label=f"{name} {bench_train.LABELS[program]}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(args.species, [str(n) for n in args.species])
        ax.set_xlabel("species")
        ax.set_title(title)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path = out / "species.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"costs plotted to {path}"


# ---------------------------------------------------------------- main


def _seeds_of(results: dict, name: str) -> list:
    """[(seed shift, our figures, DeePMD-kit's figures)] of the same-step accuracy runs of
    `name`, by shift."""
    pattern = re.compile(rf"accuracy/{re.escape(name)}/ours(?:/r(\d+))?$")
    runs = []
    for key in results:
        found = pattern.match(key)
        if found:
            shift = int(found.group(1) or 0)
            runs.append((shift, results[key],
                         results.get(accuracy_key(name, "deepmd", shift), {})))
    return sorted(runs, key=lambda run: run[0])


def _warm_caches(commands: dict) -> None:
    """Each program's interpreter imports its training code once before the first job, so that
    no job's start-up pays for reading TensorFlow's libraries from disk (the first job would)."""
    imports = {"ours": "import deepmd_tebd.train.trainer",
               "deepmd": "import deepmd.tf.train.trainer"}
    for program, (_, env) in commands.items():
        subprocess.run([_python(program, commands), "-c", imports[program]], env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _python(program: str, commands: dict) -> str:
    """The interpreter of a program: ours is this one, DeePMD-kit's sits beside its `dp`."""
    return sys.executable if program == "ours" else str(Path(commands[program][0][0]).parent
                                                        / "python")


def _timing(args, work: Path, commands: dict, results: dict) -> None:
    if not args.steps:  # --steps 0: accuracy runs only
        return
    jobs = [(name, count) for name in args.descriptors for count in args.species
            if f"{name}/{count}/ours" not in results]
    for index, (name, count) in enumerate(jobs, 1):
        if name == "se_e2_a" and count > args.plain_max:
            reason = (f"{count ** 2} per-type embedding nets (--plain-max {args.plain_max})")
            results[f"{name}/{count}/ours"] = {"skipped": reason}
            continue
        data = _data(work, count)
        config = _input(name, data, args.steps)
        for program in bench_train.PROGRAMS:
            label = f"({index}/{len(jobs)}) {name} at {count} species / {program}"
            job_dir = work / f"{name}-{count}-{program}"
            shutil.rmtree(job_dir, ignore_errors=True)
            figures = run_job(label, program, commands, job_dir, config, _frame(data),
                              args.timeout)
            figures["sel"] = _sel(job_dir / "run")
            results[f"{name}/{count}/{program}"] = figures
            for log, suffix in (("train.log", "log"), ("stamped.log", "stamped.log")):
                if (job_dir / "run" / log).exists():
                    shutil.copyfile(job_dir / "run" / log,
                                    Path(args.out) / f"{name}-{count}-{program}.{suffix}")


def _step_ratio(results: dict, name: str, ours_run: dict | None):
    """Our step time / DeePMD-kit's on the 7-metal data: of the timing jobs where they ran (each
    alone on the machine), else of the accuracy runs."""
    timed = [results.get(f"{name}/7/{p}", {}).get("step_s") for p in ("ours", "deepmd")]
    if all(timed):
        return timed[0] / timed[1]
    theirs = results.get(f"accuracy/{name}/deepmd", {}).get("step_s")
    ours = None if ours_run is None else ours_run.get("step_s")
    return ours / theirs if ours and theirs else None


def _accuracy(args, work: Path, commands: dict, results: dict) -> None:
    train, valid = held_out(work)
    valid_systems = _systems(valid)
    type_map = (train[0] / "type_map.raw").read_text().split()
    frame = _frame(_metals(work, 7))
    steps = args.accuracy_steps
    for name in args.descriptors:
        example = json.loads((EXAMPLES / DESCRIPTORS[name]).read_text())
        sel = example["model"]["descriptor"]["sel"]
        for shift in args.accuracy_seeds:
            runs = [("deepmd", "deepmd", steps), ("ours", "ours", steps)]
            for key, program, n in runs:
                key_r = accuracy_key(name, key, shift)
                earlier = results.get(key_r)  # --results: a run that ended well is kept
                if earlier is not None and "error" not in earlier:
                    continue
                job_dir = work / key_r.replace("/", "-")
                shutil.rmtree(job_dir, ignore_errors=True)
                config = bench_train.shift_seeds(script(name, train, valid_systems, n, type_map,
                                                        sel, short_schedule=True), shift)
                figures = run_job(f"{key_r} / {n} steps", program, commands, job_dir, config,
                                  frame, args.timeout)
                if "error" not in figures:
                    figures.update(test_graph(job_dir / "run", valid, commands, args.timeout))
                    figures.update(energy_offsets(job_dir / "run" / "graph.pb", valid_systems))
                figures["steps"] = n
                results[key_r] = figures
                ratio = _step_ratio(results, name, figures if key == "ours" else None)
                if key == "ours" and ratio and shift == 0:
                    same = DISP_FREQ * max(2, round(steps / ratio / DISP_FREQ))
                    runs.append(("ours_same_time", "ours", same))


def accuracy_key(name: str, run: str, shift: int) -> str:
    """The results key of an accuracy run: accuracy/<descriptor>/<run>, then /r<shift> for a
    seed shift other than 0."""
    return f"accuracy/{name}/{run}" + (f"/r{shift}" if shift else "")


def main(argv=None) -> int:
    args = _parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    commands = bench_train._commands(args.threads)
    if isinstance(commands["deepmd"], str):
        raise SystemExit(f"bench/species.py: DeePMD-kit cannot run: {commands['deepmd']}")
    cleanup = None if args.keep else tempfile.TemporaryDirectory(prefix="deepmd_tebd-species-")
    work = Path(args.keep or cleanup.name)
    work.mkdir(parents=True, exist_ok=True)
    results: dict = json.loads(Path(args.results).read_text()) if args.results else {}
    t0 = time.perf_counter()
    try:
        _warm_caches(commands)
        _timing(args, work, commands, results)
        if args.accuracy_steps > 0:
            _accuracy(args, work, commands, results)
    finally:
        (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        if cleanup is not None:
            cleanup.cleanup()
    lines = report(results, args) + ["", plot(results, args, out),
                                      f"total {time.perf_counter() - t0:.0f} s"]
    print("\n".join(lines))
    return 1 if any("error" in figures for figures in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
