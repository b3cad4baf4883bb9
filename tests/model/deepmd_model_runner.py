"""Evaluates DeePMD-kit TensorFlow energy models with given weights; executed by the oracle venv's
python (DeePMD-kit 3.2.0, see tests/reference/deepmd_oracle.py), never imported by deepmd_tebd.

    python deepmd_model_runner.py INPUT.npz OUTPUT.npz

INPUT.npz holds "meta" (JSON: a list with one {"model": <DeePMD-kit `model` section>} per case)
and, per case i, the frame arrays "c{i}/in/coord" [nf, nall*3], "c{i}/in/atype" [nf, nall],
"c{i}/in/natoms", "c{i}/in/box" [nf, 9], "c{i}/in/mesh" (optionally "c{i}/in/fparam",
"c{i}/in/aparam") and the variables
"c{i}/var/<graph name>" (e.g. "c0/var/filter_type_all/matrix_1"). Each case is built in a graph of
its own; every variable with a given value is loaded (reshaped to DeePMD-kit's shape). OUTPUT.npz
holds "c{i}/<key>" for energy, force, virial, atom_energy, atom_virial (descriptor and rmat when
the graph names them), "c{i}/init/<graph name>": each variable's initial (seeded) value,
"c{i}/missing": the names of the variables that kept their random initial
values, and "c{i}/unmatched": the given names that no variable of the graph has.
"""
import json
import sys

import numpy as np


def run_case(tf, Model, meta, arrays):
    with tf.Graph().as_default():
        model = Model(**meta["model"])
        t_coord = tf.placeholder(tf.float64, [None], name="t_coord")
        t_type = tf.placeholder(tf.int32, [None], name="t_type")
        t_natoms = tf.placeholder(tf.int32, [None], name="t_natoms")
        t_box = tf.placeholder(tf.float64, [None], name="t_box")
        t_mesh = tf.placeholder(tf.int32, [None], name="t_mesh")
        feed_extra, input_dict = {}, {}
        for key in ("fparam", "aparam"):
            if "in/" + key in arrays:
                input_dict[key] = tf.placeholder(tf.float64, [None], name="t_" + key)
                feed_extra[input_dict[key]] = arrays["in/" + key].reshape(-1)
        out = model.build(t_coord, t_type, t_natoms, t_box, t_mesh, input_dict, suffix="",
                          reuse=False)
        fetch = {"energy": out["energy"], "force": out["force"], "virial": out["virial"],
                 "atom_energy": out["atom_ener"], "atom_virial": out["atom_virial"]}
        graph = tf.get_default_graph()
        for key, node in (("descriptor", "o_descriptor:0"), ("rmat", "o_rmat:0")):
            try:
                fetch[key] = graph.get_tensor_by_name(node)
            except KeyError:
                pass
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            initial = sess.run({v.name.split(":")[0]: v for v in tf.global_variables()})
            missing, matched = [], set()
            for var in tf.global_variables():
                name = var.name.split(":")[0]
                if "var/" + name in arrays:
                    matched.add("var/" + name)
                    var.load(np.asarray(arrays["var/" + name]).reshape(var.shape.as_list()),
                             sess)
                else:
                    missing.append(name)
            feed = {t_coord: arrays["in/coord"].reshape(-1),
                    t_type: arrays["in/atype"].reshape(-1), t_natoms: arrays["in/natoms"],
                    t_box: arrays["in/box"].reshape(-1), t_mesh: arrays["in/mesh"], **feed_extra}
            result = sess.run(fetch, feed_dict=feed)
    result.update({"init/" + name: value for name, value in initial.items()})
    result["missing"] = np.array(missing, dtype=str)
    result["unmatched"] = np.array(sorted(k[4:] for k in arrays
                                          if k.startswith("var/") and k not in matched), dtype=str)
    return result


def main(input_path, output_path):
    data = np.load(input_path)
    cases = json.loads(str(data["meta"]))
    from deepmd.tf.env import tf
    from deepmd.tf.model.model import Model

    results = {}
    for i, meta in enumerate(cases):
        prefix = f"c{i}/"
        arrays = {k[len(prefix):]: data[k] for k in data.files if k.startswith(prefix)}
        for key, value in run_case(tf, Model, meta, arrays).items():
            results[prefix + key] = value
    np.savez(output_path, **results)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
