"""`dp check INPUT`: validate an input script against the schema and its data, and print it
normalised (sel "auto" resolved unless the neighbour statistics are skipped)."""
from __future__ import annotations

import json

from ..config import load_settings
from ..data.script_check import check_against_data, warn_descriptor_settings


def run(input_path: str, skip_neighbor_stat: bool = False, skip_data: bool = False) -> int:
    """Prints the normalised script (sel resolved against the data unless skipped)."""
    config = load_settings(input_path)
    if not skip_data:  # warns as dp train does
        config, _ = check_against_data(config, input_path, skip_neighbor_stat)
    else:
        warn_descriptor_settings(config, input_path)
    print(json.dumps(config.script, indent=4))
    return 0
