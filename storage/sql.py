"""Small pieces of Core SQL that several repositories share."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, any_, literal
from sqlalchemy.dialects.postgresql import ARRAY


def id_array(ids: Iterable[int]) -> Any:
    """Ids as one PostgreSQL `BIGINT[]` parameter."""
    return literal(list(ids), type_=ARRAY(BigInteger))


def among(column: Any, ids: Iterable[int], *, postgresql: bool) -> ColumnElement[bool]:
    """`column IN ids`. On PostgreSQL `column = ANY(<one array parameter>)`: the same
    statement whatever the number of ids, compiled and prepared once (an IN list has a
    parameter per id, so a statement per length). Elsewhere an IN list."""
    values = sorted(set(ids))
    if postgresql:
        return column == any_(id_array(values))
    return column.in_(values)
