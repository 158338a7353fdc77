"""Alert rules: list, create, read, replace, delete. Bodies are validated into `RuleSpec` (paths,
operators, regular-expression length and syntax), so the alerter only ever sees rules it can run.

Write endpoints need a writer (`require_writer`): a rule decides what pages the on-call analyst.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import BaseModel

from aoc_api.auth import require_writer
from aoc_api.dependencies import RulesDep
from aoc_api.openapi import STORE_RESPONSES
from aoc_common.rules import Rule, RuleSpec

router = APIRouter(prefix="/api", tags=["rules"], responses=STORE_RESPONSES)
WRITE_DEPENDENCIES = [Depends(require_writer)]
MAX_ID_LENGTH = 100


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
async def create_rule(spec: RuleSpec, store: RulesDep) -> Rule:
    rule = Rule(id=f"rule-{uuid.uuid4().hex}", **spec.model_dump())
    await store.put_rule(rule)
    return rule


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
async def replace_rule(rule_id: str, spec: RuleSpec, store: RulesDep) -> Rule:
    if len(rule_id) > MAX_ID_LENGTH or await store.get_rule(rule_id) is None:
        raise _not_found()
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
