"""Routing rules: ordered conditions on what came in, and what to do when they hold."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from storage.models import Priority
from storage.types import DbId


class RuleConditions(BaseModel):
    """Every condition given must hold; a list means "any of these"."""

    model_config = ConfigDict(extra="forbid")

    channel_kind: list[str] = Field(default_factory=list)
    channel_key: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list, description="any, case-insensitive")
    regex: str | None = Field(default=None, description="searched in the message text")
    form_fields: dict[str, list[str]] = Field(default_factory=dict)
    contact: dict[str, list[str]] = Field(
        default_factory=dict, description="contact fields: name, company, language, owner_id"
    )
    claim_reason: list[str] = Field(default_factory=list)
    language: list[str] = Field(default_factory=list)
    working_hours: Literal["in", "out"] | None = Field(
        default=None, description="in or out of the rule's queue's working hours"
    )

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from exc
        return value


class RuleActions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue_id: DbId | None = None
    manager_id: DbId | None = None
    priority: Priority | None = None
    tags: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class RoutingFacts:
    """What routing knows of a conversation when it decides."""

    channel_kind: str
    channel_key: str
    text: str
    language: str | None
    now: datetime
    form_fields: dict[str, Any] = field(default_factory=dict)
    contact: dict[str, Any] = field(default_factory=dict)
    claim_reason: str | None = None
    # Whether `now` is inside the working hours of a queue, by queue id.
    queue_in_hours: dict[int, bool] = field(default_factory=dict)


def _any_of(value: Any, allowed: list[str]) -> bool:
    return value is not None and str(value).casefold() in {a.casefold() for a in allowed}


def matches(conditions: RuleConditions, actions: RuleActions, facts: RoutingFacts) -> bool:
    if conditions.channel_kind and not _any_of(facts.channel_kind, conditions.channel_kind):
        return False
    if conditions.channel_key and not _any_of(facts.channel_key, conditions.channel_key):
        return False
    text = facts.text.casefold()
    if conditions.keywords and not any(k.casefold() in text for k in conditions.keywords):
        return False
    if conditions.regex and not re.search(conditions.regex, facts.text, re.IGNORECASE):
        return False
    for name, allowed in conditions.form_fields.items():
        if not _any_of(facts.form_fields.get(name), allowed):
            return False
    for name, allowed in conditions.contact.items():
        if not _any_of(facts.contact.get(name), allowed):
            return False
    if conditions.claim_reason and not _any_of(facts.claim_reason, conditions.claim_reason):
        return False
    if conditions.language and not _any_of(facts.language, conditions.language):
        return False
    if conditions.working_hours is not None:
        in_hours = facts.queue_in_hours.get(actions.queue_id or 0, True)
        if in_hours != (conditions.working_hours == "in"):
            return False
    return True


@dataclass(frozen=True)
class ActiveRule:
    """A stored rule with its conditions and actions parsed once, not per decision."""

    id: int
    name: str
    conditions: RuleConditions
    actions: RuleActions


class RuleBook:
    """The active rules, parsed, kept while the table's version stays the same.

    The version (row count, last change, id sum) comes with the conversation's row
    in routing's first query, so an unchanged table costs no query at all.
    """

    def __init__(self) -> None:
        self._version: tuple[Any, ...] | None = None
        self._rules: list[ActiveRule] = []

    def current(self, version: tuple[Any, ...]) -> list[ActiveRule] | None:
        return self._rules if version == self._version else None

    def keep(self, version: tuple[Any, ...], rows: Any) -> list[ActiveRule]:
        self._rules = [
            ActiveRule(
                id=row.id,
                name=row.name,
                conditions=RuleConditions.model_validate(row.conditions),
                actions=RuleActions.model_validate(row.actions),
            )
            for row in rows
        ]
        self._version = version
        return self._rules
