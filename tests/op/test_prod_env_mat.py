"""ProdEnvMatA agrees with the NumPy reference (tests/reference/env_mat.py) on random systems:
neighbour order, -1 padding, descrpt, descrpt_deriv, rij and nlist; and refuses bad input."""
import ctypes

import numpy as np
import pytest
import tensorflow as tf

from deepmd_tebd.op import op_module
from ops_helpers import env_mat, natoms_vector
from reference.env_mat import extend_periodic, prod_env_mat_a_ref, random_system

RCUT, RCUT_SMTH = 6.0, 0.5
SEL = [46, 92]
KINDS = ["orthorhombic", "triclinic", "small", "tiny", "open"]


def normalisation(rng, sel):
    nd = sum(sel) * 4
    return rng.normal(0, 0.1, (len(sel), nd)), rng.uniform(0.2, 2.0, (len(sel), nd))


def assert_close(actual, expected, rtol):
    scale = max(1.0, float(np.max(np.abs(expected))) if expected.size else 1.0)
    assert np.max(np.abs(actual - expected), initial=0.0) <= rtol * scale


def check_against_reference(coord, atype, box, sel, dtype, rtol, seed=0):
    davg, dstd = normalisation(np.random.default_rng(seed), sel)
    got = env_mat(coord.astype(dtype), atype, box, davg, dstd, sel, RCUT, RCUT_SMTH, dtype=dtype)
    ref = prod_env_mat_a_ref(coord.astype(dtype), atype, None if box is None else box.astype(dtype),
                             davg, dstd, sel, RCUT, RCUT_SMTH)
    em, em_deriv, rij, nlist = got
    np.testing.assert_array_equal(nlist, ref[3].reshape(nlist.shape))
    for a, b in zip((em, em_deriv, rij), ref[:3]):
        assert_close(a.astype(np.float64), b.reshape(a.shape), rtol)
    return got


@pytest.mark.parametrize("kind", KINDS)
def test_env_mat_matches_reference_double(kind):
    for seed in range(3):
        coord, atype, box = random_system(np.random.default_rng(100 + seed), kind, rcut=RCUT)
        em, _, _, nlist = check_against_reference(coord, atype, box, SEL, np.float64, 1e-12, seed)
        assert np.all(nlist.reshape(len(coord), -1).max(axis=1) >= 0)  # every centre has neighbours


@pytest.mark.parametrize("kind", KINDS)
def test_env_mat_matches_reference_float(kind):
    coord, atype, box = random_system(np.random.default_rng(200), kind, rcut=RCUT)
    check_against_reference(coord, atype, box, SEL, np.float32, 1e-5)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_neighbors_beyond_sel_dropped_farthest_first(dtype, rtol):
    coord, atype, box = random_system(np.random.default_rng(300), "crowded", rcut=RCUT)
    sel = [10, 20]
    _, _, rij, nlist = check_against_reference(coord, atype, box, sel, dtype, rtol)
    # every slot is filled and the kept neighbours ascend in distance within each type block
    nlist = nlist.reshape(len(coord), -1)
    assert np.all(nlist >= 0)
    r = np.linalg.norm(rij.reshape(len(coord), -1, 3), axis=-1)
    assert np.all(np.diff(r[:, :10], axis=1) >= 0) and np.all(np.diff(r[:, 10:], axis=1) >= 0)


def test_empty_slots_padded_with_minus_one_and_zero_rij():
    coord, atype, box = random_system(np.random.default_rng(301), "open", rcut=RCUT, natoms=12)
    em, deriv, rij, nlist = check_against_reference(coord, atype, box, SEL, np.float64, 1e-12)
    empty = nlist.reshape(-1) < 0
    assert empty.any()
    assert np.all(rij.reshape(-1, 3)[empty] == 0)
    assert np.all(deriv.reshape(-1, 12)[empty] == 0)


def test_several_frames_are_independent():
    rng = np.random.default_rng(400)
    frames = [random_system(rng, "triclinic", rcut=RCUT, natoms=60) for _ in range(3)]
    # same composition in every frame, as in a batch
    atype = frames[0][1]
    davg, dstd = normalisation(rng, SEL)
    coord = np.stack([f[0].reshape(-1) for f in frames])
    box = np.stack([f[2].reshape(-1) for f in frames])
    out = op_module.prod_env_mat_a(coord, np.tile(atype, (3, 1)), natoms_vector(atype, 2), box,
                                   np.zeros(6, np.int32), davg, dstd, rcut_a=-1.0, rcut_r=RCUT,
                                   rcut_r_smth=RCUT_SMTH, sel_a=SEL, sel_r=[0, 0])
    for k, (c, _, b) in enumerate(frames):
        ref = prod_env_mat_a_ref(c, atype, b, davg, dstd, SEL, RCUT, RCUT_SMTH)
        np.testing.assert_array_equal(out[3].numpy()[k], ref[3].reshape(-1))
        assert_close(out[0].numpy()[k], ref[0].reshape(-1), 1e-12)


def test_periodic_result_invariant_under_lattice_shifts_of_atoms():
    coord, atype, box = random_system(np.random.default_rng(401), "small", rcut=RCUT)
    davg, dstd = normalisation(np.random.default_rng(1), SEL)
    base = env_mat(coord, atype, box, davg, dstd, SEL, RCUT, RCUT_SMTH)
    shifts = np.random.default_rng(2).integers(-3, 4, size=(len(coord), 3)) @ box
    moved = env_mat(coord + shifts, atype, box, davg, dstd, SEL, RCUT, RCUT_SMTH)
    for a, b in zip(base[:3], moved[:3]):
        assert_close(a, b, 1e-10)


def external_list(coord, atype, box):
    """Ghost atoms and a full neighbour list (all pairs within rcut) as LAMMPS would give them."""
    ext, ext_type, mapping = extend_periodic(coord, atype, box, RCUT)
    nloc = len(coord)
    lists = []
    for i in range(nloc):
        r = np.linalg.norm(ext - ext[i], axis=1)
        lists.append([j for j in np.flatnonzero(r <= RCUT + 0.5) if j != i])
    return ext, ext_type, mapping, lists


def run_with_mesh(ext, ext_type, nloc, davg, dstd, mesh):
    natoms = natoms_vector(ext_type[:nloc], 2, nall=len(ext))
    out = op_module.prod_env_mat_a(ext.reshape(1, -1), ext_type.reshape(1, -1).astype(np.int32),
                                   natoms, np.zeros((1, 9)), mesh, davg, dstd, rcut_a=-1.0,
                                   rcut_r=RCUT, rcut_r_smth=RCUT_SMTH, sel_a=SEL, sel_r=[0, 0])
    return [t.numpy()[0] for t in out]


def test_external_neighbor_list_in_tensor_matches_periodic_search():
    coord, atype, box = random_system(np.random.default_rng(500), "small", rcut=RCUT)
    davg, dstd = normalisation(np.random.default_rng(5), SEL)
    ext, ext_type, mapping, lists = external_list(coord, atype, box)
    nloc = len(coord)
    mesh = np.concatenate([np.zeros(16), np.arange(nloc), [len(l) for l in lists],
                           np.concatenate(lists)]).astype(np.int32)
    em, deriv, rij, nlist = run_with_mesh(ext, ext_type, nloc, davg, dstd, mesh)
    ref = env_mat(coord, atype, box, davg, dstd, SEL, RCUT, RCUT_SMTH)
    # the external mode indexes ghosts; mapped back they are the periodic search's neighbours
    mapped = np.where(nlist >= 0, mapping[np.maximum(nlist, 0)], -1)
    np.testing.assert_array_equal(mapped, ref[3])
    for a, b in zip((em, deriv, rij), ref[:3]):
        assert_close(a, b, 1e-12)


def test_external_neighbor_list_by_pointer_matches_in_tensor_list():
    coord, atype, box = random_system(np.random.default_rng(501), "orthorhombic", rcut=RCUT)
    davg, dstd = normalisation(np.random.default_rng(6), SEL)
    ext, ext_type, _, lists = external_list(coord, atype, box)
    nloc = len(coord)
    ilist = (ctypes.c_int * nloc)(*range(nloc))
    numneigh = (ctypes.c_int * nloc)(*[len(l) for l in lists])
    rows = [(ctypes.c_int * len(l))(*l) for l in lists]
    firstneigh = (ctypes.POINTER(ctypes.c_int) * nloc)(
        *[ctypes.cast(r, ctypes.POINTER(ctypes.c_int)) for r in rows])
    mesh = np.zeros(16, np.int32)
    mesh[1] = nloc
    for slot, obj in ((4, ilist), (8, numneigh), (12, firstneigh)):
        mesh[slot:slot + 2] = np.frombuffer(
            np.array([ctypes.addressof(obj)], dtype=np.uint64).tobytes(), dtype=np.int32)
    by_pointer = run_with_mesh(ext, ext_type, nloc, davg, dstd, mesh)
    in_tensor = run_with_mesh(ext, ext_type, nloc, davg, dstd, np.concatenate(
        [np.zeros(16), np.arange(nloc), [len(l) for l in lists], np.concatenate(lists)]
    ).astype(np.int32))
    for a, b in zip(by_pointer, in_tensor):
        np.testing.assert_array_equal(a, b)


def bad_call(**overrides):
    coord, atype, box = random_system(np.random.default_rng(600), "orthorhombic", rcut=RCUT,
                                      natoms=20)
    davg, dstd = normalisation(np.random.default_rng(7), SEL)
    args = dict(coord=coord.reshape(1, -1), type=atype.reshape(1, -1).astype(np.int32),
                natoms=natoms_vector(atype, 2), box=box.reshape(1, 9),
                mesh=np.zeros(6, np.int32), davg=davg, dstd=dstd)
    args.update(overrides)
    return op_module.prod_env_mat_a(args["coord"], args["type"], args["natoms"], args["box"],
                                    args["mesh"], args["davg"], args["dstd"], rcut_a=-1.0,
                                    rcut_r=RCUT, rcut_r_smth=RCUT_SMTH, sel_a=SEL, sel_r=[0, 0])


@pytest.mark.parametrize("overrides,message", [
    (dict(mesh=np.zeros(1, np.int32)), "Mixed types are not supported by this OP."),
    (dict(mesh=np.zeros(7, np.int32)), "Mixed types are not supported by this OP."),
    (dict(mesh=np.zeros(3, np.int32)), "invalid mesh tensor"),
    (dict(box=np.zeros((1, 9))), "singular"),
    (dict(natoms=np.array([20, 20], np.int32)), "natoms"),
    (dict(natoms=np.array([20, 20, 5, 5, 10], np.int32)), "types but sel_a has"),
    (dict(davg=np.zeros((2, 10))), "davg must have shape"),
    (dict(type=np.full((1, 20), 2, np.int32)), "has type 2"),
    (dict(coord=np.zeros((1, 59))), "coord must have shape"),
])
def test_bad_input_is_refused_with_a_clear_message(overrides, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        bad_call(**overrides)


def traced_env_mat_shapes(coord, atype, box, davg, dstd, sel=SEL):
    """Static output shapes of ProdEnvMatA traced with the given input shapes (None: unknown);
    natoms is a constant with nloc = nall = 20."""
    natoms = np.array([20, 20, 8, 12], np.int32)

    @tf.function(input_signature=[tf.TensorSpec(coord, tf.float64), tf.TensorSpec(atype, tf.int32),
                                  tf.TensorSpec(box, tf.float64), tf.TensorSpec(davg, tf.float64),
                                  tf.TensorSpec(dstd, tf.float64)])
    def env_mat_op(c, t, b, avg, std):
        return op_module.prod_env_mat_a(c, t, natoms, b, np.zeros(6, np.int32), avg, std,
                                        rcut_a=-1.0, rcut_r=RCUT, rcut_r_smth=RCUT_SMTH,
                                        sel_a=sel, sel_r=[0] * len(sel))

    outputs = env_mat_op.get_concrete_function().structured_outputs
    return [o.shape.as_list() for o in outputs]


def test_env_mat_static_shapes_keep_unknown_dims_unknown():
    nd = 4 * sum(SEL)
    shapes = traced_env_mat_shapes([None, None], [None, None], [None, None], [None, None],
                                   [None, None])
    assert shapes == [[None, 20 * nd], [None, 20 * nd * 3], [None, 20 * sum(SEL) * 3],
                      [None, 20 * sum(SEL)]]
    # a frame count known from any of coord, type, box reaches the outputs
    shapes = traced_env_mat_shapes([None, 60], [None, 20], [3, 9], [2, nd], [2, None])
    assert [s[0] for s in shapes] == [3, 3, 3, 3]


@pytest.mark.parametrize("shapes,message", [
    (dict(coord=[2, 60], atype=[3, 20]), "must be equal, but are 2 and 3"),
    (dict(coord=[2, 60], box=[3, 9]), "must be equal, but are 2 and 3"),
    (dict(box=[None, 6]), "must be 9"),
    (dict(davg=[2, 4 * sum(SEL) + 4]), f"must be {4 * sum(SEL)}"),
    (dict(dstd=[2, 8]), f"must be {4 * sum(SEL)}"),
    (dict(davg=[2, 4 * sum(SEL)], dstd=[3, 4 * sum(SEL)]), "must be equal, but are 2 and 3"),
    (dict(davg=[2, None], dstd=[3, None]), "must be equal, but are 2 and 3"),
])
def test_env_mat_shape_function_refuses_inconsistent_static_shapes(shapes, message):
    """Frame counts of coord, type and box agree; davg and dstd agree and are 4 * sum(sel_a)
    wide, whenever these dimensions are known when the op is traced."""
    args = dict(coord=[None, None], atype=[None, None], box=[None, None], davg=[None, None],
                dstd=[None, None])
    args.update(shapes)
    with pytest.raises(ValueError, match=message):
        traced_env_mat_shapes(**args)
