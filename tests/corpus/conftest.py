"""Prints the corpus figures at the end of a run that mapped the corpus."""

from __future__ import annotations

from typing import Any

from tests.utils.corpus import LAST_FIGURES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not LAST_FIGURES:
        return
    terminalreporter.section("real-format corpus (tests/corpus)")
    for line in LAST_FIGURES[0].lines():
        terminalreporter.write_line(line)
