"""Everything the client bot and the managers' bot say: the catalogue `bots/locale/<lang>.po`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from intake.i18n import Catalogue

CATALOGUE = Catalogue(Path(__file__).parent / "locale")

# `t(lang, "code", **values)` and `plural(lang, "code", count, **values)`.
t = CATALOGUE.text
plural = CATALOGUE.plural


def date_text(lang: str, value: object) -> str:
    """A date as clients of each language write it."""
    if not isinstance(value, datetime):
        return str(value)
    return value.strftime("%d.%m.%Y") if lang == "ru" else value.strftime("%Y-%m-%d")
