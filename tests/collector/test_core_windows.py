"""The collector's pure rules: windows, history limits, watermarks, overlap ids, link origins."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from aoc_collector.core import (
    Window,
    advance_watermark,
    boundary_ids,
    content_windows,
    graph_filter,
    management_time,
    new_records,
    plan_window,
    prune_fetched_content,
    same_origin,
)

NOW = datetime(2026, 11, 19, 23, 0, tzinfo=UTC)
OVERLAP = timedelta(minutes=15)


def test_a_run_starts_at_the_watermark_minus_the_overlap() -> None:
    window = plan_window("directory", now=NOW, watermark=NOW - timedelta(hours=1), overlap=OVERLAP)

    assert window == Window(NOW - timedelta(hours=1, minutes=15), NOW)


def test_the_first_run_reads_thirty_days_where_the_api_keeps_them() -> None:
    window = plan_window("directory", now=NOW, watermark=None, overlap=OVERLAP)

    assert window.end - window.start == timedelta(days=30) - timedelta(minutes=1)
    assert window.warnings == ()


def test_the_management_api_window_never_starts_more_than_seven_days_back() -> None:
    stale = NOW - timedelta(days=10)

    window = plan_window("unified", now=NOW, watermark=stale, overlap=OVERLAP)

    assert window.start == NOW - timedelta(days=7) + timedelta(minutes=1)
    assert window.clamped
    (warning,) = window.warnings
    assert "keeps content for 7 days" in warning
    assert "2026-11-09T22:45:00Z" in warning  # what was asked for and cannot be had


def test_a_forced_seven_day_window_is_clamped_silently_inside_the_limit() -> None:
    window = plan_window("unified", now=NOW, watermark=None, overlap=OVERLAP, forced_hours=168)

    assert window.warnings == ()
    assert window.start > NOW - timedelta(days=7)


def test_the_watermark_moves_to_the_window_end_when_the_window_reached_it() -> None:
    previous = NOW - timedelta(hours=1)
    window = Window(previous - OVERLAP, NOW)

    assert advance_watermark(previous, window) == NOW
    assert advance_watermark(None, window) == NOW


def test_a_short_forced_window_after_a_pause_does_not_jump_the_watermark() -> None:
    previous = NOW - timedelta(hours=10)

    assert advance_watermark(previous, Window(NOW - timedelta(hours=1), NOW)) == previous


def test_content_windows_are_at_most_24_hours_and_cover_the_window() -> None:
    window = Window(NOW - timedelta(days=2, hours=5), NOW)

    parts = content_windows(window)

    assert [p.end - p.start for p in parts] == [timedelta(hours=24)] * 2 + [timedelta(hours=5)]
    assert parts[0].start == window.start and parts[-1].end == window.end
    assert all(a.end == b.start for a, b in itertools.pairwise(parts))


def test_time_formats_are_the_ones_each_api_documents() -> None:
    window = Window(NOW - timedelta(hours=1), NOW)

    assert graph_filter(window) == (
        "activityDateTime ge 2026-11-19T22:00:00Z and activityDateTime le 2026-11-19T23:00:00Z"
    )
    assert management_time(NOW) == "2026-11-19T23:00:00"


def test_records_seen_in_the_overlap_or_earlier_in_the_run_are_not_published_again() -> None:
    seen = {"a"}
    records = [{"id": "a"}, {"id": "b"}, {"id": "b"}, {"noid": 1}, {"noid": 1}]

    assert new_records("directory", records, seen) == [{"id": "b"}, {"noid": 1}, {"noid": 1}]
    assert seen == {"a", "b"}


def test_boundary_ids_are_the_records_the_next_run_reads_again() -> None:
    start = NOW - OVERLAP
    records = [
        {"id": "old", "activityDateTime": "2026-11-19T22:00:00Z"},
        {"id": "edge", "activityDateTime": "2026-11-19T22:45:00.0000000Z"},
        {"id": "new", "activityDateTime": "2026-11-19T22:59:59.1234567Z"},
        {"id": "undated"},
    ]

    assert boundary_ids("directory", records, start) == ["edge", "new", "undated"]


def test_expired_content_ids_are_forgotten() -> None:
    fetched = {
        "gone": "2026-11-12T10:00:00.000Z",
        "kept": "2026-11-21T10:00:00.000Z",
    }

    assert prune_fetched_content(fetched, NOW) == {"kept": "2026-11-21T10:00:00.000Z"}


def test_tokens_only_follow_links_on_the_configured_origin() -> None:
    base = "https://graph.microsoft.com"
    assert same_origin("https://graph.microsoft.com/v1.0/auditLogs?$skiptoken=x", base)
    assert not same_origin("https://graph.microsoft.com.evil.example/v1.0/x", base)
    assert not same_origin("http://graph.microsoft.com/v1.0/x", base)
    assert same_origin("https://127.0.0.1:8443/graph/v1.0/x", "https://127.0.0.1:8443/graph")
    assert not same_origin("https://127.0.0.1:8443/manage/x", "https://127.0.0.1:8443/graph")
