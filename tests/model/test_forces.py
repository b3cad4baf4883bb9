"""Forces and virials of the full model are the exact derivatives of its energy (central finite
differences, double precision), with and without type embedding, type_one_side true and false,
periodic triclinic cells and open boundaries."""
import numpy as np
import pytest
import tensorflow as tf

from model_helpers import (Frame, build_model, finite_difference_force,
                           finite_difference_virial, relative_error, variant_config)

VARIANTS = [(True, True), (True, False), (False, True), (False, False), ("ebd_v2", True),
            ("ebd_v2", False), ("ebd_v2_smooth", True), ("ebd_v2_smooth", False),
            ("atten", False), ("atten_strip", True), ("atten_v2", False)]
IDS = ["tebd-one_side", "tebd-two_side", "per_type-one_side", "per_type-two_side",
       "ebd_v2-one_side", "ebd_v2-two_side", "ebd_v2_smooth-one_side", "ebd_v2_smooth-two_side",
       "atten-two_side", "atten_strip-one_side", "atten_v2"]


def setup(kind, tebd, type_one_side, seed=21, ntypes=2, **cfg):
    frame = Frame.random(seed, kind, ntypes=ntypes)
    model = build_model(variant_config(frame.sel(), tebd, type_one_side, **cfg))
    return frame, model


@pytest.mark.parametrize("kind", ["triclinic", "open"])
@pytest.mark.parametrize("tebd, type_one_side", VARIANTS, ids=IDS)
def test_force_is_minus_energy_gradient(kind, tebd, type_one_side):
    frame, model = setup(kind, tebd, type_one_side)
    force = frame.evaluate(model)["force"].reshape(-1, 3)
    assert relative_error(force, finite_difference_force(model, frame)) < 1e-6


# DPA-1's angular gate normalises each neighbour's (R~x, R~y, R~z), which vanishes at rcut: near
# rcut its curvature is huge, and without the smooth weight a pair 9e-4 A inside rcut (seed 21's
# cell) spoils the central differences of the strain; that variant takes another cell
VIRIAL_SEEDS = {"atten": 22}


@pytest.mark.parametrize("tebd, type_one_side", VARIANTS, ids=IDS)
def test_virial_is_minus_strain_derivative(tebd, type_one_side):
    frame, model = setup("triclinic", tebd, type_one_side, seed=VIRIAL_SEEDS.get(tebd, 21))
    out = frame.evaluate(model)
    virial = out["virial"].reshape(3, 3)
    assert relative_error(virial, finite_difference_virial(model, frame)) < 1e-6
    np.testing.assert_allclose(out["atom_virial"].reshape(-1, 9).sum(0), virial.reshape(9),
                               rtol=1e-12, atol=1e-12 * np.abs(virial).max())


@pytest.mark.parametrize("tebd", [True, False], ids=["tebd", "per_type"])
def test_open_boundary_virial_is_sum_of_position_force_products(tebd):
    frame, model = setup("open", tebd, True)
    virial = frame.evaluate(model)["virial"].reshape(3, 3)
    expected = np.einsum("ia,ib->ab", finite_difference_force(model, frame), frame.coord)
    assert relative_error(virial, expected) < 1e-6


@pytest.mark.parametrize("tebd, type_one_side", VARIANTS, ids=IDS)
def test_forces_with_three_types_and_excluded_pair(tebd, type_one_side):
    frame, model = setup("triclinic", tebd, type_one_side, seed=22, ntypes=3,
                         exclude_types=[[0, 2]])
    force = frame.evaluate(model)["force"].reshape(-1, 3)
    assert relative_error(force, finite_difference_force(model, frame)) < 1e-6


@pytest.mark.parametrize("tebd", [True, False], ids=["tebd", "per_type"])
def test_forces_with_frame_and_atomic_parameters_and_atom_ener(tebd):
    frame, model = setup("triclinic", tebd, False, numb_fparam=2, numb_aparam=1,
                         atom_ener=[0.5, None])
    rng = np.random.default_rng(4)
    frame.fparam = rng.normal(size=2)
    frame.aparam = rng.normal(size=frame.nat)
    out = frame.evaluate(model)
    assert relative_error(out["force"].reshape(-1, 3),
                          finite_difference_force(model, frame)) < 1e-6
    assert relative_error(out["virial"].reshape(3, 3),
                          finite_difference_virial(model, frame)) < 1e-6


def test_net_force_vanishes():
    frame, model = setup("triclinic", True, False)
    force = frame.evaluate(model)["force"].reshape(-1, 3)
    assert np.abs(force.sum(0)).max() < 1e-10 * np.abs(force).max()


def test_energy_is_sum_of_atomic_energies():
    frame, model = setup("triclinic", True, True)
    out = frame.evaluate(model)
    np.testing.assert_allclose(out["energy"], out["atom_energy"].sum(1), rtol=1e-14)
    assert out["energy"].dtype == np.float64 and out["force"].dtype == np.float64


@pytest.mark.slow
@pytest.mark.parametrize("tebd", [True, False, "ebd_v2_smooth"],
                         ids=["tebd", "per_type", "ebd_v2_smooth"])
def test_force_loss_gradient_matches_weight_finite_difference(tebd):
    """A force loss is differentiable with respect to the weights (through the tape in call and
    the registered gradients of ProdForceSeA and ProdVirialSeA): <dL/dw, v> equals the central
    difference of L along a random direction v."""
    frame, model = setup("triclinic", tebd, False)
    args = (frame.coord.reshape(1, -1), frame.atype.reshape(1, -1), frame.natoms,
            frame.box.reshape(1, 9), frame.mesh)
    variables = model.trainable_variables

    def loss():
        out = model(*args)
        return tf.reduce_sum(out["force"] ** 2) + tf.reduce_sum(out["virial"] ** 2)

    with tf.GradientTape() as tape:
        value = loss()
    grads = tape.gradient(value, variables)
    # only the final biases (a constant shift of every atomic energy) do not reach the forces
    none = sorted(v.name for v, g in zip(variables, grads) if g is None)
    assert none == ["final_bias"] * (1 if tebd else 2)
    grads = [tf.zeros_like(v) if g is None else g for v, g in zip(variables, grads)]
    rng = np.random.default_rng(5)
    direction = [rng.normal(size=v.shape) for v in variables]
    analytic = sum(float(tf.reduce_sum(g * d)) for g, d in zip(grads, direction))
    h = 1e-6
    saved = [v.numpy() for v in variables]
    values = []
    for sign in (1, -1):
        for v, s, d in zip(variables, saved, direction):
            v.assign(s + sign * h * d)
        values.append(float(loss()))
    for v, s in zip(variables, saved):
        v.assign(s)
    numeric = (values[0] - values[1]) / (2 * h)
    assert abs(analytic - numeric) < 1e-6 * abs(numeric)


def _force_loss_step(model, frame):
    """A step to trace: energy, forces and the weight gradients of sum(F^2) + E."""
    args = (frame.coord.reshape(1, -1), frame.atype.reshape(1, -1), frame.natoms,
            frame.box.reshape(1, 9), frame.mesh)
    variables = model.trainable_variables

    def step():
        with tf.GradientTape() as tape:
            out = model(*args)
            value = tf.reduce_sum(out["force"] ** 2) + tf.reduce_sum(out["energy"])
        grads = tape.gradient(value, variables)
        return [out["energy"], out["force"]] + [g for g in grads if g is not None]

    return step


@pytest.mark.parametrize("tebd, type_one_side", VARIANTS, ids=IDS)
def test_training_kernels_give_the_same_forces_and_loss_gradients(tebd, type_one_side):
    """Inside the training step the contraction R~^T G of every descriptor and DPA-1's attention
    run on TebdBatchMatMul, the embedding nets of s~ alone on TebdEmbeddingNet (all but
    se_atten's concatenated input; se_e2_a's with the contraction on TebdEmbeddingContract, and
    so se_a_ebd_v2's radial net, per neighbour type, unless smooth_type_embedding weights T,
    the force pass's adjoints of G and dG/ds then made row by row in the net's gradient op),
    the other nets' products on TebdMatMul and the attention's
    normalisations on TebdL2Normalize and TebdLayerNorm (model/kernels.py), and DPA-1's
    attention leaves out the slots empty for every atom (sel has room to spare here):
    energy, forces and the gradients of a force loss equal those of TensorFlow's ops over
    every slot (1e-12)."""
    from deepmd_tebd.model.kernels import training_kernels

    frame, model = setup("triclinic", tebd, type_one_side)
    step = _force_loss_step(model, frame)

    def traced(fast):
        function = tf.function(step)
        if fast:
            with training_kernels():
                concrete = function.get_concrete_function()
        else:
            concrete = function.get_concrete_function()
        types = {op.type for op in concrete.graph.get_operations()}
        assert ("TebdBatchMatMul" in types) == fast
        fused_net = types & {"TebdEmbeddingNet", "TebdEmbeddingContract"}
        assert bool(fused_net) == (fast and tebd != "atten")
        # the nets of s~ alone with the contraction R~^T G in one op and its force pass
        contracted = fast and tebd in (True, False, "ebd_v2")
        assert ("TebdEmbeddingContract" in types) == contracted
        assert ("TebdContractRowsGradGrad" in types) == contracted
        if contracted:  # the force pass's adjoints of g and dg/ds: made in the net's gradient
            assert _force_pass_in_net_gradient(concrete.graph)
        assert ("TebdMatMul" in types) == fast
        attention = fast and str(tebd).startswith("atten")
        assert ("TebdL2NormalizeGradGrad" in types) == attention
        assert ("TebdLayerNormGradGrad" in types) == attention
        # se_atten_v2 (smooth): the left-out slots' key in each layer's softmax
        absent_key = any(op.type == "Softmax" and op.inputs[0].op.type == "ConcatV2"
                         for op in concrete.graph.get_operations())
        assert absent_key == (fast and tebd == "atten_v2")
        return [t.numpy() for t in concrete()]

    for got, expected in zip(traced(True), traced(False)):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())


def _most_neighbours(frame, model) -> int:
    """The most neighbours an atom of `frame` has within the model's cut-off."""
    _, _, _, nlist = model.descriptor.env_mat(
        frame.coord.reshape(1, -1), frame.atype.reshape(1, -1), frame.natoms,
        frame.box.reshape(1, 9), frame.mesh)
    return int(np.max(np.sum(nlist.numpy().reshape(frame.nat, -1) >= 0, axis=1)))


@pytest.mark.parametrize("natoms", [None, 2, 1], ids=["27_atoms", "2_atoms", "1_atom"])
@pytest.mark.parametrize("tebd", ["atten", "atten_v2"])
def test_the_attention_in_groups_of_atoms_equals_the_attention_over_every_slot(tebd, natoms):
    """The training step attends the atoms in groups by their number of neighbours
    (se_atten.py: ATTENTION_GROUPS), each group over its live slots: with sel exactly the
    most neighbours an atom has (a group without left-out slots), and with fewer atoms than
    groups (empty groups; the lone atom has no neighbour), energy, forces and force-loss gradients equal those of TensorFlow's
    ops over every slot (1e-12)."""
    from deepmd_tebd.model import se_atten
    from deepmd_tebd.model.kernels import training_kernels

    assert natoms is None or natoms < se_atten.ATTENTION_GROUPS
    frame = Frame.random(21, "triclinic", natoms=natoms)
    model = build_model(variant_config(frame.sel(), tebd, False))
    most = max(_most_neighbours(frame, model), 1)  # a descriptor has a slot at least
    model = build_model(variant_config([most] + [0] * (frame.ntypes - 1), tebd, False))
    assert model.descriptor.nnei == most
    step = _force_loss_step(model, frame)
    with training_kernels():
        fast = tf.function(step).get_concrete_function()
    plain = tf.function(step).get_concrete_function()
    for concrete, kernels in ((fast, True), (plain, False)):
        assert ("TebdBatchMatMul" in {op.type for op in concrete.graph.get_operations()}) == kernels
    for got, expected in zip(fast(), plain()):
        got, expected = got.numpy(), expected.numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())


def _force_pass_in_net_gradient(graph) -> bool:
    """Whether the force pass's adjoints of the fused contraction's g and dg/ds reach its net's
    gradient op as the pass's per-row inputs (force_rows from a tensor, not an empty constant)
    while the op that makes them as matrices of g's size feeds nothing beyond a reshape (and so
    is not run)."""
    operations = graph.get_operations()
    dense = [op for op in operations if op.type == "TebdContractRowsGradGrad"
             and op.get_attr("parts") in (b"g", "g")]
    unused = all(not after.consumers() for op in dense for out in op.outputs
                 for user in out.consumers() for after in user.outputs)
    fed = any(op.type == "TebdEmbeddingNetGrad" and op.inputs[-5].op.type != "Const"
              for op in operations)
    return bool(dense) and unused and fed


@pytest.mark.parametrize("centres, n", [(3, 7), (3, 0), (0, 5), (0, 0)])
def test_the_training_contraction_equals_the_plain_one_also_for_empty_blocks(centres, n):
    """model/kernels.py: contract(rows, g) per atom, on TebdBatchMatMul inside the training
    step, equals rows^T g, also for a neighbour block without slots and a centre type without
    atoms in the frame (both: a 0 x 0 batch)."""
    from deepmd_tebd.model.kernels import contract, training_kernels

    rng = np.random.default_rng(n)
    rows, g = rng.normal(size=(2, centres, n, 4)), rng.normal(size=(2, centres, n, 5))
    function = tf.function(contract)
    with training_kernels():
        fast = function.get_concrete_function(tf.TensorSpec([None, None, None, 4], tf.float64),
                                              tf.TensorSpec([None, None, None, 5], tf.float64))
    assert "TebdBatchMatMul" in {op.type for op in fast.graph.get_operations()}
    expected = np.einsum("fcni,fcnj->fcij", rows, g)
    np.testing.assert_allclose(fast(tf.constant(rows), tf.constant(g)).numpy(), expected,
                               rtol=1e-13, atol=1e-13)


def test_the_training_matmul_and_its_gradients_to_second_order_equal_matmuls():
    """model/kernels.py: matmul(x, w) on TebdMatMul inside the training step; its gradients
    (products with transposed operands, on TebdMatMul again) and theirs equal MatMul's."""
    from deepmd_tebd.model.kernels import matmul, training_kernels

    rng = np.random.default_rng(2)
    x, w = tf.constant(rng.normal(size=(7, 5))), tf.constant(rng.normal(size=(5, 3)))

    def second_order(x, w):
        with tf.GradientTape() as outer:
            outer.watch(w)
            with tf.GradientTape() as inner:
                inner.watch(x)
                energy = tf.reduce_sum(tf.tanh(matmul(x, w)))
            loss = tf.reduce_sum(inner.gradient(energy, x) ** 2)
        return [energy, loss, outer.gradient(loss, w)]

    with training_kernels():
        fast = tf.function(second_order).get_concrete_function(x, w)
    plain = tf.function(second_order).get_concrete_function(x, w)
    assert "TebdMatMul" in {op.type for op in fast.graph.get_operations()}
    assert "TebdMatMul" not in {op.type for op in plain.graph.get_operations()}
    for got, expected in zip(fast(x, w), plain(x, w)):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("type_one_side", [True, False], ids=["one_side", "two_side"])
def test_per_type_nets_run_as_one_stack_in_the_training_step(type_one_side):
    """Without type embedding the training step runs all per-type nets (3 types: 3 one-side
    nets, or 7 pair nets with the pair (0, 2) excluded both ways) as one stack in one
    TebdEmbeddingContract for the neighbours and one for the always-empty slots, whatever the
    number of types; energy, forces and the force loss's weight gradients equal TensorFlow's
    ops on each net (1e-12)."""
    from deepmd_tebd.model.kernels import training_kernels

    frame, model = setup("triclinic", False, type_one_side, seed=22, ntypes=3,
                         exclude_types=[[0, 2]])
    step = _force_loss_step(model, frame)

    with training_kernels():
        fast = tf.function(step).get_concrete_function()
    plain = tf.function(step).get_concrete_function()
    nets = [op for op in fast.graph.get_operations() if op.type == "TebdEmbeddingContract"]
    assert len(model.descriptor.nets()) == (3 if type_one_side else 7)
    assert 1 <= len(nets) <= 2
    got, expected = fast(), plain()
    assert len(got) == len(expected)
    for x, y in zip(got, expected):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-12,
                                   atol=1e-12 * np.abs(y.numpy()).max())
