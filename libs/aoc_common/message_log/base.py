"""The message log interface: what every AOC service needs from Kafka, and nothing more.

Two implementations pass one contract suite (tests/contract/test_message_log_contract.py): Kafka through
aiokafka for production, and an embedded SQLite log for one machine. Semantics follow Kafka's, so that code
written against the embedded log behaves the same on a cluster:
- a topic has partitions; messages with the same key land in the same partition, in order;
- a consumer group has its own committed offset per partition; a new group starts at the earliest offset;
- members of one group split the partitions between them;
- `commit` is explicit and happens after the work is done (at-least-once);
- an operator can move a group to an offset or a timestamp (replay) while the group is stopped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self


@dataclass(frozen=True, slots=True)
class Message:
    """A message to publish. `key` decides the partition; None spreads messages round-robin."""

    key: bytes | None
    value: bytes


@dataclass(frozen=True, slots=True)
class Record:
    """A message as read back from the log."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int


class MessageLogError(RuntimeError):
    """The log could not do what was asked (broker unreachable, group still active…)."""


class Subscription(ABC):
    """A member of a consumer group, reading one or more topics. Use as an async context manager."""

    @abstractmethod
    async def fetch(self, max_records: int = 500, timeout_s: float = 1.0) -> list[Record]:
        """Next records after this member's position; waits up to timeout_s when there are none."""

    @abstractmethod
    async def commit(self, records: Sequence[Record]) -> None:
        """Mark everything up to and including these records as done for the group."""

    @abstractmethod
    async def close(self) -> None:
        """Leave the group; uncommitted records are redelivered to whoever reads next."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


class MessageLog(ABC):
    """A connection to the log. `start` before use, `stop` at shutdown."""

    engine: str

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def ensure_topics(self, topics: Sequence[str], partitions: int | None = None) -> None:
        """Create missing topics (existing ones are left as they are)."""

    @abstractmethod
    async def publish(self, topic: str, messages: Sequence[Message]) -> None:
        """Append messages; returns only once the log has durably acknowledged every one of them."""

    @abstractmethod
    def subscribe(self, topics: Sequence[str], group: str) -> Subscription:
        """Join consumer group `group` on `topics`."""

    @abstractmethod
    async def committed(self, group: str, topic: str) -> dict[int, int | None]:
        """Committed offset (next offset to read) per partition; None where nothing was committed."""

    @abstractmethod
    async def end_offsets(self, topic: str) -> dict[int, int]:
        """Offset the next published message will get, per partition."""

    @abstractmethod
    async def reset_group(
        self,
        group: str,
        topic: str,
        *,
        to_offset: int | None = None,
        to_timestamp: datetime | None = None,
    ) -> dict[int, int]:
        """Replay: set the group's committed offset on every partition of `topic`.

        Exactly one of `to_offset` (the same offset on every partition, clamped to what exists) or
        `to_timestamp` (the first message at or after that time; the end where there is none). The group
        must have no active members. Returns the new offset per partition.
        """

    @abstractmethod
    async def ping(self) -> None:
        """Raise MessageLogError when the log cannot be reached."""

    async def lag(self, group: str, topic: str) -> int:
        """Messages on `topic` the group has not committed yet (what a consumer still has to do)."""
        ends = await self.end_offsets(topic)
        committed = await self.committed(group, topic)
        starts = await self.start_offsets(topic)
        total = 0
        for partition, end in ends.items():
            position = committed.get(partition)
            total += end - (starts.get(partition, 0) if position is None else position)
        return total

    async def start_offsets(self, topic: str) -> dict[int, int]:
        """Oldest offset still held per partition (0 unless retention removed messages)."""
        return dict.fromkeys(await self.end_offsets(topic), 0)


def validate_reset_target(to_offset: int | None, to_timestamp: datetime | None) -> None:
    if (to_offset is None) == (to_timestamp is None):
        raise ValueError("give exactly one of to_offset or to_timestamp")
    if to_offset is not None and to_offset < 0:
        raise ValueError("to_offset must be >= 0")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def timestamp_ms(moment: datetime) -> int:
    """`moment` as Kafka counts time: whole milliseconds since the epoch, a naive datetime taken as UTC.

    Rounded up, so that "at or after `moment`" never includes a message from the millisecond before it.
    Integer arithmetic on purpose: going through float seconds can land one millisecond short.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return -((_EPOCH - moment) // _ONE_MS)
