"""Every corpus record, mapped by the real normalizer core, reads the way an analyst expects (issue 9).

`known_gaps.txt` lists entries the mapping does not get right yet (a record added before its mapping);
each is a strict xfail, so an entry that starts passing must come off the list, and every other entry
must pass. The figures are printed at the end of the run (see conftest.py) and must meet issue 9's goals.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aoc_common.sources import SOURCES
from aoc_normalizer.mappings import Mappings, load_mappings
from tests.utils.corpus import (
    CORPUS_DIR,
    KNOWN_GAPS_FILE,
    CorpusEntry,
    figures,
    known_gaps,
    load_entries,
    map_entry,
    remember_figures,
)

REPO = Path(__file__).resolve().parents[2]
ENTRIES = load_entries()
GAPS = known_gaps()


@pytest.fixture(scope="module")
def mappings() -> Mappings:
    return load_mappings(REPO / "mappings.yml")


def _param(entry: CorpusEntry) -> object:
    marks = (
        [pytest.mark.xfail(strict=True, reason="listed in tests/corpus/known_gaps.txt")]
        if entry.name in GAPS
        else []
    )
    return pytest.param(entry, id=f"{entry.file.removesuffix('.json')}:{entry.name}", marks=marks)


@pytest.mark.parametrize("entry", [_param(e) for e in ENTRIES])
def test_record_maps_as_an_analyst_reads_it(entry: CorpusEntry, mappings: Mappings) -> None:
    problems = map_entry(entry, mappings).mismatches()
    assert not problems, f"{entry.name} ({entry.provenance}):\n  " + "\n  ".join(problems)


def test_corpus_is_wide_and_every_record_says_where_its_shape_comes_from() -> None:
    names = [e.name for e in ENTRIES]
    assert len(names) == len(set(names)), "entry names must be unique"
    assert len(ENTRIES) >= 300
    workloads = {e.workload for e in ENTRIES}
    assert len(workloads) >= 15, sorted(workloads)
    for entry in ENTRIES:
        assert entry.provenance.strip(), entry.name
        assert entry.source in SOURCES, entry.name
    assert set(names) >= GAPS, (
        f"known_gaps.txt names entries that do not exist: {GAPS - set(names)}"
    )


def test_every_corpus_file_is_a_list_of_entries() -> None:
    for path in sorted(CORPUS_DIR.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        assert set(document) == {"about", "entries"}, path.name
        assert document["entries"], path.name


def test_no_record_crashes_or_is_lost(mappings: Mappings) -> None:
    outcomes = [map_entry(e, mappings, offset=i) for i, e in enumerate(ENTRIES)]
    result = figures(outcomes)
    remember_figures(result)
    assert result.crashes == 0
    assert result.silent_losses == 0


def test_the_figures_meet_the_goals_of_issue_9(mappings: Mappings) -> None:
    result = figures([map_entry(e, mappings, offset=i) for i, e in enumerate(ENTRIES)])
    assert result.unexpected_dead_letters == 0
    assert result.share(result.result_unknown) <= 0.02
    assert result.numeric_categories == 0
    assert result.share(result.generic_summaries) <= 0.10
    assert result.empty_slots == 0
    assert not GAPS, f"{len(GAPS)} entries still listed in {KNOWN_GAPS_FILE.name}"
