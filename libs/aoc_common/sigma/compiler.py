"""Sigma rules → what AOC runs: parsed by pySigma, fields mapped by AOC's pipeline, detections
compiled into `program` trees, correlations into the windows AOC's own rules use.

A rule AOC cannot run is refused with the exact reason (pySigma's parse error, a log source AOC does
not collect, an unmapped field, an unsupported modifier or correlation), never skipped silently.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import regex
import yaml
from sigma.collection import SigmaCollection
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.correlations import (
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
)

from aoc_common.rules import MAX_PATTERN_LENGTH, parse_path
from aoc_common.sigma import program as p
from aoc_common.sigma.logsources import ServedLogsource, served_logsource
from aoc_common.sigma.pipeline import UNMAPPED, aoc_pipeline

Severity = Literal["low", "medium", "high", "critical"]
LEVELS: dict[str, Severity] = {
    "informational": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "critical": "critical",
}
MAX_SIGMA_TEXT = 200_000
MAX_GROUP_FIELDS = 5


class Refused(Exception):
    """The rule cannot run on AOC; the message is the exact reason."""


@dataclass(frozen=True)
class SigmaMeta:
    """What an analyst reads about a Sigma rule (and what its alerts carry)."""

    sigma_id: str
    title: str
    description: str
    level: str
    severity: Severity
    status: str
    tags: tuple[str, ...]
    references: tuple[str, ...]
    logsource: str
    name: str | None = None


@dataclass(frozen=True)
class Detection:
    """A Sigma detection rule compiled: the whole condition, log-source narrowing included."""

    meta: SigmaMeta
    logsource: ServedLogsource
    node: p.Node
    generates: bool = True


CorrelationKind = Literal["event_count", "value_count", "temporal", "temporal_ordered", "sequence"]


@dataclass(frozen=True)
class Part:
    """One rule a correlation refers to, with the paths its group-by fields take in its events."""

    detection: Detection
    group_paths: tuple[str, ...]


@dataclass(frozen=True)
class Correlation:
    """A Sigma correlation on AOC's windows (event time; see the alerter's core).

    event_count / value_count: a threshold (`count` events, or distinct values at `distinct_paths`,
    within `window_seconds`, per group). temporal(_ordered): every part within the window (in order).
    sequence: a temporal_ordered correlation of [event_count over part 0, rule part 1]: the second
    rule's event with at least `count` events of the first within `window_seconds` before it — the
    shape of "many failed sign-ins, then a success".
    """

    meta: SigmaMeta
    kind: CorrelationKind
    parts: tuple[Part, ...]
    window_seconds: int
    count: int = 1
    distinct_paths: tuple[str, ...] = ()
    label: str = "matching events"


Compiled = Detection | Correlation


@dataclass(frozen=True)
class Refusal:
    sigma_id: str | None
    title: str | None
    reason: str
    origin: str = ""


@dataclass
class LoadResult:
    """Every rule of a Sigma text: compiled (those that alert), or refused with the reason."""

    rules: list[Compiled] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    documents: dict[str, str] = field(default_factory=dict)  # sigma id → the YAML AOC stores
    origins: dict[str, str] = field(default_factory=dict)  # sigma id → file (or `api`)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- loading -------------------------------------------------------------------------------------


def compile_text(
    text: str, *, placeholders: Mapping[str, Sequence[str]] | None = None, origin: str = ""
) -> LoadResult:
    """Every rule of one Sigma YAML text (one file: rules, correlations, filters)."""
    result = LoadResult()
    if len(text) > MAX_SIGMA_TEXT:
        result.refusals.append(
            Refusal(None, None, f"Sigma text over {MAX_SIGMA_TEXT} characters", origin)
        )
        return result
    try:
        collection = SigmaCollection.from_yaml(text, collect_errors=True)
        collection.resolve_rule_references()
    except (SigmaError, yaml.YAMLError) as error:
        result.refusals.append(Refusal(None, None, f"not a Sigma rule: {error}", origin))
        return result
    except Exception as error:  # pySigma raises plain errors on some malformed input
        result.refusals.append(Refusal(None, None, f"not a Sigma rule: {error}", origin))
        return result
    documents = _documents_by_id(text)
    pipeline_vars = {k: list(v) for k, v in (placeholders or {}).items()}
    referenced: set[int] = set()
    for rule in collection.rules:
        if isinstance(rule, SigmaCorrelationRule):
            for reference in rule.rules or []:
                if not getattr(rule, "generate", False):
                    referenced.add(id(reference.rule))
    detections: dict[int, Detection | Refused] = {}
    for rule in collection.rules:
        if isinstance(rule, SigmaRule):
            try:
                detections[id(rule)] = _detection(rule, pipeline_vars, id(rule) not in referenced)
            except Refused as refused:
                detections[id(rule)] = refused
    for rule in collection.rules:
        sigma_id = str(rule.id) if rule.id else None
        try:
            if isinstance(rule, SigmaCorrelationRule):
                compiled: Compiled = _correlation(rule, detections, pipeline_vars)
                if id(rule) in referenced:
                    continue  # only part of another correlation
            elif isinstance(rule, SigmaRule):
                outcome = detections[id(rule)]
                if isinstance(outcome, Refused):
                    raise outcome
                compiled = outcome
                if not compiled.generates:
                    continue  # only part of a correlation
            else:
                raise Refused(f"{type(rule).__name__} is not a rule AOC runs")
        except Refused as refused:
            result.refusals.append(Refusal(sigma_id, rule.title, str(refused), origin))
            continue
        result.rules.append(compiled)
        result.documents[compiled.meta.sigma_id] = _stored_text(rule, documents, text)
        result.origins[compiled.meta.sigma_id] = origin
    return result


def _documents_by_id(text: str) -> dict[str, Any]:
    try:
        documents = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    except yaml.YAMLError:
        return {}
    return {str(d["id"]): d for d in documents if d.get("id")}


def _stored_text(
    rule: SigmaRule | SigmaCorrelationRule, documents: dict[str, Any], text: str
) -> str:
    """The YAML documents a rule needs (itself, and what a correlation refers to), as stored with
    the rule, so the alerter compiles exactly what was accepted."""
    wanted: list[Any] = []

    def add(item: SigmaRule | SigmaCorrelationRule) -> None:
        if isinstance(item, SigmaCorrelationRule):
            for reference in item.rules or []:
                add(reference.rule)
        document = documents.get(str(item.id))
        if document is not None and document not in wanted:
            wanted.append(document)

    add(rule)
    if not wanted:
        return text
    return yaml.safe_dump_all(wanted, sort_keys=False, allow_unicode=True)


# --- detections ----------------------------------------------------------------------------------


def _meta(rule: SigmaRule | SigmaCorrelationRule, logsource: str) -> SigmaMeta:
    if not rule.id:
        raise Refused("the rule has no `id`: AOC keys its alerts and window state by it")
    level = rule.level.name.lower() if rule.level is not None else "medium"
    return SigmaMeta(
        sigma_id=str(rule.id),
        title=str(rule.title or rule.id)[:200],
        description=str(rule.description or "")[:2000],
        level=level,
        severity=LEVELS.get(level, "medium"),
        status=rule.status.name.lower() if rule.status is not None else "",
        tags=tuple(f"{tag.namespace}.{tag.name}" for tag in rule.tags),
        references=tuple(str(reference) for reference in rule.references)[:50],
        logsource=logsource,
        name=getattr(rule, "name", None),
    )


def _detection(rule: SigmaRule, pipeline_vars: dict[str, list[str]], generates: bool) -> Detection:
    if rule.errors:
        raise Refused(f"not a valid Sigma rule: {rule.errors[0]}")
    served = served_logsource(rule.logsource.product, rule.logsource.service)
    if isinstance(served, str):
        raise Refused(served)
    if rule.logsource.category:
        raise Refused(f"log source category {rule.logsource.category!r} is not one AOC collects")
    meta = _meta(rule, served.name)
    try:
        aoc_pipeline(pipeline_vars).apply(rule)
        conditions = [condition.parsed for condition in rule.detection.parsed_condition]
    except SigmaError as error:
        raise Refused(_sigma_reason(error)) from None
    nodes = [_node(condition, served) for condition in conditions if condition is not None]
    if not nodes:
        raise Refused("the rule has no condition")
    return Detection(
        meta, served, nodes[0] if len(nodes) == 1 else p.AnyOf(tuple(nodes)), generates
    )


def _sigma_reason(error: SigmaError) -> str:
    text = str(error)
    if "Placeholder replacement variable" in text:
        name = text.split("'")[1] if "'" in text else "?"
        return (
            f"placeholder %{name}% has no value (set it with SIGMA_PLACEHOLDERS, "
            f'e.g. {{"{name}": ["contoso.com"]}})'
        )
    return text


def _node(condition: Any, served: ServedLogsource) -> p.Node:
    if isinstance(condition, ConditionAND):
        return p.AllOf(tuple(_node(arg, served) for arg in condition.args))
    if isinstance(condition, ConditionOR):
        return p.AnyOf(tuple(_node(arg, served) for arg in condition.args))
    if isinstance(condition, ConditionNOT):
        return p.Not(_node(condition.args[0], served))
    if isinstance(condition, ConditionFieldEqualsValueExpression):
        path = _path(condition.field, served)
        test = _value_test(condition.value, served, keyword=False)
        node: p.Node = p.FieldTest(path, test)
        return node
    if isinstance(condition, ConditionValueExpression):
        return p.Keyword(_value_test(condition.value, served, keyword=True))
    raise Refused(f"unsupported condition element {type(condition).__name__}")


def _path(name: str, served: ServedLogsource) -> str:
    if name.startswith(UNMAPPED):
        raw_name = name[len(UNMAPPED) :]
        raise Refused(
            f"unmapped field {raw_name!r}: not a field of {served.name} records as AOC keeps them "
            f"({served.description})"
        )
    try:
        parse_path(name)
    except ValueError as error:
        raise Refused(f"field {name!r} is not a path AOC can follow: {error}") from None
    return name


def _value_test(value: Any, served: ServedLogsource, *, keyword: bool) -> Any:
    if isinstance(value, SigmaExpansion):
        tests = [_value_test(v, served, keyword=keyword) for v in value.values]
        return _AnyValue(tuple(tests))
    if isinstance(value, SigmaString):
        return _string_test(value, keyword=keyword)
    if keyword:
        raise Refused(f"keyword of type {type(value).__name__} is not supported")
    if isinstance(value, SigmaTimestampPart):
        raise Refused(
            "unsupported value or modifier: time-part modifiers (minute, hour, day, week, month, "
            "year) are not supported"
        )
    if isinstance(value, SigmaBool):
        return p.Boolean(bool(value.boolean))
    if isinstance(value, SigmaNumber):
        return p.Number(value.number)
    if isinstance(value, SigmaNull):
        return p.IsNull()
    if isinstance(value, SigmaExists):
        return p.Exists(bool(value.exists))
    if isinstance(value, SigmaRegularExpression):
        return p.Pattern(_regex(value))
    if isinstance(value, SigmaCIDRExpression):
        return p.Cidr(value.network)
    if isinstance(value, SigmaCompareExpression):
        ops = {
            CompareOperators.LT: "lt",
            CompareOperators.LTE: "lte",
            CompareOperators.GT: "gt",
            CompareOperators.GTE: "gte",
            CompareOperators.NEQ: "neq",
        }
        return p.Compare(ops[value.op], value.number.number)  # type: ignore[arg-type]
    if isinstance(value, SigmaFieldReference):
        return p.SameAs(_path(value.field, served), value.starts_with, value.ends_with)
    raise Refused(f"unsupported value or modifier: {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class _AnyValue:
    tests: tuple[Any, ...]

    def test(self, values: list[Any], document: dict[str, Any], counter: p.Counter) -> bool:
        return any(t.test(values, document, counter) for t in self.tests)


def _string_test(value: SigmaString, *, keyword: bool) -> Any:
    if value.contains_placeholder():
        raise Refused(f"placeholder in {value} has no value (set it with SIGMA_PLACEHOLDERS)")
    cased = isinstance(value, SigmaCasedString)
    parts = list(value.s)
    if keyword:  # a keyword is found anywhere in the record: outer wildcards add nothing
        while parts and parts[0] == SpecialChars.WILDCARD_MULTI:
            parts.pop(0)
        while parts and parts[-1] == SpecialChars.WILDCARD_MULTI:
            parts.pop()
    leading = bool(parts) and parts[0] == SpecialChars.WILDCARD_MULTI
    trailing = len(parts) > 1 and parts[-1] == SpecialChars.WILDCARD_MULTI
    inner = parts[int(leading) : len(parts) - int(trailing)]
    if all(isinstance(part, str) for part in inner):
        text = "".join(inner)  # type: ignore[arg-type]
        if keyword or (leading and trailing):
            return p.Text("contains", text, cased)
        if leading:
            return p.Text("endswith", text, cased)
        if trailing:
            return p.Text("startswith", text, cased)
        return p.Text("equals", text, cased)
    pieces = []
    for part in parts:
        if part == SpecialChars.WILDCARD_MULTI:
            pieces.append(".*")
        elif part == SpecialChars.WILDCARD_SINGLE:
            pieces.append(".")
        else:
            pieces.append(regex.escape(str(part)))
    body = "".join(pieces)
    pattern = body if keyword else f"^(?:{body})$"
    return p.Pattern(_compiled(pattern, 0 if cased else regex.IGNORECASE | regex.DOTALL))


def _regex(value: SigmaRegularExpression) -> regex.Pattern[str]:
    pattern = (
        str(value.regexp.to_plain(regex=True))
        if isinstance(value.regexp, SigmaString)
        else str(value.regexp)
    )
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise Refused(f"regular expression over {MAX_PATTERN_LENGTH} characters")
    flags = 0
    if SigmaRegularExpressionFlag.IGNORECASE in value.flags:
        flags |= regex.IGNORECASE
    if SigmaRegularExpressionFlag.MULTILINE in value.flags:
        flags |= regex.MULTILINE
    if SigmaRegularExpressionFlag.DOTALL in value.flags:
        flags |= regex.DOTALL
    return _compiled(pattern, flags)


@lru_cache(maxsize=2048)
def _compiled(pattern: str, flags: int) -> regex.Pattern[str]:
    try:
        return regex.compile(pattern, flags)
    except regex.error as error:
        raise Refused(f"regular expression {pattern!r} does not compile: {error}") from None


# --- correlations --------------------------------------------------------------------------------


def _correlation(
    rule: SigmaCorrelationRule,
    detections: dict[int, Detection | Refused],
    pipeline_vars: dict[str, list[str]],
) -> Correlation:
    kind = rule.type.name.lower()
    supported = ("event_count", "value_count", "temporal", "temporal_ordered")
    if rule.type.name.lower() not in supported:
        raise Refused(f"correlation type {kind} is not supported (AOC runs {', '.join(supported)})")
    references = rule.rules or []
    if not references:
        raise Refused("the correlation refers to no rule")
    group_by = list(rule.group_by or [])
    if len(group_by) > MAX_GROUP_FIELDS:
        raise Refused(f"a correlation groups by at most {MAX_GROUP_FIELDS} fields")
    window = int(rule.timespan.seconds)
    if not 1 <= window <= 7 * 86_400:
        raise Refused("a correlation timespan is between 1 s and 7 days")
    # a temporal_ordered correlation of [event_count, rule]: the sequence AOC runs natively
    if (
        rule.type == SigmaCorrelationType.TEMPORAL_ORDERED
        and len(references) == 2
        and isinstance(references[0].rule, SigmaCorrelationRule)
        and references[0].rule.type == SigmaCorrelationType.EVENT_COUNT
        and isinstance(references[1].rule, SigmaRule)
    ):
        inner = _correlation(references[0].rule, detections, pipeline_vars)
        closing = _part(references[1].rule, rule, detections, group_by)
        if len(inner.parts) != 1:
            raise Refused("the event_count of a sequence refers to exactly one rule")
        if _group_names(references[0].rule) != group_by:
            raise Refused("the event_count of a sequence groups by the same fields as the sequence")
        meta = _meta(rule, closing.detection.meta.logsource)
        return Correlation(
            meta,
            "sequence",
            (inner.parts[0], closing),
            window_seconds=inner.window_seconds,
            count=inner.count,
            label=inner.meta.title,
        )
    parts: list[Part] = []
    for reference in references:
        if isinstance(reference.rule, SigmaCorrelationRule):
            raise Refused(
                "a correlation over another correlation runs only as temporal_ordered of "
                "[event_count, rule] (a sequence such as many failures then a success)"
            )
        parts.append(_part(reference.rule, rule, detections, group_by))
    meta = _meta(rule, parts[0].detection.meta.logsource)
    if kind in ("temporal", "temporal_ordered"):
        if len(parts) < 2:
            raise Refused(f"a {kind} correlation refers to at least two rules")
        return Correlation(meta, kind, tuple(parts), window_seconds=window)  # type: ignore[arg-type]
    condition = rule.condition
    op = getattr(condition, "op", None)
    count = getattr(condition, "count", None)
    if op not in (SigmaCorrelationConditionOperator.GTE, SigmaCorrelationConditionOperator.GT):
        raise Refused(
            f"correlation condition {getattr(op, 'name', op)} is not supported: AOC alerts when "
            "a count reaches a threshold (gte or gt)"
        )
    threshold = int(count or 1) + (1 if op == SigmaCorrelationConditionOperator.GT else 0)
    if not 1 <= threshold <= 10_000:
        raise Refused("a correlation threshold is between 1 and 10000")
    distinct: tuple[str, ...] = ()
    if kind == "value_count":
        fieldref = getattr(condition, "fieldref", None)
        if not isinstance(fieldref, str):
            raise Refused("a value_count correlation names one field in its condition")
        distinct = tuple(_mapped(fieldref, part.detection.logsource) for part in parts)
    return Correlation(
        meta,
        kind,  # type: ignore[arg-type]
        tuple(parts),
        window_seconds=window,
        count=threshold,
        distinct_paths=distinct,
    )


def _group_names(rule: SigmaCorrelationRule) -> list[str]:
    return list(rule.group_by or [])


def _part(
    base: SigmaRule,
    correlation: SigmaCorrelationRule,
    detections: dict[int, Detection | Refused],
    group_by: list[str],
) -> Part:
    outcome = detections.get(id(base))
    if outcome is None:
        raise Refused(f"the correlation refers to {base.title!r}, which is not in the same text")
    if isinstance(outcome, Refused):
        raise Refused(f"the rule it refers to, {base.title!r}, is refused: {outcome}")
    paths: list[str] = []
    for name in group_by:
        alias = correlation.aliases.aliases.get(name) if correlation.aliases else None
        if alias is not None:
            for reference, field_name in alias.mapping.items():
                if reference.reference in (base.name, str(base.id)):
                    name = field_name
                    break
        paths.append(_mapped(name, outcome.logsource))
    return Part(outcome, tuple(paths))


def _mapped(name: str, served: ServedLogsource) -> str:
    mapped = served.map_field(name)
    if mapped is None:
        raise Refused(
            f"unmapped field {name!r} in the correlation: not a field of {served.name} records"
        )
    return _path(mapped, served)
