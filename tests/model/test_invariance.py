"""The energy is invariant under translation, rotation (coordinates and cell together) and
permutation of atoms of the same type; forces move with the atoms. With type embedding the atoms
of a frame may come in any order, each frame of a batch in its own (mixed-type data)."""
import numpy as np
import pytest
import tensorflow as tf
from scipy.spatial.transform import Rotation

from model_helpers import Frame, build_model, variant_config

VARIANTS = [(True, True), (True, False), (False, True), (False, False), ("ebd_v2", True),
            ("ebd_v2", False), ("ebd_v2_smooth", True), ("ebd_v2_smooth", False)]
IDS = ["tebd-one_side", "tebd-two_side", "per_type-one_side", "per_type-two_side",
       "ebd_v2-one_side", "ebd_v2-two_side", "ebd_v2_smooth-one_side", "ebd_v2_smooth-two_side"]


def setup(kind, tebd, type_one_side, seed=31):
    frame = Frame.random(seed, kind)
    return frame, build_model(variant_config(frame.sel(), tebd, type_one_side))


def assert_same_energy(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-11, atol=0)


@pytest.mark.parametrize("kind", ["triclinic", "open"])
@pytest.mark.parametrize("tebd, type_one_side", VARIANTS, ids=IDS)
def test_energy_invariant_under_translation(kind, tebd, type_one_side):
    frame, model = setup(kind, tebd, type_one_side)
    shift = np.random.default_rng(1).normal(scale=3.0, size=3)
    out = frame.evaluate(model, np.stack([frame.coord, frame.coord + shift]))
    assert_same_energy(out["energy"][1], out["energy"][0])
    force = out["force"].reshape(2, -1, 3)
    np.testing.assert_allclose(force[1], force[0], atol=1e-10 * np.abs(force).max())


@pytest.mark.parametrize("kind", ["triclinic", "open"])
@pytest.mark.parametrize("tebd, type_one_side", VARIANTS, ids=IDS)
def test_energy_invariant_under_rotation(kind, tebd, type_one_side):
    frame, model = setup(kind, tebd, type_one_side)
    rot = Rotation.random(random_state=7).as_matrix()
    coords = np.stack([frame.coord, frame.coord @ rot.T])
    boxes = None if frame.box is None else np.stack([frame.box, frame.box @ rot.T])
    out = frame.evaluate(model, coords, boxes)
    assert_same_energy(out["energy"][1], out["energy"][0])
    force = out["force"].reshape(2, -1, 3)
    np.testing.assert_allclose(force[1], force[0] @ rot.T, atol=1e-10 * np.abs(force).max())
    if frame.box is not None:
        virial = out["virial"].reshape(2, 3, 3)
        np.testing.assert_allclose(virial[1], rot @ virial[0] @ rot.T,
                                   atol=1e-10 * np.abs(virial).max())


@pytest.mark.parametrize("kind", ["triclinic", "open"])
@pytest.mark.parametrize("tebd, type_one_side", VARIANTS, ids=IDS)
def test_energy_invariant_under_permutation_of_same_type_atoms(kind, tebd, type_one_side):
    frame, model = setup(kind, tebd, type_one_side)
    rng = np.random.default_rng(3)
    perm = np.arange(frame.nat)
    for t in range(frame.ntypes):
        block = np.flatnonzero(frame.atype == t)
        perm[block] = rng.permutation(block)
    out = frame.evaluate(model, np.stack([frame.coord, frame.coord[perm]]))
    assert_same_energy(out["energy"][1], out["energy"][0])
    atom_e = out["atom_energy"]
    np.testing.assert_allclose(atom_e[1], atom_e[0][perm], rtol=1e-11)
    force = out["force"].reshape(2, -1, 3)
    np.testing.assert_allclose(force[1], force[0][perm], atol=1e-10 * np.abs(force).max())


TEBD_VARIANTS = [v for v in VARIANTS if v[0] is not False]
TEBD_IDS = [i for v, i in zip(VARIANTS, IDS) if v[0] is not False]


@pytest.mark.parametrize("kind", ["triclinic", "open"])
@pytest.mark.parametrize("tebd, type_one_side", TEBD_VARIANTS, ids=TEBD_IDS)
def test_atoms_in_any_order_give_the_type_sorted_frames_energy_forces_and_virial(
        kind, tebd, type_one_side):
    # three types; one batch: the sorted frame, then two frames with all atoms shuffled across
    # the types, each in another order (natoms keeps the counts, which no longer mark blocks)
    frame = Frame.random(33, kind, ntypes=3)
    model = build_model(variant_config(frame.sel(), tebd, type_one_side))
    rng = np.random.default_rng(6)
    perms = [np.arange(frame.nat), rng.permutation(frame.nat), rng.permutation(frame.nat)]
    assert all(np.any(np.diff(frame.atype[p]) < 0) for p in perms[1:])  # not type-sorted
    coords = np.stack([frame.coord[p] for p in perms])
    box = np.zeros(9) if frame.box is None else frame.box.reshape(9)
    out = model(coords.reshape(3, -1), np.stack([frame.atype[p] for p in perms]), frame.natoms,
                np.tile(box, (3, 1)), frame.mesh)
    out = {k: v.numpy() for k, v in out.items()}
    force = out["force"].reshape(3, -1, 3)
    atom_virial = out["atom_virial"].reshape(3, -1, 9)
    for k, perm in enumerate(perms[1:], start=1):
        np.testing.assert_allclose(out["energy"][k], out["energy"][0], rtol=1e-12, atol=0)
        np.testing.assert_allclose(out["atom_energy"][k], out["atom_energy"][0][perm],
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(force[k], force[0][perm], rtol=0,
                                   atol=1e-12 * np.abs(force).max())
        np.testing.assert_allclose(out["virial"][k], out["virial"][0], rtol=0,
                                   atol=1e-12 * np.abs(out["virial"]).max())
        np.testing.assert_allclose(atom_virial[k], atom_virial[0][perm], rtol=0,
                                   atol=1e-12 * np.abs(atom_virial).max())


def test_frames_of_one_batch_are_independent():
    frame, model = setup("triclinic", True, False)
    rng = np.random.default_rng(4)
    coords = frame.coord[None] + rng.normal(scale=0.05, size=(3, frame.nat, 3))
    together = frame.evaluate(model, coords)
    for i in range(3):
        alone = frame.evaluate(model, coords[i:i + 1])
        for key in ("energy", "force", "virial", "atom_virial"):
            np.testing.assert_allclose(together[key][i], alone[key][0], rtol=1e-12,
                                       atol=1e-12 * np.abs(alone[key]).max())


def test_traced_once_for_new_coordinates_and_new_systems():
    frame, model = setup("triclinic", True, False)
    signature = [tf.TensorSpec([None, None], tf.float64), tf.TensorSpec([None, None], tf.int32),
                 tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, 9], tf.float64),
                 tf.TensorSpec([None], tf.int32)]

    @tf.function(input_signature=signature)
    def predict(coord, atype, natoms, box, mesh):
        out = model(coord, atype, natoms, box, mesh)
        return out["energy"], out["force"], out["virial"]

    def run(f, coord):
        return predict(coord.reshape(1, -1), f.atype.reshape(1, -1), f.natoms,
                       f.box.reshape(1, 9), f.mesh)

    energy_1, force_1, _ = run(frame, frame.coord)
    moved = frame.coord + np.random.default_rng(5).normal(scale=0.05, size=frame.coord.shape)
    energy_2, _, _ = run(frame, moved)
    other = Frame.random(32, "orthorhombic")
    run(other, other.coord)  # another atom count and composition, same graph
    assert predict.experimental_get_tracing_count() == 1
    assert energy_1.numpy() != energy_2.numpy()
    eager = frame.evaluate(model)
    np.testing.assert_allclose(energy_1.numpy(), eager["energy"], rtol=1e-13)
    np.testing.assert_allclose(force_1.numpy(), eager["force"], rtol=1e-12, atol=1e-13)
