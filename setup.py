"""Build and install deepmd_tebd.

The custom-op library (op/kernels + op/tf) is compiled at install time against the TensorFlow that
is installed, with the flags TensorFlow reports (tf.sysconfig). TensorFlow must therefore be
installed first and the build must see it: install with

    pip install --no-build-isolation -e .

The CUDA kernels (op/kernels/src/cuda) are added when TensorFlow is a CUDA build and nvcc is on the
PATH (set DEEPMD_TEBD_NO_CUDA=1 to skip them), compiled with the nvcc flags of op/cuda.mk, which
op/Makefile uses too. The CPU build never depends on them.

The training step's own kernels (NATIVE_SOURCES: dense products, the fused embedding net and
normalisations) are compiled for the building machine's processor (-march=native, when the
compiler takes it; set DEEPMD_TEBD_PORTABLE=1 to build them for any x86-64): the library is built
where it runs. Their dense products run on OpenBLAS, from the scipy-openblas32 package
(NumPy's and SciPy's build of it), which must therefore be installed before this package too.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "op"))
from cuda_flags import cuda_make_variables  # noqa: E402  (op/cuda.mk, shared with op/Makefile)

VERSION = "0.1.0"
CPU_SOURCES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "op/kernels/src").glob("*.cc"))
# compiled with the processor's own instructions (BuildOps._compile_native)
NATIVE_SOURCES = ["op/tf/batch_mat_mul.cc", "op/tf/embedding_net.cc", "op/tf/l2_normalize.cc",
                  "op/tf/layer_norm.cc", "op/tf/row_dot.cc", "op/tf/contract_rows.cc"]
TF_SOURCES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "op/tf").glob("*.cc")
                    if str(p.relative_to(ROOT)) not in NATIVE_SOURCES)
CUDA_SOURCES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "op/kernels/src/cuda").glob("*.cu"))


def _tensorflow():
    try:
        import tensorflow as tf
    except ImportError as err:
        sys.exit(
            "deepmd_tebd compiles its ops against the installed TensorFlow, but TensorFlow cannot "
            f"be imported ({err}). Install it first (pip install tensorflow-cpu), then install "
            "this package with: pip install --no-build-isolation -e ."
        )
    return tf


def _openblas():
    try:
        import scipy_openblas32
    except ImportError as err:
        sys.exit(
            "deepmd_tebd links its training kernels against OpenBLAS from the scipy-openblas32 "
            f"package, which cannot be imported ({err}). Install it first (pip install "
            "scipy-openblas32), then install this package with: pip install --no-build-isolation "
            "-e ."
        )
    return scipy_openblas32


def _newer(sources, target) -> bool:
    """Whether target is missing or older than any of the sources."""
    if not os.path.exists(target):
        return True
    stamp = os.path.getmtime(target)
    return any(os.path.getmtime(src) > stamp for src in sources)


class BuildOps(build_ext):
    """Compiles the op library with TensorFlow's flags and records which TensorFlow it is for."""

    def build_extensions(self):
        tf = _tensorflow()
        ext = self.extensions[0]
        ext.extra_compile_args += tf.sysconfig.get_compile_flags()
        ext.extra_link_args += tf.sysconfig.get_link_flags()
        use_cuda = (
            tf.test.is_built_with_cuda()
            and shutil.which("nvcc") is not None
            and not os.environ.get("DEEPMD_TEBD_NO_CUDA")
        )
        if use_cuda:
            ext.extra_objects += self._compile_cuda(tf)
            cuda_home = Path(shutil.which("nvcc")).resolve().parent.parent
            ext.define_macros += [("GOOGLE_CUDA", "1"), ("EIGEN_USE_GPU", "1"),
                                  ("DTK_WITH_CUDA", "1")]
            ext.include_dirs += [str(cuda_home / "include")]
            ext.library_dirs += [str(cuda_home / "lib64")]
            ext.libraries += ["cudart"]
        openblas = _openblas()
        lib = openblas.get_lib_dir()
        ext.include_dirs.append(openblas.get_include_dir())
        ext.extra_link_args += [os.path.join(lib, openblas.get_library(fullname=True)),
                                f"-Wl,-rpath,{lib}"]  # found where the package keeps it
        native = self._compile_native(ext)
        super().build_extensions()
        info = {"tensorflow": tf.__version__, "cuda": bool(use_cuda), "version": VERSION,
                "native": native, "blas": f"scipy-openblas32 {openblas.__version__}"}
        self._info = Path(self.get_ext_fullpath(ext.name)).parent / "build_info.json"
        self._info.write_text(json.dumps(info, indent=2) + "\n")

    def copy_extensions_to_source(self):
        # editable and in-place builds: the record travels with the library
        super().copy_extensions_to_source()
        shutil.copyfile(self._info, ROOT / "deepmd_tebd/op/build_info.json")

    def get_outputs(self):
        return super().get_outputs() + [str(Path(self.build_lib) / "deepmd_tebd/op/build_info.json")]

    def _compile_native(self, ext) -> bool:
        """Compiles NATIVE_SOURCES into ext's objects, with -march=native unless
        DEEPMD_TEBD_PORTABLE is set or the compiler refuses it; returns whether it was used."""
        flags = list(ext.extra_compile_args)
        native = not os.environ.get("DEEPMD_TEBD_PORTABLE")
        target = self.get_ext_fullpath(ext.name)
        info = Path(target).parent / "build_info.json"
        if not (self.force or _newer(ext.sources + ext.depends, target)) and info.is_file():
            # up to date: build_extension will not link; keep the record of the last build
            return json.loads(info.read_text()).get("native", False)
        if native:
            probe = Path(self.build_temp) / "native_probe.cc"
            probe.parent.mkdir(parents=True, exist_ok=True)
            probe.write_text("int main() { return 0; }\n")
            try:
                self.compiler.compile([str(probe)], output_dir=self.build_temp,
                                      extra_postargs=["-march=native"])
            except Exception:  # a compiler without -march=native: the portable build
                native = False
        objects = self.compiler.compile(
            NATIVE_SOURCES, output_dir=self.build_temp, include_dirs=ext.include_dirs,
            extra_postargs=flags + (["-march=native"] if native else []))
        ext.extra_objects += objects
        return native

    def _compile_cuda(self, tf):
        objects = []
        build = Path(self.build_temp) / "cuda"
        build.mkdir(parents=True, exist_ok=True)
        flags = cuda_make_variables()
        arch = os.environ.get("DEEPMD_TEBD_CUDA_ARCH")
        arch = arch.split() if arch else flags["CUDA_ARCH"]
        for src in CUDA_SOURCES:
            obj = build / (Path(src).name + ".o")
            cmd = ["nvcc", *flags["NVCC_FLAGS"], *arch, "-Iop/kernels/include", "-c", src,
                   "-o", str(obj)]
            print(" ".join(cmd))
            subprocess.check_call(cmd, cwd=ROOT)
            objects.append(str(obj))
        return objects


op_library = Extension(
    "deepmd_tebd.op._op_library",
    sources=CPU_SOURCES + TF_SOURCES,
    # the headers: a change to one rebuilds the library (setuptools tracks only these files)
    depends=sorted(str(p.relative_to(ROOT)) for p in (ROOT / "op").rglob("*.h"))
    + NATIVE_SOURCES,
    include_dirs=["op/kernels/include", "op/kernels/src", "op/tf"],
    extra_compile_args=["-O3", "-fopenmp", "-ffp-contract=off", "-fvisibility=hidden"],
    extra_link_args=["-fopenmp"],
    language="c++",
)

setup(
    name="deepmd_tebd",
    version=VERSION,
    description="Deep Potential models with type embedding, DeePMD-kit compatible, in TensorFlow 2",
    packages=find_packages(include=["deepmd_tebd", "deepmd_tebd.*"]),
    package_data={"deepmd_tebd.op": ["build_info.json"]},
    ext_modules=[op_library],
    cmdclass={"build_ext": BuildOps},
    python_requires=">=3.9",
    install_requires=["numpy", "jsonschema", "pyyaml", "dpdata", "h5py", "scipy-openblas32"],
    extras_require={"test": ["pytest", "pytest-xdist", "hypothesis", "matplotlib", "tensorboard",
                             "ase"],
                    "ase": ["ase"],
                    "plot": ["matplotlib"], "tensorboard": ["tensorboard"]},
    entry_points={"console_scripts": ["dp = deepmd_tebd.cli:main"]},
)
