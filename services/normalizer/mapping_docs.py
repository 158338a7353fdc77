"""The README's "What AOC makes of each record type", written from `mappings.yml`, so that the
documentation says what the mapping in the repository does (a test compares the two).

`python -m aoc_normalizer.mapping_docs [mappings.yml]` prints the section's generated part.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aoc_common.sources import all_sources
from aoc_normalizer.mappings import Mappings, load_mappings

START = "<!-- generated from mappings.yml by `python -m aoc_normalizer.mapping_docs`: start -->"
END = "<!-- generated from mappings.yml: end -->"


def _sorted_categories(categories: dict[str, str]) -> list[tuple[str, str]]:
    return sorted(categories.items(), key=lambda item: (not item[0].isdigit(), item[0].zfill(6)))


def render(mappings: Mappings) -> str:
    lines: list[str] = [START, ""]
    lines.append(
        "How the result is decided (first rule that applies; a source's mapper may decide it from"
        " the record's own status first, as the sign-in logs do from the error code):"
    )
    lines.append("")
    for spec in all_sources():
        section = mappings.sources[spec.id]
        rules = [*section.result_overrides]
        steps = [f"- **{spec.labels.display_name}**:"]
        steps += [f"  - {rule.why}" for rule in rules]
        steps.append(
            "  - Microsoft's own outcome word: "
            + "; ".join(
                f"{', '.join(words)} → {result}"
                for result, words in (
                    ("success", mappings.results.success),
                    ("failure", mappings.results.failure),
                    ("partial", mappings.results.partial),
                    ("unknown (not decided yet)", mappings.results.undecided),
                )
                if words
            )
            + "."
        )
        steps += [f"  - {rule.why}" for rule in section.result_defaults]
        lines += steps
    lines.append("")
    lines.append("| source | categories | services | operations with their own sentence |")
    lines.append("|---|---|---|---|")
    for spec in all_sources():
        section = mappings.sources[spec.id]
        lines.append(
            f"| {spec.labels.display_name} | {len(section.categories)} | "
            f"{len(set(section.services.values())) or 1} | {len(section.summaries)} |"
        )
    lines.append("")
    for spec in all_sources():
        section = mappings.sources[spec.id]
        if not section.categories:
            continue
        kind = "RecordType" if spec.id == "unified" else "Microsoft's category"
        lines.append(f"<details><summary>{spec.labels.display_name}: {kind} → category</summary>")
        lines.append("")
        lines.append(f"| {kind} | AOC category |")
        lines.append("|---|---|")
        lines += [f"| {raw} | {label} |" for raw, label in _sorted_categories(section.categories)]
        unknown = section.unknown_category.format(value="…")
        lines.append(f"| anything else | {unknown} (counted in `aoc_unknown_record_types_total`) |")
        lines.append("")
        lines.append("</details>")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else Path("mappings.yml")
    print(render(load_mappings(path)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
