"""deepmd_tebd: Deep Potential models with type embedding, a drop-in for DeePMD-kit's TF workflow.

Importing the package is cheap; TensorFlow and the op library load with ``deepmd_tebd.op``.
"""

__version__ = "0.1.0"
