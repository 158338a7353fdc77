"""`python -m aoc_alerter`: `aoc.events` → alert rules → alerts, as consumer group aoc-alerter."""

from __future__ import annotations

import sys

from aoc_alerter.service import DEFINITION
from aoc_common.service import run_service

if __name__ == "__main__":
    sys.exit(run_service(DEFINITION))
