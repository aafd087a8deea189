"""Sending one message over SMTP with aiosmtplib (no database here).

The caller learns only what it must decide on: `TemporaryDeliveryError` (4xx replies,
refused or dropped connections, timeouts: retry later) or `PermanentDeliveryError` (5xx
replies: do not retry). A successful send returns the server's final reply text.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage

import aiosmtplib

log = logging.getLogger(__name__)

SECURITY_MODES = ("tls", "starttls", "plain")


@dataclass
class SmtpSettings:
    host: str
    port: int
    security: str  # "tls" | "starttls" | "plain"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    # For "tls"/"starttls": None verifies against the system's CAs.
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)


class DeliveryError(Exception):
    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code} {self.message}" if self.code is not None else self.message


class TemporaryDeliveryError(DeliveryError):
    """Try again later: the server said 4xx, or could not be reached or hung up."""


class PermanentDeliveryError(DeliveryError):
    """Do not retry: the server said 5xx (or the message cannot be sent as it is)."""


class SmtpAuthFailed(PermanentDeliveryError):
    """The server refused the credentials (a 5xx to AUTH): the channel's settings are wrong."""


class SmtpMisconfigured(PermanentDeliveryError):
    """The mailbox's settings do not fit the server (a login or STARTTLS it does not offer)."""


def _classify(code: int | None, message: str) -> DeliveryError:
    if code is not None and 500 <= code < 600:
        return PermanentDeliveryError(message, code)
    return TemporaryDeliveryError(message, code)


async def send_message(
    settings: SmtpSettings,
    message: EmailMessage,
    *,
    sender: str,
    recipients: Sequence[str],
) -> str:
    """Send `message` to `recipients` with envelope sender `sender`; the server's reply text.

    Bcc headers are not transmitted (aiosmtplib strips them); the envelope decides who gets
    the message. If only some recipients are refused the message went out to the others:
    that is a success (logged), since retrying would send it twice.
    """
    if settings.security not in SECURITY_MODES:
        raise ValueError(f"security must be one of {SECURITY_MODES}, not {settings.security!r}")
    if not recipients:
        raise PermanentDeliveryError("no recipients")
    where = f"{settings.host}:{settings.port}"
    tls = settings.security == "tls"
    try:
        errors, reply = await aiosmtplib.send(
            message,
            sender=sender,
            recipients=list(recipients),
            hostname=settings.host,
            port=settings.port,
            username=settings.user or None,
            password=settings.password if settings.user else None,
            timeout=settings.timeout,
            use_tls=tls,
            # False, not None: None would mean "STARTTLS if offered" for "plain".
            start_tls=settings.security == "starttls",
            tls_context=settings.ssl_context,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [refused.code for refused in exc.recipients]
        detail = "; ".join(
            f"{refused.recipient}: {refused.code} {refused.message}" for refused in exc.recipients
        )
        if codes and all(500 <= code < 600 for code in codes):
            raise PermanentDeliveryError(f"all recipients refused: {detail}", codes[0]) from exc
        temporary = next((code for code in codes if not 500 <= code < 600), None)
        raise TemporaryDeliveryError(f"recipients refused: {detail}", temporary) from exc
    except aiosmtplib.SMTPAuthenticationError as exc:
        if 500 <= exc.code < 600:
            raise SmtpAuthFailed(f"{where} refused the login: {exc.message}", exc.code) from exc
        raise TemporaryDeliveryError(f"{where} login failed: {exc.message}", exc.code) from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise _classify(exc.code, f"{where}: {exc.message}") from exc
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError) as exc:
        raise TemporaryDeliveryError(f"{where}: {exc}") from exc
    except (TimeoutError, aiosmtplib.SMTPTimeoutError) as exc:
        raise TemporaryDeliveryError(
            f"{where}: no answer within {settings.timeout:g}s ({exc})"
        ) from exc
    except aiosmtplib.SMTPNotSupported as exc:
        # e.g. STARTTLS or AUTH not offered, SMTPUTF8 needed but missing: settings or
        # message do not fit this server; retrying will not help.
        raise PermanentDeliveryError(f"{where}: {exc}") from exc
    except aiosmtplib.SMTPException as exc:
        if type(exc) is aiosmtplib.SMTPException:
            # aiosmtplib raises the bare base class only from its own checks, before a
            # command goes out: an extension the settings need is not offered.
            hint = ""
            if "AUTH" in str(exc):
                hint = " (if it takes mail without a login, give the mailbox no SMTP user)"
            raise SmtpMisconfigured(f"{where}: {exc}{hint}") from exc
        raise TemporaryDeliveryError(f"{where}: {exc}") from exc
    except OSError as exc:  # refused, reset, unreachable, TLS failures
        raise TemporaryDeliveryError(f"{where}: {exc}") from exc
    if errors:
        log.warning(
            "smtp %s accepted the message for some recipients only: %s",
            where,
            {address: f"{r.code} {r.message}" for address, r in errors.items()},
        )
    return reply
