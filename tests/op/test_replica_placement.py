"""Data-parallel training: under tf.distribute.MirroredStrategy every replica runs the custom ops
on its own device, the GPU kernels on that replica's GPU, with the CPU kernels' results."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[2]
BUILD_INFO = ROOT / "deepmd_tebd/op/build_info.json"


def gpu_skip_reason():
    """Why the GPU placement cannot be checked here, or None."""
    if not tf.config.list_physical_devices("GPU"):
        return "no GPU is visible to TensorFlow (tf.config.list_physical_devices('GPU') is empty)"
    if not json.loads(BUILD_INFO.read_text()).get("cuda"):
        return "the op library was built without its CUDA kernels (build_info.json: cuda false)"
    return None


def same_device(a, b):
    """Whether two device strings name the same device (type and index)."""
    def tail(d):
        return tf.DeviceSpec.from_string(d).device_type, tf.DeviceSpec.from_string(d).device_index
    return tail(a) == tail(b)


def check_report(report):
    for r in report:
        assert all(same_device(d, r["replica_device"]) for d in r["output_devices"]), r
        assert r["max_diff_from_cpu"] <= 1e-12, r


@pytest.mark.skipif(gpu_skip_reason() is not None, reason=str(gpu_skip_reason()))
def test_each_mirrored_replica_runs_the_custom_ops_on_its_own_gpu():
    from deepmd_tebd.op import op_module
    from replica_ops import replica_report

    strategy = tf.distribute.MirroredStrategy()  # every visible GPU
    report = replica_report(tf, op_module, strategy)
    assert len(report) == len(tf.config.list_physical_devices("GPU"))
    assert all("GPU" in r["replica_device"] for r in report)
    check_report(report)


@pytest.mark.slow
def test_each_mirrored_replica_runs_the_custom_ops_on_its_own_cpu_device():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
        CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, str(Path(__file__).parent / "replica_ops.py")],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert [r["replica_device"].split("/")[-1] for r in report] == ["device:CPU:0", "device:CPU:1"]
    check_report(report)
