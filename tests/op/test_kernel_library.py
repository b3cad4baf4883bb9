"""The kernel library stands without TensorFlow: it builds alone, passes its harness's CPU checks,
its CUDA kernels compile with the nvcc on this machine, and the TF op sources compile with their
GPU kernel registrations enabled. setup.py and op/Makefile take the nvcc flags from one list."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OP = ROOT / "op"
sys.path.insert(0, str(OP))
from cuda_flags import cuda_make_variables  # noqa: E402

pytestmark = pytest.mark.slow


def make(target, build_dir, timeout):
    cmd = ["make", "-C", str(OP), f"BUILD={build_dir}"] + ([target] if target else [])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cpu_library(tmp_path_factory):
    build = tmp_path_factory.mktemp("kernels")
    result = make(None, build, 600)
    assert result.returncode == 0, result.stdout + result.stderr
    return build / "libdeepmd_tebd_kernels.so"


def test_kernel_library_builds_without_tensorflow(cpu_library):
    deps = subprocess.run(["ldd", str(cpu_library)], capture_output=True, text=True).stdout
    assert "tensorflow" not in deps
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(cpu_library)],
                             capture_output=True, text=True).stdout
    for name in ("dtk_prod_env_mat_a_cpu_d", "dtk_prod_force_a_cpu_f", "dtk_prod_virial_a_cpu_d",
                 "dtk_tabulate_fusion_se_a_cpu_d", "dtk_tabulate_fusion_se_a_grad_grad_cpu_f"):
        assert name in symbols


def test_harness_cpu_checks_pass(cpu_library):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    result = subprocess.run([sys.executable, str(OP / "tests/harness.py"), "--cpu-only",
                             "--lib", str(cpu_library), "--no-bench"],
                            capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "FAIL" not in result.stdout
    assert "PASS" in result.stdout


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed on this machine")
def test_cuda_kernels_compile_with_nvcc(tmp_path):
    result = make("cuda", tmp_path, 1500)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert (tmp_path / "libdeepmd_tebd_kernels_cuda.so").exists()


@pytest.mark.skipif(not Path("/usr/local/cuda/include/cuda_runtime.h").exists(),
                    reason="the CUDA headers are not installed on this machine")
def test_tf_gpu_kernel_registrations_compile():
    import scipy_openblas32  # the training kernels' cblas.h (setup.py)
    import tensorflow as tf

    flags = tf.sysconfig.get_compile_flags() + [f"-I{scipy_openblas32.get_include_dir()}"]
    for source in sorted((OP / "tf").glob("*.cc")):
        result = subprocess.run(
            ["g++", "-fsyntax-only", *flags, "-DGOOGLE_CUDA=1", "-DEIGEN_USE_GPU",
             "-I/usr/local/cuda/include", f"-I{OP / 'kernels/include'}", f"-I{OP / 'tf'}",
             str(source)], capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{source.name}:\n{result.stderr[-4000:]}"


def test_setup_and_makefile_take_the_nvcc_flags_from_one_list(tmp_path):
    flags = cuda_make_variables()
    wanted = " ".join(flags["NVCC_FLAGS"] + flags["CUDA_ARCH"])
    dry = subprocess.run(["make", "-n", "-C", str(OP), f"BUILD={tmp_path}", "cuda"],
                         capture_output=True, text=True, timeout=60).stdout
    nvcc = [line for line in dry.splitlines() if " -c " in line and "nvcc" in line]
    assert nvcc and all(wanted in line for line in nvcc)
    setup = (ROOT / "setup.py").read_text()
    assert 'flags["NVCC_FLAGS"]' in setup and 'flags["CUDA_ARCH"]' in setup
    for flag in ("-fmad", "-prec-div", "-gencode", "-ftz"):  # written in op/cuda.mk only
        assert flag not in setup and flag not in (OP / "Makefile").read_text()
