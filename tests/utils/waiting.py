"""Waiting on a condition with a deadline, instead of sleeping a guessed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_for(
    probe: Callable[[], T] | Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    timeout_s: float = 60.0,
) -> T:
    """Poll `probe` until `done` holds or the deadline passes (then the caller's assert explains)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if done(value) or time.monotonic() > deadline:  # type: ignore[arg-type]
            return value  # type: ignore[return-value]
        await asyncio.sleep(0.02)
