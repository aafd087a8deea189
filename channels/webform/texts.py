"""What the hosted forms say around their configured texts: `locale/form` for any form,
`locale/claims` for the claims form."""

from __future__ import annotations

from pathlib import Path

from intake.i18n import Catalogue

FORM = Catalogue(Path(__file__).parent / "locale" / "form")
CLAIMS_FORM = Catalogue(Path(__file__).parent / "locale" / "claims")

# `text(lang, "code", **values)`: the generic form's messages.
text = FORM.text
