"""Every service is wired in one place, its `build(settings, engines)`: the registry `aoc run` uses
names each service's public module, a built service runs on the engines it is given and stops when
asked, and a service process opens only the engines it uses (or none while switched off)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from aoc_cli.services import SERVICES, definition, service_module
from aoc_common.engines import Engines, open_engines
from aoc_common.service import serve
from aoc_common.settings import Settings
from tests.utils.local_servers import free_port
from tests.utils.waiting import wait_for

AOC = Path(sys.executable).with_name("aoc")


@pytest.mark.parametrize("name", SERVICES)
def test_each_registered_service_has_a_build_under_its_own_name(name: str) -> None:
    module = service_module(name)
    assert module.__name__ == f"aoc_{name}.service"
    assert definition(name).name == name
    assert definition(name).build is module.build


def test_aoc_run_offers_exactly_the_registered_services() -> None:
    result = subprocess.run(
        [str(AOC), "run", "no-such-service"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    for name in SERVICES:
        assert name in result.stderr


def on_embedded(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(data_dir=tmp_path, log_engine="embedded", store_engine="embedded", **overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("normalizer", {}),
        ("store", {}),
        ("alerter", {}),
        ("siem_forwarder", {"siem_enabled": True, "siem_webhook_url": "http://127.0.0.1:9/x"}),
        ("api", {}),
    ],
)
async def test_a_built_service_runs_on_the_engines_it_is_given_and_stops_when_asked(
    name: str, overrides: dict[str, object], engines: Engines, tmp_path: Path
) -> None:
    if name == "api":
        overrides = {"api_port": free_port()}
    settings = on_embedded(tmp_path, **overrides)
    stop = asyncio.Event()
    task = asyncio.create_task(definition(name).build(settings, engines).run(stop))
    ended, _ = await asyncio.wait([task], timeout=0.5)  # a service never ends by itself
    assert not ended, task.exception()
    stop.set()
    await asyncio.wait_for(task, 30)


@pytest.mark.parametrize(
    ("name", "files"),
    [
        ("store", {"log.sqlite3", "events.sqlite3"}),
        ("siem_forwarder", {"log.sqlite3"}),  # never the event store
        ("normalizer", {"log.sqlite3", "normalizer.sqlite3"}),
    ],
)
async def test_a_service_process_opens_only_the_engines_it_uses(
    name: str, files: set[str], tmp_path: Path
) -> None:
    settings = on_embedded(
        tmp_path / "data", siem_enabled=True, siem_webhook_url="http://127.0.0.1:9/x"
    )
    stop = asyncio.Event()
    task = asyncio.create_task(serve(definition(name), settings, stop))

    def opened() -> set[str]:
        data = tmp_path / "data"
        return (
            {p.name for p in data.iterdir() if p.suffix == ".sqlite3"} if data.exists() else set()
        )

    await wait_for(opened, lambda found: found >= files, timeout_s=10)
    stop.set()
    await asyncio.wait_for(task, 30)
    assert opened() == files


@pytest.mark.parametrize(
    ("name", "setting"), [("alerter", "alerts_enabled"), ("siem_forwarder", "siem_enabled")]
)
async def test_a_service_switched_off_opens_no_engine_and_stops_when_asked(
    name: str, setting: str, tmp_path: Path
) -> None:
    settings = on_embedded(tmp_path / "data", **{setting: False})
    stop = asyncio.Event()
    task = asyncio.create_task(serve(definition(name), settings, stop))
    ended, _ = await asyncio.wait([task], timeout=0.2)  # idles, rather than exit and be restarted
    assert not ended
    stop.set()
    await asyncio.wait_for(task, 5)
    assert not (tmp_path / "data").exists()


async def test_engines_opened_without_a_store_say_so_instead_of_opening_one(
    tmp_path: Path,
) -> None:
    async with open_engines(on_embedded(tmp_path), client_id="test", store=False) as engines:
        assert engines.message_log.engine == "embedded"
        with pytest.raises(LookupError, match="without an event store"):
            engines.store  # noqa: B018
    assert not (tmp_path / "events.sqlite3").exists()


async def test_the_api_on_a_port_in_use_fails_with_one_clear_error(
    engines: Engines, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = definition("api").build(on_embedded(tmp_path, api_port=port), engines)
        with pytest.raises(RuntimeError, match=f"could not serve on http://127.0.0.1:{port}"):
            await asyncio.wait_for(service.run(asyncio.Event()), 30)
