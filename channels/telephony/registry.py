"""The telephony providers: every module of this package with a `PROVIDER` is one.

Adding a provider is one module (and its tests): nothing here changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from channels import telephony
from channels.telephony.base import Provider
from storage.errors import InvalidInput


@cache
def providers() -> dict[str, Provider]:
    found: dict[str, Provider] = {}
    for module in pkgutil.iter_modules(telephony.__path__):
        loaded = importlib.import_module(f"{telephony.__name__}.{module.name}")
        provider = getattr(loaded, "PROVIDER", None)
        if provider is not None:
            found[provider.name] = provider
    return dict(sorted(found.items()))


def provider(name: str) -> Provider:
    """The provider called `name`; InvalidInput (unknown_provider) otherwise."""
    found = providers().get(name)
    if found is None:
        known = ", ".join(providers())
        raise InvalidInput(f"unknown provider {name!r} (one of {known})", code="unknown_provider")
    return found
