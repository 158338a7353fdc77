"""`python -m aoc_collector` / `aoc run collector`: collect live from Microsoft Graph and the Management
Activity API, and serve the control endpoint (see service.py)."""

from __future__ import annotations

import sys

from aoc_collector.service import DEFINITION
from aoc_common.service import run_service

if __name__ == "__main__":
    sys.exit(run_service(DEFINITION))
