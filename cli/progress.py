"""A progress line for long operator commands (`aoc ingest`, `aoc replay --follow`): done/total, rate, ETA.

On a terminal it redraws one line in place; otherwise (a log file, CI, `| tee`) it prints a plain line at
most every few seconds, so a redirected run leaves a readable record instead of carriage returns.
Writes to stderr: stdout stays for the command's result.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 24


def format_duration(seconds: float) -> str:
    """`42 s`, `3 min 5 s`, `2 h 14 min`: what an operator reads at a glance."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


class Progress:
    """Counts work done towards `total` and reports it; `finish()` prints the final line."""

    def __init__(
        self,
        what: str,
        total: int,
        *,
        unit: str = "records",
        stream: TextIO | None = None,
        plain_every_s: float = 5.0,
    ) -> None:
        self.what = what
        self.total = max(total, 0)
        self.unit = unit
        self.stream = stream or sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.plain_every_s = plain_every_s
        self.done = 0
        self.started = time.monotonic()
        self._shown_at = 0.0

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta_s(self) -> float | None:
        rate = self.rate
        if rate <= 0 or self.done >= self.total:
            return None
        return (self.total - self.done) / rate

    def line(self) -> str:
        share = self.done / self.total if self.total else 1.0
        filled = int(share * BAR_WIDTH)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        eta = self.eta_s()
        left = f", about {format_duration(eta)} left" if eta is not None else ""
        return (
            f"{self.what} [{bar}] {self.done:,}/{self.total:,} {self.unit} ({share:.0%}), "
            f"{self.rate:,.0f}/s{left}"
        )

    def advance(self, count: int) -> None:
        self.set(self.done + count)

    def set(self, done: int) -> None:
        self.done = min(max(done, 0), self.total) if self.total else max(done, 0)
        now = time.monotonic()
        if self.interactive:
            if now - self._shown_at >= 0.1:
                self._shown_at = now
                self.stream.write("\r" + self.line() + "\x1b[K")
                self.stream.flush()
        elif now - self._shown_at >= self.plain_every_s:
            self._shown_at = now
            print(self.line(), file=self.stream, flush=True)

    def finish(self) -> None:
        elapsed = time.monotonic() - self.started
        ending = "\r" if self.interactive else ""
        print(
            f"{ending}{self.what}: {self.done:,} {self.unit} in {format_duration(elapsed)} "
            f"({self.rate:,.0f}/s)" + ("\x1b[K" if self.interactive else ""),
            file=self.stream,
            flush=True,
        )
