"""Alert rules: list, create, read, replace, delete. Bodies are validated into `RuleSpec` (paths,
operators, regular-expression length and syntax), so the alerter only ever sees rules it can run.
Sigma rules arrive as YAML (`POST /api/rules/sigma`) and are compiled with AOC's pipeline before
they are stored: a rule AOC cannot run is refused (422) with the exact reason.

Write endpoints need a writer (`require_writer`): a rule decides what pages the on-call analyst.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from aoc_api.auth import require_writer
from aoc_api.dependencies import RulesDep, SettingsDep, StateDep, StoreDep
from aoc_api.openapi import STORE_RESPONSES
from aoc_api.problems import problem
from aoc_common.rules import MAX_SIGMA_YAML, Rule, RuleSpec
from aoc_common.settings import Settings
from aoc_common.sigma import Refused, compile_text, compiled_rule, to_rule

router = APIRouter(prefix="/api", tags=["rules"], responses=STORE_RESPONSES)
WRITE_DEPENDENCIES = [Depends(require_writer)]
MAX_ID_LENGTH = 100
SIGMA_MEDIA_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


class RuleList(BaseModel):
    items: list[Rule]


def _not_found() -> HTTPException:
    return HTTPException(404, "no rule with that id")


@router.get("/rules", response_model=RuleList, summary="Every alert rule, by name")
async def list_rules(store: RulesDep) -> RuleList:
    return RuleList(items=await store.list_rules())


@router.post(
    "/rules",
    response_model=Rule,
    status_code=201,
    dependencies=WRITE_DEPENDENCIES,
    summary="Create a rule; the server assigns its id",
)
async def create_rule(spec: RuleSpec, store: RulesDep, settings: SettingsDep) -> Rule:
    _check_sigma(spec, settings)
    rule = Rule(id=f"rule-{uuid.uuid4().hex}", **spec.model_dump())
    await store.put_rule(rule)
    return rule


def _check_sigma(spec: RuleSpec, settings: Settings) -> None:
    """A rule's `sigma` text must compile to the rule it names, as the alerter will compile it."""
    if spec.sigma is None:
        return
    try:
        compiled_rule(spec.sigma, settings.sigma_placeholders)
    except Refused as refused:
        raise HTTPException(422, f"Sigma rule refused: {refused}") from None


@router.post(
    "/rules/sigma",
    response_model=RuleList,
    status_code=201,
    dependencies=WRITE_DEPENDENCIES,
    summary="Create or replace rules from Sigma YAML (rules, correlations with their rules)",
    description=(
        "The body is Sigma YAML (`Content-Type: application/yaml`): one rule, or several documents "
        "separated by `---` (a correlation and the rules it refers to). Each rule is stored as "
        "`sigma-<its id>`, replacing an earlier version. Nothing is stored when any rule is "
        "refused: the 422 answer lists every refused rule with the exact reason (a log source AOC "
        "does not collect, an unmapped field, an unsupported modifier or correlation…)."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/yaml": {"schema": {"type": "string"}}},
        }
    },
    responses={
        415: {"description": "The body is not YAML"},
        422: {"description": "A rule AOC cannot run, with the reason"},
    },
)
async def create_sigma_rules(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
) -> RuleList | JSONResponse:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in SIGMA_MEDIA_TYPES:
        return problem(415, "Unsupported media type", "Send Sigma rules as application/yaml.")
    body = await request.body()
    if len(body) > MAX_SIGMA_YAML:
        return problem(413, "Payload too large", f"Sigma YAML is at most {MAX_SIGMA_YAML} bytes.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return problem(400, "Bad request", "Sigma YAML must be UTF-8.")
    result = compile_text(text, placeholders=settings.sigma_placeholders, origin="api")
    if result.refusals or not result.rules:
        refused = [
            {"sigma_id": r.sigma_id, "title": r.title, "reason": r.reason} for r in result.refusals
        ]
        detail = refused[0]["reason"] if refused else "The YAML holds no Sigma rule that alerts."
        return problem(422, "Sigma rule refused", detail, refused=refused)
    rules = [
        to_rule(compiled, result.documents[compiled.meta.sigma_id], origin="api")
        for compiled in result.rules
    ]
    for rule in rules:
        await store.put_rule(rule)
    return RuleList(items=rules)


SIGMA_REPORT_KEY = "alerter:sigma-load-report"  # written by the alerter at start


@router.get(
    "/rules/sigma/report",
    summary="What the alerter made of SIGMA_RULES_PATH at its last start",
    description=(
        "The paths, the ids of the rules loaded, and every refused rule with its file and the "
        "exact reason. 404 until an alerter with SIGMA_RULES_PATH has started."
    ),
    responses={404: {"description": "No alerter with SIGMA_RULES_PATH has started yet"}},
)
async def sigma_report(store: StateDep) -> dict[str, Any]:
    report = await store.get_state(SIGMA_REPORT_KEY)
    if report is None:
        raise HTTPException(404, "no Sigma rules loaded from files yet (SIGMA_RULES_PATH)")
    return report


@router.get("/rules/{rule_id}", response_model=Rule, summary="One rule")
async def get_rule(rule_id: str, store: RulesDep) -> Rule:
    rule = await store.get_rule(rule_id) if len(rule_id) <= MAX_ID_LENGTH else None
    if rule is None:
        raise _not_found()
    return rule


@router.put(
    "/rules/{rule_id}",
    response_model=Rule,
    dependencies=WRITE_DEPENDENCIES,
    summary="Replace a rule (enable, disable, edit)",
)
async def replace_rule(
    rule_id: str, spec: RuleSpec, store: RulesDep, settings: SettingsDep
) -> Rule:
    if len(rule_id) > MAX_ID_LENGTH or await store.get_rule(rule_id) is None:
        raise _not_found()
    _check_sigma(spec, settings)
    rule = Rule(id=rule_id, **spec.model_dump())
    await store.put_rule(rule)
    return rule


@router.delete(
    "/rules/{rule_id}",
    status_code=204,
    response_class=Response,
    dependencies=WRITE_DEPENDENCIES,
    summary="Delete a rule (its alerts stay)",
)
async def delete_rule(rule_id: str, store: RulesDep) -> Response:
    if len(rule_id) > MAX_ID_LENGTH or not await store.delete_rule(rule_id):
        raise _not_found()
    return Response(status_code=204)
