"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from annotated_types import Interval
from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# The largest value of a 64-bit column: past it PostgreSQL refuses the query (a 500, not
# a 404), so every id and count taken from outside is checked against it first.
MAX_DB_INT = 2**63 - 1
# An id (or a positive count) as a request may give it: 1..MAX_DB_INT, else a 422. The
# bound is exclusive because FastAPI writes OpenAPI bounds as floats: 2**63 is one
# exactly, 2**63 - 1 is not (it would read 2**63 and promise one id too many).
DbId = Annotated[int, Interval(ge=1, lt=MAX_DB_INT + 1)]

JSONDict = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp; naive datetimes are refused on the way in."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware UTC one is required")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite keeps text; naive UTC text sorts and compares correctly.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        result: datetime = value.astimezone(UTC)
        return result
