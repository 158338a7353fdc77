"""SIGMA_RULES_PATH through the running alerter: a folder of Sigma files is loaded into the rule
store at start (refusals reported with file and reason), its rules raise alerts carrying the Sigma
title, level, tags and references, and a file rule removed from the folder leaves the store."""

from __future__ import annotations

from pathlib import Path

from aoc_alerter.runtime import Alerter
from aoc_alerter.sigma_loading import REPORT_KEY
from aoc_common.engines import Engines
from aoc_common.rules import AlertQuery
from tests.utils.consumers import running
from tests.utils.records import fixture_events
from tests.utils.topic_io import publish_events
from tests.utils.waiting import wait_for

FORWARDING = """\
title: Forwarding set by Set-Mailbox
id: 0b3e3f0e-1111-4c57-9c3e-5a0e0d6f7a01
status: test
tags: [attack.collection, attack.t1114.003]
references: [https://attack.mitre.org/techniques/T1114/003/]
logsource: {product: m365, service: exchange}
detection:
    selection:
        Operation: Set-Mailbox
        Parameters.ForwardingSmtpAddress|endswith: '@evil.example'
    condition: selection
level: critical
"""
NOT_SERVED = """\
title: Resource group deleted
id: 0b3e3f0e-2222-4c57-9c3e-5a0e0d6f7a02
logsource: {product: azure, service: activitylogs}
detection:
    selection: {operationName: MICROSOFT.RESOURCES/SUBSCRIPTIONS/RESOURCEGROUPS/DELETE}
    condition: selection
level: medium
"""


async def test_a_sigma_folder_is_loaded_at_start_and_its_rules_alert_with_their_metadata(
    engines: Engines, tmp_path: Path, fixtures_dir: Path
):
    folder = tmp_path / "sigma"
    folder.mkdir()
    (folder / "forwarding.yml").write_text(FORWARDING)
    (folder / "activity.yaml").write_text(NOT_SERVED)
    store = engines.store
    events = [e for e in fixture_events(fixtures_dir) if e.operation == "Set-Mailbox"]
    await publish_events(engines.message_log, events)

    async with running(Alerter(engines.message_log, store, sigma_paths=[folder])):
        alerts = await wait_for(
            lambda: store.query_alerts(
                AlertQuery(rule_id="sigma-0b3e3f0e-1111-4c57-9c3e-5a0e0d6f7a01")
            ),
            lambda page: len(page.items) == 4,
        )

    alert = alerts.items[0]
    assert (alert.rule_name, alert.severity) == ("Forwarding set by Set-Mailbox", "critical")
    assert alert.tags == ["attack.collection", "attack.t1114.003"]
    assert alert.references == ["https://attack.mitre.org/techniques/T1114/003/"]
    report = await store.get_state(REPORT_KEY)  # also served as GET /api/rules/sigma/report
    assert report is not None and report["loaded"] == ["sigma-0b3e3f0e-1111-4c57-9c3e-5a0e0d6f7a01"]
    [refused] = report["refused"]
    assert refused["file"].endswith("activity.yaml")
    assert (
        "the Azure Resource Manager activity log, which AOC does not collect" in refused["reason"]
    )

    (folder / "forwarding.yml").unlink()
    async with running(Alerter(engines.message_log, store, sigma_paths=[folder])):
        await wait_for(
            lambda: store.get_rule("sigma-0b3e3f0e-1111-4c57-9c3e-5a0e0d6f7a01"),
            lambda rule: rule is None,
        )
