"""Times deepmd_tebd's ProdEnvMatA, ProdEnvMatAMix, ProdForceSeA and ProdVirialSeA against
DeePMD-kit 3.2.0's.

    python bench/ops.py [--repeats N] [--skip-large] [--threads N]

Ours run in this process; DeePMD-kit's run in a subprocess of the oracle venv
(tests/reference/deepmd_oracle.py; $DEEPMD_ORACLE_VENV, created on first use). Both sides call the
ops through the same function (tests/reference/deepmd_ops_runner.py: run_case) and are timed by the
same code: eager float64 ops on CPU tensors that already exist, median wall time of --repeats calls
after one warm-up call. Thread settings are the same on both sides: OMP_NUM_THREADS and TF's
intra-/inter-op thread counts are all set to --threads (default: the number of usable cores).

Cases: water (192 atoms, ../shared/data/water/data_3) as one frame and as a batch of all its
frames, and a large box: one water frame replicated --replicas times along each cell vector
(default 5 5 5: 24,000 atoms; 4 4 8 gives 24,576). sel [46, 92], rcut 6.0,
rcut_smth 0.5, davg 0, dstd 1, random net_deriv; ProdEnvMatAMix (DPA-1's environment matrix) on
the same frames with one sel of 120 (DeePMD-kit's se_atten water example; the force and virial
ops then run on its 120 slots). Before the table, the outputs of both libraries are compared (max
|diff| per output), so that the timings are of the same work.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cores import usable_cores

_ROOT = Path(__file__).resolve().parents[1]


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per op (median)")
    parser.add_argument("--skip-large", action="store_true", help="skip the replicated box")
    parser.add_argument("--replicas", type=int, nargs=3, default=[5, 5, 5], metavar="N",
                        help="copies of one water frame along a, b, c for the large box")
    parser.add_argument("--threads", type=int, default=usable_cores(),
                        help="OMP / TF intra- and inter-op threads for both sides")
    parser.add_argument("--water", default=os.environ.get(
                            "DEEPMD_TEBD_WATER",
                            str(Path(__file__).resolve().parents[1].parent / "shared/data/water")),
                        help="directory holding data_3 (DeePMD npy layout)")
    return parser.parse_args(argv)


ARGS = _parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    # Read by OpenMP and TensorFlow when they start: set before importing them.
    os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from tests.reference.deepmd_oracle import OracleError, run_deepmd_ops, split_case  # noqa: E402
from tests.reference.deepmd_ops_runner import run_case  # noqa: E402

RCUT, RCUT_SMTH, SEL, MIXED_SEL = 6.0, 0.5, [46, 92], 120
OPS = ("ProdEnvMatA", "ProdEnvMatAMix", "ProdForceSeA", "ProdVirialSeA")
OUTPUTS = ("descrpt", "descrpt_deriv", "rij", "nlist", "force", "virial", "atom_virial")


def _load_water(root: Path):
    """All frames of data_3, atoms stably sorted by type: coord [nf, 3n], atype [n], box [nf, 9]."""
    system = root / "data_3"
    atype = np.loadtxt(system / "type.raw", dtype=np.int32).reshape(-1)
    order = np.argsort(atype, kind="stable")
    coord = np.concatenate([np.load(s / "coord.npy") for s in sorted(system.glob("set.*"))])
    box = np.concatenate([np.load(s / "box.npy") for s in sorted(system.glob("set.*"))])
    coord = coord.reshape(len(coord), -1, 3)[:, order].reshape(len(coord), -1)
    return coord, atype[order], box


def _replicate(coord, atype, box, reps):
    """One frame replicated reps[0] x reps[1] x reps[2] (shifted by multiples of the cell
    vectors), atoms re-sorted by type; the box is scaled accordingly."""
    h = box.reshape(3, 3)
    xyz = coord.reshape(-1, 3)
    shifts = np.array([[i, j, k] for i in range(reps[0]) for j in range(reps[1])
                       for k in range(reps[2])]) @ h
    big = (xyz[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
    big_type = np.tile(atype, len(shifts))
    order = np.argsort(big_type, kind="stable")
    return big[order].reshape(1, -1), big_type[order], (h * np.array(reps)[:, None]).reshape(1, 9)


def _case(name, coord, atype, box, rng):
    nf, nall = coord.shape[0], atype.size
    nnei = sum(SEL)
    counts = np.bincount(atype, minlength=len(SEL))
    return {
        "name": name, "dtype": "float64",
        "coord": coord, "atype": np.tile(atype, (nf, 1)).astype(np.int32),
        "natoms": np.concatenate([[nall, nall], counts]).astype(np.int32),
        "box": box, "mesh": np.zeros(6, dtype=np.int32),
        "davg": np.zeros((len(SEL), 4 * nnei)), "dstd": np.ones((len(SEL), 4 * nnei)),
        "rcut": RCUT, "rcut_smth": RCUT_SMTH, "sel": SEL,
        "net_deriv": rng.normal(size=(nf, nall * 4 * nnei)),
    }


def _mixed(case, rng):
    """The case for ProdEnvMatAMix: one block of MIXED_SEL slots, davg/dstd per centre type."""
    nf, nall = case["coord"].shape[0], case["atype"].shape[1]
    ntypes = len(case["natoms"]) - 2
    return dict(case, name=case["name"] + " (mix)", sel=[MIXED_SEL], mixed=True,
                davg=np.zeros((ntypes, 4 * MIXED_SEL)), dstd=np.ones((ntypes, 4 * MIXED_SEL)),
                net_deriv=rng.normal(size=(nf, nall * 4 * MIXED_SEL)))


def _agreement(ours, theirs):
    """'output: max|diff|' for every output (nlist: number of differing entries)."""
    parts = []
    for key in OUTPUTS + tuple(k for k in ("ntype", "nmask") if k in ours):
        a, b = ours[key], theirs[key]
        if a.shape != b.shape:
            parts.append(f"{key}: shape {a.shape} vs {b.shape}")
        elif key in ("nlist", "ntype", "nmask"):
            parts.append(f"{key}: {int(np.sum(a != b))} differ")
        else:
            parts.append(f"{key}: {np.max(np.abs(a - b)):.1e}")
    return ", ".join(parts)


def main() -> int:
    args = ARGS or _parse_args()
    import tensorflow as tf

    from deepmd_tebd.op import op_module

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    rng = np.random.default_rng(0)
    coord, atype, box = _load_water(Path(args.water))
    cases = [
        _case("water 192 atoms x 1 frame", coord[:1], atype, box[:1], rng),
        _case(f"water 192 atoms x {len(coord)} frames", coord, atype, box, rng),
    ]
    if not args.skip_large:
        big = _replicate(coord[0], atype, box[0], args.replicas)
        label = "x".join(str(n) for n in args.replicas)
        cases.append(_case(f"water {label}: {big[1].size} atoms", *big, rng))
    cases += [_mixed(case, rng) for case in cases]

    print(f"threads: OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, TF intra-op "
          f"{tf.config.threading.get_intra_op_parallelism_threads()}, inter-op "
          f"{tf.config.threading.get_inter_op_parallelism_threads()} (both sides); "
          f"repeats {args.repeats} (median, after 1 warm-up); float64", flush=True)

    ours = []
    for case in cases:
        meta, arrays = split_case(case)
        ours.append(run_case(tf, op_module, op_module, meta, arrays, timing=True,
                             repeats=args.repeats, warmup=1))
    try:
        theirs = run_deepmd_ops(cases, want_timing=True, repeats=args.repeats, warmup=1,
                                threads=args.threads)
    except OracleError as err:
        print(f"DeePMD-kit oracle unavailable: {err}", file=sys.stderr)
        return 1

    print("\nagreement (ours vs DeePMD-kit, max |diff|):")
    for case, (out, _), theirs_out in zip(cases, ours, theirs.outputs):
        print(f"  {case['name']}: {_agreement(out, theirs_out)}")

    header = f"{'case':<38} {'op':<14} {'ours ms':>10} {'DeePMD ms':>10} {'ours/DeePMD':>12}"
    print("\n" + header + "\n" + "-" * len(header))
    for case, (_, times), their_times in zip(cases, ours, theirs.timings):
        for op in (op for op in OPS if op in times):
            mine, other = times[op] * 1e3, their_times[op] * 1e3
            print(f"{case['name']:<38} {op:<14} {mine:>10.3f} {other:>10.3f} "
                  f"{mine / other:>12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
