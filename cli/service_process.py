"""A service in a child process of its own, as `aoc run` would start it, supervised by a parent.

`aoc demo` runs the normalizer, the store sink, the alerter and the SIEM forwarder this way on its
embedded engines, so that their stages overlap on separate cores instead of taking turns in one
interpreter (the embedded log and store are SQLite files several processes share). The child gets the
parent's exact settings: the parent passes the overrides it applied on top of the environment, and the
child applies the same ones (`AOC_SETTINGS_OVERRIDES`, JSON), so both read one configuration.

A child never outlives its parent: it asks Linux to SIGTERM it when the parent dies (a `kill -9` of
the demo included) and exits at once if the parent is already gone. Its output goes to a log file;
when it stops on its own, the parent's `run` raises with the end of that log.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

OVERRIDES_VARIABLE = "AOC_SETTINGS_OVERRIDES"
PARENT_VARIABLE = "AOC_PARENT_PID"
STOP_TIMEOUT_S = 30.0
PR_SET_PDEATHSIG = 1
TAIL_LINES = 15


class ServiceStopped(RuntimeError):
    """A supervised service ended without being asked to."""


class ServiceProcess:
    """`run(stop)` starts the child, waits for `stop`, then stops it (SIGTERM, SIGKILL after 30 s)."""

    def __init__(self, name: str, overrides: Mapping[str, Any], log_path: Path) -> None:
        self.name = name
        self.overrides = dict(overrides)
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            OVERRIDES_VARIABLE: json.dumps(self.overrides, default=str),
            PARENT_VARIABLE: str(os.getpid()),
            "PYTHONUNBUFFERED": "1",
        }

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "aoc_cli.service_process",
                self.name,
                env=self.environment(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )

    async def run(self, stop: asyncio.Event) -> None:
        if self.process is None:
            await self.start()
        process = self.process
        assert process is not None
        exited = asyncio.ensure_future(process.wait())
        asked = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([exited, asked], return_when=asyncio.FIRST_COMPLETED)
        finally:
            asked.cancel()
        if not exited.done():
            await self.stop()
            return
        raise ServiceStopped(
            f"the {self.name} process stopped (exit code {process.returncode}); "
            f"the end of {self.log_path}:\n{self.tail()}"
        )

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    def tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-TAIL_LINES:])


def _die_with_parent() -> None:
    """SIGTERM this process when its parent dies (Linux); exit now if the parent is already gone."""
    expected = os.environ.get(PARENT_VARIABLE)
    library = ctypes.util.find_library("c")
    if library and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(library, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if expected and str(os.getppid()) != expected:
        raise SystemExit(0)  # the parent died before we could ask to follow it


def main(argv: list[str] | None = None) -> int:
    """Child side: `python -m aoc_cli.service_process <service>`, settings as the parent had them."""
    from aoc_cli.services import definition
    from aoc_common.service import run_service
    from aoc_common.settings import ConfigurationError, load_settings

    args = sys.argv[1:] if argv is None else argv
    _die_with_parent()
    overrides = json.loads(os.environ.get(OVERRIDES_VARIABLE) or "{}")
    try:
        settings = load_settings(**overrides)
    except ConfigurationError as error:
        print(error.code, file=sys.stderr)
        return 2
    return run_service(definition(args[0]), settings)


if __name__ == "__main__":
    sys.exit(main())
