"""`aoc demo` as a user runs it: one command, no servers, the fixtures end to end, the API and UI served."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from aoc_cli.demo_report import REASON_WIDTH, ingest_lines
from tests.utils.expected import NATIVE_DEMO_ALERTS, SIGMA_DEMO_ALERTS, SIGNIN_RULE_ALERTS
from tests.utils.local_servers import free_port

AOC = Path(sys.executable).with_name("aoc")


def start_demo(tmp_path: Path, port: int) -> tuple[subprocess.Popen[str], list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "MONGO_"))}
    process = subprocess.Popen(
        [str(AOC), "demo", "--port", str(port), "--data-dir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 120
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if "AOC demo: serving" in line:
            return process, lines
    process.kill()
    raise AssertionError("demo never said it was serving:\n" + "\n".join(lines))


def test_demo_ingests_the_samples_and_serves_them(tmp_path: Path) -> None:
    port = free_port()
    process, lines = start_demo(tmp_path, port)
    try:
        output = "\n".join(lines)
        assert "178 events in the store; 8 dead letters this run" in output, output
        assert f"http://127.0.0.1:{port}" in output

        base = f"http://127.0.0.1:{port}"
        everything = httpx.get(f"{base}/api/events", params={"page_size": 500}, timeout=10).json()
        assert len(everything["items"]) == 178  # 147 admin audit events and 31 sign-ins
        seen: list[str] = []
        cursor = None
        while True:
            params = {"page_size": 25, **({"cursor": cursor} if cursor else {})}
            page = httpx.get(f"{base}/api/events", params=params, timeout=10).json()
            seen += [e["id"] for e in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert sorted(seen) == sorted(e["id"] for e in everything["items"])
        assert httpx.get(f"{base}/health", timeout=10).json()["status"] == "ok"
        assert "Admin Operations Center" in httpx.get(f"{base}/", timeout=10).text

        # Dead-letter reasons: one line each, shortened at a word boundary with "…" when long (the
        # samples' reasons all fit now; test_one_line_shortens_at_a_word_boundary covers shortening).
        reasons = [line for line in lines if line.startswith("  - ") and "×" not in line]
        assert len(reasons) == 8
        for reason in reasons:
            assert len(reason) <= len("  - ") + REASON_WIDTH, reason
            assert not reason.endswith((":", ";", ",")), reason
        shortened = [r for r in reasons if r.endswith("…")]
        assert all(not r[-2].isspace() for r in shortened)
        assert "activityDateTime: Input should be a valid datetime" in output

        # The UI link opens on the days the samples happened: every event lies inside it.
        link = next(line for line in lines if "the UI on those days:" in line).split()[-1]
        query = parse_qs(urlsplit(link).query)
        window = {"start": query["start"][0], "end": query["end"][0], "page_size": 500}
        inside = httpx.get(f"{base}/api/events", params=window, timeout=10).json()["items"]
        assert link.startswith(f"{base}/?") and len(inside) == 178

        # Source health says the sources were replayed from samples, not "never run".
        health = httpx.get(f"{base}/api/source-health", timeout=10).json()["sources"]
        replayed = [h for h in health if h["status"] == "replayed"]
        assert {h["source"] for h in replayed} == {"directory", "intune", "unified", "signins"}
        assert all("replayed from samples" in h["warnings"][0] for h in replayed)
        assert all(h["last_count"] > 0 for h in replayed)
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0


def run_demo_until_ingested(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`aoc demo --exit-when-ingested` on the embedded engines, in `tmp_path/demo`, to its end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "MONGO_", "ALERT"))}
    # free_port() finds a port nobody listens on, which another process may take before the demo
    # binds it (seen once, at a load average of 10): that one error is retried, on a new port.
    for attempt in range(2):
        argv = ["demo", "--port", str(free_port()), "--data-dir", str(tmp_path / "demo")]
        result = subprocess.run(
            [str(AOC), *argv, "--exit-when-ingested", *options],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            cwd=tmp_path,
        )
        if attempt or "(is the port in use?)" not in result.stdout + result.stderr:
            break
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_a_second_run_keeps_the_data_and_stores_nothing_twice(tmp_path: Path) -> None:
    for _ in range(2):
        result = run_demo_until_ingested(tmp_path)
        assert "178 events in the store; 8 dead letters this run" in result.stdout


def test_without_the_bad_input_drill_the_demo_raises_its_alerts_once_and_announces_no_dead_letter(
    tmp_path: Path,
) -> None:
    """The sample data raises the default rules' alerts and their Sigma twins'; a second run over the
    same data folder raises none again."""
    for _ in range(2):
        result = run_demo_until_ingested(tmp_path, "--no-malformed")

        assert "178 events in the store; no dead letters this run\n" in result.stdout
        assert "this run:" not in result.stdout
        # The admin fixtures' alerts, those of the sample sign-ins, and their Sigma twins'.
        total = NATIVE_DEMO_ALERTS + SIGMA_DEMO_ALERTS
        assert f"AOC demo: {total} alerts in the store" in result.stdout, result.stdout
        for name, count in SIGNIN_RULE_ALERTS.items():
            assert f"{count} × [" in result.stdout and f"] {name}" in result.stdout
        assert "4 × [high] Mailbox forwarding to an external address" in result.stdout
        assert "7 × [high] Member added to a privileged role" in result.stdout
        assert "4 × [high] Sigma: Mailbox forwarding to an external address" in result.stdout
        assert "1 × [high] Sigma: Many failed sign-ins, then a success" in result.stdout


def test_a_long_reason_is_shortened_at_a_word_boundary() -> None:
    reason = "invalid directoryAudit record: " + "; ".join(
        f"field{n}: Input should be a valid string" for n in range(12)
    )

    lines = ingest_lines(10, "samples", 9, [reason])

    assert lines[1].endswith("; 1 dead letter this run:")
    shown = lines[2].removeprefix("  - ")
    assert len(shown) <= REASON_WIDTH and shown.endswith("…")
    assert reason.startswith(shown.removesuffix("…"))
    cut = len(shown) - 1  # where "…" stands: the reason's next character ends a word
    assert reason[cut] in " ;,:" and reason[cut - 1] not in " ;,:"


def test_a_bad_setting_stops_start_up_with_one_clear_line(tmp_path: Path) -> None:
    env = {**os.environ, "RETENTION_DAYS": "-3"}
    result = subprocess.run(
        [str(AOC), "run", "api"], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: RETENTION_DAYS=-3: Input should be greater than or equal to 1"
    ]
