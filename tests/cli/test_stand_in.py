"""`aoc stand-in` serves the Microsoft stand-in on its own, and a separately started collector
(`aoc run collector`, configured only by the settings the command prints) collects the samples from it
over HTTPS into the raw topics."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

from aoc_common import topics
from aoc_common.message_log.embedded import EmbeddedMessageLog
from tests.utils.expected import UNIQUE_RECORDS
from tests.utils.local_servers import free_port


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
    tmp_path: Path,
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
                "DATA_DIR": str(tmp_path / "data"),
                "COLLECTOR_CONTROL_PORT": str(free_port()),
            },
        )
        # The Graph sources, once each (the live collector skips the pages' overlap). The Management
        # API part answers as of its recorded clock, which a collector on today's clock may not reach.
        wanted = {topics.raw_topic(s): n for s, n in UNIQUE_RECORDS.items() if s != "unified"}
        message_log = EmbeddedMessageLog(tmp_path / "data" / "log.sqlite3")
        await message_log.start()
        try:
            deadline = time.monotonic() + 60
            counts: dict[str, int] = {}
            while time.monotonic() < deadline:
                await message_log.ensure_topics(list(wanted))
                counts = {t: sum((await message_log.end_offsets(t)).values()) for t in wanted}
                if counts == wanted or collector.returncode is not None:
                    break
                await asyncio.sleep(0.2)
        finally:
            await message_log.stop()
        assert counts == wanted, (await stop(collector)).decode()[-3000:]
    finally:
        if collector is not None:
            await stop(collector)
        await stop(stand_in)
