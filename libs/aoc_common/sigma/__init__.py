"""Sigma detection rules on AOC: load (files, folders, API text), refuse with reasons, compile.

`compile_text` / `load_paths` give a `LoadResult` (compiled rules, refusals); `to_rule` turns a
compiled rule into the `Rule` AOC stores (id `sigma-<Sigma id>`, the accepted YAML in `rule.sigma`);
`compiled_rule` is what the alerter evaluates, compiled once per stored text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

from aoc_common.rules import Rule, SigmaSource
from aoc_common.sigma.compiler import (
    Compiled,
    Correlation,
    Detection,
    LoadResult,
    Part,
    Refusal,
    Refused,
    SigmaMeta,
    compile_text,
)
from aoc_common.sigma.logsources import SERVED, served_logsource

__all__ = [
    "SERVED",
    "Compiled",
    "Correlation",
    "Detection",
    "LoadResult",
    "Part",
    "Refusal",
    "Refused",
    "SigmaMeta",
    "compile_text",
    "compiled_rule",
    "load_paths",
    "rule_id_for",
    "served_logsource",
    "sigma_files",
    "to_rule",
]

SUFFIXES = (".yml", ".yaml")
MAX_FILES = 10_000


def rule_id_for(sigma_id: str) -> str:
    return f"sigma-{sigma_id}"[:100]


def sigma_files(paths: Iterable[Path]) -> list[Path]:
    """Every .yml / .yaml file of the given files and folders (recursively), sorted."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(f for f in path.rglob("*") if f.suffix in SUFFIXES and f.is_file()))
        else:
            found.append(path)
    return found[:MAX_FILES]


def load_paths(
    paths: Sequence[Path], *, placeholders: Mapping[str, Sequence[str]] | None = None
) -> LoadResult:
    """Compile every Sigma file found; a file that cannot be read is a refusal too."""
    result = LoadResult()
    for file in sigma_files(paths):
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            result.refusals.append(Refusal(None, None, f"cannot read: {error}", str(file)))
            continue
        loaded = compile_text(text, placeholders=placeholders, origin=str(file))
        result.rules.extend(loaded.rules)
        result.refusals.extend(loaded.refusals)
        result.documents.update(loaded.documents)
        result.origins.update(loaded.origins)
    return result


def kind_of(compiled: Compiled) -> str:
    return "detection" if isinstance(compiled, Detection) else compiled.kind


def to_rule(compiled: Compiled, text: str, *, origin: str, enabled: bool = True) -> Rule:
    meta = compiled.meta
    return Rule(
        id=rule_id_for(meta.sigma_id),
        name=meta.title,
        description=meta.description,
        severity=meta.severity,
        enabled=enabled,
        sigma=SigmaSource(
            id=meta.sigma_id,
            yaml=text,
            level=meta.level,
            status=meta.status,
            logsource=meta.logsource,
            kind=kind_of(compiled),
            tags=list(meta.tags),
            references=list(meta.references),
            origin=origin[:1000],
        ),
    )


def compiled_rule(
    source: SigmaSource, placeholders: Mapping[str, Sequence[str]] | None = None
) -> Compiled:
    """The compiled rule a stored Sigma rule runs; raises Refused when it no longer compiles
    (e.g. a placeholder whose setting was removed)."""
    frozen = tuple(sorted((k, tuple(v)) for k, v in (placeholders or {}).items()))
    return _compiled(source.yaml, source.id, frozen)


@lru_cache(maxsize=512)
def _compiled(
    text: str, sigma_id: str, placeholders: tuple[tuple[str, tuple[str, ...]], ...]
) -> Compiled:
    result = compile_text(text, placeholders=dict(placeholders))
    for compiled in result.rules:
        if compiled.meta.sigma_id == sigma_id:
            return compiled
    reasons = [r.reason for r in result.refusals if r.sigma_id in (sigma_id, None)]
    raise Refused(reasons[0] if reasons else f"the stored text holds no rule {sigma_id}")
