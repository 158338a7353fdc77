"""`python -m aoc_siem_forwarder`: `aoc.events` → the SIEM, as consumer group aoc-siem-forwarder."""

from __future__ import annotations

import sys

from aoc_common.service import run_service
from aoc_siem_forwarder.service import DEFINITION

if __name__ == "__main__":
    sys.exit(run_service(DEFINITION))
