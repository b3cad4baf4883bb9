"""The script the config tests mutate: DeePMD-kit's type-embedding water example, in ../shared
beside the checkout."""
import json
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2].parent / "shared" / "inputs" / \
    "water_se_e2_a_tebd.json"


@pytest.fixture(scope="module")
def tebd() -> dict:
    """The example script (each test deep-copies what it mutates)."""
    if not EXAMPLE.is_file():
        pytest.skip(f"DeePMD-kit's example input {EXAMPLE} is not there")
    return json.loads(EXAMPLE.read_text())
