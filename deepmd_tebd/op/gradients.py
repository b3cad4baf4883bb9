"""Gradients of the custom ops.

ProdForceSeA and ProdVirialSeA differentiate with respect to net_deriv through ProdForceSeAGrad and
ProdVirialSeAGrad (their other inputs do not depend on trainable variables); the atom_virial output
carries no gradient. ProdEnvMatA differentiates its descriptor output with respect to the
coordinates and the box by the same products: for an upstream gradient g = dL/d(descrpt),

    dL/dcoord = -ProdForceSeA(g)
    dL/dbox   = -box^-T (V^T + coord^T dL/dcoord),   V = ProdVirialSeA(g)

so that a model's force is -dE/dr including neighbour contributions, and its derivative with respect
to a homogeneous strain (which moves coordinates and box together) is minus the virial, periodic
images included. The derivative outputs (descrpt_deriv, rij, nlist) are treated as constants.
"""
import tensorflow as tf
from tensorflow.python.framework import ops

from . import op_module


@ops.RegisterGradient("ProdForceSeA")
def _prod_force_se_a_grad(op, grad):
    net_grad = op_module.prod_force_se_a_grad(
        grad, op.inputs[0], op.inputs[1], op.inputs[2], op.inputs[3],
        n_a_sel=op.get_attr("n_a_sel"), n_r_sel=op.get_attr("n_r_sel"),
    )
    return [net_grad, None, None, None]


@ops.RegisterGradient("ProdVirialSeA")
def _prod_virial_se_a_grad(op, grad, grad_atom):
    net_grad = op_module.prod_virial_se_a_grad(
        grad, op.inputs[0], op.inputs[1], op.inputs[2], op.inputs[3], op.inputs[4],
        n_a_sel=op.get_attr("n_a_sel"), n_r_sel=op.get_attr("n_r_sel"),
    )
    return [net_grad, None, None, None, None]


@ops.RegisterGradient("ProdEnvMatA")
def _prod_env_mat_a_grad(op, grad_descrpt, grad_deriv, grad_rij, grad_nlist):
    coord, _, natoms, box, mesh = op.inputs[:5]
    _, descrpt_deriv, rij, nlist = op.outputs
    nnei = sum(op.get_attr("sel_a"))
    force = op_module.prod_force_se_a(grad_descrpt, descrpt_deriv, nlist, natoms,
                                      n_a_sel=nnei, n_r_sel=0)
    grad_coord = -force
    nframes = tf.shape(coord)[0]

    def box_gradient():
        virial, _ = op_module.prod_virial_se_a(grad_descrpt, descrpt_deriv, rij, nlist, natoms,
                                               n_a_sel=nnei, n_r_sel=0)
        r = tf.reshape(coord, [nframes, -1, 3])
        g = tf.reshape(grad_coord, [nframes, -1, 3])
        strain = tf.linalg.matrix_transpose(tf.reshape(virial, [nframes, 3, 3]))
        strain += tf.einsum("nia,nib->nab", r, g)
        h = tf.reshape(box, [nframes, 3, 3])
        return tf.reshape(-tf.linalg.solve(tf.linalg.matrix_transpose(h), strain), [nframes, 9])

    # The box enters only with mesh of length 6 (periodic search inside the op).
    grad_box = tf.cond(tf.equal(tf.size(mesh), 6), box_gradient, lambda: tf.zeros_like(box))
    return [grad_coord, None, None, grad_box, None, None, None]


@ops.RegisterGradient("TabulateFusionSeA")
def _tabulate_fusion_se_a_grad(op, dy):
    # DeePMD-kit: deepmd/tf/op/_tabulate_grad.py; the table and its grid are constants.
    dy_dem_x, dy_dem = op_module.tabulate_fusion_se_a_grad(
        op.inputs[0], op.inputs[1], op.inputs[2], op.inputs[3], dy, op.outputs[0])
    return [None, None, dy_dem_x, dy_dem]


@ops.RegisterGradient("TabulateFusionSeAGrad")
def _tabulate_fusion_se_a_grad_grad(op, dz_dy_dem_x, dz_dy_dem):
    # Only dy carries a second gradient (DeePMD-kit: deepmd/tf/op/_tabulate_grad.py).
    dz_dy = op_module.tabulate_fusion_se_a_grad_grad(
        op.inputs[0], op.inputs[1], op.inputs[2], op.inputs[3], dz_dy_dem_x, dz_dy_dem,
        op.inputs[5], is_sorted=True)
    return [None, None, None, None, dz_dy, None]


def _product_grads(mm, op, grad):
    """The gradients of z = op(x) op(y) by the product mm (TensorFlow's MatMul and BatchMatMulV2
    gradients), so that every order of derivative stays on mm's op."""
    x, y = op.inputs
    adj_x, adj_y = op.get_attr("adj_x"), op.get_attr("adj_y")
    if not adj_x and not adj_y:
        return mm(grad, y, adj_y=True), mm(x, grad, adj_x=True)
    if not adj_x:
        return mm(grad, y), mm(grad, x, adj_x=True)
    if not adj_y:
        return mm(y, grad, adj_y=True), mm(x, grad)
    return mm(y, grad, adj_x=True, adj_y=True), mm(grad, x, adj_x=True, adj_y=True)


@ops.RegisterGradient("TebdBatchMatMul")
def _batch_mat_mul_grad(op, grad):
    return _product_grads(op_module.tebd_batch_mat_mul, op, grad)


@ops.RegisterGradient("TebdMatMul")
def _mat_mul_grad(op, grad):
    return _product_grads(op_module.tebd_mat_mul, op, grad)


@ops.RegisterGradient("TebdEmbeddingNet")
def _embedding_net_grad(op, grad_g, grad_dg, grad_tape):
    """(g, dg/ds) of the fused embedding net: every weight gradient from TebdEmbeddingNetGrad.
    When only g is differentiated (the force's pass back, dE/ds = <dE/dg, dg/ds>), the gradient
    of s is that product (TebdRowDot), so that the force's own derivative with respect to the
    weights (the force loss) comes back here through dg/ds; then the op's tangent part runs
    too."""
    s = op.inputs[0]
    g, dg, tape = op.outputs
    tangent = not _is_zeros(grad_dg)
    if grad_g is None:
        grad_g = tf.zeros_like(g)
    out, source = _net_grad(op, s, tape, _no_contraction(g) + _no_force(g), grad_g,
                            grad_dg if tangent else grad_g, tangent)
    if tangent:
        grad_s = out.grad_s
    else:  # per output, then summed into the rows the outputs are of
        grad_s = tf.math.unsorted_segment_sum(op_module.tebd_row_dot(grad_g, dg), source,
                                              tf.size(s))
    return [grad_s, None] + _weight_grads(out) + [None]


def _net_grad(op, s, tape, env, grad_g, grad_dg, tangent: bool):
    """TebdEmbeddingNetGrad for the fused net `op` (TebdEmbeddingNet or TebdEmbeddingContract,
    whose inputs from index on are the same), the rows' s given, env its env_* and force_*
    inputs; returns it and the op's source."""
    n = op.get_attr("N")
    index, table, slope = op.inputs[1:4]
    layers = [list(op.inputs[4 + k * n:4 + (k + 1) * n]) for k in range(3)]  # W, b, timestep
    source = op.inputs[4 + 3 * n]
    out = op_module.tebd_embedding_net_grad(
        s, index, table, slope, *layers, source, tape, *env, grad_g, grad_dg,
        rules=op.get_attr("rules"), resnet_dt=op.get_attr("resnet_dt"), tangent=tangent)
    return out, source


def _weight_grads(out) -> list:
    """The gradients of table, slope and the layers, in the fused ops' input order."""
    return ([out.grad_table, out.grad_slope] + list(out.grad_matrices) + list(out.grad_biases)
            + list(out.grad_timesteps))


@ops.RegisterGradient("TebdEmbeddingContract")
def _embedding_contract_grad(op, grad_a, grad_g, grad_dg, grad_tape):
    """(a, g, dg/ds) of the fused net and contraction a = rows^T g per atom (or per atom and
    contraction group), s = rows[:, 0] (then the shared rows' s). The force's pass back (only
    a differentiated) is TebdContractRowsGrad: g u^T and the part through s, <rows u, dg/ds>
    per row, without a matrix of the size of g; the weights' gradients are
    TebdEmbeddingNetGrad's, of g's adjoint rows u (+ the adjoint of g) and, once the force
    loss is differentiated, dg/ds's adjoint (then the part through s comes from that op too)."""
    n = op.get_attr("N")
    groups = op.get_attr("groups")
    rows = op.inputs[0]
    shared, natoms, group = op.inputs[5 + 3 * n:8 + 3 * n]
    _, g, dg, tape = op.outputs
    nrows = tf.shape(rows)[0]
    s = tf.concat([rows[:, 0], shared], axis=0)
    slots = nrows // tf.maximum(natoms, 1)  # not -1: no atoms, no rows
    rows3 = tf.reshape(rows, tf.stack([natoms, slots, 4]))
    width = tf.shape(g)[1]
    contracted = not _is_zeros(grad_a)
    force = _force_pass(op, grad_g, grad_dg) if contracted else None
    if force is not None:  # the force pass's adjoints of g and dg/ds: made in the net's grad
        grad_g, grad_dg = None, tf.zeros([0, width], g.dtype)
    tangent = force is not None or not _is_zeros(grad_dg)
    from_g = None if _is_zeros(grad_g) else grad_g
    direct = along_s = None
    env = _no_contraction(g)  # g's adjoint through a, made inside the gradient op
    if contracted:
        by_atom_g = tf.stack([natoms, slots, width])
        if groups == 1:  # each row's adjoint in grad_a is its atom's: no group tensors
            group3 = index = tf.zeros([0], tf.int32)
        else:  # its atom's and group's
            group3 = tf.reshape(group, tf.stack([natoms, slots]))
            index = tf.range(nrows, dtype=tf.int32) // slots * groups + group
        direct, along_s = op_module.tebd_contract_rows_grad(
            rows3, tf.reshape(g, by_atom_g), tf.reshape(dg, by_atom_g), grad_a, group3)
        env = (rows, grad_a, index)
    env += _no_force(g) if force is None else force
    net_grad_g = tf.zeros([0, width], g.dtype) if from_g is None else from_g
    out, source = _net_grad(op, s, tape, env, net_grad_g, grad_dg if tangent else net_grad_g,
                            tangent)
    if tangent:  # the op's own gradient of s: through g's and dg/ds's adjoints alike
        grad_s = out.grad_s
    else:
        per_output = [tf.reshape(along_s, [-1])] if along_s is not None else []
        if from_g is not None:
            per_output.append(op_module.tebd_row_dot(from_g, dg))
        grad_s = tf.math.unsorted_segment_sum(
            tf.add_n(per_output) if per_output else tf.zeros([nrows], g.dtype), source,
            tf.size(s))
    own = grad_s[:nrows]
    if direct is None:
        grad_rows = tf.pad(own[:, None], [[0, 0], [0, 3]])
    else:
        direct = tf.reshape(direct, [-1, 4])
        grad_rows = tf.concat([direct[:, :1] + own[:, None], direct[:, 1:]], axis=1)
    return [grad_rows, None] + _weight_grads(out) + [None, grad_s[nrows:], None, None]


def _no_contraction(g):
    """TebdEmbeddingNetGrad's env_rows, env_u and env_index when g's adjoint has no part
    through a contraction: all empty."""
    return (tf.zeros([0, 4], g.dtype), tf.zeros([0, 4, tf.shape(g)[1]], g.dtype),
            tf.zeros([0], tf.int32))


def _no_force(g) -> tuple:
    """TebdEmbeddingNetGrad's force_rows, force_along and force_u when the force pass's
    adjoints come as grad_g and grad_dg (or not at all): all empty."""
    return (tf.zeros([0, 4], g.dtype), tf.zeros([0], g.dtype),
            tf.zeros([0, 4, tf.shape(g)[1]], g.dtype))


def _force_pass(op, grad_g, grad_dg):
    """TebdEmbeddingNetGrad's force inputs when the adjoints of the fused contraction `op`'s g
    and dg/ds are those of its own force pass alone (TebdContractRowsGradGrad, parts 'g', of
    the op's g and dg/ds): its grad_direct and grad_along_s per row and u, which the net's
    gradient turns into those adjoints row by row; else None (they come as matrices)."""
    if grad_g is None or grad_dg is None:
        return None
    # by rows of atoms' slots there ([atoms, slots, width]), reshaped to g's rows here
    grad_g, grad_dg = _unreshaped(grad_g), _unreshaped(grad_dg)
    pass_op = grad_g.op
    if (pass_op.type != "TebdContractRowsGradGrad"
            or pass_op.get_attr("parts") not in (b"g", "g")
            or grad_g.name != pass_op.outputs[0].name
            or grad_dg.name != pass_op.outputs[1].name):
        return None
    g, dg = _unreshaped(pass_op.inputs[1]), _unreshaped(pass_op.inputs[2])
    if g.name != op.outputs[1].name or dg.name != op.outputs[2].name:
        return None
    _, _, _, u, _, grad_direct, grad_along_s = pass_op.inputs
    return (tf.reshape(grad_direct, [-1, 4]), tf.reshape(grad_along_s, [-1]), u)


def _unreshaped(x):
    """x, or the tensor it reshapes."""
    return x.op.inputs[0] if x.op.type == "Reshape" else x


@ops.RegisterGradient("TebdContractRowsGrad")
def _contract_rows_grad(op, grad_direct, grad_along_s):
    rows, g, dg, u, group = op.inputs
    grad_direct = tf.zeros_like(rows) if grad_direct is None else grad_direct
    grad_along_s = (tf.zeros_like(op.outputs[1]) if grad_along_s is None else grad_along_s)
    # the adjoints of g and dg/ds in an op of their own: the fused contraction's gradient
    # makes them row by row in its net's gradient instead (_force_pass), and this op is not run
    of_rows = op_module.tebd_contract_rows_grad_grad(rows, g, dg, u, group, grad_direct,
                                                     grad_along_s, parts="g")
    of_u = op_module.tebd_contract_rows_grad_grad(rows, g, dg, u, group, grad_direct,
                                                  grad_along_s, parts="u")
    # rows: grad_along_s (dg u^T) per row; only a second derivative with respect to the rows
    # needs it (the training step's weight gradient does not: the op is then not run)
    grad_rows = grad_along_s[..., None] * _rows_of_u(dg, u, group)
    return [grad_rows, of_rows.grad_g, of_rows.grad_dg_ds, of_u.grad_u, None]


def _rows_of_u(dg, u, group):
    """dg u^T per row [atoms, slots, 4], each row with its atom's (and group's) u."""
    if group.shape.num_elements() == 0:  # one group (an empty group tensor)
        return op_module.tebd_batch_mat_mul(dg, u, adj_y=True)
    atoms = tf.shape(dg)[0]
    groups = tf.shape(u)[0] // tf.maximum(atoms, 1)
    u_of_row = tf.gather(u, tf.range(atoms)[:, None] * groups + group)  # [atoms, slots, 4, M]
    return tf.reduce_sum(dg[:, :, None, :] * u_of_row, axis=-1)


@ops.RegisterGradient("TebdRowDot")
def _row_dot_grad(op, grad):
    return list(op_module.tebd_row_dot_grad(op.inputs[0], op.inputs[1], grad))


@ops.RegisterGradient("TebdRowDotGrad")
def _row_dot_grad_grad(op, grad_a, grad_b):
    """(z b, z a) of TebdRowDotGrad(a, b, z): linear in each input, so its gradient is made of
    the two ops again."""
    a, b, z = op.inputs
    grad_a = tf.zeros_like(a) if grad_a is None else grad_a
    grad_b = tf.zeros_like(a) if grad_b is None else grad_b
    via_b, via_a = op_module.tebd_row_dot_grad(grad_a, grad_b, z)  # z grad_b, z grad_a
    grad_z = op_module.tebd_row_dot(grad_a, b) + op_module.tebd_row_dot(grad_b, a)
    return [via_b, via_a, grad_z]


def _is_zeros(grad) -> bool:
    """Whether grad is None or the zeros that tf.gradients and GradientTape put in for an
    output nothing depends on (ZerosLike, a Fill of 0, a zero constant)."""
    if grad is None:
        return True
    if grad.op.type == "ZerosLike":
        return True
    if grad.op.type == "Fill":
        value = tf.get_static_value(grad.op.inputs[1])
        return value is not None and not value.any()
    value = tf.get_static_value(grad)
    return value is not None and not value.any()


@ops.RegisterGradient("TebdL2Normalize")
def _l2_normalize_grad(op, grad):
    return op_module.tebd_l2_normalize_grad(op.inputs[0], grad)


@ops.RegisterGradient("TebdL2NormalizeGrad")
def _l2_normalize_grad_grad(op, grad):
    return list(op_module.tebd_l2_normalize_grad_grad(op.inputs[0], op.inputs[1], grad))


@ops.RegisterGradient("TebdLayerNorm")
def _layer_norm_grad(op, grad):
    x, gamma, eps, _ = op.inputs
    grad_x, grad_gamma, grad_beta = op_module.tebd_layer_norm_grad(x, gamma, eps, grad)
    return [grad_x, grad_gamma, None, grad_beta]


@ops.RegisterGradient("TebdLayerNormGrad")
def _layer_norm_grad_grad(op, grad_x, grad_gamma, grad_beta):
    x, gamma, eps, grad_y = op.inputs
    upstream = [g if g is not None else tf.zeros_like(like)
                for g, like in ((grad_x, x), (grad_gamma, gamma), (grad_beta, gamma))]
    out = op_module.tebd_layer_norm_grad_grad(x, gamma, eps, grad_y, *upstream)
    return [out.grad_x, out.grad_gamma, None, out.grad_grad_y]


def _refuse_third_derivative(op_type: str, what: str) -> None:
    """Registers for op_type (the last gradient op of a fused kernel) a gradient that raises:
    the training step differentiates the fused kernels twice only (forces, then the weights)."""
    def refuse(op, *grads):
        raise LookupError(f"{op_type} has no gradient: {what} is differentiable twice (forces, "
                          "then the weights), not three times")

    ops.RegisterGradient(op_type)(refuse)


_refuse_third_derivative("TebdEmbeddingNetGrad", "the fused embedding net")
_refuse_third_derivative("TebdContractRowsGradGrad", "the fused contraction")
_refuse_third_derivative("TebdL2NormalizeGradGrad", "the fused L2 normalisation")
_refuse_third_derivative("TebdLayerNormGradGrad", "the fused layer normalisation")
