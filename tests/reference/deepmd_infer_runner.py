"""Runs in DeePMD-kit's venv (see deepmd_oracle.py): evaluates a frozen model with DeePMD-kit's
own `DeepPot` and writes the results to an .npz file.

    python deepmd_infer_runner.py MODEL.pb IN.npz OUT.npz [REPEATS]

IN.npz: coords [nf, nat, 3], types [nat], and cells [nf, 9] unless the frames are open. OUT.npz:
energy, force, virial, atom_energy, atom_virial as DeePMD-kit returns them, and type_map,
rcut, ntypes, dim_fparam, dim_aparam. With REPEATS > 0 the evaluation (atomic=False) is also timed: one warm-up call, then
REPEATS calls, their wall times in `seconds`. Only NumPy and DeePMD-kit are imported.
"""
import sys

import numpy as np


def main(model, inputs, output, repeats="0"):
    import time

    from deepmd.infer import DeepPot

    data = np.load(inputs)
    cells = data["cells"] if "cells" in data.files else None
    dp = DeepPot(model)
    seconds = []
    if int(repeats) > 0:
        dp.eval(data["coords"], cells, data["types"])
        for _ in range(int(repeats)):
            t0 = time.perf_counter()
            dp.eval(data["coords"], cells, data["types"])
            seconds.append(time.perf_counter() - t0)
        e, f, v = dp.eval(data["coords"], cells, data["types"])
        np.savez(output, energy=e, force=f, virial=v, seconds=np.array(seconds))
        return
    e, f, v, ae, av = dp.eval(data["coords"], cells, data["types"], atomic=True)
    np.savez(output, energy=e, force=f, virial=v, atom_energy=ae, atom_virial=av,
             type_map=np.array(dp.get_type_map()), rcut=dp.get_rcut(),
             ntypes=dp.get_ntypes(), dim_fparam=dp.get_dim_fparam(),
             dim_aparam=dp.get_dim_aparam())


if __name__ == "__main__":
    main(*sys.argv[1:5])
