"""Start-up: a SIEM format without its settings stops with one line; `aoc run siem_forwarder` and
`aoc demo` run the forwarder as documented."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from aoc_common.settings import ConfigurationError, Settings, load_settings
from tests.utils.expected import STORED_FIXTURE_EVENTS
from tests.utils.local_servers import free_port
from tests.utils.siem_receivers import HttpSiem, serving

AOC = Path(sys.executable).with_name("aoc")
SETTINGS_VARIABLES = {name.upper() for name in Settings.model_fields}


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper() in SETTINGS_VARIABLES:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def clean_env(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTINGS_VARIABLES}
    return env | variables


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"SIEM_FORMAT": "json"}, "SIEM_WEBHOOK_URL"),
        (
            {"SIEM_FORMAT": "splunk_hec", "SPLUNK_HEC_URL": "https://splunk:8088/x"},
            "SPLUNK_HEC_TOKEN",
        ),
        ({"SIEM_FORMAT": "splunk_hec", "SPLUNK_HEC_TOKEN": "t0k3n-do-not-print"}, "SPLUNK_HEC_URL"),
        ({"SIEM_FORMAT": "syslog"}, "SYSLOG_HOST"),
    ],
)
def test_an_enabled_siem_format_without_its_settings_stops_start_up_naming_them(
    clean_environment: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    clean_environment.setenv("SIEM_ENABLED", "true")
    for name, value in variables.items():
        clean_environment.setenv(name, value)

    with pytest.raises(ConfigurationError) as raised:
        load_settings()

    message = str(raised.value)
    assert "\n" not in message
    assert named in message and variables["SIEM_FORMAT"] in message
    assert "do-not-print" not in message


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SIEM_FORMAT", "xml"),
        ("SYSLOG_PAYLOAD", "leef"),
        ("SYSLOG_PORT", "70000"),
        ("SYSLOG_HOST", "two words"),
        ("SPLUNK_HEC_URL", "splunk:8088"),
        ("SIEM_BATCH_MAX_EVENTS", "0"),
        ("SIEM_BATCH_LINGER_MS", "-1"),
        ("SIEM_BREAKER_COOLDOWN_SECONDS", "0"),
    ],
)
def test_a_bad_siem_setting_is_named(
    clean_environment: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    clean_environment.setenv(variable, value)

    with pytest.raises(ConfigurationError) as raised:
        load_settings()

    assert variable in str(raised.value)


def test_a_disabled_forwarder_needs_no_siem_settings(clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv("SIEM_FORMAT", "syslog")

    settings = load_settings()

    assert settings.siem_enabled is False and settings.syslog_host is None


def test_secrets_stay_out_of_the_settings_repr(clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv("SPLUNK_HEC_TOKEN", "hec-do-not-print")
    clean_environment.setenv("SIEM_HMAC_SECRET", "hmac-do-not-print")

    assert "do-not-print" not in repr(load_settings())


def test_aoc_run_siem_forwarder_refuses_to_start_without_its_settings(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(AOC), "run", "siem_forwarder"],
        env=clean_env(SIEM_ENABLED="true", SIEM_FORMAT="splunk_hec", SPLUNK_HEC_TOKEN="secret-xyz"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert result.stderr.strip() == (
        "configuration error: SIEM_ENABLED=true with SIEM_FORMAT=splunk_hec needs SPLUNK_HEC_URL "
        "and SPLUNK_HEC_TOKEN"
    )
    assert "secret-xyz" not in result.stderr + result.stdout


def test_a_missing_syslog_ca_file_stops_the_forwarder_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(AOC), "run", "siem_forwarder"],
        env=clean_env(
            SIEM_ENABLED="true",
            SIEM_FORMAT="syslog",
            SYSLOG_HOST="127.0.0.1",
            SYSLOG_TLS="true",
            SYSLOG_TLS_CA_FILE=str(tmp_path / "missing.pem"),
            DATA_DIR=str(tmp_path),
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        f"configuration error: SYSLOG_TLS_CA_FILE={tmp_path / 'missing.pem'}: not a file"
    )


def test_aoc_run_siem_forwarder_idles_while_disabled_and_stops_cleanly(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [str(AOC), "run", "siem_forwarder"],
        env=clean_env(DATA_DIR=str(tmp_path)),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "SIEM_ENABLED is false" in line:
            break
    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=30) == 0, lines
    assert any("forwarding nothing" in line for line in lines)


async def test_aoc_demo_forwards_every_sample_event_when_siem_is_enabled(tmp_path: Path) -> None:
    siem = HttpSiem()
    async with serving(siem) as url:
        env = clean_env(SIEM_ENABLED="true", SIEM_WEBHOOK_URL=url, SIEM_BATCH_LINGER_MS="50")
        demo = await asyncio.create_subprocess_exec(
            str(AOC),
            "demo",
            "--exit-when-ingested",
            "--no-malformed",
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path / "demo"),
            env={k: v for k, v in env.items() if not k.startswith(("KAFKA_", "MONGO_"))},
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(demo.communicate(), 120)

    text = output.decode(errors="replace")
    assert demo.returncode == 0, text
    assert "AOC demo: every event forwarded to the SIEM (SIEM_FORMAT=json)" in text
    # 178 events on aoc.events (the normalizer drops page 2's two repeats; 31 of them sign-ins): the
    # SIEM gets each once.
    assert len(siem.accepted) == STORED_FIXTURE_EVENTS == len(set(siem.accepted))
