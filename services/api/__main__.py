"""`python -m aoc_api` / `aoc run api`: the API and web UI on API_HOST:API_PORT."""

from __future__ import annotations

import sys

from aoc_api.service import DEFINITION
from aoc_common.service import run_service

if __name__ == "__main__":
    sys.exit(run_service(DEFINITION))
