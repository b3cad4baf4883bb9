"""The `dp` entry point: --version and -h work without importing TensorFlow."""
import subprocess
import sys

import deepmd_tebd


def run_cli(*args):
    code = ("import sys\nfrom deepmd_tebd.cli import main\n"
            "try:\n    rc = main(sys.argv[1:])\nexcept SystemExit as e:\n    rc = e.code\n"
            "assert 'tensorflow' not in sys.modules, 'the CLI parser imported TensorFlow'\n"
            "sys.exit(rc)\n")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=60)


def test_version_prints_package_version_without_tensorflow():
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"deepmd_tebd v{deepmd_tebd.__version__}"


def test_help_lists_usage_without_tensorflow():
    for args in (["-h"], []):
        result = run_cli(*args)
        assert result.returncode == 0, result.stderr
        assert "usage: dp" in result.stdout


def test_unknown_command_is_a_usage_error():
    result = run_cli("no-such-command")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
