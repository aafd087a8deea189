"""Channel secrets at rest: sealed with the hub's key, unreadable without it."""

from __future__ import annotations

import pytest

from storage.crypto import SecretBox, SecretsUnreadable


def test_sealed_values_open_with_the_same_key_only() -> None:
    box = SecretBox("hub-secret-one")
    sealed = box.seal({"imap_password": "пароль-123", "smtp_password": None})
    assert "пароль" not in sealed and "123" not in sealed
    assert box.open(sealed) == {"imap_password": "пароль-123", "smtp_password": None}
    assert SecretBox("hub-secret-one").open(sealed)["imap_password"] == "пароль-123"
    with pytest.raises(SecretsUnreadable, match="secret key"):
        SecretBox("hub-secret-two").open(sealed)


def test_tampered_or_empty_values() -> None:
    box = SecretBox("k")
    sealed = box.seal({"a": "b"})
    with pytest.raises(SecretsUnreadable):
        box.open(sealed[:-4] + "AAAA")
    assert box.open(None) == {} and box.open("") == {}


def test_each_seal_differs() -> None:
    box = SecretBox("k")
    assert box.seal({"a": "b"}) != box.seal({"a": "b"})
