"""The one loader of the custom-op library.

The library registers DeePMD-kit's ops (ProdEnvMatA, ProdForceSeA, ProdVirialSeA, the two
gradient ops, and the tabulation ops TabulateFusionSeA[Grad[Grad]] of compressed models) under
DeePMD-kit's names and signatures, and the training step's own kernels (TebdBatchMatMul,
TebdMatMul, TebdEmbeddingNet[Grad]; deepmd_tebd/model/kernels.py). ``op_module`` exposes them as snake_case
functions (``op_module.prod_env_mat_a`` ...); importing this module also registers their gradients.
"""
from __future__ import annotations

import json
from pathlib import Path

import tensorflow as tf

_HERE = Path(__file__).resolve().parent
_REBUILD = (
    "Rebuild it against the installed TensorFlow from the source tree with "
    "`pip install --no-build-isolation --no-deps --force-reinstall -e .` "
    "(or `python setup.py build_ext --inplace`)."
)


class OpLibraryError(ImportError):
    """The op library is missing, cannot be loaded, or was built for another TensorFlow."""


def _load():
    libraries = sorted(_HERE.glob("_op_library*.so"))
    if not libraries:
        raise OpLibraryError(f"The deepmd_tebd op library is missing from {_HERE}. {_REBUILD}")
    info_path = _HERE / "build_info.json"
    built_for = None
    if info_path.exists():
        built_for = json.loads(info_path.read_text()).get("tensorflow")
    if built_for != tf.__version__:
        raise OpLibraryError(
            f"The deepmd_tebd op library {libraries[0].name} was built against TensorFlow "
            f"{built_for or 'of unknown version'}, but TensorFlow {tf.__version__} is installed. "
            f"{_REBUILD}"
        )
    try:
        return tf.load_op_library(str(libraries[0]))
    except (tf.errors.NotFoundError, OSError) as err:
        raise OpLibraryError(
            f"The deepmd_tebd op library {libraries[0]} failed to load: {err}. {_REBUILD}"
        ) from err


op_module = _load()

from . import gradients  # noqa: E402,F401  (registers the gradients)

__all__ = ["op_module", "OpLibraryError"]
