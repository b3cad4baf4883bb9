"""Tools that ship with deepmd_tebd and need nothing beyond NumPy.

``deepmd_tebd.tools.water``: a classical flexible-water model (SPC/Fw parameters, damped
shifted-force Coulomb) and a molecular-dynamics sampler that writes example training data in
DeePMD-kit's npy layout. See ``deepmd_tebd/tools/README.md``.
"""
