"""What every API router declares besides its routes' own refusals (storage.errors.answers)."""

from __future__ import annotations

from storage.errors import HubError, InvalidInput, Unauthorized, answers

# Authentication, input that is not valid, and a body that cannot be parsed at all.
API_ANSWERS = answers(Unauthorized, InvalidInput, HubError)
