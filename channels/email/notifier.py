"""Routing's notifications by email, to managers who have `notify_by_email`.

A short plain-text mail through the notifications' SMTP server (aiosmtplib). Any
failure raises, so the notification is retried for this notifier alone (routing.notify).
"""

from __future__ import annotations

from email.header import Header
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid

import aiosmtplib

from routing.notify import Notification
from storage.models import Manager


class EmailNotifier:
    """A short plain-text mail to managers who have `notify_by_email`."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int = 25,
        sender: str = "omnihub@localhost",
        use_tls: bool = False,
        username: str | None = None,
        password: str | None = None,
        *,
        timeout: float = 15.0,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.use_tls = use_tls
        self.username = username
        self.password = password
        self.timeout = timeout

    def message(self, manager: Manager, notification: Notification) -> MIMEText:
        # compat32 with an explicit Header: the default policy's folding of a long
        # non-ASCII subject drops the space between two encoded words (CPython's email).
        mail = MIMEText(notification.body(manager.language), "plain", "utf-8")
        mail["From"] = self.sender
        mail["To"] = manager.email
        subject = Header(notification.title(manager.language), "utf-8")
        mail["Subject"] = subject  # type: ignore[assignment]  # compat32 takes a Header
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        mail["Auto-Submitted"] = "auto-generated"
        mail["X-Omnihub-Notification"] = notification.kind
        return mail

    async def send(self, manager: Manager, notification: Notification) -> None:
        if not manager.notify_by_email or not manager.email:
            return
        await aiosmtplib.send(
            self.message(manager, notification),
            hostname=self.host,
            port=self.port,
            use_tls=self.use_tls,
            username=self.username,
            password=self.password,
            timeout=self.timeout,
        )
