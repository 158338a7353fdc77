"""Mapping and encoding in worker processes (`NORMALIZER_WORKERS`): the normalizer's dominant cost on
more than one core.

`normalize_message` plus the JSON encoding of its event is most of the normalizer's CPU time, and a
Python process runs it on one core. The pool runs exactly that in `workers` processes: the shell sends
raw records (bytes), a worker answers each with the event's dedupe key and JSON bytes, or a dead
letter. Dedupe, enrichment, publishing and commits stay in the shell, so the step's order is unchanged.
An event is decoded back in the shell only when it needs directory names (enrichment on), because
building the model again costs as much as mapping it.

Each worker reads mappings.yml itself and re-reads it when the file changes (a SIGHUP to the shell
reloads the shell's copy; workers follow the file's mtime). A worker that dies breaks the pool: the
batch fails (and is read again after a rejoin) and the next batch gets a fresh pool.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aoc_common.codec import encode
from aoc_common.dead_letter import DeadLetter
from aoc_common.message_log.base import Record
from aoc_normalizer.core import Limits, normalize_message, unresolved_directory_ids
from aoc_normalizer.mappings import LiveMappings

Row = tuple[str, int, int, bytes | None, bytes, int]


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """An event mapped in a worker: its dedupe key, its JSON, and whether it has ids to name."""

    dedupe_key: str
    value: bytes
    needs_names: bool


class MappingPool:
    """`workers` processes mapping chunks of a batch in order; `map` returns one outcome per record."""

    def __init__(
        self, workers: int, mappings_path: Path, limits: Limits, *, names_wanted: bool
    ) -> None:
        if workers < 1:
            raise ValueError("a mapping pool needs at least one worker")
        self.workers = workers
        self.mappings_path = mappings_path
        self.limits = limits
        self.names_wanted = names_wanted
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                # Not fork: the shell has a running event loop and open sockets.
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(str(self.mappings_path), self.limits, self.names_wanted),
            )
        return self._pool

    async def map(
        self, records: Sequence[Record], now: datetime
    ) -> list[EncodedEvent | DeadLetter]:
        rows = [(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp_ms) for r in records]
        size = -(-len(rows) // self.workers)
        chunks = [rows[start : start + size] for start in range(0, len(rows), size)]
        loop = asyncio.get_running_loop()
        executor = self._executor()
        try:
            answers = await asyncio.gather(
                *(loop.run_in_executor(executor, map_rows, chunk, now) for chunk in chunks)
            )
        except BrokenProcessPool:
            self.close()  # the next batch starts a fresh pool
            raise
        return [outcome for answer in answers for outcome in answer]

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


# --- in the worker processes ---------------------------------------------------------------------

_mappings: LiveMappings | None = None
_limits = Limits()
_names_wanted = False


def _start_worker(mappings_path: str, limits: Limits, names_wanted: bool) -> None:
    global _mappings, _limits, _names_wanted
    _mappings = LiveMappings.load(Path(mappings_path))
    _limits = limits
    _names_wanted = names_wanted


def map_rows(rows: Sequence[Row], now: datetime) -> list[EncodedEvent | DeadLetter]:
    """`normalize_message` + encoding for each row, as the shell would do it in-process."""
    assert _mappings is not None, "the worker was not started"
    mappings = _mappings.current()
    outcomes: list[EncodedEvent | DeadLetter] = []
    for row in rows:
        outcome = normalize_message(Record(*row), mappings, now=now, limits=_limits)
        if isinstance(outcome, DeadLetter):
            outcomes.append(outcome)
        else:
            needs_names = _names_wanted and bool(unresolved_directory_ids(outcome))
            outcomes.append(EncodedEvent(outcome.dedupe_key, encode(outcome), needs_names))
    return outcomes
