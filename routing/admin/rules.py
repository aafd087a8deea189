"""Routing rules: what a rule matches, where it sends a conversation, and their order.

Services validate, change rows and flush; they never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy.ext.asyncio import AsyncSession

from routing.admin.repository import RoutingAdminRepository
from routing.rules import RuleActions, RuleConditions
from storage.errors import InvalidInput, NotFound
from storage.models import RoutingRule

# -- inputs ------------------------------------------------------------------------------


class RuleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, examples=["Претензии"])
    is_active: StrictBool = True
    conditions: RuleConditions = Field(default_factory=RuleConditions)
    actions: RuleActions = Field(default_factory=RuleActions)


class RuleChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    is_active: StrictBool | None = None
    conditions: RuleConditions | None = None
    actions: RuleActions | None = None


# -- rules -------------------------------------------------------------------------------


async def list_rules(session: AsyncSession) -> list[RoutingRule]:
    return list(await RoutingAdminRepository(session).rules())


async def _rule(repo: RoutingAdminRepository, rule_id: int) -> RoutingRule:
    rule = await repo.rule(rule_id)
    if rule is None:
        raise NotFound(f"no rule {rule_id}")
    return rule


async def get_rule(session: AsyncSession, rule_id: int) -> RoutingRule:
    return await _rule(RoutingAdminRepository(session), rule_id)


async def _check_actions(repo: RoutingAdminRepository, actions: RuleActions) -> None:
    if actions.queue_id is not None and not await repo.existing_queue_ids([actions.queue_id]):
        raise InvalidInput(f"actions.queue_id: no queue {actions.queue_id}", code="unknown_queue")
    if actions.manager_id is not None and not await repo.existing_manager_ids([actions.manager_id]):
        raise InvalidInput(
            f"actions.manager_id: no manager {actions.manager_id}", code="unknown_manager"
        )


def _dump_rule_part(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_defaults=True)


async def create_rule(session: AsyncSession, settings: RuleSettings) -> RoutingRule:
    """A new rule, last in order."""
    repo = RoutingAdminRepository(session)
    await _check_actions(repo, settings.actions)
    rule = RoutingRule(
        name=settings.name,
        is_active=settings.is_active,
        position=await repo.next_rule_position(),
        conditions=_dump_rule_part(settings.conditions),
        actions=_dump_rule_part(settings.actions),
    )
    session.add(rule)
    await session.flush()
    return rule


async def update_rule(session: AsyncSession, rule_id: int, changes: RuleChanges) -> RoutingRule:
    repo = RoutingAdminRepository(session)
    rule = await _rule(repo, rule_id)
    given = changes.model_fields_set
    for name in ("name", "is_active"):
        if name in given:
            value = getattr(changes, name)
            if value is None:
                raise InvalidInput(f"{name} may not be null")
            setattr(rule, name, value)
    if "conditions" in given:
        rule.conditions = _dump_rule_part(changes.conditions or RuleConditions())
    if "actions" in given:
        actions = changes.actions or RuleActions()
        await _check_actions(repo, actions)
        rule.actions = _dump_rule_part(actions)
    await session.flush()
    return rule


async def delete_rule(session: AsyncSession, rule_id: int) -> None:
    repo = RoutingAdminRepository(session)
    await session.delete(await _rule(repo, rule_id))
    await session.flush()


async def reorder_rules(session: AsyncSession, rule_ids: Sequence[int]) -> list[RoutingRule]:
    """Set the order of all rules: `rule_ids` must list every rule exactly once."""
    repo = RoutingAdminRepository(session)
    rules = {rule.id: rule for rule in await repo.rules()}
    if len(set(rule_ids)) != len(rule_ids) or set(rule_ids) != set(rules):
        raise InvalidInput(
            {
                "message": "list every rule id exactly once",
                "missing": sorted(set(rules) - set(rule_ids)),
                "unknown": sorted(set(rule_ids) - set(rules)),
            },
            code="invalid_order",
        )
    for position, rule_id in enumerate(rule_ids):
        rules[rule_id].position = position
    await session.flush()
    return [rules[rule_id] for rule_id in rule_ids]
