"""mappings.yml is checked as a whole: a broken file is refused with a message saying what and where."""

from __future__ import annotations

from pathlib import Path

import pytest

from aoc_normalizer.mappings import MappingError, load_mappings, parse_mappings

REPO = Path(__file__).resolve().parents[2]
SHIPPED = (REPO / "mappings.yml").read_text(encoding="utf-8")


def test_the_shipped_file_is_valid() -> None:
    mappings = load_mappings(REPO / "mappings.yml")
    assert mappings.sources["unified"].services["MicrosoftTeams"] == "Teams"
    assert mappings.result_of("Succeeded") == "success"
    assert mappings.result_of("False") == "failure"
    assert mappings.result_of("PartialSuccess") == "unknown"


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ("version: 1\ndefaults: [", "not valid YAML"),
        ("- just a list", "expected a mapping at the top level"),
        (SHIPPED.replace("version: 1", "version: 7"), "version"),
        (
            SHIPPED.replace('"{actor} created user {target}"', '"{actor.__class__}"', 1),
            "uses {actor.__class__}",
        ),
        (SHIPPED.replace('"{actor} deleted user {target}"', '"{nope}"', 1), "uses {nope}"),
        (SHIPPED.replace('"{actor} reset the password of {target}"', '"{actor!r}"', 1), "{actor}"),
        (SHIPPED.replace("  intune:\n", "  intunes:\n"), "sources"),
    ],
)
def test_a_broken_file_is_refused_with_the_reason(broken: str, message: str) -> None:
    with pytest.raises(MappingError) as raised:
        parse_mappings(broken, origin="test.yml")
    assert str(raised.value).startswith("test.yml: ")
    assert message in str(raised.value)


def test_a_missing_file_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="cannot read"):
        load_mappings(tmp_path / "absent.yml")


def test_summary_drops_empty_brackets_when_a_detail_is_missing() -> None:
    mappings = parse_mappings(SHIPPED)
    summary = mappings.summary("unified", "Set-Mailbox", {"actor": "a@x", "target": "mbx"})
    assert summary == "a@x changed mailbox mbx"
