#!/usr/bin/env python3
"""Checks and timings of the deepmd_tebd kernel library through its C API (numpy + ctypes only).

    make -C op cuda && python3 op/tests/harness.py      # GPU == CPU checks + 1M-atom timings
    make -C op && python3 op/tests/harness.py --cpu-only  # CPU self-consistency checks

The GPU entry points are the kernel functions the TensorFlow GPU kernels call: the harness runs
them on a non-blocking stream of its own, with device memory from an arena as their allocation
callback, while a kernel holds the legacy default stream (cuda_runtime.py).
Prints one line per check and exits non-zero when any check fails. See op/tests/README.md.
"""
import argparse
import ctypes
import os
import sys
import time

import numpy as np

from cuda_runtime import Cuda, LegacyStreamHold, Scope

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.normpath(os.path.join(HERE, "..", "build"))
CPU_LIB = os.path.join(BUILD, "libdeepmd_tebd_kernels.so")
CUDA_LIB = os.path.join(BUILD, "libdeepmd_tebd_kernels_cuda.so")

RCUT = 6.0
RCUT_SMTH = 0.5
SEL = [46, 92]
NTYPES = 2

# GPU vs CPU: max|a - b| <= tol * max(1, max|b|).
TOL_GPU = {
    np.float64: {"env": 1e-12, "sum": 1e-12},
    np.float32: {"env": 1e-5, "sum": 1e-4},  # "sum": results accumulated in a different order
}


# ----------------------------------------------------------------------------------------------
# C API


def _p(a):
    return None if a is None else a.ctypes.data_as(ctypes.c_void_p)


class Kernels:
    """The C API of one build of the kernel library."""

    def __init__(self, path):
        self.path = path
        self.lib = ctypes.CDLL(path)
        self.lib.dtk_last_error.restype = ctypes.c_char_p
        self.lib.dtk_last_error.argtypes = []
        self.lib.dtk_has_cuda.restype = ctypes.c_int
        self.has_cuda = bool(self.lib.dtk_has_cuda())
        vp, i, f = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
        fp = ctypes.POINTER(ctypes.c_float)
        sigs = {
            "prod_env_mat_a_cpu": [vp] * 6 + [i, i] + [vp] * 3 + [i, vp, f, f],
            "prod_env_mat_a_mix_cpu": [vp] * 8 + [i, i] + [vp] * 3 + [i, i, f, f],
            "prod_force_a_cpu": [vp] * 4 + [i, i, i],
            "prod_virial_a_cpu": [vp] * 6 + [i, i, i],
            "prod_force_grad_a_cpu": [vp] * 4 + [i, i, i],
            "prod_virial_grad_a_cpu": [vp] * 5 + [i, i],
            # CUDA build only (c_api_gpu.cu): context, device pointers, nframes
            "prod_env_mat_a_gpu": [vp] * 7 + [i, i, i] + [vp] * 3 + [i, vp, f, f],
            "prod_env_mat_a_mix_gpu": [vp] * 9 + [i, i, i] + [vp] * 3 + [i, i, f, f],
            "prod_force_a_gpu": [vp, i] + [vp] * 4 + [i, i, i],
            "prod_virial_a_gpu": [vp, i] + [vp] * 6 + [i, i, i],
            "prod_force_grad_a_gpu": [vp, i] + [vp] * 4 + [i, i, i],
            "prod_virial_grad_a_gpu": [vp, i] + [vp] * 5 + [i, i],
        }
        self.fn = {}
        for name, args in sigs.items():
            for sfx in ("d", "f"):
                full = "dtk_%s_%s" % (name, sfx)
                if hasattr(self.lib, full):
                    fn = getattr(self.lib, full)
                    fn.argtypes = args
                    fn.restype = ctypes.c_int
                    self.fn[full] = fn
        self.has_grads = "dtk_prod_force_grad_a_cpu_d" in self.fn
        self.cuda = None  # Cuda (cuda_runtime.py), attached for the GPU checks

    def _call(self, name, dtype, device, *args):
        """CPU: the call on host arrays, its wall time. GPU: one frame through gpu_call."""
        if device == "gpu":
            return self.gpu_call(name, dtype, 1, *args)
        full = "dtk_%s_cpu_%s" % (name, "d" if dtype == np.float64 else "f")
        t0 = time.perf_counter()
        rc = self.fn[full](*args)
        wall = (time.perf_counter() - t0) * 1e3
        if rc != 0:
            raise KernelError("%s: %s" % (full, self.lib.dtk_last_error().decode()))
        return wall

    def gpu_call(self, name, dtype, nframes, *args):
        """Runs dtk_NAME_gpu on the harness's stream: Out(a) arguments are device outputs copied
        into the host array a afterwards, Host(a) host pointers, other arrays uploaded first.
        Returns the device time of the call (CUDA events on the stream, copies excluded)."""
        cuda = self.cuda
        full = "dtk_%s_gpu_%s" % (name, "d" if dtype == np.float64 else "f")
        # the env mats take nframes after their pointers (6, or 8 with the mixed-type outputs)
        env = {"prod_env_mat_a": 6, "prod_env_mat_a_mix": 8}.get(name)
        with Scope(cuda):
            conv, outs = [], []
            for a in args:
                if isinstance(a, Out):
                    d = cuda.alloc(a.array.nbytes)
                    outs.append((a.array, d))
                    conv.append(d)
                elif isinstance(a, Host):
                    conv.append(_p(a.array))
                elif isinstance(a, np.ndarray):
                    conv.append(cuda.upload(a))
                else:
                    conv.append(a)
            if env:
                conv = conv[:env] + [nframes] + conv[env:]
            else:
                conv = [nframes] + conv
            rc = []
            ms = cuda.timed(lambda: rc.append(self.fn[full](ctypes.addressof(cuda.context), *conv)))
            if rc[0] != 0:
                raise KernelError("%s: %s" % (full, self.lib.dtk_last_error().decode()))
            for host, d in outs:
                cuda.download(host, d)
        return ms

    def env_mat(self, device, coord, types, box, davg, dstd, sel, rcut=RCUT, rcut_smth=RCUT_SMTH,
                out=None):
        dtype = coord.dtype.type
        nloc = nall = len(types)
        nnei = int(sum(sel))
        if out is None:
            out = {
                "em": np.empty((nloc, nnei * 4), dtype),
                "em_deriv": np.empty((nloc, nnei * 12), dtype),
                "rij": np.empty((nloc, nnei * 3), dtype),
                "nlist": np.empty((nloc, nnei), np.int32),
            }
        coord = np.ascontiguousarray(coord, dtype)
        types = np.ascontiguousarray(types, np.int32)
        box = None if box is None else np.ascontiguousarray(box, dtype).reshape(9)
        davg = np.ascontiguousarray(davg, dtype)
        dstd = np.ascontiguousarray(dstd, dtype)
        sel_a = np.ascontiguousarray(sel, np.int32)
        if device == "gpu":
            out["ms"] = self._call(
                "prod_env_mat_a", dtype, device, Out(out["em"]), Out(out["em_deriv"]),
                Out(out["rij"]), Out(out["nlist"]), coord, types, nloc, nall, Host(box), davg,
                dstd, len(sel), Host(sel_a), rcut, rcut_smth)
            return out
        out["ms"] = self._call(
            "prod_env_mat_a", dtype, device, _p(out["em"]), _p(out["em_deriv"]), _p(out["rij"]),
            _p(out["nlist"]), _p(coord), _p(types), nloc, nall, _p(box), _p(davg), _p(dstd),
            len(sel), _p(sel_a), rcut, rcut_smth)
        return out

    def env_mat_mix(self, device, coord, types, box, davg, dstd, nnei, ntypes=None,
                    rcut=RCUT, rcut_smth=RCUT_SMTH):
        """ProdEnvMatAMix of one frame: env_mat's outputs with one block of nnei slots, and
        ntype, nmask."""
        dtype = coord.dtype.type
        n = len(types)
        ntypes = NTYPES if ntypes is None else ntypes
        out = {"em": np.empty((n, nnei * 4), dtype), "em_deriv": np.empty((n, nnei * 12), dtype),
               "rij": np.empty((n, nnei * 3), dtype), "nlist": np.empty((n, nnei), np.int32),
               "ntype": np.empty((n, nnei), np.int32), "nmask": np.empty((n, nnei), np.uint8)}
        coord = np.ascontiguousarray(coord, dtype)
        types = np.ascontiguousarray(types, np.int32)
        box = None if box is None else np.ascontiguousarray(box, dtype).reshape(9)
        davg, dstd = np.ascontiguousarray(davg, dtype), np.ascontiguousarray(dstd, dtype)
        keys = ("em", "em_deriv", "rij", "nlist", "ntype", "nmask")
        if device == "gpu":
            out["ms"] = self._call("prod_env_mat_a_mix", dtype, device,
                                   *[Out(out[key]) for key in keys], coord, types, n, n,
                                   Host(box), davg, dstd, ntypes, nnei, rcut, rcut_smth)
        else:
            out["ms"] = self._call("prod_env_mat_a_mix", dtype, device,
                                   *[_p(out[key]) for key in keys], _p(coord), _p(types), n, n,
                                   _p(box), _p(davg), _p(dstd), ntypes, nnei, rcut, rcut_smth)
        return out

    @staticmethod
    def _ptrs(device, outputs, inputs):
        """Pointer arguments: host pointers on the CPU; Out() outputs and arrays on the GPU."""
        if device == "gpu":
            return [Out(o) for o in outputs] + [np.ascontiguousarray(a) for a in inputs]
        return [_p(a) for a in outputs + inputs]

    def force(self, device, net_deriv, in_deriv, nlist, nall):
        dtype = net_deriv.dtype.type
        nloc, nnei = nlist.shape
        f = np.empty((nall, 3), dtype)
        args = self._ptrs(device, [f], [net_deriv, in_deriv, nlist])
        ms = self._call("prod_force_a", dtype, device, *args, nloc, nall, nnei)
        return f, ms

    def virial(self, device, net_deriv, in_deriv, rij, nlist, nall):
        dtype = net_deriv.dtype.type
        nloc, nnei = nlist.shape
        v = np.empty(9, dtype)
        av = np.empty((nall, 9), dtype)
        args = self._ptrs(device, [v, av], [net_deriv, in_deriv, rij, nlist])
        ms = self._call("prod_virial_a", dtype, device, *args, nloc, nall, nnei)
        return v, av, ms

    def force_grad(self, device, grad, in_deriv, nlist):
        dtype = grad.dtype.type
        nloc, nnei = nlist.shape
        g = np.empty((nloc, nnei * 4), dtype)
        args = self._ptrs(device, [g], [grad, in_deriv, nlist])
        ms = self._call("prod_force_grad_a", dtype, device, *args, nloc, grad.shape[0], nnei)
        return g, ms

    def virial_grad(self, device, grad, in_deriv, rij, nlist):
        dtype = grad.dtype.type
        nloc, nnei = nlist.shape
        g = np.empty((nloc, nnei * 4), dtype)
        args = self._ptrs(device, [g], [grad, in_deriv, rij, nlist])
        ms = self._call("prod_virial_grad_a", dtype, device, *args, nloc, nnei)
        return g, ms


class KernelError(RuntimeError):
    pass


class Out:
    """A device output of gpu_call, copied into `array` after the call."""

    def __init__(self, array):
        self.array = array


class Host:
    """A host-pointer argument of gpu_call (box, sel)."""

    def __init__(self, array):
        self.array = array


# ----------------------------------------------------------------------------------------------
# Reporting


class Report:
    def __init__(self):
        self.failed = []
        self.count = 0

    def check(self, name, ok, detail=""):
        self.count += 1
        print("%s  %s%s" % ("PASS" if ok else "FAIL", name, ("  " + detail) if detail else ""),
              flush=True)
        if not ok:
            self.failed.append(name)
        return ok

    def close(self, name, a, b, tol):
        """max|a - b| <= tol * max(1, max|b|)."""
        a = np.asarray(a, np.float64)
        b = np.asarray(b, np.float64)
        if a.shape != b.shape:
            return self.check(name, False, "shape %s != %s" % (a.shape, b.shape))
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        scale = max(1.0, float(np.max(np.abs(b))) if b.size else 0.0)
        ok = bool(np.all(np.isfinite(a))) and diff <= tol * scale
        return self.check(name, ok, "max|diff|=%.3e scale=%.3e tol=%.0e" % (diff, scale, tol))

    def equal(self, name, a, b):
        a = np.asarray(a)
        b = np.asarray(b)
        if a.shape != b.shape:
            return self.check(name, False, "shape %s != %s" % (a.shape, b.shape))
        bad = int(np.count_nonzero(a != b))
        return self.check(name, bad == 0, "%d of %d entries differ" % (bad, a.size))


# ----------------------------------------------------------------------------------------------
# Test systems


def frac_to_cart(frac, box):
    return frac @ box


def random_system(rng, box, density=0.08, natoms=None, min_dist=0.9, n_virtual=0,
                  unwrap=True, cube=None):
    """Random atoms with a minimum separation, types 0/1 in proportion 1:2 (water-like), a few
    atoms of type -1 on request. Periodic: box [3,3]; positions are moved by random lattice
    vectors so that the kernels must wrap them. Open: box None, atoms in a cube of side `cube`."""
    if box is not None:
        box = np.asarray(box, np.float64)
        vol = abs(np.linalg.det(box))
        inv = np.linalg.inv(box)
    else:
        vol = cube ** 3
    if natoms is None:
        natoms = max(4, int(round(density * vol)))
    pos = np.empty((0, 3))
    tries = 0
    while len(pos) < natoms:
        tries += 1
        if tries > 200 * natoms:
            raise RuntimeError("could not place %d atoms" % natoms)
        if box is not None:
            x = rng.random(3) @ box
            if len(pos):
                d = pos - x
                d -= np.round(d @ inv) @ box  # near-minimum image, enough for a rejection test
        else:
            x = rng.random(3) * cube
            d = pos - x
        if len(pos) and np.min(np.einsum("ij,ij->i", d, d)) < min_dist ** 2:
            continue
        pos = np.vstack([pos, x])
    types = rng.choice([0, 1], size=natoms, p=[1 / 3, 2 / 3]).astype(np.int32)
    if n_virtual:
        types[rng.choice(natoms, size=n_virtual, replace=False)] = -1
    if box is not None and unwrap:
        pos = pos + rng.integers(-2, 3, size=(natoms, 3)) @ box
    return pos, types


def random_stats(rng, sel, ntypes=NTYPES):
    nnei = sum(sel)
    davg = rng.uniform(-0.1, 0.1, size=(ntypes, nnei * 4))
    dstd = rng.uniform(0.5, 1.5, size=(ntypes, nnei * 4))
    return davg, dstd


def blockwise_stats(rng, sel, ntypes=NTYPES):
    """davg/dstd constant inside each (type, neighbour-type block, component): the energy
    sum(w * em) with blockwise w is then invariant under reordering of the slots of a block."""
    nnei = sum(sel)
    davg = np.empty((ntypes, nnei, 4))
    dstd = np.empty((ntypes, nnei, 4))
    for t in range(ntypes):
        s0 = 0
        for s in sel:
            davg[t, s0:s0 + s] = rng.uniform(-0.1, 0.1, size=4)
            dstd[t, s0:s0 + s] = rng.uniform(0.5, 1.5, size=4)
            s0 += s
    return davg.reshape(ntypes, -1), dstd.reshape(ntypes, -1)


def test_systems(rng):
    """name -> (coord, types, box or None, sel)."""
    r = RCUT
    systems = {}
    box = np.diag([15.0, 16.0, 17.0])
    c, t = random_system(rng, box, n_virtual=3)
    systems["periodic orthorhombic (3 virtual atoms)"] = (c, t, box, SEL)
    box = np.array([[14.0, 0.0, 0.0], [4.0, 15.0, 0.0], [-3.0, 5.0, 16.0]])
    c, t = random_system(rng, box)
    systems["periodic triclinic"] = (c, t, box, SEL)
    box = np.array([[1.3 * r, 0.0, 0.0], [0.9, 1.3 * r, 0.0], [-0.7, 0.5, 1.3 * r]])
    c, t = random_system(rng, box)
    systems["periodic box 1.3*rcut"] = (c, t, box, SEL)
    box = np.array([[0.8 * r, 0.0, 0.0], [0.5, 0.85 * r, 0.0], [-0.4, 0.3, 0.9 * r]])
    c, t = random_system(rng, box)
    systems["periodic box 0.8*rcut"] = (c, t, box, SEL)
    c, t = random_system(rng, None, cube=16.0, n_virtual=2)
    systems["open boundaries"] = (c, t, None, SEL)
    box = np.diag([15.0, 15.0, 15.0])
    c, t = random_system(rng, box, density=0.1)
    systems["periodic overflow sel [10, 20]"] = (c, t, box, [10, 20])
    c, t = random_system(rng, None, cube=14.0, density=0.1)
    systems["open overflow sel [10, 20]"] = (c, t, None, [10, 20])
    return systems


def water_box(rng, nside, reps):
    """Liquid-water-like box: nside^3 molecules on a jittered cubic lattice at 1 g/cm^3
    (29.91 A^3 per molecule), random orientations, O-H 0.96 A, H-O-H 104.52 deg; the cell is
    replicated reps = (na, nb, nc) times. Types: O 0, H 1."""
    a = 29.91 ** (1.0 / 3.0)
    length = nside * a
    g = np.arange(nside)
    grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    m = len(grid)
    oxy = (grid + 0.5) * a + rng.uniform(-0.3, 0.3, size=(m, 3))
    q = rng.standard_normal((m, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    rot = np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], 1)
    half = np.deg2rad(104.52) / 2
    local = 0.96 * np.array([[np.sin(half), np.cos(half), 0.0], [-np.sin(half), np.cos(half), 0.0]])
    hyd = oxy[:, None, :] + np.einsum("mij,hj->mhi", rot, local)
    cell = np.concatenate([oxy[:, None, :], hyd], axis=1).reshape(-1, 3)
    cell_types = np.tile(np.array([0, 1, 1], np.int32), m)
    shifts = np.stack(np.meshgrid(*[np.arange(n) for n in reps], indexing="ij"), -1).reshape(-1, 3)
    coord = (cell[None, :, :] + shifts[:, None, :] * length).reshape(-1, 3)
    types = np.tile(cell_types, len(shifts))
    box = np.diag(np.array(reps, np.float64) * length)
    return coord, types, box


# ----------------------------------------------------------------------------------------------
# Independent references (numpy)


def env_slot_numpy(rr, rmin, rmax):
    """The se_e2_a slot (switch.h) for rows rr [m,3] in rr.dtype: row [m,4], deriv [m,12]."""
    dt = rr.dtype.type
    x, y, z = rr[:, 0], rr[:, 1], rr[:, 2]
    r2 = x * x + y * y + z * z
    inr = dt(1) / np.sqrt(r2)
    r = r2 * inr
    inr2 = inr * inr
    inr4 = inr2 * inr2
    inr3 = inr4 * r
    du = dt(1) / (rmax - rmin)
    u = (r - rmin) * du
    u2 = u * u
    poly = -dt(6) * u2 + dt(15) * u - dt(10)
    mid = (r >= rmin) & (r < rmax)
    sw = np.where(r < rmin, dt(1), np.where(mid, u2 * u * poly + dt(1), dt(0))).astype(dt)
    dsw = np.where(mid, (dt(3) * u2 * poly + u2 * u * (-dt(12) * u + dt(15))) * du, dt(0)).astype(dt)
    v = [dt(1) / r, x / r2, y / r2, z / r2]
    row = np.stack([vk * sw for vk in v], 1)
    deriv = np.empty((len(rr), 12), rr.dtype)
    for d in range(3):
        deriv[:, d] = rr[:, d] * inr3 * sw - v[0] * dsw * rr[:, d] * inr
    for c in range(3):
        for d in range(3):
            diag = inr2 if c == d else dt(0)
            deriv[:, 3 + 3 * c + d] = (dt(2) * rr[:, c] * rr[:, d] * inr4 - diag) * sw - \
                v[1 + c] * dsw * rr[:, d] * inr
    return row, deriv


def reference_env_mat_open(coord, types, davg, dstd, sel, rcut=RCUT, rcut_smth=RCUT_SMTH,
                           mixed=False):
    """Brute-force env mat for open boundaries in coord.dtype, with the kernels' neighbour rule:
    j is a neighbour of i when |r_j - r_i|^2 < rcut^2 (in coord.dtype) and the squared distance
    d2 computed in float32 from float32 coordinates is <= rcut^2 (float32); per type, the
    sel[t] neighbours first in the order (d2, index) are kept. A virtual centre (type < 0) gets
    its neighbours and rij, and zero em and em_deriv rows (as DeePMD-kit without a box). mixed:
    one block of sel[0] slots for every type (ProdEnvMatAMix), and ntype, nmask too."""
    dt = coord.dtype.type
    n = len(types)
    nnei = sum(sel)
    rc = dt(np.float32(rcut))
    rmin = dt(np.float32(rcut_smth))
    rc2 = np.float32(rcut) * np.float32(rcut)
    em = np.zeros((n, nnei * 4), coord.dtype)
    em_deriv = np.zeros((n, nnei * 12), coord.dtype)
    rij = np.zeros((n, nnei * 3), coord.dtype)
    nlist = -np.ones((n, nnei), np.int32)
    starts = np.concatenate([[0], np.cumsum(sel)])
    idx_all = np.arange(n)
    c32 = coord.astype(np.float32)
    for i in range(n):
        d = coord - coord[i]
        d2 = d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] + d[:, 2] * d[:, 2]
        f = c32 - c32[i]
        d2f = f[:, 0] * f[:, 0] + f[:, 1] * f[:, 1] + f[:, 2] * f[:, 2]
        ok = (idx_all != i) & (types >= 0) & (d2 < dt(rc2)) & (d2f <= rc2)
        cand = idx_all[ok]
        block = np.zeros_like(types) if mixed else types  # the sort's (and the blocks') type
        cand = cand[np.lexsort((cand, d2f[cand], block[cand]))]
        slots = -np.ones(nnei, np.int64)
        for t in range(len(sel)):
            mine = cand[block[cand] == t][:sel[t]]
            slots[starts[t]:starts[t] + len(mine)] = mine
        filled = slots >= 0
        rr = np.zeros((nnei, 3), coord.dtype)
        rr[filled] = coord[slots[filled]] - coord[i]
        row = np.zeros((nnei, 4), coord.dtype)
        der = np.zeros((nnei, 12), coord.dtype)
        if filled.any():
            row[filled], der[filled] = env_slot_numpy(rr[filled], rmin, rc)
        rij[i] = rr.reshape(-1)
        nlist[i] = slots
        if types[i] < 0:
            continue
        avg = davg[types[i]].astype(coord.dtype)
        std = dstd[types[i]].astype(coord.dtype)
        em[i] = (row.reshape(-1) - avg) / std
        em_deriv[i] = der.reshape(-1) / np.repeat(std, 3)
    out = {"em": em, "em_deriv": em_deriv, "rij": rij, "nlist": nlist}
    if mixed:
        out["nmask"] = (nlist >= 0).astype(np.uint8)
        out["ntype"] = np.where(nlist >= 0, types[np.maximum(nlist, 0)], davg.shape[0]).astype(
            np.int32)
    return out


def wrap_numpy(coord, box):
    f = coord @ np.linalg.inv(box)
    f -= np.floor(f)
    return f @ box


def supercell(coord, types, box, rcut=RCUT):
    """Explicit open-boundary replica of a periodic frame, with the wrapped cell first and enough
    copies in every direction to hold all atoms within rcut of the central cell."""
    w = wrap_numpy(coord, box)
    vol = abs(np.linalg.det(box))
    faces = [vol / np.linalg.norm(np.cross(box[(k + 1) % 3], box[(k + 2) % 3])) for k in range(3)]
    m = [int(np.ceil(rcut / f)) for f in faces]
    shifts = [(0, 0, 0)] + [(a, b, c) for a in range(-m[0], m[0] + 1)
                            for b in range(-m[1], m[1] + 1) for c in range(-m[2], m[2] + 1)
                            if (a, b, c) != (0, 0, 0)]
    sc = np.concatenate([w + np.array(s, np.float64) @ box for s in shifts])
    st = np.tile(types, len(shifts))
    return sc, st


def canonical_rows(res, sel, nrows):
    """Rows [0, nrows) with the filled slots of each type block reordered by (r, rij) rounded
    to 1e-7, so results that differ only in the order of equidistant (or, in the float32 sort
    key, nearly equidistant) neighbours compare equal."""
    nnei = sum(sel)
    em = res["em"][:nrows].reshape(nrows, nnei, 4).copy()
    ed = res["em_deriv"][:nrows].reshape(nrows, nnei, 12).copy()
    rij = res["rij"][:nrows].reshape(nrows, nnei, 3).copy()
    nl = res["nlist"][:nrows].copy()
    s0 = 0
    for s in sel:
        for i in range(nrows):
            blk = slice(s0, s0 + s)
            filled = np.nonzero(nl[i, blk] >= 0)[0] + s0
            if len(filled) < 2:
                continue
            rr = np.round(rij[i, filled], 7)
            r = np.round(np.linalg.norm(rij[i, filled], axis=1), 7)
            order = filled[np.lexsort((rr[:, 2], rr[:, 1], rr[:, 0], r))]
            em[i, filled] = em[i, order]
            ed[i, filled] = ed[i, order]
            rij[i, filled] = rij[i, order]
            nl[i, filled] = nl[i, order]
        s0 += s
    return em.reshape(nrows, -1), ed.reshape(nrows, -1), rij.reshape(nrows, -1), nl


# ----------------------------------------------------------------------------------------------
# Checks


def check_reference(k, rep, rng, systems):
    """CPU env mat == brute-force numpy reference (open boundaries, with and without overflow)."""
    for name in ("open boundaries", "open overflow sel [10, 20]"):
        coord, types, box, sel = systems[name]
        davg, dstd = random_stats(rng, sel)
        for dtype, tol in ((np.float64, 1e-10), (np.float32, 1e-4)):
            c = coord.astype(dtype)
            ref = reference_env_mat_open(c, types, davg, dstd, sel)
            got = k.env_mat("cpu", c, types, None, davg, dstd, sel)
            tag = "cpu vs numpy reference [%s, %s]" % (name, np.dtype(dtype).name)
            rep.equal(tag + " nlist", got["nlist"], ref["nlist"])
            for key in ("em", "em_deriv", "rij"):
                rep.close(tag + " " + key, got[key], ref[key], tol)


def check_mixed_reference(k, rep, rng, systems):
    """ProdEnvMatAMix on the CPU == the brute-force reference with one block (the open frame
    with 2 virtual atoms, and a dense one that overflows the 30 slots), in both precisions."""
    nnei = 30
    for name in ("open boundaries", "open overflow sel [10, 20]"):
        coord, types, _, _ = systems[name]
        davg, dstd = random_stats(rng, [nnei])
        for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
            c = coord.astype(dtype)
            ref = reference_env_mat_open(c, types, davg, dstd, [nnei], mixed=True)
            got = k.env_mat_mix("cpu", c, types, None, davg, dstd, nnei)
            tag = "cpu mixed vs numpy reference [%s, %s]" % (name, np.dtype(dtype).name)
            for key in ("nlist", "ntype", "nmask"):
                rep.equal(tag + " " + key, got[key], ref[key])
            for key in ("em", "em_deriv", "rij"):
                rep.close(tag + " " + key, got[key], ref[key], tol)


def check_mixed_gpu(k, rep, rng, systems):
    """ProdEnvMatAMix: GPU == CPU (periodic triclinic with virtual atoms, open boundaries)."""
    nnei = 40
    for name in ("periodic orthorhombic (3 virtual atoms)", "periodic triclinic",
                 "open boundaries"):
        coord, types, box, _ = systems[name]
        davg, dstd = random_stats(rng, [nnei])
        cpu = k.env_mat_mix("cpu", coord, types, box, davg, dstd, nnei)
        gpu = k.env_mat_mix("gpu", coord, types, box, davg, dstd, nnei)
        tag = "gpu mixed == cpu [%s, float64]" % name
        for key in ("nlist", "ntype", "nmask"):
            rep.equal(tag + " " + key, gpu[key], cpu[key])
        for key in ("em", "em_deriv", "rij"):
            rep.close(tag + " " + key, gpu[key], cpu[key], 1e-12)


def check_supercell(k, rep, rng, systems):
    """Periodic env mat of a small cell == open-boundary env mat of its explicit supercell, for
    the atoms of the central cell (nlist entries taken modulo nloc)."""
    for name in ("periodic triclinic", "periodic box 1.3*rcut", "periodic box 0.8*rcut",
                 "periodic orthorhombic (3 virtual atoms)"):
        coord, types, box, sel = systems[name]
        nloc = len(types)
        nnei = sum(sel)
        davg = np.zeros((NTYPES, nnei * 4))
        dstd = np.ones((NTYPES, nnei * 4))
        per = k.env_mat("cpu", coord, types, box, davg, dstd, sel)
        sc, st = supercell(coord, types, box)
        opn = k.env_mat("cpu", sc, st, None, davg, dstd, sel)
        opn["nlist"] = np.where(opn["nlist"] >= 0, opn["nlist"] % nloc, -1).astype(np.int32)
        a = canonical_rows(per, sel, nloc)
        b = canonical_rows(opn, sel, nloc)
        tag = "cpu periodic vs open supercell of %d atoms [%s]" % (len(st), name)
        real = types >= 0  # virtual centres: neighbours listed without a box only
        rep.equal(tag + " nlist", a[3][real], b[3][real])
        for key, x, y in zip(("em", "em_deriv", "rij"), a[:3], b[:3]):
            rep.close(tag + " " + key, x[real], y[real], 1e-10)
        if not real.all():
            rep.equal(tag + " virtual centres listed in the supercell only",
                      (a[3][~real] >= 0).sum() == 0 and (b[3][~real] >= 0).sum() > 0, True)


def blockwise_weights(rng, types, sel):
    """w[i, slot, a] = W[type_i, block(slot), a]: dE/d em for E = sum(w * em)."""
    nnei = sum(sel)
    table = rng.uniform(-1.0, 1.0, size=(NTYPES, len(sel), 4))
    block = np.repeat(np.arange(len(sel)), sel)
    w = np.zeros((len(types), nnei, 4))
    ok = types >= 0
    w[ok] = table[types[ok]][:, block, :]
    return w.reshape(len(types), -1)


def check_finite_differences(k, rep, rng, systems):
    """force = -dE/dR and virial = -dE/d(strain) for E = sum(w * em), by central differences
    (double precision, CPU)."""
    h = 1e-5
    for name in ("periodic triclinic", "periodic box 0.8*rcut", "open boundaries"):
        coord, types, box, sel = systems[name]
        nall = len(types)
        davg, dstd = blockwise_stats(rng, sel)
        w = blockwise_weights(rng, types, sel)

        def energy(c, b):
            return float(np.sum(w * k.env_mat("cpu", c, types, b, davg, dstd, sel)["em"]))

        res = k.env_mat("cpu", coord, types, box, davg, dstd, sel)
        # E is smooth only while no type block overflows.
        counts = [(np.sum((res["nlist"][:, s0:s0 + s] >= 0), axis=1)).max()
                  for s0, s in zip(np.concatenate([[0], np.cumsum(sel)[:-1]]), sel)]
        if any(c >= s for c, s in zip(counts, sel)):
            rep.check("finite differences [%s]" % name, False, "a block is full: %s" % counts)
            continue
        force, _ = k.force("cpu", w, res["em_deriv"], res["nlist"], nall)
        virial, atom_virial, _ = k.virial("cpu", w, res["em_deriv"], res["rij"], res["nlist"], nall)
        fd = []
        exact = []
        for i in rng.choice(nall, size=min(6, nall), replace=False):
            for d in range(3):
                cp = coord.copy()
                cm = coord.copy()
                cp[i, d] += h
                cm[i, d] -= h
                fd.append(-(energy(cp, box) - energy(cm, box)) / (2 * h))
                exact.append(force[i, d])
        rep.close("cpu force == -dE/dR by finite differences [%s]" % name, np.array(exact),
                  np.array(fd), 1e-6)
        fdv = np.empty(9)
        for d0 in range(3):
            for d1 in range(3):
                e = np.zeros((3, 3))
                e[d0, d1] = h
                ep = (np.eye(3) + e).T
                em_ = (np.eye(3) - e).T
                bp = None if box is None else box @ ep
                bm = None if box is None else box @ em_
                fdv[3 * d0 + d1] = -(energy(coord @ ep, bp) - energy(coord @ em_, bm)) / (2 * h)
        rep.close("cpu virial == -dE/d(strain) by finite differences [%s]" % name, virial, fdv,
                  1e-6)
        rep.close("cpu virial == sum of atom_virial [%s]" % name, virial,
                  atom_virial.sum(axis=0), 1e-12)


def check_newton(k, rep, rng, systems, device="cpu"):
    """Forces from any net_deriv sum to zero (each slot adds +c to j and -c to i)."""
    for name, (coord, types, box, sel) in systems.items():
        davg, dstd = random_stats(rng, sel)
        res = k.env_mat(device, coord, types, box, davg, dstd, sel)
        net = rng.standard_normal(res["em"].shape)
        f, _ = k.force(device, net, res["em_deriv"], res["nlist"], len(types))
        total = np.abs(f.sum(axis=0)).max()
        scale = np.abs(f).sum()
        rep.check("%s sum of forces == 0 [%s]" % (device, name), total <= 1e-12 * scale,
                  "|sum F|=%.2e, sum|F|=%.2e" % (total, scale))


def check_grad_identity(k, rep, rng, systems, device="cpu"):
    """Force and virial are linear in net_deriv, so for L = sum(grad * F) the gradient kernels
    must satisfy sum(grad_net * net_deriv) == L (and likewise for the virial)."""
    for name, (coord, types, box, sel) in systems.items():
        davg, dstd = random_stats(rng, sel)
        res = k.env_mat("cpu", coord, types, box, davg, dstd, sel)
        nall = len(types)
        net = rng.standard_normal(res["em"].shape)
        f, _ = k.force("cpu", net, res["em_deriv"], res["nlist"], nall)
        v, _, _ = k.virial("cpu", net, res["em_deriv"], res["rij"], res["nlist"], nall)
        grad = rng.standard_normal((nall, 3))
        grad9 = rng.standard_normal(9)
        gf, _ = k.force_grad(device, grad, res["em_deriv"], res["nlist"])
        gv, _ = k.virial_grad(device, grad9, res["em_deriv"], res["rij"], res["nlist"])
        rep.close("%s force grad: sum(grad_net*net) == sum(grad*F) [%s]" % (device, name),
                  np.sum(gf * net), np.sum(grad * f), 1e-11)
        rep.close("%s virial grad: sum(grad_net*net) == sum(grad*V) [%s]" % (device, name),
                  np.sum(gv * net), np.sum(grad9 * v), 1e-11)


def check_errors(k, rep, device):
    """Invalid input gives a non-zero return code and a message, not a crash."""
    coord = np.zeros((4, 3)) + np.arange(4)[:, None]
    types = np.array([0, 1, 0, 1], np.int32)
    davg, dstd = np.zeros((NTYPES, sum(SEL) * 4)), np.ones((NTYPES, sum(SEL) * 4))
    cases = {
        "type >= ntypes": (coord, np.array([0, 1, 2, 0], np.int32), np.eye(3) * 10, "has type 2"),
        "singular box": (coord, types, np.zeros((3, 3)), "singular"),
    }
    for name, (c, t, b, expect) in cases.items():
        try:
            k.env_mat(device, c, t, b, davg, dstd, SEL)
            rep.check("%s rejects %s" % (device, name), False, "no error")
        except KernelError as e:
            rep.check("%s rejects %s" % (device, name), expect in str(e), str(e))


def compare_gpu_cpu(k, rep, rng, name, coord, types, box, sel, dtype, davg=None, dstd=None):
    """GPU == CPU for the env mat, force, virial and (when exported) their gradients."""
    tol = TOL_GPU[dtype]
    tag = "gpu == cpu [%s, %s]" % (name, np.dtype(dtype).name)
    if davg is None:
        davg, dstd = random_stats(rng, sel)
    c = coord.astype(dtype)
    cpu = k.env_mat("cpu", c, types, box, davg, dstd, sel)
    gpu = k.env_mat("gpu", c, types, box, davg, dstd, sel)
    rep.equal(tag + " nlist", gpu["nlist"], cpu["nlist"])
    for key in ("em", "em_deriv", "rij"):
        rep.close(tag + " " + key, gpu[key], cpu[key], tol["env"])
    nall = len(types)
    net = rng.standard_normal(cpu["em"].shape).astype(dtype)
    fc, _ = k.force("cpu", net, cpu["em_deriv"], cpu["nlist"], nall)
    fg, _ = k.force("gpu", net, cpu["em_deriv"], cpu["nlist"], nall)
    rep.close(tag + " force", fg, fc, tol["sum"])
    vc, avc, _ = k.virial("cpu", net, cpu["em_deriv"], cpu["rij"], cpu["nlist"], nall)
    vg, avg_, _ = k.virial("gpu", net, cpu["em_deriv"], cpu["rij"], cpu["nlist"], nall)
    rep.close(tag + " virial", vg, vc, tol["sum"])
    rep.close(tag + " atom_virial", avg_, avc, tol["sum"])
    if k.has_grads:
        grad = rng.standard_normal((nall, 3)).astype(dtype)
        gc, _ = k.force_grad("cpu", grad, cpu["em_deriv"], cpu["nlist"])
        gg, _ = k.force_grad("gpu", grad, cpu["em_deriv"], cpu["nlist"])
        rep.close(tag + " force grad", gg, gc, tol["env"])
        grad9 = rng.standard_normal(9).astype(dtype)
        gc, _ = k.virial_grad("cpu", grad9, cpu["em_deriv"], cpu["rij"], cpu["nlist"])
        gg, _ = k.virial_grad("gpu", grad9, cpu["em_deriv"], cpu["rij"], cpu["nlist"])
        rep.close(tag + " virial grad", gg, gc, tol["env"])


def check_batched_frames(k, rep, rng, systems, frames=None):
    """Several frames in one GPU call (as the TF GPU kernels make it) == the CPU frame by frame:
    three periodic frames (the triclinic cell, jittered, and strained) and two open frames, or
    the given {name: (coords [nf, n, 3], types, boxes [nf, 3, 3])}."""
    cases = []
    if frames is None:
        coord, types, box, sel = systems["periodic triclinic"]
        strain = np.eye(3) + rng.uniform(-0.02, 0.02, size=(3, 3))
        cases.append(("periodic triclinic", types, sel,
                      [coord, coord + rng.uniform(-0.05, 0.05, coord.shape), coord @ strain],
                      [box, box, box @ strain]))
        coord, types, _, sel = systems["open boundaries"]
        cases.append(("open boundaries", types, sel,
                      [coord, coord + rng.uniform(-0.05, 0.05, coord.shape)], [None, None]))
    else:
        cases = [(name, t, SEL, list(c), list(b)) for name, (c, t, b) in frames.items()]
    for name, types, sel, coords, boxes in cases:
        nf, n, nnei = len(coords), len(types), sum(sel)
        davg, dstd = random_stats(rng, sel)
        tag = "gpu %d frames in one call == cpu per frame [%s, float64]" % (nf, name)
        cpu = [k.env_mat("cpu", c, types, b, davg, dstd, sel) for c, b in zip(coords, boxes)]
        out = {"em": np.empty((nf, n, nnei * 4)), "em_deriv": np.empty((nf, n, nnei * 12)),
               "rij": np.empty((nf, n, nnei * 3)), "nlist": np.empty((nf, n, nnei), np.int32)}
        box = None if boxes[0] is None else np.stack(boxes).reshape(nf * 9)
        k.gpu_call("prod_env_mat_a", np.float64, nf, Out(out["em"]), Out(out["em_deriv"]),
                   Out(out["rij"]), Out(out["nlist"]), np.stack(coords), np.tile(types, nf),
                   n, n, Host(box), davg, dstd, len(sel), Host(np.array(sel, np.int32)),
                   RCUT, RCUT_SMTH)
        rep.equal(tag + " nlist", out["nlist"], np.stack([c["nlist"] for c in cpu]))
        for key in ("em", "em_deriv", "rij"):
            rep.close(tag + " " + key, out[key], np.stack([c[key] for c in cpu]), 1e-12)
        net = rng.standard_normal((nf, n, nnei * 4))
        ed = np.stack([c["em_deriv"] for c in cpu])
        rij = np.stack([c["rij"] for c in cpu])
        nl = np.stack([c["nlist"] for c in cpu])
        f, v, av = np.empty((nf, n, 3)), np.empty((nf, 9)), np.empty((nf, n, 9))
        k.gpu_call("prod_force_a", np.float64, nf, Out(f), net, ed, nl, n, n, nnei)
        k.gpu_call("prod_virial_a", np.float64, nf, Out(v), Out(av), net, ed, rij, nl, n, n, nnei)
        grad, grad9 = rng.standard_normal((nf, n, 3)), rng.standard_normal((nf, 9))
        gf, gv = np.empty_like(net), np.empty_like(net)
        k.gpu_call("prod_force_grad_a", np.float64, nf, Out(gf), grad, ed, nl, n, n, nnei)
        k.gpu_call("prod_virial_grad_a", np.float64, nf, Out(gv), grad9, ed, rij, nl, n, nnei)
        ref = [(k.force("cpu", net[q], ed[q], nl[q], n)[0],
                k.virial("cpu", net[q], ed[q], rij[q], nl[q], n)[:2],
                k.force_grad("cpu", grad[q], ed[q], nl[q])[0],
                k.virial_grad("cpu", grad9[q], ed[q], rij[q], nl[q])[0]) for q in range(nf)]
        rep.close(tag + " force", f, np.stack([r[0] for r in ref]), 1e-12)
        rep.close(tag + " virial", v, np.stack([r[1][0] for r in ref]), 1e-12)
        rep.close(tag + " atom_virial", av, np.stack([r[1][1] for r in ref]), 1e-12)
        rep.close(tag + " force grad", gf, np.stack([r[2] for r in ref]), 1e-12)
        rep.close(tag + " virial grad", gv, np.stack([r[3] for r in ref]), 1e-12)


def default_water_data():
    """DeePMD-kit's water system beside the checkout (../shared/data/water/data_0) or under
    $DEEPMD_TEBD_WATER, as the package's tests find it."""
    root = os.environ.get("DEEPMD_TEBD_WATER") or os.path.join(HERE, "..", "..", "..", "shared",
                                                                "data", "water")
    return os.path.join(root, "data_0")


def check_water_data(k, rep, rng, path, nframes=4):
    """GPU == CPU on the first frames of a DeePMD-kit water system (DFT frames, 192 atoms), all
    frames in one GPU call, double precision."""
    if not os.path.isfile(os.path.join(path, "type.raw")):
        print("INFO  no DeePMD-kit water data at %s (--water-data): check skipped" % path)
        return
    types = np.loadtxt(os.path.join(path, "type.raw"), dtype=np.int32, ndmin=1)
    coords = np.load(os.path.join(path, "set.000", "coord.npy"))[:nframes]
    coords = coords.astype(np.float64).reshape(-1, len(types), 3)
    boxes = np.load(os.path.join(path, "set.000", "box.npy"))[:nframes]
    boxes = boxes.astype(np.float64).reshape(-1, 3, 3)
    cases = {"water data": (coords, types, boxes)}
    check_batched_frames(k, rep, rng, {}, cases)


# ----------------------------------------------------------------------------------------------
# Timings


def neighbour_stats(nlist, sel):
    s0 = 0
    out = []
    for s in sel:
        n = (nlist[:, s0:s0 + s] >= 0).sum(axis=1)
        out.append("type %d: mean %.1f max %d of %d" % (len(out), n.mean(), n.max(), s))
        s0 += s
    return "; ".join(out)


def time_device(k, device, coord, types, box, sel, dtype, reps, rng):
    """Median times (ms) of env mat, force and virial; returns (times, env result)."""
    davg, dstd = random_stats(rng, sel)
    c = coord.astype(dtype)
    out = None
    t_env = []
    for _ in range(reps):
        out = k.env_mat(device, c, types, box, davg, dstd, sel, out=out)
        t_env.append(out["ms"])
    net = rng.standard_normal(out["em"].shape, dtype=np.float32).astype(dtype, copy=False)
    nall = len(types)
    t_f = [k.force(device, net, out["em_deriv"], out["nlist"], nall)[1] for _ in range(reps)]
    t_v = [k.virial(device, net, out["em_deriv"], out["rij"], out["nlist"], nall)[2]
           for _ in range(reps)]
    return (float(np.median(t_env)), float(np.median(t_f)), float(np.median(t_v))), out


def time_gpu_resident(k, coord, types, box, sel, dtype, reps, rng):
    """Env mat, force and virial of one frame with every array resident on the device (no host
    copies): median device times (ms) and the bytes each kernel must move at least (its outputs
    written, its per-slot inputs read once), and the nlist for the neighbour statistics. The
    env mat's em serves as net_deriv."""
    cuda = k.cuda
    sfx = "d" if dtype == np.float64 else "f"
    it = np.dtype(dtype).itemsize
    n, nnei = len(types), sum(sel)
    nslot = n * nnei
    davg, dstd = random_stats(rng, sel)
    ctx = ctypes.addressof(cuda.context)
    box9 = np.ascontiguousarray(box, dtype).reshape(9)
    sel_a = np.array(sel, np.int32)
    with Scope(cuda):
        d_coord = cuda.upload(coord.astype(dtype))
        d_type = cuda.upload(types.astype(np.int32))
        d_avg, d_std = cuda.upload(davg.astype(dtype)), cuda.upload(dstd.astype(dtype))
        em, ed = cuda.alloc(nslot * 4 * it), cuda.alloc(nslot * 12 * it)
        rij, nl = cuda.alloc(nslot * 3 * it), cuda.alloc(nslot * 4)
        force, vir, av = cuda.alloc(n * 3 * it), cuda.alloc(9 * it), cuda.alloc(n * 9 * it)
        calls = {
            "env_mat": lambda: k.fn["dtk_prod_env_mat_a_gpu_" + sfx](
                ctx, em, ed, rij, nl, d_coord, d_type, 1, n, n, _p(box9), d_avg, d_std, len(sel),
                _p(sel_a), RCUT, RCUT_SMTH),
            "force": lambda: k.fn["dtk_prod_force_a_gpu_" + sfx](ctx, 1, force, em, ed, nl, n, n,
                                                                 nnei),
            "virial": lambda: k.fn["dtk_prod_virial_a_gpu_" + sfx](ctx, 1, vir, av, em, ed, rij,
                                                                   nl, n, n, nnei),
        }
        times = {}
        for name, call in calls.items():
            t = []
            for _ in range(reps):
                rc = []
                with Scope(cuda):  # the call's temporaries are reclaimed after each repetition
                    t.append(cuda.timed(lambda: rc.append(call())))
                if rc[0] != 0:
                    raise KernelError("%s: %s" % (name, k.lib.dtk_last_error().decode()))
            times[name] = float(np.median(t))
        nlist = cuda.download(np.empty((n, nnei), np.int32), nl)
    moved = {"env_mat": nslot * (19 * it + 4) + n * (3 * it + 4),
             "force": nslot * (16 * it + 4) + n * 3 * it,
             "virial": nslot * (19 * it + 4) + n * 9 * it}
    return times, moved, nlist


def benchmark(k, rep, rng, args, gpu):
    sel = SEL
    small = water_box(np.random.default_rng(7), 8, tuple(args.small_reps))
    big = water_box(np.random.default_rng(7), 8, tuple(args.water_reps)) if gpu else None
    if gpu:
        peak = args.peak_gbs or k.cuda.peak_bandwidth()
        print("INFO  device %s, peak memory bandwidth %.0f GB/s%s" % (
            k.cuda.device_name(), peak, " (given)" if args.peak_gbs else
            " (2 x memory clock x bus width)"), flush=True)
    for dtype in (np.float64, np.float32):
        name = np.dtype(dtype).name
        coord, types, box = small
        (te, tf, tv), res = time_device(k, "cpu", coord, types, box, sel, dtype, args.reps, rng)
        print("TIME  cpu  %-7s water %8d atoms: env_mat %9.2f ms  force %9.2f ms  virial %9.2f ms"
              "  (wall, %d OpenMP threads max)" % (name, len(types), te, tf, tv,
                                                   os.cpu_count() or 0), flush=True)
        if not gpu:
            continue
        for coord, types, box in ((small[0], small[1], small[2]), big):
            times, moved, nlist = time_gpu_resident(k, coord, types, box, sel, dtype, args.reps,
                                                    rng)
            parts = "  ".join("%s %8.2f ms %6.0f GB/s" % (key, times[key],
                                                          moved[key] / times[key] / 1e6)
                              for key in times)
            total_ms = sum(times.values())
            achieved = sum(moved.values()) / total_ms / 1e6
            print("TIME  gpu  %-7s water %8d atoms: %s  (device time, median of %d)"
                  % (name, len(types), parts, args.reps), flush=True)
            print("BW    gpu  %-7s water %8d atoms: env mat + force + virial %.2f ms, %.1f GB "
                  "moved at least, %.0f GB/s = %.1f%% of the peak %.0f GB/s"
                  % (name, len(types), total_ms, sum(moved.values()) / 1e9, achieved,
                     100 * achieved / peak, peak), flush=True)
        print("INFO  water %d atoms neighbours: %s" % (len(types), neighbour_stats(nlist, sel)),
              flush=True)
        if args.full_cpu:
            compare_gpu_cpu(k, rep, rng, "water %d atoms" % len(types), coord, types, box, sel,
                            dtype)


# ----------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cpu-only", action="store_true",
                    help="load the CPU library and run only the CPU self-consistency checks")
    ap.add_argument("--lib", help="path of the kernel library (default: op/build/...)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--reps", type=int, default=3, help="repetitions per timing (median)")
    ap.add_argument("--water-reps", type=int, nargs=3, default=[9, 9, 8],
                    help="replicas of the 1536-atom water cell for the large timing "
                         "(default 9 9 8: 995,328 atoms)")
    ap.add_argument("--small-reps", type=int, nargs=3, default=[3, 3, 3],
                    help="replicas of the water cell for the CPU timing and the GPU-vs-CPU water "
                         "check (default 3 3 3: 41,472 atoms)")
    ap.add_argument("--no-bench", action="store_true", help="skip the timings")
    ap.add_argument("--full-cpu", action="store_true",
                    help="also compare GPU and CPU on the large water box (slow on the CPU)")
    ap.add_argument("--arena-gb", type=float, default=48.0,
                    help="device memory handed to the kernels as their allocator (at most 80%% "
                         "of the free memory; default 48)")
    ap.add_argument("--peak-gbs", type=float, default=None,
                    help="the GPU's peak memory bandwidth in GB/s (default: from the memory clock "
                         "and bus width the runtime reports)")
    ap.add_argument("--water-data", default=default_water_data(),
                    help="a DeePMD-kit water system (type.raw, set.000/coord.npy, box.npy) whose "
                         "first frames are compared GPU vs CPU (default: %(default)s)")
    ap.add_argument("--hold-timeout", type=float, default=900.0,
                    help="seconds after which the kernel holding the legacy stream gives up")
    args = ap.parse_args()

    path = args.lib or (CPU_LIB if args.cpu_only else CUDA_LIB)
    k = Kernels(path)
    gpu = not args.cpu_only
    print("INFO  library %s (cuda build: %s)" % (path, k.has_cuda), flush=True)
    if gpu and not k.has_cuda:
        print("FAIL  the library has no CUDA kernels; build it with `make -C op cuda`")
        return 1

    rng = np.random.default_rng(args.seed)
    rep = Report()
    systems = test_systems(rng)
    for name, (coord, types, box, sel) in systems.items():
        davg, dstd = random_stats(rng, sel)
        nl = k.env_mat("cpu", coord, types, box, davg, dstd, sel)["nlist"]
        print("INFO  system %-40s %4d atoms, neighbours per block: %s"
              % (name, len(types), neighbour_stats(nl, sel)), flush=True)

    check_errors(k, rep, "cpu")
    check_reference(k, rep, rng, systems)
    check_mixed_reference(k, rep, rng, systems)
    check_supercell(k, rep, rng, systems)
    check_finite_differences(k, rep, rng, systems)
    check_newton(k, rep, rng, systems, "cpu")
    if k.has_grads:
        check_grad_identity(k, rep, rng, systems, "cpu")
    if gpu:
        k.cuda = Cuda(int(args.arena_gb * 2**30))
        print("INFO  arena %.1f GB on a non-blocking stream; the legacy default stream is held"
              % (k.cuda.arena_bytes / 2**30), flush=True)
        hold = LegacyStreamHold(k.cuda, k.lib, args.hold_timeout)
        try:
            check_errors(k, rep, "gpu")
            for name, (coord, types, box, sel) in systems.items():
                for dtype in (np.float64, np.float32):
                    compare_gpu_cpu(k, rep, rng, name, coord, types, box, sel, dtype)
            check_batched_frames(k, rep, rng, systems)
            check_mixed_gpu(k, rep, rng, systems)
            check_water_data(k, rep, rng, args.water_data)
            check_newton(k, rep, rng, systems, "gpu")
            check_grad_identity(k, rep, rng, systems, "gpu")
            if not args.no_bench:
                coord, types, box = water_box(np.random.default_rng(7), 8, tuple(args.small_reps))
                for dtype in (np.float64, np.float32):
                    compare_gpu_cpu(k, rep, rng, "water %d atoms" % len(types), coord, types, box,
                                    SEL, dtype)
            held = hold.still_held()
        finally:
            hold.release()
        rep.check("the legacy default stream stayed held during the GPU checks "
                  "(no work of the kernels waited there)", held)
    if not args.no_bench:
        benchmark(k, rep, rng, args, gpu)

    print("SUMMARY  %d checks, %d failed%s" % (rep.count, len(rep.failed),
                                              (": " + ", ".join(rep.failed)) if rep.failed else ""))
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main())
