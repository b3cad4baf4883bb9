"""`dp check INPUT`: validate an input script and print it normalised."""
from __future__ import annotations

import json

from ..config import load_config


def run(input_path: str) -> int:
    config = load_config(input_path)
    print(json.dumps(config, indent=4))
    return 0
