"""Test configuration: quiet TensorFlow, make tests/reference importable as `reference`, and
start making DeePMD-kit's venv (the oracle) when the session starts, so that its creation runs
beside the tests that do not need it."""
import os
import sys
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def pytest_sessionstart(session):
    """In the controlling process (not in a pytest-xdist worker, and not for the quick tier,
    `-m "not slow"`), find or create the oracle venv in a background thread; the tests that
    need it wait for it on its lock file (reference/deepmd_oracle.py)."""
    if os.environ.get("PYTEST_XDIST_WORKER") or "not slow" in (session.config.option.markexpr
                                                               or ""):
        return
    from reference.deepmd_oracle import oracle_python

    threading.Thread(target=oracle_python, name="oracle-venv", daemon=True).start()
