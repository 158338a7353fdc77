"""Prints the corpus figures at the end of a run that mapped the corpus."""

from __future__ import annotations

from typing import Any

_FIGURES: list[Any] = []


def remember_figures(figures: Any) -> None:
    _FIGURES[:] = [figures]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("real-format corpus (tests/corpus)")
    for line in _FIGURES[0].lines():
        terminalreporter.write_line(line)
