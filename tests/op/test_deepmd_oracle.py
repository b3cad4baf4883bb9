"""deepmd_tebd's custom ops against DeePMD-kit 3.2.0's, run in a separate venv.

Both libraries register the same op names, so DeePMD-kit runs in a subprocess
(tests/reference/deepmd_oracle.py); all of its work for this module happens in one subprocess call.
Compared: the OpDefs of the six ops, and every output of ProdEnvMatA -> ProdForceSeA /
ProdVirialSeA (and the two gradient ops) on random periodic, triclinic, small-box, open-boundary
and overflowing systems and on real water frames, in double and float; and likewise of
ProdEnvMatAMix (one sel block, neighbour types and mask) on water, the small triclinic box, an
open cluster and an overflowing box, with atoms in any type order, mesh of every plain and
mixed-type length, and frames with virtual atoms (type -1).

Skipped, with the reason, when the oracle venv cannot be found or created
($DEEPMD_ORACLE_VENV, default /tmp/deepmd_tebd-oracle-venv).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from tests.shared_paths import WATER as WATER_DATA  # noqa: E402
from tests.reference.deepmd_oracle import OracleError, oracle_python, run_deepmd_ops, split_case  # noqa: E402
from tests.reference.deepmd_ops_runner import OP_NAMES, run_case  # noqa: E402

pytestmark = pytest.mark.slow

WATER = WATER_DATA / "data_3"

RCUT, RCUT_SMTH = 6.0, 0.5
SEL = [46, 92]
FLOAT_RTOL = {"float64": 1e-12, "float32": 1e-5}
COMPARED = ("descrpt", "descrpt_deriv", "rij", "nlist", "force", "virial", "atom_virial",
            "grad_net_force", "grad_net_virial")


# ---------------------------------------------------------------------------------------------
# Systems


def _min_image_distances(frac, cell, periodic):
    """All pair distances (minimum image over the 27 neighbouring cells when periodic)."""
    d = frac[:, None, :] - frac[None, :, :]
    if periodic:
        shifts = np.array(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1])).reshape(3, -1).T
        d = d[:, :, None, :] - np.round(d)[:, :, None, :] + shifts[None, None]
        dist = np.linalg.norm(d @ cell, axis=-1).min(axis=-1)
    else:
        dist = np.linalg.norm(d @ cell, axis=-1)
    np.fill_diagonal(dist, np.inf)
    return dist


def _random_frame(rng, cell, natoms, periodic, min_dist=0.9):
    """Cartesian positions [natoms, 3] drawn uniformly in the cell, all pairs >= min_dist apart."""
    frac = np.empty((0, 3))
    while len(frac) < natoms:
        trial = rng.uniform(size=(1, 3))
        candidate = np.vstack([frac, trial])
        if len(frac) == 0 or _min_image_distances(candidate, cell, periodic)[-1].min() >= min_dist:
            frac = candidate
    return frac @ cell


def _random_case(name, seed, cell, counts, sel, periodic=True, nframes=2):
    """A 2-type system with ``counts`` atoms per type (sorted by type), ``nframes`` frames."""
    rng = np.random.default_rng(seed)
    cell = np.asarray(cell, dtype=np.float64)
    nall = sum(counts)
    coord = np.stack([_random_frame(rng, cell, nall, periodic).reshape(-1)
                      for _ in range(nframes)])
    atype = np.repeat(np.arange(len(counts)), counts).astype(np.int32)
    # Open boundaries: the box is not read by the op; pass zeros to make sure of that.
    box = np.tile(cell.reshape(9) if periodic else np.zeros(9), (nframes, 1))
    return _finish_case(name, rng, coord, atype, box, periodic, sel)


def _lattice_case(name, seed, spacing=3.1, n=4, sel=(8, 16), nframes=2):
    """A simple cubic crystal (n^3 sites, random type assignment, sorted by type): every
    neighbour shell is a set of equal distances, and sel cuts through the shells, so the
    tie-breaking order decides which neighbours are kept."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3)
    frames = []
    for _ in range(nframes):
        sites = (grid[rng.permutation(len(grid))] + 0.13) * spacing
        frames.append(sites.reshape(-1))
    coord = np.stack(frames)
    counts = [len(grid) // 3, len(grid) - len(grid) // 3]
    atype = np.repeat([0, 1], counts).astype(np.int32)
    box = np.tile(np.diag([n * spacing] * 3).reshape(9), (nframes, 1))
    return _finish_case(name, rng, coord, atype, box, True, list(sel))


# Frame 69 of data_3 has, for centre 172, two neighbours whose distances differ by 5e-8 A, below
# the resolution of a float32 squared distance: their order is decided by how the neighbour sort
# key is rounded. Frame 0 has no such pair.
WATER_FRAMES = (0, 69)


def _water_case(name, seed, frames=WATER_FRAMES):
    """Frames of a real water system, atoms stably sorted by type."""
    rng = np.random.default_rng(seed)
    atype = np.loadtxt(WATER / "type.raw", dtype=np.int32).reshape(-1)
    order = np.argsort(atype, kind="stable")
    frames = list(frames)
    coord = np.load(WATER / "set.000" / "coord.npy")[frames].reshape(len(frames), -1, 3)
    box = np.load(WATER / "set.000" / "box.npy")[frames]
    coord = coord[:, order].reshape(len(frames), -1)
    return _finish_case(name, rng, coord, atype[order], box, True, SEL)


def _finish_case(name, rng, coord, atype, box, periodic, sel):
    nframes, nall = coord.shape[0], atype.size
    ntypes = len(sel)
    nnei = sum(sel)
    counts = np.bincount(atype, minlength=ntypes)
    return {
        "name": name,
        "coord": coord,
        "atype": np.tile(atype, (nframes, 1)).astype(np.int32),
        "natoms": np.concatenate([[nall, nall], counts]).astype(np.int32),
        "box": box,
        "mesh": np.zeros(6 if periodic else 0, dtype=np.int32),
        "davg": rng.normal(scale=0.2, size=(ntypes, 4 * nnei)),
        "dstd": rng.uniform(0.2, 1.5, size=(ntypes, 4 * nnei)),
        "rcut": RCUT, "rcut_smth": RCUT_SMTH, "sel": list(sel),
        "net_deriv": rng.normal(size=(nframes, nall * 4 * nnei)),
        "grad_force": rng.normal(size=(nframes, 3 * nall)),
        "grad_virial": rng.normal(size=(nframes, 9)),
    }


def _mixed_case(name, base, seed, nnei, mesh_len, virtual=0):
    """`base` for ProdEnvMatAMix: atoms shuffled out of type order, one sel block of `nnei`
    slots, davg/dstd per centre type, mesh of `mesh_len` zeros (0/6 plain, 1/7 the mixed-type
    forms); `virtual` atoms of each frame made virtual (type -1) at random."""
    rng = np.random.default_rng(seed)
    nframes, nall = base["atype"].shape
    ntypes = len(base["natoms"]) - 2
    order = rng.permutation(nall)
    coord = base["coord"].reshape(nframes, nall, 3)[:, order].reshape(nframes, -1)
    atype = base["atype"][:, order].copy()
    for f in range(nframes):
        atype[f, rng.choice(nall, size=virtual, replace=False)] = -1
    return dict(base, name=name, coord=coord, atype=atype.astype(np.int32), sel=[nnei],
                mixed=True, mesh=np.zeros(mesh_len, dtype=np.int32),
                davg=rng.normal(scale=0.2, size=(ntypes, 4 * nnei)),
                dstd=rng.uniform(0.2, 1.5, size=(ntypes, 4 * nnei)),
                net_deriv=rng.normal(size=(nframes, nall * 4 * nnei)))


def _as_dtype(case, dtype):
    out = dict(case, name=f"{case['name']}-{dtype}", dtype=dtype)
    for key in ("coord", "box", "davg", "dstd", "net_deriv", "grad_force", "grad_virial"):
        out[key] = np.asarray(case[key], dtype=dtype)
    return out


def _base_cases():
    # Heights of all periodic cells >= 2*rcut except "small_box", whose shortest height (5.5 A)
    # is below rcut, so that atoms see their own periodic images.
    triclinic = [[12.5, 0.0, 0.0], [2.5, 12.6, 0.0], [-1.8, 2.2, 12.8]]
    small = [[9.0, 0.0, 0.0], [1.0, 5.5, 0.0], [0.5, -0.8, 10.0]]
    return [
        _random_case("orthorhombic", 11, np.diag([13.0, 12.5, 14.0]), [34, 66], SEL),
        _random_case("triclinic", 12, triclinic, [30, 60], SEL),
        _random_case("small_box", 13, small, [14, 26], SEL),
        _random_case("open", 14, np.diag([10.0, 10.0, 10.0]), [20, 40], SEL, periodic=False),
        _random_case("overflow", 15, np.diag([12.5, 12.5, 12.5]), [34, 66], [8, 16]),
        _lattice_case("lattice", 17),
        _water_case("water", 16),
    ]


def _virtual_case(name, base, seed, virtual):
    """`base` with `virtual` atoms of each frame made virtual (type -1): no neighbours of
    anyone, zero rows as centres (their neighbours listed without a box)."""
    rng = np.random.default_rng(seed)
    atype = base["atype"].copy()
    for f in range(atype.shape[0]):
        atype[f, rng.choice(atype.shape[1], size=virtual, replace=False)] = -1
    return dict(base, name=name, atype=atype)


def _mixed_cases(base):
    """ProdEnvMatA's cases with virtual atoms, and ProdEnvMatAMix's, made from its cases."""
    by_name = {c["name"]: c for c in base}
    return [
        _virtual_case("open_virtual", by_name["open"], 28, 3),
        _virtual_case("orthorhombic_virtual", by_name["orthorhombic"], 29, 3),
        _mixed_case("mix_water", by_name["water"], 21, 140, 7),
        _mixed_case("mix_water_mesh6", by_name["water"], 22, 140, 6),
        _mixed_case("mix_small_box_virtual", by_name["small_box"], 23, 120, 7, virtual=3),
        _mixed_case("mix_open", by_name["open"], 24, 60, 1, virtual=2),
        _mixed_case("mix_open_mesh0", by_name["open"], 25, 60, 0),
        _mixed_case("mix_overflow", by_name["overflow"], 26, 20, 7),
        _mixed_case("mix_lattice", by_name["lattice"], 27, 20, 7),
    ]


_BASE = _base_cases()
CASES = [_as_dtype(c, dtype) for c in _BASE + _mixed_cases(_BASE)
         for dtype in ("float64", "float32")]
CASE_NAMES = [c["name"] for c in CASES]


# ---------------------------------------------------------------------------------------------
# Both sides


@pytest.fixture(scope="module")
def deepmd():
    """DeePMD-kit's OpDefs and outputs for all cases, from one subprocess."""
    python, reason = oracle_python()
    if python is None:
        pytest.skip(reason if "could not be created" in reason
                    else f"DeePMD-kit oracle unavailable: {reason}")
    try:
        run = run_deepmd_ops(CASES, want_opdefs=True)
    except OracleError as err:
        pytest.fail(f"DeePMD-kit oracle failed: {err}")
    return run


@pytest.fixture(scope="module")
def ours():
    from deepmd_tebd.op import op_module

    import tensorflow as tf

    results = {}
    for case in CASES:
        meta, arrays = split_case(case)
        results[case["name"]] = run_case(tf, op_module, op_module, meta, arrays)[0]
    return results


def test_op_signatures_match_deepmd(deepmd):
    from google.protobuf import text_format
    from tensorflow.core.framework import op_def_pb2
    from tensorflow.python.framework import op_def_registry

    import deepmd_tebd.op  # noqa: F401  (registers our ops)

    def essentials(op_def):
        """Name, inputs, outputs and attributes of an OpDef, without documentation."""
        def args(arg_list):
            return [(a.name, a.type, a.type_attr, a.number_attr, a.type_list_attr, a.is_ref)
                    for a in arg_list]

        attrs = [(a.name, a.type, a.default_value.SerializeToString(deterministic=True),
                  a.allowed_values.SerializeToString(deterministic=True),
                  a.has_minimum, a.minimum) for a in op_def.attr]
        return {"name": op_def.name, "input_arg": args(op_def.input_arg),
                "output_arg": args(op_def.output_arg), "attr": attrs,
                "is_stateful": op_def.is_stateful}

    mismatches = []
    for name in OP_NAMES:
        theirs = text_format.Parse(deepmd.opdefs[name], op_def_pb2.OpDef())
        mine = op_def_registry.get(name)
        assert mine is not None, f"deepmd_tebd registers no op {name}"
        a, b = essentials(mine), essentials(theirs)
        for field in a:
            if a[field] != b[field]:
                mismatches.append(f"{name}.{field}:\n  ours:    {a[field]}\n  DeePMD:  {b[field]}")
    assert not mismatches, "OpDefs differ:\n" + "\n".join(mismatches)


def _describe(diff_mask, ours, theirs, limit=5):
    idx = np.argwhere(diff_mask)[:limit]
    return "; ".join(f"{tuple(int(v) for v in i)}: ours {ours[tuple(i)]!r} DeePMD "
                     f"{theirs[tuple(i)]!r}" for i in idx)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_outputs_match_deepmd(name, deepmd, ours):
    case = CASES[CASE_NAMES.index(name)]
    theirs = deepmd.outputs[CASE_NAMES.index(name)]
    mine = ours[name]
    rtol = FLOAT_RTOL[case["dtype"]]
    failures = []
    for key in COMPARED + (("ntype", "nmask") if case.get("mixed") else ()):
        a, b = mine[key], theirs[key]
        if a.shape != b.shape or a.dtype != b.dtype:
            failures.append(f"{key}: ours {a.dtype}{a.shape}, DeePMD {b.dtype}{b.shape}")
            continue
        if key in ("nlist", "ntype", "nmask"):
            bad = a != b
            if bad.any():
                failures.append(f"{key}: {int(bad.sum())} of {a.size} entries differ, e.g. "
                                + _describe(bad, a, b))
            continue
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        tol = rtol * max(scale, np.finfo(b.dtype).tiny)
        err = np.abs(a.astype(np.float64) - b.astype(np.float64))
        if err.size and err.max() > tol:
            failures.append(f"{key}: max |diff| {err.max():.3e} > {tol:.3e} (rtol {rtol} x max "
                            f"|DeePMD| {scale:.3e}), {int((err > tol).sum())} entries, e.g. "
                            + _describe(err > tol, a, b))
    assert not failures, f"{name} differs from DeePMD-kit:\n" + "\n".join(failures)
