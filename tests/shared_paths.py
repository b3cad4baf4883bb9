"""Where the tests find ../shared beside the checkout: DeePMD-kit's water data and example inputs.
$DEEPMD_TEBD_WATER points at another copy of the water data."""
import os
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
WATER = Path(os.environ.get("DEEPMD_TEBD_WATER", SHARED / "data/water"))
INPUTS = SHARED / "inputs"


def _needs_water():
    import pytest

    return pytest.mark.skipif(not (WATER / "data_0/type.raw").is_file(),
                              reason=f"the water data is not at {WATER}")


needs_water = _needs_water()  # marks tests that read DeePMD-kit's water data

# DeePMD-kit 3.2's water examples, kept as test data (ORIGIN.md there)
DEEPMD_3_2_EXAMPLES = Path(__file__).resolve().parent / "reference/deepmd_kit_3_2_examples"
