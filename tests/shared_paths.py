"""Where the tests find ../shared beside the checkout: DeePMD-kit's water data and example inputs.
$DEEPMD_TEBD_WATER points at another copy of the water data."""
import os
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
WATER = Path(os.environ.get("DEEPMD_TEBD_WATER", SHARED / "data/water"))
INPUTS = SHARED / "inputs"
