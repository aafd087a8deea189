"""What clients and managers read about claims: the catalogue `intake/claims/locale`."""

from __future__ import annotations

from pathlib import Path

import intake
from intake.i18n import LANGS, Catalogue, Lang, pick_language

# Found from the intake package, so the claims' modules may move within it.
CATALOGUE = Catalogue(Path(intake.__file__).parent / "claims" / "locale")
REASONS = ("quality", "delivery", "billing", "service", "other")

# The default reasons' labels, reason code -> language -> label.
DEFAULT_REASONS: dict[str, dict[str, str]] = {
    code: {lang: CATALOGUE.text(lang, f"reason.{code}") for lang in LANGS} for code in REASONS
}


def lang_of(language: str | None, default: str = "ru") -> Lang:
    """ru or en from an IETF tag; other languages get `default` (read the same way)."""
    return pick_language(language, default)


# `text(lang, "code", **values)`: the claims catalogue's message.
text = CATALOGUE.text


def status_label(lang: str, status: str) -> str:
    """A claim status in words; an unknown status as it is."""
    code = f"status.{status}"
    return CATALOGUE.text(lang, code) if CATALOGUE.has("en", code) else status


def status_notice(
    lang: str,
    number: str,
    status: str,
    *,
    resolution: str | None = None,
    comment: str | None = None,
    ask_rating: bool = False,
) -> str:
    """The message that tells a client their claim's new status."""
    lines = [text(lang, "status_changed", number=number, status=status_label(lang, status))]
    if resolution and status in ("resolved", "rejected"):
        lines.append(text(lang, "resolution", resolution=resolution))
    if comment:
        lines.append(text(lang, "comment", comment=comment))
    if ask_rating:
        lines.append("")
        lines.append(text(lang, "ask_rating"))
    return "\n".join(lines)
