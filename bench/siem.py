"""Events per second the SIEM forwarder delivers to a local receiver, with batching, per transport
and per event schema: `python bench/siem.py [N] [json|splunk_hec|syslog|json:ecs|json:ocsf ...]`
(default 20,000 events: the webhook with AOC's own JSON, ECS and OCSF in the same run, then HEC and
syslog with AOC's JSON). Before the runs, the schema conversion alone (one core, no I/O) is timed
per schema, with AOC's own JSON (no conversion) as its floor.

The events are the sample data through the normalizer core, copied under new ids, published on the
embedded log (not timed). Timed: from the forwarder's start until the receiver has acknowledged every event
and the consumer group has committed them all, i.e. the whole shell: fetch, validate, batch, send,
commit. The receiver runs in its own process (uvicorn for HTTP, asyncio for syslog), parses every body
and counts the events, as a SIEM's front door would.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

from aoc_common import topics
from aoc_common.circuit_breaker import CircuitBreaker
from aoc_common.codec import encode, encode_key
from aoc_common.events import CanonicalEvent, RawEnvelope, Source, event_id_for
from aoc_common.logging import configure_logging
from aoc_common.message_log.base import Message, Record
from aoc_common.message_log.embedded import EmbeddedMessageLog
from aoc_common.siem_formats import SCHEMAS, encode_as
from aoc_common.sources import all_sources
from aoc_common.sources.samples import sample_records
from aoc_common.topics import raw_topic
from aoc_normalizer.core import normalize_message
from aoc_normalizer.mappings import load_mappings
from aoc_siem_forwarder.runtime import SiemForwarder
from aoc_siem_forwarder.transports import HttpTransport, SyslogTransport, Transport

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "services" / "collector" / "sample_data"
FORMATS = ("json", "splunk_hec", "syslog")
RUNS = ("json:aoc", "json:ecs", "json:ocsf", "splunk_hec:aoc", "syslog:aoc")


# --- the receiver process ---------------------------------------------------------------------------

RECEIVED = {"events": 0}


async def http_receiver(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
    """A SIEM front door: parse the JSON batch (or HEC lines) and count the events."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["method"] == "GET":
        answer = orjson.dumps(RECEIVED)
    else:
        if body.startswith(b'{"count"'):
            RECEIVED["events"] += len(orjson.loads(body)["events"])
        else:
            RECEIVED["events"] += sum(1 for line in body.splitlines() if orjson.loads(line))
        answer = b'{"text":"Success","code":0}'
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": answer})


async def syslog_receiver(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        while True:
            length = int((await reader.readuntil(b" "))[:-1])
            await reader.readexactly(length)
            RECEIVED["events"] += 1


async def serve_receivers(http_port: int, syslog_port: int) -> None:
    import uvicorn

    await asyncio.start_server(syslog_receiver, "127.0.0.1", syslog_port)
    config = uvicorn.Config(
        http_receiver, host="127.0.0.1", port=http_port, log_level="error", lifespan="off"
    )
    await uvicorn.Server(config).serve()


# --- the forwarder side -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sample_events() -> list[CanonicalEvent]:
    mappings = load_mappings(REPO / "mappings.yml")
    payloads: list[tuple[Source, dict]] = [
        (spec.id, record) for spec in all_sources() for record in sample_records(spec, SAMPLES)
    ]
    fetched = datetime(2026, 11, 22, tzinfo=UTC)
    now = datetime(2026, 11, 23, tzinfo=UTC)
    events = []
    for source, payload in payloads:
        envelope = RawEnvelope(
            source=source, tenant_id="contoso", fetched_at=fetched, payload=payload
        )
        record = Record(raw_topic(source), 0, 0, None, encode(envelope), 0)
        outcome = normalize_message(record, mappings, now=now)
        if isinstance(outcome, CanonicalEvent):
            events.append(outcome)
    return events


def messages(count: int) -> list[Message]:
    shapes = sample_events()
    found = []
    for n in range(count):
        template = shapes[n % len(shapes)]
        key = f"{template.dedupe_key}#bench{n}"
        event = template.model_copy(update={"dedupe_key": key, "id": event_id_for(key)})
        found.append(Message(encode_key(key), encode(event)))
    return found


def transport_for(siem_format: str, http_port: int, syslog_port: int) -> Transport:
    # Transports make one attempt per call (the forwarder's Delivery retries).
    if siem_format == "syslog":
        return SyslogTransport(
            "127.0.0.1", syslog_port, payload="cef", hostname="bench", timeout_s=10
        )
    return HttpTransport(
        siem_format,  # type: ignore[arg-type]
        f"http://127.0.0.1:{http_port}/services/collector/event",
        timeout_s=30,
        hmac_secret=b"bench-secret",
        hec_token="bench-token" if siem_format == "splunk_hec" else None,
    )


async def received(client: httpx.AsyncClient, http_port: int) -> int:
    response = await client.get(f"http://127.0.0.1:{http_port}/count")
    return int(response.json()["events"])


def conversion_figures(count: int) -> None:
    """The conversion alone: canonical event → bytes of each schema, on one core."""
    events = sample_events()
    originals = [event.model_dump_json().encode() for event in events]
    for schema in SCHEMAS:
        started = time.process_time()
        done = 0
        while done < count:
            for event, original in zip(events, originals, strict=True):
                encode_as(schema, event, original)
            done += len(events)
        elapsed = time.process_time() - started
        print(
            f"conversion only, {schema:<5}: {done / elapsed:,.0f} events/s of CPU "
            f"({'floor: the event as published' if schema == 'aoc' else 'to_' + schema + ' + orjson'})",
            flush=True,
        )


async def bench(count: int, runs: list[str]) -> None:
    http_port, syslog_port = free_port(), free_port()
    receiver = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--receive", str(http_port), str(syslog_port)
    )
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                with contextlib.suppress(httpx.TransportError):
                    await received(client, http_port)
                    break
                await asyncio.sleep(0.05)
            batch = messages(count)
            for run in runs:
                siem_format, _, schema = run.partition(":")
                with tempfile.TemporaryDirectory() as folder:
                    log = EmbeddedMessageLog(Path(folder) / "log.sqlite3")
                    await log.start()
                    for start in range(0, count, 5000):
                        await log.publish(topics.EVENTS, batch[start : start + 5000])
                    before = await received(client, http_port)
                    forwarder = SiemForwarder(
                        log,
                        transport_for(siem_format, http_port, syslog_port),
                        breaker=CircuitBreaker(5, 60),
                        batch_max_events=500,
                        batch_max_bytes=1_000_000,
                        linger_s=0.2,
                        schema=schema or "aoc",  # type: ignore[arg-type]
                    )
                    stop = asyncio.Event()
                    started = time.perf_counter()
                    task = asyncio.create_task(forwarder.run(stop))
                    while (  # noqa: ASYNC110 - polling another process's counter
                        await received(client, http_port) - before < count
                        or await log.lag(topics.SIEM_FORWARDER_GROUP, topics.EVENTS) > 0
                    ):
                        await asyncio.sleep(0.05)
                    elapsed = time.perf_counter() - started
                    stop.set()
                    await task
                    await log.stop()
                print(
                    f"siem forwarder, {run:<14}: {count} events in {elapsed:.2f} s = "
                    f"{count / elapsed:,.0f} events/s (batches of up to 500 events / 1 MB, "
                    "embedded log, receiver in its own process)",
                    flush=True,
                )
    finally:
        receiver.terminate()
        await asyncio.wait_for(receiver.wait(), 10)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--receive":
        asyncio.run(serve_receivers(int(sys.argv[2]), int(sys.argv[3])))
        return
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    runs = [
        run if ":" in run else f"{run}:aoc"
        for run in sys.argv[2:]
        if run.partition(":")[0] in FORMATS and run.partition(":")[2] in ("", *SCHEMAS)
    ] or list(RUNS)
    configure_logging("bench", "WARNING")
    conversion_figures(count)
    asyncio.run(bench(count, runs))


if __name__ == "__main__":
    main()
