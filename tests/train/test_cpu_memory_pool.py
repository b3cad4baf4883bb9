"""`dp` has TensorFlow's CPU allocator pool its memory (threads.py: pool_cpu_memory), limited to
the machine's physical memory, and leaves the allocator alone where the user chose."""
import os

import pytest

from deepmd_tebd import cli
from deepmd_tebd.threads import pool_cpu_memory

KEYS = ("TF_CPU_ALLOCATOR_USE_BFC", "TF_CPU_BFC_MEM_LIMIT_IN_MB")


def test_the_pool_is_limited_to_the_machines_memory():
    environ = {}
    pool_cpu_memory(environ)
    physical_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") >> 20
    assert environ == {"TF_CPU_ALLOCATOR_USE_BFC": "true",
                       "TF_CPU_BFC_MEM_LIMIT_IN_MB": str(physical_mb)}


@pytest.mark.parametrize("key, value", [("TF_CPU_ALLOCATOR_USE_BFC", "false"),
                                        ("TF_CPU_BFC_MEM_LIMIT_IN_MB", "2048")])
def test_a_users_allocator_setting_is_kept(key, value):
    environ = {key: value}
    pool_cpu_memory(environ)
    assert environ == {key: value}


def test_dp_sets_the_pool_before_its_command_runs(monkeypatch, tmp_path):
    for key in KEYS:  # recorded by monkeypatch, restored afterwards
        monkeypatch.setenv(key, "unset")
        monkeypatch.delenv(key)
    assert cli.main(["test", "-m", str(tmp_path / "missing.pb"), "-s", str(tmp_path)]) == 1
    assert os.environ["TF_CPU_ALLOCATOR_USE_BFC"] == "true"
