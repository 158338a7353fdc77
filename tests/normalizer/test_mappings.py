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


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (
            SHIPPED.replace(
                'summary_no_target: "{actor} performed {operation}"',
                'summary_no_target: "{actor} performed {operation} on {target}"',
            ),
            "must render for every event",
        ),
        (
            SHIPPED.replace(
                '      Add member to group: "{actor} added {member} to group {group}"\n',
                '      Add member to group: "{actor} added {member} to group {group}"\n'
                '      Add member to group.: "{actor} added {member}"\n',
                1,
            ),
            "are one operation",
        ),
        (SHIPPED.replace("  intune:\n", "  intune:\n    names: {}\n", 1), "top level"),
        (
            SHIPPED.replace("        result: failure\n", "        field: X\n", 1),
            "needs either `result` or `field` with `values`",
        ),
    ],
)
def test_a_file_that_could_write_a_broken_sentence_or_rule_is_refused(
    broken: str, message: str
) -> None:
    with pytest.raises(MappingError, match=message):
        parse_mappings(broken, origin="test.yml")


def test_a_template_missing_a_value_falls_back_to_a_shorter_one() -> None:
    mappings = parse_mappings(SHIPPED)
    # No group: never "bob added carol to group", but the next sentence that has what it needs.
    summary = mappings.summary(
        "directory", "Add member to group", {"actor": "bob", "member": "carol", "targets": "carol"}
    )
    assert summary == "bob performed Add member to group on carol"
    assert mappings.summary("directory", "add member to group.", {"actor": "bob"}) == (
        "bob performed add member to group."
    )
    assert (
        mappings.summary(
            "directory",
            "Add member to group",
            {"actor": "bob", "member": "carol", "group": "Finance"},
        )
        == "bob added carol to group Finance"
    )


def test_operations_have_one_spelling() -> None:
    mappings = parse_mappings(SHIPPED)
    assert mappings.canonical_operation("unified", "Add User.") == "Add user"
    assert mappings.canonical_operation("unified", " add user. ") == "Add user"
    assert mappings.canonical_operation("directory", "Add user") == "Add user"
    # Without an entry in the file: Microsoft's spelling, without the trailing period.
    assert mappings.canonical_operation("unified", "Frobnicate tenant.") == "Frobnicate tenant"


def test_results_follow_the_documented_rules() -> None:
    mappings = parse_mappings(SHIPPED)
    sign_in = {"Operation": "UserLoginFailed", "ResultStatus": "Success", "LogonError": "IdsLocked"}
    assert mappings.outcome("unified", sign_in, "UserLoginFailed", "15", "Success") == (
        "failure",
        "Success",
    )
    file_access = {"Operation": "FileAccessed"}
    assert mappings.outcome("unified", file_access, "FileAccessed", "6", None) == (
        "success",
        None,
    )
    blocked = {"PolicyDetails": [{"Rules": [{"Actions": ["NotifyUser", "BlockAccess"]}]}]}
    assert mappings.outcome("unified", blocked, "DlpRuleMatch", "13", None) == (
        "failure",
        "PolicyDetails.Rules.Actions: BlockAccess",
    )
    assert mappings.outcome("unified", {}, "CreateArtifact", "20", "InProgress") == (
        "unknown",
        "InProgress",
    )
    assert mappings.outcome("directory", {}, "Update user", None, "timeout")[0] == "failure"
    assert mappings.result_of("PartiallySucceeded") == "partial"
