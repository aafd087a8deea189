"""A thin async IMAP client for the mailbox poller, over aioimaplib (no database here).

    session = await open_imap(settings)
    async with session:
        uids = await session.search_uids_after(last_uid)
        for uid, raw in await session.fetch(uids[:50]):
            ...
        await session.mark_seen(uids[:50])
        new_mail = await session.idle_wait(60)

Every failure of the network or the server (refused, timed out, dropped, `* BYE`) raises
`ImapUnavailable` and leaves the session dead: close it and open a new one. A NO or BAD
where OK was due raises `ImapCommandFailed` (an `ImapUnavailable`; the connection itself
stays usable). A refused LOGIN raises `ImapAuthFailed`.

aioimaplib notes (2.0.x) that shape this module:
- a lost connection does not fail pending commands, they would wait for their timeout; so
  every command here races the connection-lost callback and a deadline;
- mailbox names are sent as given, unquoted; we quote (and modified-UTF-7 encode) them;
- FETCH responses come as a flat list: `b'1 FETCH (UID 7 BODY[] {123}'`, the literal as a
  `bytearray`, then `b')'`; the last element is the tagged completion text;
- the capabilities it keeps after LOGIN are parsed sloppily, so we parse them ourselves;
- it has no STARTTLS helper; we issue STARTTLS and upgrade the transport ourselves.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import ssl
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import aioimaplib

log = logging.getLogger(__name__)

SECURITY_MODES = ("tls", "starttls", "plain")
# A UID FETCH names at most this many messages; aioimaplib parses a response chunk with
# one recursion level per response line, so huge batches could hit Python's limit.
FETCH_CHUNK = 100

_T = TypeVar("_T")


@dataclass
class MailboxSettings:
    host: str
    port: int
    security: str  # "tls" | "starttls" | "plain"
    user: str
    password: str = field(repr=False)
    folder: str = "INBOX"
    timeout: float = 30.0
    # For "tls"/"starttls": None verifies against the system's CAs.
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)


class ImapError(Exception):
    pass


class ImapAuthFailed(ImapError):
    """The server refused the user name or password (channel status "auth_failed")."""


class ImapUnavailable(ImapError):
    """The server is unreachable, too slow, hung up or failed (status "unreachable")."""


class ImapCommandFailed(ImapUnavailable):
    """The server answered NO/BAD to a command that should have worked (e.g. SELECT of a
    folder that does not exist)."""


_UIDVALIDITY_RE = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_UIDNEXT_RE = re.compile(rb"\[UIDNEXT (\d+)\]")
_EXISTS_RE = re.compile(rb"^(\d+) EXISTS\b")
_RECENT_RE = re.compile(rb"^(\d+) RECENT\b")
_CAPABILITY_RE = re.compile(rb"\[CAPABILITY ([^\]]*)\]")
_FETCH_START_RE = re.compile(rb"^\d+ FETCH \(", re.IGNORECASE)
_FETCH_UID_RE = re.compile(rb"[( ]UID (\d+)", re.IGNORECASE)
_BODY_LITERAL_RE = re.compile(rb"(?:BODY\[\]|RFC822)(?:<\d+>)? \{(\d+)\}$", re.IGNORECASE)
_SEARCH_RE = re.compile(rb"^SEARCH\b(.*)$", re.IGNORECASE)


async def open_imap(settings: MailboxSettings) -> ImapSession:
    """Connect, log in and select `settings.folder`; use the result as `async with`."""
    session = ImapSession(settings)
    try:
        await session._open()
    except BaseException:
        await session.close()
        raise
    return session


class ImapSession:
    def __init__(self, settings: MailboxSettings) -> None:
        if settings.security not in SECURITY_MODES:
            raise ValueError(f"security must be one of {SECURITY_MODES}, not {settings.security!r}")
        self.settings = settings
        self.timeout = float(settings.timeout)
        self.folder = settings.folder
        self.uidvalidity = 0
        self.uidnext: int | None = None
        self.exists = 0
        self.capabilities: frozenset[str] = frozenset()
        self._imap: aioimaplib.IMAP4 | None = None
        self._lost: asyncio.Future[None] | None = None
        self._dead_reason: str | None = None
        self._closed = False

    # public API

    @property
    def has_idle(self) -> bool:
        return "IDLE" in self.capabilities

    @property
    def has_move(self) -> bool:
        return "MOVE" in self.capabilities

    @property
    def alive(self) -> bool:
        return self._imap is not None and self._dead_reason is None and not self._closed

    async def __aenter__(self) -> ImapSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def search_uids_after(self, last_uid: int) -> list[int]:
        """UIDs above `last_uid` in the folder, ascending.

        Starts with a NOOP: a server shows a session mail that arrived since its last
        command only after such a sync (dovecot's UID SEARCH alone would miss it).
        """
        imap = self._need()
        await self.noop()
        response = await self._call(
            "UID SEARCH", imap.uid_search("UID", f"{last_uid + 1}:*", charset=None)
        )
        self._expect_ok("UID SEARCH", response)
        # aioimaplib routes `* SEARCH 4 5` here with the word SEARCH cut off: b'4 5'
        # (b'' for no match); the last line is the tagged completion text.
        uids: set[int] = set()
        for line in _text_lines(response)[:-1]:
            match = _SEARCH_RE.match(line)
            tokens = (match.group(1) if match else line).split()
            uids.update(int(token) for token in tokens if token.isdigit())
        # "n:*" always matches the highest UID, even when it is below n.
        return sorted(uid for uid in uids if uid > last_uid)

    async def fetch(self, uids: Sequence[int]) -> list[tuple[int, bytes]]:
        """The raw RFC 822 bytes of these messages, without setting \\Seen, by UID ascending.

        UIDs that no longer exist are left out. One UID FETCH per `FETCH_CHUNK` UIDs.
        """
        imap = self._need()
        wanted = sorted(set(uids))
        found: dict[int, bytes] = {}
        for start in range(0, len(wanted), FETCH_CHUNK):
            chunk = wanted[start : start + FETCH_CHUNK]
            # aioimaplib bounds a FETCH by inactivity (its timer restarts on every chunk of
            # data), so a large message on a slow link is not cut off by the timeout.
            response = await self._call(
                "UID FETCH",
                imap.uid("fetch", uid_set(chunk), "(UID BODY.PEEK[])"),
                bounded=False,
            )
            self._expect_ok("UID FETCH", response)
            requested = set(chunk)
            for uid, body in parse_fetch_bodies(response.lines[:-1]):
                if uid in requested:
                    found[uid] = body
        return sorted(found.items())

    async def mark_seen(self, uids: Sequence[int]) -> None:
        await self._store(uids, "+FLAGS.SILENT", r"(\Seen)")

    async def move(self, uids: Sequence[int], folder: str) -> None:
        """Move messages to `folder` (created when missing): UID MOVE, or COPY + \\Deleted +
        UID EXPUNGE on servers without MOVE."""
        if not uids:
            return
        imap = self._need()
        target = mailbox_arg(folder)
        if self.has_move:

            async def attempt() -> aioimaplib.Response:
                return await self._call("UID MOVE", imap.uid("move", uid_set(uids), target))

        else:

            async def attempt() -> aioimaplib.Response:
                return await self._call("UID COPY", imap.uid("copy", uid_set(uids), target))

        response = await attempt()
        if response.result != "OK":
            await self.create_folder(folder)
            response = await attempt()
        self._expect_ok("UID MOVE" if self.has_move else "UID COPY", response)
        if not self.has_move:
            await self._store(uids, "+FLAGS.SILENT", r"(\Deleted)")
            if "UIDPLUS" in self.capabilities:
                response = await self._call("UID EXPUNGE", imap.uid("expunge", uid_set(uids)))
            else:
                response = await self._call("EXPUNGE", imap.expunge())
            self._expect_ok("EXPUNGE", response)

    async def create_folder(self, folder: str) -> None:
        """CREATE a folder; one that already exists is fine."""
        imap = self._need()
        response = await self._call("CREATE", imap.create(mailbox_arg(folder)))
        if (
            response.result != "OK"
            and b"ALREADYEXISTS" not in b" ".join(_text_lines(response)).upper()
        ):
            raise ImapCommandFailed(f"CREATE {folder!r}: {_result_text(response)}")

    async def idle_wait(self, timeout: float) -> bool:  # noqa: ASYNC109 (the API's bound)
        """Wait up to `timeout` seconds for the server to report new mail.

        Uses IDLE (ended with DONE) when the server has it, else sleeps and asks with NOOP.
        Returns True when the server signalled EXISTS/RECENT, False on timeout.
        """
        imap = self._need()
        if not self.has_idle:
            await self._sleep(timeout)
            response = await self._call("NOOP", imap.noop())
            self._expect_ok("NOOP", response)
            return _signals_new_mail(_text_lines(response))
        queue: asyncio.Queue[Any] = imap.protocol.idle_queue
        _drain(queue)  # leftovers of an earlier IDLE, already acted upon
        idle_task: asyncio.Future[Any] = await self._call(
            "IDLE", imap.idle_start(timeout=aioimaplib.TWENTY_NINE_MINUTES)
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        signalled = False
        try:
            while not signalled:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                getter = asyncio.ensure_future(queue.get())
                lost = self._lost
                assert lost is not None
                done, _ = await asyncio.wait(
                    {getter, lost, idle_task},
                    timeout=remaining,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if getter not in done:
                    getter.cancel()
                    if lost.done():
                        raise self._die("IDLE: connection lost")
                    if idle_task.done():
                        raise self._die(f"IDLE ended by the server: {_task_outcome(idle_task)}")
                    break
                lines = getter.result()
                if lines == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    continue
                for line in lines:
                    if isinstance(line, bytes | bytearray) and line.startswith(b"BYE"):
                        raise self._die(f"IDLE: server said {bytes(line)!r}")
                signalled = _signals_new_mail(lines)
            imap.idle_done()
            response = await self._call("IDLE", idle_task)
        except BaseException:
            # Cancelled or failed inside IDLE: the connection's state is unknown.
            if not idle_task.done():
                idle_task.cancel()
            self._mark_dead("interrupted during IDLE")
            raise
        self._expect_ok("IDLE", response)
        # Pushes that arrived between DONE and the tagged OK.
        while not queue.empty():
            lines = queue.get_nowait()
            if lines != aioimaplib.STOP_WAIT_SERVER_PUSH and _signals_new_mail(lines):
                signalled = True
        return signalled

    async def noop(self) -> None:
        imap = self._need()
        response = await self._call("NOOP", imap.noop())
        self._expect_ok("NOOP", response)

    async def close(self) -> None:
        """LOGOUT if the connection is healthy, then drop it. Never raises."""
        if self._closed:
            return
        self._closed = True
        imap = self._imap
        if imap is None:
            return
        if self._dead_reason is None and imap.protocol.transport is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._race(imap.logout()), timeout=min(self.timeout, 5.0))
        self._abort_transport()

    # internals

    async def _open(self) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        self._lost = loop.create_future()
        try:
            if settings.security == "tls":
                context = settings.ssl_context or ssl.create_default_context()
                imap: aioimaplib.IMAP4 = aioimaplib.IMAP4_SSL(
                    host=settings.host,
                    port=settings.port,
                    timeout=self.timeout,
                    ssl_context=context,
                )
            else:
                imap = aioimaplib.IMAP4(
                    host=settings.host, port=settings.port, timeout=self.timeout
                )
        except (OSError, ValueError) as exc:
            raise ImapUnavailable(f"connect {settings.host}:{settings.port}: {exc}") from exc
        # IMAP4_SSL does not pass conn_lost_cb on; set it before the connection exists.
        imap.protocol.conn_lost_cb = self._connection_lost
        self._imap = imap
        where = f"{settings.host}:{settings.port}"
        await self._call(f"connect {where}", imap.wait_hello_from_server())
        if imap.protocol.state not in ("NONAUTH", "AUTH"):
            raise self._die(f"connect {where}: unexpected greeting")
        self._set_capabilities(imap.protocol.capabilities)
        if settings.security == "starttls":
            await self._starttls()
        await self._login()
        await self._select(settings.folder)

    async def _starttls(self) -> None:
        imap = self._need()
        protocol = imap.protocol
        if "STARTTLS" not in self.capabilities:
            raise self._die("the server does not offer STARTTLS")
        command = aioimaplib.Command(
            "STARTTLS", protocol.new_tag(), loop=asyncio.get_running_loop()
        )
        response = await self._call("STARTTLS", protocol.execute(command))
        if response.result != "OK":
            raise self._die(f"STARTTLS refused: {_result_text(response)}")
        context = self.settings.ssl_context or ssl.create_default_context()
        transport = protocol.transport
        assert transport is not None
        loop = asyncio.get_running_loop()
        new_transport = await self._call(
            "TLS handshake",
            loop.start_tls(transport, protocol, context, server_hostname=self.settings.host),
        )
        if new_transport is None:
            raise self._die("TLS handshake failed")
        protocol.transport = new_transport
        # Capabilities before STARTTLS must be forgotten (RFC 3501 6.2.1).
        await self._call("CAPABILITY", protocol.capability())
        self._set_capabilities(protocol.capabilities)

    async def _login(self) -> None:
        imap = self._need()
        settings = self.settings
        try:
            response = await self._call(
                "LOGIN", imap.login(quoted(settings.user), settings.password)
            )
        except ValueError as exc:  # control characters in the user name or password
            raise ImapAuthFailed(f"LOGIN: {exc}") from exc
        if response.result != "OK":
            text = _result_text(response)
            if "UNAVAILABLE" in text.upper():  # RFC 5530: a temporary back-end failure
                raise self._die(f"LOGIN: {text}")
            self._mark_dead("login refused")
            raise ImapAuthFailed(f"LOGIN {settings.user}: {text}")
        match = None
        for line in _text_lines(response):
            match = _CAPABILITY_RE.search(line) or match
        if match is not None:
            self._set_capabilities(match.group(1).decode("ascii", "replace").split())
        else:
            await self._call("CAPABILITY", imap.protocol.capability())
            self._set_capabilities(imap.protocol.capabilities)

    async def _select(self, folder: str) -> None:
        imap = self._need()
        response = await self._call("SELECT", imap.select(mailbox_arg(folder)))
        if response.result != "OK":
            raise self._die(f"SELECT {folder!r}: {_result_text(response)}", ImapCommandFailed)
        uidvalidity = uidnext = None
        for line in _text_lines(response):
            if match := _UIDVALIDITY_RE.search(line):
                uidvalidity = int(match.group(1))
            elif match := _UIDNEXT_RE.search(line):
                uidnext = int(match.group(1))
            elif match := _EXISTS_RE.match(line):
                self.exists = int(match.group(1))
        if uidvalidity is None:
            raise self._die(f"SELECT {folder!r}: the server sent no UIDVALIDITY")
        self.uidvalidity = uidvalidity
        self.uidnext = uidnext
        self.folder = folder

    async def _store(self, uids: Sequence[int], action: str, flags: str) -> None:
        if not uids:
            return
        imap = self._need()
        response = await self._call("UID STORE", imap.uid("store", uid_set(uids), action, flags))
        self._expect_ok("UID STORE", response)

    async def _sleep(self, seconds: float) -> None:
        lost = self._lost
        assert lost is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(lost), timeout=max(0.0, seconds))
        if lost.done():
            raise self._die("connection lost")

    def _need(self) -> aioimaplib.IMAP4:
        if self._closed:
            raise ImapUnavailable("the IMAP session is closed")
        if self._dead_reason is not None:
            raise ImapUnavailable(f"the IMAP connection is broken: {self._dead_reason}")
        if self._imap is None:
            raise ImapUnavailable("not connected")
        return self._imap

    async def _race(self, awaitable: Awaitable[_T]) -> _T:
        """Await `awaitable` unless the connection is lost first."""
        lost = self._lost
        assert lost is not None
        task = asyncio.ensure_future(awaitable)
        waiting: set[asyncio.Future[Any]] = {task, lost}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            raise
        if task.done():
            return task.result()
        task.cancel()
        raise ConnectionResetError("connection lost")

    async def _call(self, what: str, awaitable: Awaitable[_T], *, bounded: bool = True) -> _T:
        """Run one protocol step bounded by the session timeout; failures kill the session.

        `bounded=False` leaves the bound to aioimaplib's own inactivity timer.
        """
        limit = self.timeout if bounded else None
        if self._dead_reason is not None:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise ImapUnavailable(f"{what}: the IMAP connection is broken: {self._dead_reason}")
        try:
            if limit is None:
                return await self._race(awaitable)
            return await asyncio.wait_for(self._race(awaitable), timeout=float(limit))
        except asyncio.CancelledError:
            self._mark_dead(f"{what} was cancelled")
            raise
        except (TimeoutError, aioimaplib.CommandTimeout) as exc:
            raise self._die(f"{what}: no answer from the server within {self.timeout:g}s") from exc
        except (aioimaplib.AioImapException, OSError, EOFError) as exc:
            detail = str(exc) or type(exc).__name__
            raise self._die(f"{what}: {detail}") from exc

    def _die(self, reason: str, kind: type[ImapUnavailable] = ImapUnavailable) -> ImapUnavailable:
        self._mark_dead(reason)
        return kind(reason)

    def _mark_dead(self, reason: str) -> None:
        if self._dead_reason is None:
            self._dead_reason = reason
        self._abort_transport()

    def _abort_transport(self) -> None:
        imap = self._imap
        transport = imap.protocol.transport if imap is not None else None
        if transport is not None and not transport.is_closing():
            transport.abort()
        if imap is not None:
            for task in list(imap.tasks) + list(imap.protocol.tasks):
                task.cancel()
            waiter = getattr(imap, "_idle_waiter", None)
            if waiter is not None:
                waiter.cancel()

    def _connection_lost(self, exc: Exception | None) -> None:
        if self._dead_reason is None and not self._closed:
            self._dead_reason = f"connection lost ({exc})" if exc else "connection closed"
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    def _set_capabilities(self, names: Iterable[str]) -> None:
        caps = frozenset(name.strip().upper() for name in names if name.strip())
        self.capabilities = caps
        if self._imap is not None:
            self._imap.protocol.capabilities = set(caps)

    def _expect_ok(self, what: str, response: aioimaplib.Response) -> None:
        # A NO/BAD leaves the connection usable; the session stays open.
        if response.result != "OK":
            raise ImapCommandFailed(f"{what}: {response.result} {_result_text(response)}")


# helpers (pure; tested directly)


def quoted(value: str) -> str:
    """An IMAP quoted string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode_mailbox_name(name: str) -> str:
    """RFC 3501 modified UTF-7 for mailbox names (`Входящие` -> `&BBIERQQ+BDQETwRJBDgENQ-`)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            utf16 = "".join(pending).encode("utf-16-be")
            out.append(
                "&" + base64.b64encode(utf16).decode("ascii").rstrip("=").replace("/", ",") + "-"
            )
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def mailbox_arg(name: str) -> str:
    """A mailbox name as a command argument: encoded and quoted."""
    return quoted(encode_mailbox_name(name))


def uid_set(uids: Iterable[int]) -> str:
    """A compact IMAP sequence set: [1, 2, 3, 7, 9, 10] -> "1:3,7,9:10"."""
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("an empty UID set")
    parts: list[str] = []
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        parts.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = uid
    parts.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(parts)


def parse_fetch_bodies(lines: Sequence[bytes | bytearray]) -> list[tuple[int, bytes]]:
    """(UID, body) pairs from aioimaplib's FETCH response lines, in response order.

    A FETCH item starts with `N FETCH (`; its UID may come before or after the literal;
    literals arrive as `bytearray` elements right after the line announcing `{size}`.
    Items without a BODY[] literal (unsolicited flag updates) are skipped.
    """
    results: list[tuple[int, bytes]] = []
    uid: int | None = None
    body: bytes | None = None
    expecting_body = False
    in_item = False

    def finish() -> None:
        if in_item and uid is not None and body is not None:
            results.append((uid, body))

    for line in lines:
        if isinstance(line, bytearray):
            if expecting_body:
                body = bytes(line)
            expecting_body = False
            continue
        if _FETCH_START_RE.match(line):
            finish()
            in_item, uid, body = True, None, None
        if not in_item:
            continue
        if uid is None and (match := _FETCH_UID_RE.search(line)):
            uid = int(match.group(1))
        expecting_body = _BODY_LITERAL_RE.search(line) is not None
    finish()
    return results


def _text_lines(response: aioimaplib.Response) -> list[bytes]:
    return [bytes(line) for line in response.lines if isinstance(line, bytes)]


def _result_text(response: aioimaplib.Response) -> str:
    lines = _text_lines(response)
    return lines[-1].decode("utf-8", "replace") if lines else ""


def _signals_new_mail(lines: Iterable[Any]) -> bool:
    for line in lines:
        if not isinstance(line, bytes | bytearray):
            continue
        if _EXISTS_RE.match(line):
            return True
        match = _RECENT_RE.match(line)
        if match and int(match.group(1)) > 0:
            return True
    return False


def _drain(queue: asyncio.Queue[Any]) -> None:
    while not queue.empty():
        queue.get_nowait()


def _task_outcome(task: asyncio.Future[Any]) -> str:
    if task.cancelled():
        return "cancelled"
    exc = task.exception()
    if exc is not None:
        return repr(exc)
    result = task.result()
    return f"{getattr(result, 'result', '?')} {getattr(result, 'lines', '')!r}"[:200]
