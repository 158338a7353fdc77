"""The store benches run once on a small N, as a developer would run them: figures are not checked
(timings are benchmarks, not tests), but every row must run and the store must still find what it
stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.utils.benches import run_bench


@pytest.mark.timeout(600)
def test_store_sink_bench_reports_the_sink_beside_its_floors(tmp_path: Path) -> None:
    output = run_bench(
        "bench/store_sink.py",
        "--events=3000",
        "--segment=1000",
        "--mongo=200",
        "--before=HEAD",  # the sink of a git revision, in a child process taking turns
        f"--data={tmp_path}",
        timeout_s=540,
    )
    for row in ("store sink", "sink of HEAD", "same schema (floor)", "PK only (floor)"):
        assert row in output, output
    assert "search intact" in output, output
    assert "same indexes (floor)" in output and "_id only (floor)" in output, output


@pytest.mark.timeout(600)
def test_api_bench_runs_every_scenario(tmp_path: Path) -> None:
    output = run_bench("bench/api.py", "--events=3000", "--runs=2", f"--data={tmp_path}")
    for scenario in ("newest page, no filter", "count, no filter", "facets, search rare word"):
        assert scenario in output, output
    assert output.count("\n  ") >= 30, output


@pytest.mark.timeout(600)
def test_api_bench_asks_first_and_while_events_arrive(tmp_path: Path) -> None:
    """`--first-ask` (the word cache emptied before each request) and `--ingest` (events added
    before each request, on a copy of the store that is removed afterwards)."""
    common = ("bench/api.py", "--events=3000", "--runs=2", f"--data={tmp_path}")
    first = run_bench(*common, "--only=word,events view", "--first-ask")
    assert "facets, search very common word" in first, first
    assert "events view, search common word" in first, first
    arriving = run_bench(*common, "--only=count, search", "--ingest=40")
    assert "(a copy, taking new events)" in arriving, arriving
    assert "count, search prefix of 2,000+ terms" in arriving, arriving
    assert sorted(path.name for path in tmp_path.glob("*.sqlite3*")) == ["events-3000.sqlite3"]
