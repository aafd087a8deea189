"""Real mail servers for the email channel's tests: dovecot (IMAP) and an SMTP recorder.

`dovecot` is a fresh dovecot per test (it starts in well under 0.1 s) with one user,
`IMAP_USER`/`IMAP_PASSWORD`; `mailbox_settings` points the channel's IMAP client at it.
`smtp_server` is a fresh recorder per test; `smtp_settings` points the sender at it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from channels.email.imap import MailboxSettings
from channels.email.smtp import SmtpSettings
from tests.channels.email.flow import MailHub
from tests.conftest import missing_part
from tests.mailservers import Dovecot, SmtpRecorder, dovecot_missing_reason

IMAP_USER = "hub@example.test"
IMAP_PASSWORD = "imap-secret"


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    reason = dovecot_missing_reason()
    if reason:
        missing_part(reason)
    server = Dovecot(users={IMAP_USER: IMAP_PASSWORD})
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def mailbox_settings(dovecot: Dovecot) -> MailboxSettings:
    return MailboxSettings(
        host=dovecot.host,
        port=dovecot.imap_port,
        security="plain",
        user=IMAP_USER,
        password=IMAP_PASSWORD,
        timeout=5.0,
    )


@pytest.fixture
def smtp_server() -> Iterator[SmtpRecorder]:
    recorder = SmtpRecorder()
    recorder.start()
    try:
        yield recorder
    finally:
        recorder.stop()


@pytest.fixture
def smtp_settings(smtp_server: SmtpRecorder) -> SmtpSettings:
    return SmtpSettings(
        host=smtp_server.host,
        port=smtp_server.port,
        security="plain",
        user=None,
        password=None,
        timeout=5.0,
    )


@pytest.fixture
async def hub(
    app: Any, client: httpx.AsyncClient, dovecot: Dovecot, smtp_server: SmtpRecorder
) -> MailHub:
    """A hub with the mailbox `support` on this test's dovecot and SMTP recorder."""
    mail_hub = MailHub(app, client, dovecot, smtp_server)
    await mail_hub.setup()
    return mail_hub
