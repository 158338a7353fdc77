"""`aoc stand-in` serves the Microsoft stand-in on its own, and a separately started collector
(`aoc run collector`, configured only by the settings the command prints) collects the samples from it
over HTTPS into the raw topics."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from aoc_common import topics
from aoc_common.engines import Engines
from tests.utils.expected import UNIQUE_RECORDS
from tests.utils.local_servers import free_port
from tests.utils.waiting import wait_for


async def start(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aoc_cli.main",
        *args,
        env={"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def settings_printed_by(stand_in: asyncio.subprocess.Process) -> dict[str, str]:
    assert stand_in.stdout is not None
    printed: dict[str, str] = {}
    while "SSL_CERT_FILE" not in printed:
        line = (await asyncio.wait_for(stand_in.stdout.readline(), timeout=30)).decode()
        assert line, "the stand-in stopped before printing its settings"
        if line.startswith("  ") and "=" in line:
            name, value = line.strip().split("=", 1)
            printed[name] = value
    return printed


async def stop(process: asyncio.subprocess.Process) -> bytes:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    return output


async def test_a_collector_configured_from_the_printed_settings_collects_over_https(
    engines: Engines, tmp_path: Path
) -> None:
    port = free_port()
    stand_in = await start(
        "stand-in", "--port", str(port), "--tls-dir", str(tmp_path / "tls"), env={}
    )
    collector = None
    try:
        settings = await settings_printed_by(stand_in)
        assert settings["AUTHORITY_HOST"] == f"https://127.0.0.1:{port}"
        assert Path(settings["SSL_CERT_FILE"]).read_bytes().startswith(b"-----BEGIN CERTIFICATE")
        collector = await start(
            "run",
            "collector",
            env={
                **settings,
                "DATA_DIR": str(tmp_path),
                "COLLECTOR_CONTROL_PORT": str(free_port()),
            },
        )
        # The Graph sources, once each (the live collector skips the pages' overlap). The Management
        # API part answers as of its recorded clock, which a collector on today's clock may not reach.
        wanted = {topics.raw_topic(s): n for s, n in UNIQUE_RECORDS.items() if s != "unified"}
        message_log = engines.message_log  # the embedded log in DATA_DIR, shared with the collector

        async def counts() -> dict[str, int]:
            return {t: sum((await message_log.end_offsets(t)).values()) for t in wanted}

        collected = await wait_for(
            counts, lambda found: found == wanted or collector.returncode is not None
        )
        assert collected == wanted, (await stop(collector)).decode()[-3000:]
    finally:
        if collector is not None:
            await stop(collector)
        await stop(stand_in)
