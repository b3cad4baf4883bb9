"""Where a training step's time goes: TensorFlow's profiler on our traced step for each water
input of bench/train.py, the op time summed by phase, next to the arithmetic of the phases that
do the multiply-adds.

    python bench/step_profile.py [--only tebd|se_e2_a|tebd_v2|atten] [--steps 10] [--threads N]
                            [--out DIR]

Per input (bench/train.py's, training systems data_0..data_2 of ../shared/data/water, batch as
the input says): the trainer built in this process, 3 warm-up steps, --steps timed steps (wall
ms per step), then the same steps under tf.profiler. Each op event of TensorFlow's executor
threads counts for its phase:
- order: forward; 1st gradient (`gradient_tape/`: the forces' back-propagation to the
  coordinates, and the loss's gradient to the weights through the forward ops); 2nd gradient
  (`gradient_tape/gradient_tape/`: the loss's gradient to the weights through the forces'
  back-propagation). Per dense layer the forward does one matrix product, the 1st gradient
  three (one for the forces, two for the weights), the 2nd two: at best 3x and 2x the
  forward's arithmetic. The fused embedding net (TebdEmbeddingNet, model/kernels.py) does its
  forward and its derivative along s~ in the forward (two products per layer), the forces need
  no product, and its one gradient op (reverse mode through both, with the forward recomputed:
  six products per layer) runs where the loss's gradient meets the op, in the 1st gradient;
- part, from the op's name: env mat (ProdEnvMat*), force/virial assembly (ProdForce*,
  ProdVirial*), type embedding net, embedding net (the descriptor's filter, with the attention
  layers of se_atten), fitting net, descriptor contraction and the rest of the model;
- outside the model: optimiser (variable reads and updates), and the ops without a scope: the
  sums of gradient contributions (AddN), Adam's arithmetic and the loss.
Ops of one step overlap on the inter-op threads: the op time can exceed the wall time, and the
gap between wall x threads and op time is time the threads did no op (host work, waits).
Arithmetic (multiply-adds x 2 per step, forward): the embedding net (frames x atoms x sel x the
widths' products; se_atten: with its attention layers) and the fitting net (frames x atoms x its
widths' products); the effective
GFLOP/s of their forward op time is beside them. Output: a table per input, results.json in
--out.
"""
from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import train as bench_train
from cores import usable_cores

WARMUP = 3
PARTS = (("env mat", ("ProdEnvMat",)), ("force/virial assembly", ("ProdForce", "ProdVirial")),
         ("type embedding net", ("type_embed",)),
         ("embedding net", ("filter_type", "attention", "se_atten", "dpa1")),
         ("fitting net", ("fitting",)))
OPTIMIZER = ("Adam", "ReadVariableOp", "AssignVariableOp", "AssignAddVariableOp",
             "AssignSubVariableOp", "ResourceApply", "learning_rate")
ORDERS = ("forward", "1st gradient", "2nd gradient")


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(bench_train.INPUTS))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) /
                                             "deepmd_tebd-bench-profile"))
    return parser.parse_args(argv)


def phase(op_name: str) -> str:
    """The phase of an op event `scope/.../name:Type` (module text)."""
    depth = 0
    name = op_name
    while name.startswith("gradient_tape/"):
        name = name[len("gradient_tape/"):]
        depth += 1
    if "energy_model" not in name:
        if any(key in op_name for key in OPTIMIZER):
            return "optimiser"
        return "unscoped: gradient sums (AddN), Adam's arithmetic, loss"
    part = next((label for label, keys in PARTS if any(k in name for k in keys)),
                "contraction and the rest of the model")
    return f"{ORDERS[min(depth, 2)]}: {part}"


def op_times(logdir: Path) -> collections.Counter:
    """{op name: picoseconds} over the executor threads' op events of the newest trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = sorted(glob.glob(str(logdir / "**" / "*.xplane.pb"), recursive=True))[-1]
    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(path).read_bytes())
    total: collections.Counter = collections.Counter()
    for plane in space.planes:
        names = plane.event_metadata
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = names[event.metadata_id].name
                if ":" in name and not name.startswith("ExecutorState"):  # ops alone
                    total[name] += event.duration_ps
    return total


def _flops(config, frames: int, natoms: int) -> dict:
    """Forward multiply-adds x 2 per step of the embedding and fitting nets."""
    model = config.model
    desc = model.descriptor
    nnei = sum(desc.sel) if isinstance(desc.sel, (list, tuple)) else int(desc.sel)
    tebd = model.type_embedding.dim_out if model.type_embedding is not None else 0
    widths = [1 + (tebd if tebd and not getattr(desc, "type_one_side", False) else 0)]
    widths += list(desc.neuron)
    embed = sum(a * b for a, b in zip(widths, widths[1:]))
    fit_in = desc.neuron[-1] * getattr(desc, "axis_neuron", 4) + tebd
    fit = [fit_in] + list(model.fitting.neuron) + [1]
    fitting = sum(a * b for a, b in zip(fit, fit[1:]))
    # se_atten: per layer, Q, K, V and output projections (width neuron[-1] to attn and back)
    # and the two nnei x nnei products
    attn, layers = getattr(desc, "attn", 0), getattr(desc, "attn_layer", 0)
    attention = layers * (4 * nnei * desc.neuron[-1] * attn + 2 * nnei * nnei * attn)
    return {"embedding net": 2.0 * frames * natoms * (nnei * embed + attention),
            "fitting net": 2.0 * frames * natoms * fitting}


def profile_input(name: str, steps: int, logdir: Path) -> dict:
    """{"wall_ms", "phases": {phase: ms per step}, "flops": {...}} of one input."""
    import tensorflow as tf

    from deepmd_tebd.config import build_config, normalize
    from deepmd_tebd.train.build import build_trainer

    water = bench_train._SHARED / "data" / "water"
    script = bench_train._input(name, 100)
    training = script["training"]
    training["training_data"]["systems"] = [str(water / f"data_{i}") for i in range(3)]
    training["validation_data"]["systems"] = [str(water / bench_train.VALIDATION)]
    config = build_config(normalize(script, f"bench/train.py {name}"))
    trainer = build_trainer(config)
    batches = [trainer._draw() for _ in range(WARMUP + steps)]
    for batch in batches[:WARMUP]:
        trainer.train_step(batch)
    t0 = time.perf_counter()
    for batch in batches[WARMUP:]:
        trainer.train_step(batch)
    wall = (time.perf_counter() - t0) / steps
    shutil.rmtree(logdir, ignore_errors=True)
    tf.profiler.experimental.start(str(logdir))
    for batch in batches[WARMUP:]:
        trainer.train_step(batch)
    tf.profiler.experimental.stop()
    phases: collections.Counter = collections.Counter()
    for op, ps in op_times(logdir).items():
        phases[phase(op)] += ps / 1e9 / steps
    first = batches[0] if isinstance(batches[0], dict) else batches[0][0]
    frames, natoms = first["coord"].shape[0], int(first["natoms_vec"][0])
    return {"wall_ms": 1e3 * wall, "phases": dict(phases),
            "flops": _flops(config, frames, natoms)}


def report(name: str, result: dict, threads: int) -> list[str]:
    """The table of one input."""
    phases = result["phases"]
    total = sum(phases.values())
    wall = result["wall_ms"]
    lines = [f"{name}: {wall:.1f} ms per step (wall), op time {total:.1f} ms on {threads} "
             f"threads (no op running: {max(0.0, wall * threads - total):.1f} ms of "
             f"{wall * threads:.1f} thread-ms)", "",
             "| phase | ms/step | share | forward GFLOP | GFLOP/s |", "|---|---|---|---|---|"]
    for label, ms in sorted(phases.items(), key=lambda item: -item[1]):
        flop = next((f for part, f in result["flops"].items()
                     if label == f"forward: {part}"), None)
        rate = f"{flop / ms / 1e6:.1f}" if flop and ms else ""
        lines.append(f"| {label} | {ms:.1f} | {100 * ms / total:.0f} % | "
                     f"{'' if flop is None else f'{flop / 1e9:.3f}'} | {rate} |")
    return lines + [""]


def main(argv=None) -> int:
    args = _parse_args(argv)
    for key in ("OMP_NUM_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS",
                "DP_INTER_OP_PARALLELISM_THREADS"):
        os.environ[key] = str(args.threads)
    from deepmd_tebd.threads import apply_thread_settings, pool_cpu_memory

    pool_cpu_memory()  # as `dp` does
    apply_thread_settings()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, lines = {}, []
    for name in [args.only] if args.only else list(bench_train.INPUTS):
        print(f"[bench/profile] {name}: {args.steps} steps", file=sys.stderr, flush=True)
        results[name] = profile_input(name, args.steps, out / f"trace-{name}")
        lines += report(name, results[name], args.threads)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
