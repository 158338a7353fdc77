"""An edited mappings.yml applies from the next batch without a restart (mtime, or SIGHUP); a broken
edit is refused with a clear log line and the last good mapping stays in force."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import orjson
from structlog.testing import capture_logs

from aoc_common import topics
from aoc_common.engines import Engines
from aoc_common.settings import Settings
from aoc_normalizer.mappings import LiveMappings
from aoc_normalizer.runtime import Normalizer, install_sighup
from tests.utils.records import raw_record
from tests.utils.topic_io import read_topic
from tests.utils.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
SHIPPED = (REPO / "mappings.yml").read_text(encoding="utf-8")
ADD_USER = '"{actor} created user {target}"'


def add_user_record(record_id: str) -> dict:
    return {
        "id": record_id,
        "category": "UserManagement",
        "result": "success",
        "activityDisplayName": "Add user",
        "activityDateTime": "2026-11-20T10:00:00Z",
        "initiatedBy": {"user": {"userPrincipalName": "alice.admin@contoso.com"}},
        "targetResources": [{"type": "User", "userPrincipalName": "new.hire@contoso.com"}],
    }


def summary_of(live: LiveMappings) -> str:
    return live.current().summary(
        "directory", "Add user", {"actor": "a@contoso.com", "target": "b@contoso.com"}
    )


def test_an_edited_file_applies_at_the_next_look_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "mappings.yml"
    path.write_text(SHIPPED, encoding="utf-8")
    live = LiveMappings.load(path)
    assert summary_of(live) == "a@contoso.com created user b@contoso.com"

    path.write_text(SHIPPED.replace(ADD_USER, '"{actor} onboarded {target}"'), encoding="utf-8")
    assert summary_of(live) == "a@contoso.com onboarded b@contoso.com"


def test_a_broken_edit_is_refused_with_a_log_line_and_the_last_good_mapping_stays(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mappings.yml"
    path.write_text(SHIPPED, encoding="utf-8")
    live = LiveMappings.load(path)

    path.write_text(SHIPPED.replace(ADD_USER, '"{actor} made {nope}"'), encoding="utf-8")
    with capture_logs() as logs:
        assert summary_of(live) == "a@contoso.com created user b@contoso.com"
        assert summary_of(live) == "a@contoso.com created user b@contoso.com"
    rejected = [e for e in logs if e["log_level"] == "error"]
    assert len(rejected) == 1, logs  # logged once per edit, not once per batch
    assert rejected[0]["event"] == "mappings reload rejected; the last good mapping stays in force"
    assert "uses {nope}" in rejected[0]["error"] and str(path) in rejected[0]["error"]

    path.write_text(SHIPPED.replace(ADD_USER, '"{actor} hired {target}"'), encoding="utf-8")
    assert summary_of(live) == "a@contoso.com hired b@contoso.com"


async def test_sighup_rereads_the_file_even_when_its_mtime_and_size_did_not_change(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mappings.yml"
    path.write_text(SHIPPED, encoding="utf-8")
    before = path.stat()
    live = LiveMappings.load(path)
    same_size = SHIPPED.replace(ADD_USER, '"{actor} CREATED user {target}"')
    path.write_text(same_size, encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert summary_of(live) == "a@contoso.com created user b@contoso.com"  # nothing to notice

    loop = asyncio.get_running_loop()
    assert install_sighup(loop, live)
    try:
        os.kill(os.getpid(), signal.SIGHUP)

        async def current() -> str:
            return summary_of(live)

        assert await wait_for(current, lambda s: "CREATED" in s, timeout_s=5) == (
            "a@contoso.com CREATED user b@contoso.com"
        )
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


async def test_the_running_normalizer_publishes_with_the_edited_mapping(
    engines: Engines, tmp_path: Path
) -> None:
    path = tmp_path / "mappings.yml"
    path.write_text(SHIPPED, encoding="utf-8")
    message_log = engines.message_log
    normalizer = Normalizer.from_settings(
        message_log, Settings(data_dir=tmp_path, mappings_path=path)
    )
    try:
        await normalizer.handle([raw_record("directory", add_user_record("Dir_1"), offset=0)])
        path.write_text(SHIPPED.replace(ADD_USER, '"{actor} onboarded {target}"'), "utf-8")
        await normalizer.handle([raw_record("directory", add_user_record("Dir_2"), offset=1)])
        summaries = {
            r.key: orjson.loads(r.value)["display_summary"]
            for r in await read_topic(message_log, topics.EVENTS, 2)
        }
        assert summaries == {
            b"directory:Dir_1": "alice.admin@contoso.com created user new.hire@contoso.com",
            b"directory:Dir_2": "alice.admin@contoso.com onboarded new.hire@contoso.com",
        }
    finally:
        normalizer.state.close()
