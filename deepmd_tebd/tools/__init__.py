"""Tools that ship with deepmd_tebd and need nothing beyond NumPy.

``deepmd_tebd.tools.water``: example training data in DeePMD-kit's npy layout, from a classical
flexible-water model (``water_forcefield``: SPC/Fw parameters, damped shifted-force Coulomb) and
a molecular-dynamics sampler (``water_dynamics``). See ``deepmd_tebd/tools/README.md``.
"""
