"""The README is part of the product: its configuration table and its commands must stay true."""

from __future__ import annotations

import re
from pathlib import Path

from aoc_common.settings import Settings
from aoc_common.sources import all_sources, source_option_variables

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_configuration_table_lists_exactly_the_settings() -> None:
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", section, flags=re.MULTILINE))
    assert documented == {name.upper() for name in Settings.model_fields} | (
        source_option_variables()
    )


def default_of(variable: str) -> object:
    """The default of a setting, or of a source's own setting (`SIGNINS_EVENT_TYPES`)."""
    if variable.lower() in Settings.model_fields:
        return Settings.model_fields[variable.lower()].get_default(call_default_factory=True)
    for spec in all_sources():
        if spec.options is None:
            continue
        prefix = str(spec.options.model_config.get("env_prefix", "")).upper()
        name = variable.removeprefix(prefix).lower()
        if variable.startswith(prefix) and name in spec.options.model_fields:
            return spec.options.model_fields[name].get_default(call_default_factory=True)
    raise KeyError(variable)


def test_configuration_table_defaults_match_the_model() -> None:
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| `([^`]*)` \|", section, flags=re.MULTILINE)
    for name, default in rows:
        value = default_of(name)
        if isinstance(value, list):
            shown = ",".join(value)
        elif isinstance(value, float) and value.is_integer():
            shown = str(int(value))
        else:
            shown = str(value)
        assert shown.lower() == default.lower(), name


def test_ci_runs_exactly_the_readme_test_command() -> None:
    assert "```sh\nmake test\n```" in README
    commands = [
        line.strip()
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert commands[-1] == "make test"


def test_readme_demo_command_is_the_makefile_target() -> None:
    assert "```sh\nmake demo\n```" in README
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^demo: .*\n\t\$\(BIN\)/aoc demo$", makefile, flags=re.MULTILINE)


def test_the_record_type_section_is_what_mappings_yml_says() -> None:
    from aoc_normalizer.mapping_docs import END, START, render
    from aoc_normalizer.mappings import load_mappings

    section = README.split("### What AOC makes of each record type", 1)[1]
    documented = section[section.index(START) : section.index(END) + len(END)]
    generated = render(load_mappings(REPO / "mappings.yml"))
    assert documented == generated, "run `python -m aoc_normalizer.mapping_docs` and paste it"


def test_every_image_the_readme_shows_is_in_the_repository() -> None:
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", README)
    assert images, "the README shows the UI's screenshots"
    assert [image for image in images if not (REPO / image).is_file()] == []
