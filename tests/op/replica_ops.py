"""The custom ops (ProdEnvMatA, ProdForceSeA, ProdVirialSeA and the force gradient) run by every
replica of a tf.distribute.MirroredStrategy on its own frame; for the placement tests.

Run as a script, it splits the CPU into two logical devices first and prints the report as JSON,
so the placement logic is also exercised where no GPU is visible."""
import json
import sys

import numpy as np

RCUT, RCUT_SMTH, SEL = 4.0, 0.5, [12, 24]


def frame(seed):
    """A small periodic two-type frame, atoms sorted by type: coord [1, nall*3], type, box."""
    rng = np.random.default_rng(seed)
    n = 24
    box = np.diag([7.0, 7.5, 8.0]) + rng.uniform(-0.3, 0.3, (3, 3)) * (1 - np.eye(3))
    coord = rng.uniform(0, 1, (n, 3)) @ box
    atype = np.sort(rng.integers(0, 2, n)).astype(np.int32)
    return coord.reshape(1, -1), atype.reshape(1, -1), box.reshape(1, 9)


def ops(tf, op_module, coord, atype, box):
    """Env mat, force, virial and d(sum(w*force))/d(net_deriv) of one frame (net_deriv = em)."""
    ntypes, nnei = len(SEL), sum(SEL)
    nloc = atype.shape[1]
    natoms = tf.constant([nloc, nloc] + [int(np.sum(atype == t)) for t in range(ntypes)],
                         tf.int32)
    davg = tf.zeros((ntypes, nnei * 4), tf.float64)
    dstd = tf.ones((ntypes, nnei * 4), tf.float64)
    em, em_deriv, rij, nlist = op_module.prod_env_mat_a(
        coord, atype, natoms, box, tf.zeros(6, tf.int32), davg, dstd, rcut_a=-1.0, rcut_r=RCUT,
        rcut_r_smth=RCUT_SMTH, sel_a=SEL, sel_r=[0] * ntypes)
    with tf.GradientTape() as tape:
        tape.watch(em)
        force = op_module.prod_force_se_a(em, em_deriv, nlist, natoms, n_a_sel=nnei, n_r_sel=0)
        loss = tf.reduce_sum(force * tf.range(1, 1 + 3 * nloc, dtype=tf.float64))
    grad_net = tape.gradient(loss, em)
    virial, _ = op_module.prod_virial_se_a(em, em_deriv, rij, nlist, natoms, n_a_sel=nnei,
                                           n_r_sel=0)
    return {"em": em, "force": force, "virial": virial, "grad_net": grad_net}


def replica_report(tf, op_module, strategy):
    """Per replica: the devices of its op outputs, the device it should run on, and the largest
    difference from the same ops run on the CPU."""
    frames = [frame(seed) for seed in range(strategy.num_replicas_in_sync)]

    def inputs(ctx):
        coord, atype, box = frames[ctx.replica_id_in_sync_group]
        return tf.constant(coord), tf.constant(atype), tf.constant(box)

    values = strategy.experimental_distribute_values_from_function(inputs)
    out = strategy.run(lambda c, a, b: ops(tf, op_module, c, a, b), args=values)
    report = []
    devices = strategy.extended.worker_devices
    for r, dev in enumerate(devices):
        local = {k: strategy.experimental_local_results(v)[r] for k, v in out.items()}
        with tf.device("/CPU:0"):
            ref = ops(tf, op_module, *[tf.constant(x) for x in frames[r]])
        diff = max(float(np.max(np.abs(local[k].numpy() - ref[k].numpy()))) for k in ref)
        report.append({"replica_device": dev, "output_devices": [t.device for t in local.values()],
                       "max_diff_from_cpu": diff})
    return report


def main():
    """Two logical CPUs, a MirroredStrategy over them, the report as JSON on stdout."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from deepmd_tebd.op import op_module

    strategy = tf.distribute.MirroredStrategy(["/CPU:0", "/CPU:1"])
    print(json.dumps(replica_report(tf, op_module, strategy)))


if __name__ == "__main__":
    sys.exit(main())
