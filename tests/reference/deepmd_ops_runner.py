"""Runs DeePMD-kit's own custom ops on given inputs; executed by the oracle venv's python.

This script is the DeePMD-kit side of the comparisons in tests/op/test_deepmd_oracle.py and
bench/ops.py. It must run in a separate process from deepmd_tebd's op library, because both
libraries register ops under the same names.

    python deepmd_ops_runner.py --input cases.npz --output results.npz
                                [--timing --repeats N --warmup W] [--opdefs] [--threads N]

The input .npz holds a JSON string under "meta" (a list with one dict per case: name, dtype,
rcut, rcut_smth, sel, whether gradient inputs are present, and whether the environment matrix is
ProdEnvMatAMix's ("mixed": one sel entry, outputs ntype and nmask too)) and the arrays of case i under
"c{i}/<name>": coord, atype, natoms, box, mesh, davg, dstd, net_deriv, optionally grad_force and
grad_virial. The output .npz holds "c{i}/<output>" for descrpt, descrpt_deriv, rij, nlist, force,
virial, atom_virial (and grad_net_force / grad_net_virial when gradient inputs were given),
"c{i}/time/<OpName>" (median seconds) with --timing, and "opdef/<OpName>" (OpDef text format)
with --opdefs.

Only NumPy and the standard library are imported at module level, so that ``time_callable`` can be
imported by the benchmark in deepmd_tebd's environment: both sides are timed by the same code.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

# The ops whose OpDefs are compared.
OP_NAMES = ("ProdEnvMatA", "ProdEnvMatAMix", "ProdForceSeA", "ProdVirialSeA", "ProdForceSeAGrad",
            "ProdVirialSeAGrad")

# Output names of one case, in the order they are produced.
ENV_MAT_OUTPUTS = ("descrpt", "descrpt_deriv", "rij", "nlist")
MIX_OUTPUTS = ("ntype", "nmask")  # ProdEnvMatAMix's two more
FORCE_VIRIAL_OUTPUTS = ("force", "virial", "atom_virial")
GRAD_OUTPUTS = ("grad_net_force", "grad_net_virial")


def time_callable(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall time in seconds of ``fn()`` over ``repeats`` calls, after ``warmup`` calls.

    ``fn`` launches an eager op whose inputs are already tensors on the device; on the CPU an eager
    op has finished when the call returns, so the clock brackets exactly the op's execution plus
    TF's eager dispatch (the same for every op library).
    """
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _set_threads(threads: int | None) -> None:
    """Thread settings read by DeePMD-kit and OpenMP at import time."""
    if threads:
        for key in ("OMP_NUM_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS",
                    "TF_INTRA_OP_PARALLELISM_THREADS"):
            os.environ[key] = str(threads)
        for key in ("DP_INTER_OP_PARALLELISM_THREADS", "TF_INTER_OP_PARALLELISM_THREADS"):
            os.environ[key] = str(threads)


def _load_deepmd():
    """DeePMD-kit's TF module and its two op libraries (forward ops, gradient ops)."""
    from deepmd.tf.env import op_grads_module, op_module  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    # Importing deepmd.tf switches TensorFlow to TF1 graph mode; the ops are run eagerly here,
    # exactly as deepmd_tebd's are in their own process.
    tf.compat.v1.enable_v2_behavior()
    if not tf.executing_eagerly():
        raise RuntimeError("could not switch TensorFlow back to eager execution")
    return tf, op_module, op_grads_module


def _opdefs() -> dict[str, str]:
    from google.protobuf import text_format  # noqa: PLC0415
    from tensorflow.python.framework import op_def_registry  # noqa: PLC0415

    found = {}
    for name in OP_NAMES:
        op_def = op_def_registry.get(name)
        if op_def is None:
            raise RuntimeError(f"DeePMD-kit registered no op named {name}")
        found[name] = text_format.MessageToString(op_def)
    return found


def run_case(tf, ops, grad_ops, meta, arrays, timing=False, repeats=5, warmup=1):
    """Run ProdEnvMatA (ProdEnvMatAMix when ``meta["mixed"]``), then ProdForceSeA and
    ProdVirialSeA on its outputs (and the two gradient ops when ``meta["grads"]``), with the op
    functions of ``ops`` / ``grad_ops``.

    Used for DeePMD-kit's ops here and, imported, for deepmd_tebd's ops in their own process, so
    that both libraries are called and timed the same way. Returns (outputs as NumPy arrays,
    {op name: median seconds} when ``timing``).
    """
    dtype = {"float64": tf.float64, "float32": tf.float32}[meta["dtype"]]
    np_dtype = np.float64 if meta["dtype"] == "float64" else np.float32

    def floats(key):
        return tf.constant(np.asarray(arrays[key], dtype=np_dtype), dtype=dtype)

    def ints(key):
        return tf.constant(np.asarray(arrays[key], dtype=np.int32), dtype=tf.int32)

    coord, box, davg, dstd = floats("coord"), floats("box"), floats("davg"), floats("dstd")
    atype, natoms, mesh = ints("atype"), ints("natoms"), ints("mesh")
    net_deriv = floats("net_deriv")
    sel = [int(s) for s in meta["sel"]]
    nnei = sum(sel)

    mixed = bool(meta.get("mixed"))
    env_mat_op = ops.prod_env_mat_a_mix if mixed else ops.prod_env_mat_a

    def env_mat():
        return env_mat_op(
            coord, atype, natoms, box, mesh, davg, dstd,
            rcut_a=-1.0, rcut_r=float(meta["rcut"]), rcut_r_smth=float(meta["rcut_smth"]),
            sel_a=sel, sel_r=[0] * len(sel),
        )

    descrpt, descrpt_deriv, rij, nlist, *mix = env_mat()

    def force_op():
        return ops.prod_force_se_a(net_deriv, descrpt_deriv, nlist, natoms,
                                   n_a_sel=nnei, n_r_sel=0)

    def virial_op():
        return ops.prod_virial_se_a(net_deriv, descrpt_deriv, rij, nlist, natoms,
                                    n_a_sel=nnei, n_r_sel=0)

    force = force_op()
    virial, atom_virial = virial_op()
    out = dict(zip(ENV_MAT_OUTPUTS + FORCE_VIRIAL_OUTPUTS,
                   (descrpt, descrpt_deriv, rij, nlist, force, virial, atom_virial)))
    out.update(zip(MIX_OUTPUTS, mix))

    if meta.get("grads"):
        grad_force, grad_virial = floats("grad_force"), floats("grad_virial")
        out["grad_net_force"] = grad_ops.prod_force_se_a_grad(
            grad_force, net_deriv, descrpt_deriv, nlist, natoms, n_a_sel=nnei, n_r_sel=0)
        out["grad_net_virial"] = grad_ops.prod_virial_se_a_grad(
            grad_virial, net_deriv, descrpt_deriv, rij, nlist, natoms, n_a_sel=nnei, n_r_sel=0)

    times = {}
    if timing:
        times["ProdEnvMatAMix" if mixed else "ProdEnvMatA"] = time_callable(env_mat, repeats,
                                                                            warmup)
        times["ProdForceSeA"] = time_callable(force_op, repeats, warmup)
        times["ProdVirialSeA"] = time_callable(virial_op, repeats, warmup)
    return {k: v.numpy() for k, v in out.items()}, times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", help=".npz with the cases")
    parser.add_argument("--output", required=True, help=".npz to write")
    parser.add_argument("--timing", action="store_true", help="time the three forward ops")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--opdefs", action="store_true", help="also dump the five OpDefs")
    parser.add_argument("--threads", type=int, default=0,
                        help="OMP / TF intra- and inter-op threads (0: leave as set)")
    args = parser.parse_args(argv)

    _set_threads(args.threads)
    tf, ops, grad_ops = _load_deepmd()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    results: dict[str, np.ndarray] = {}
    if args.opdefs:
        for name, text in _opdefs().items():
            results[f"opdef/{name}"] = np.array(text)
    if args.input:
        with np.load(args.input, allow_pickle=False) as data:
            metas = json.loads(str(data["meta"]))
            for i, meta in enumerate(metas):
                arrays = {key.split("/", 1)[1]: data[key]
                          for key in data.files if key.startswith(f"c{i}/")}
                try:
                    outputs, times = run_case(tf, ops, grad_ops, meta, arrays,
                                              args.timing, args.repeats, args.warmup)
                except Exception as err:
                    raise RuntimeError(f"case {i} ({meta.get('name')}) failed: {err}") from err
                for key, value in outputs.items():
                    results[f"c{i}/{key}"] = value
                for op_name, seconds in times.items():
                    results[f"c{i}/time/{op_name}"] = np.array(seconds)
    np.savez(args.output, **results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
