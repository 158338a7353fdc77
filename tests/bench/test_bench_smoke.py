"""Each throughput bench runs once on a small N, as a developer would run it: figures are not checked
(timings are benchmarks, not tests), but every row must run, and the rows that check the job (one event
per unique record, nothing dead-lettered) must pass that check."""

from __future__ import annotations

import pytest

from tests.utils.benches import run_bench


def test_generate_gives_every_source_with_one_to_three_percent_duplicates() -> None:
    output = run_bench("bench/generate.py", "5000")
    assert "generated 5,000 raw records" in output
    share = float(output.split(" duplicates (")[1].split("%")[0])
    assert 1.0 <= share <= 3.0
    for topic in ("aoc.raw.directory", "aoc.raw.intune", "aoc.raw.unified"):
        assert topic in output


@pytest.mark.timeout(600)
def test_kafka_normalizer_bench_runs_the_floor_and_both_runtimes_correctly() -> None:
    # The floor and both production runtimes. The peer and scale-out rows run the same code paths
    # (quixstreams alone starts for 30 s; two members are tested in tests/normalizer).
    rows = ("floor", "aoc", "aoc-consumer")
    output = run_bench(
        "bench/kafka_normalizer.py", "2000", *(f"--only={row}" for row in rows), timeout_s=540
    )
    for row in rows:
        assert f"| {row} |" in output, output
    assert "WRONG COUNT" not in output, output


@pytest.mark.timeout(400)
def test_pipeline_bench_runs_both_layouts_and_every_offered_tick_becomes_searchable() -> None:
    output = run_bench(
        "bench/pipeline.py", "--records", "2000", "--rate", "200", "--seconds", "3", timeout_s=360
    )
    for layout in ("processes", "one-process"):
        assert f"| {layout} |" in output, output
    assert "floors: embedded log insert" in output
    assert output.count(" 0 ticks |") == 2, output  # nothing left unsearchable in either layout


@pytest.mark.timeout(300)
def test_production_pipeline_bench_runs_on_kafka_and_mongo_and_every_offered_tick_is_stored() -> (
    None
):
    # Tansu and SecantusDB here (the test engines); AOC_BENCH_KAFKA / AOC_BENCH_MONGO_URI for real ones.
    output = run_bench(
        "bench/pipeline_kafka_mongo.py",
        *("--records", "300", "--rate", "50", "--seconds", "3", "--partitions", "3"),
        timeout_s=240,
    )
    assert "floors: publish to the raw topics" in output, output
    assert "backlog of 300 raw records" in output, output
    assert "| 0 ticks |" in output, output  # every offered record reached Mongo
