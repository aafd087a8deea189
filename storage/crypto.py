"""Channel secrets at rest: encrypted with a key derived from the hub's secret key.

Fernet (AES-128-CBC with HMAC-SHA256, from the cryptography package) gives
authenticated encryption; the key is HKDF-derived from the hub's secret, so the
stored value is useless without it, and a changed secret is detected (not
silently decrypted into garbage).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SecretsUnreadable(Exception):
    """The stored secrets do not open with this hub's secret key."""


class SecretBox:
    def __init__(self, hub_secret: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"omnihub channel secrets v1"
        ).derive(hub_secret.encode("utf-8"))
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, values: dict[str, Any]) -> str:
        data = json.dumps(values, ensure_ascii=False, sort_keys=True).encode("utf-8")
        return self._fernet.encrypt(data).decode("ascii")

    def open(self, sealed: str | None) -> dict[str, Any]:
        if not sealed:
            return {}
        try:
            opened = json.loads(self._fernet.decrypt(sealed.encode("ascii")))
        except (InvalidToken, ValueError) as exc:
            raise SecretsUnreadable(
                "channel secrets cannot be decrypted: was the hub's secret key changed?"
            ) from exc
        if not isinstance(opened, dict):
            raise SecretsUnreadable("channel secrets are not a mapping")
        return opened
