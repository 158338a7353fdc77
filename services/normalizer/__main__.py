"""`python -m aoc_normalizer` / `aoc run normalizer`: raw topics → `aoc.events`, as group aoc-normalizer
(the Faust app on Kafka, the embedded runtime on the embedded log: see service.py)."""

from __future__ import annotations

import sys

from aoc_common.service import run_service
from aoc_normalizer.service import DEFINITION

if __name__ == "__main__":
    sys.exit(run_service(DEFINITION))
