"""`python -m aoc_store`: `aoc.events` → event store, as consumer group aoc-store."""

from __future__ import annotations

import sys

from aoc_common.service import run_service
from aoc_store.service import DEFINITION

if __name__ == "__main__":
    sys.exit(run_service(DEFINITION))
