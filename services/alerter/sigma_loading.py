"""Sigma rules from files and folders (`SIGMA_RULES_PATH`) into the rule store, at alerter start.

Each accepted rule is stored as `sigma-<Sigma id>` (its YAML in `rule.sigma`), so the API and UI
list it beside AOC's own rules and the alerter evaluates it like them. Every refused rule is logged
with its file and the exact reason, and the whole report is kept in the store
(`alerter:sigma-load-report`) for operators. Rules loaded from files earlier whose file no longer
holds them are removed; rules written through the API are never touched.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Protocol

from aoc_common.event_store.base import RuleStore, StateStore
from aoc_common.logging import get_logger
from aoc_common.rules import Rule
from aoc_common.sigma import LoadResult, load_paths, to_rule

REPORT_KEY = "alerter:sigma-load-report"
FILE_ORIGIN = "file:"
log = get_logger(__name__)


def bundled_sigma_rules() -> Path:
    """AOC's own detections as Sigma rules (shipped with the alerter; `aoc demo` loads them)."""
    return Path(str(files("aoc_alerter").joinpath("sigma_rules")))


def sigma_paths(setting: str) -> list[Path]:
    """`SIGMA_RULES_PATH`: files or folders separated by the OS path separator (`:`)."""
    return [Path(part).expanduser() for part in setting.split(os.pathsep) if part.strip()]


@dataclass(frozen=True)
class LoadReport:
    loaded: list[Rule]
    result: LoadResult


def rules_from(
    paths: Sequence[Path], placeholders: Mapping[str, Sequence[str]] | None = None
) -> LoadReport:
    result = load_paths(paths, placeholders=placeholders)
    rules = [
        to_rule(
            compiled,
            result.documents[compiled.meta.sigma_id],
            origin=FILE_ORIGIN + result.origins.get(compiled.meta.sigma_id, ""),
        )
        for compiled in result.rules
    ]
    return LoadReport(rules, result)


class SigmaRuleStore(RuleStore, StateStore, Protocol):
    """Where loaded Sigma rules and the load report go."""


async def load_sigma_rules_into(
    store: SigmaRuleStore, paths: Sequence[Path], placeholders: Mapping[str, Sequence[str]]
) -> LoadReport:
    report = rules_from(paths, placeholders)
    wanted = {rule.id for rule in report.loaded}
    for rule in await store.list_rules():
        stale = rule.sigma is not None and rule.sigma.origin.startswith(FILE_ORIGIN)
        if stale and rule.id not in wanted:
            await store.delete_rule(rule.id)
    for rule in report.loaded:
        existing = await store.get_rule(rule.id)
        # an operator who disabled a file rule keeps it disabled across restarts
        enabled = existing.enabled if existing is not None else True
        await store.put_rule(rule.model_copy(update={"enabled": enabled}))
    for refusal in report.result.refusals:
        log.warning(
            "sigma rule refused",
            file=refusal.origin,
            sigma_id=refusal.sigma_id,
            title=refusal.title,
            reason=refusal.reason,
        )
    await store.put_state(
        REPORT_KEY,
        {
            "paths": [str(path) for path in paths],
            "loaded": sorted(wanted),
            "refused": [
                {
                    "file": r.origin,
                    "sigma_id": r.sigma_id,
                    "title": r.title,
                    "reason": r.reason,
                }
                for r in report.result.refusals
            ],
        },
    )
    log.info("sigma rules loaded", loaded=len(report.loaded), refused=len(report.result.refusals))
    return report
