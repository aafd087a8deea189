"""The IMAP client against a real dovecot on loopback."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import time
from collections.abc import AsyncIterator

import pytest

from channels.email.imap import (
    ImapAuthFailed,
    ImapCommandFailed,
    ImapSession,
    ImapUnavailable,
    MailboxSettings,
    encode_mailbox_name,
    open_imap,
    parse_fetch_bodies,
    uid_set,
)
from tests.channels.email.conftest import IMAP_PASSWORD, IMAP_USER
from tests.conftest import missing_part
from tests.mailservers import Dovecot, dovecot_missing_reason, free_port

PLAIN = (
    b"From: Client <client@example.org>\r\n"
    b"To: hub@example.test\r\n"
    b"Subject: Hello\r\n"
    b"Message-ID: <plain-1@example.org>\r\n"
    b"\r\n"
    b"Plain body.\r\n"
)
CP1251 = (
    b"From: =?windows-1251?b?yuvo5e3y?= <klient@example.ru>\r\n"
    b"To: hub@example.test\r\n"
    b"Subject: =?windows-1251?b?x+D/4urg?=\r\n"
    b"Message-ID: <cp1251-1@example.ru>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=windows-1251\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n" + "Здравствуйте! Прошу счёт на оплату.\r\n".encode("cp1251")
)


def big_message(size: int = 1024 * 1024) -> bytes:
    payload = bytes(range(256)) * (size // 256)
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    return (
        b"From: client@example.org\r\n"
        b"To: hub@example.test\r\n"
        b"Subject: Big attachment\r\n"
        b"Message-ID: <big-1@example.org>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n'
        b"\r\n"
        b"--b1\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"\r\n"
        b"See attached.\r\n"
        b"--b1\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="data.bin"\r\n'
        b"Content-Transfer-Encoding: base64\r\n"
        b"\r\n" + encoded + b"--b1--\r\n"
    )


@pytest.fixture
async def session(mailbox_settings: MailboxSettings) -> AsyncIterator[ImapSession]:
    imap = await open_imap(mailbox_settings)
    async with imap:
        yield imap


def flags_of(server: Dovecot, uid: int, folder: str = "INBOX") -> bytes:
    client = server.imap_client(IMAP_USER)
    try:
        client.select(folder, readonly=True)
        typ, data = client.uid("FETCH", str(uid), "(FLAGS)")
        assert typ == "OK", data
        return data[0] if isinstance(data[0], bytes) else b""
    finally:
        client.logout()


def uids_in(server: Dovecot, folder: str) -> list[int]:
    client = server.imap_client(IMAP_USER)
    try:
        typ, data = client.select(folder, readonly=True)
        assert typ == "OK", data
        typ, data = client.uid("SEARCH", "ALL")
        assert typ == "OK" and isinstance(data[0], bytes), data
        return [int(x) for x in data[0].split()]
    finally:
        client.logout()


async def test_login_select_and_uid_state(dovecot: Dovecot, mailbox_settings: MailboxSettings):
    async with await open_imap(mailbox_settings) as imap:
        assert imap.uidvalidity > 0
        assert imap.uidnext == 1
        assert imap.exists == 0
        assert imap.has_idle and imap.has_move
        assert "UIDPLUS" in imap.capabilities
        assert await imap.search_uids_after(0) == []
        first_validity = imap.uidvalidity
    dovecot.deliver(IMAP_USER, PLAIN)
    dovecot.deliver(IMAP_USER, CP1251)
    async with await open_imap(mailbox_settings) as imap:
        assert imap.uidvalidity == first_validity
        assert imap.uidnext == 3
        assert imap.exists == 2
    assert not imap.alive


@pytest.mark.parametrize(
    ("user", "password"), [(IMAP_USER, "wrong"), ("nobody@example.test", IMAP_PASSWORD)]
)
async def test_refused_login_is_auth_failed(
    mailbox_settings: MailboxSettings, user: str, password: str
):
    settings = dataclasses.replace(mailbox_settings, user=user, password=password)
    with pytest.raises(ImapAuthFailed, match="AUTHENTICATIONFAILED"):
        await open_imap(settings)


async def test_nothing_listening_is_unavailable():
    settings = MailboxSettings("127.0.0.1", free_port(), "plain", "u", "p", timeout=2)
    started = time.monotonic()
    with pytest.raises(ImapUnavailable) as caught:
        await open_imap(settings)
    assert not isinstance(caught.value, ImapAuthFailed)
    assert time.monotonic() - started < 1.5


async def test_silent_server_times_out():
    """A peer that accepts the connection but never greets: ImapUnavailable after timeout."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        settings = MailboxSettings("127.0.0.1", port, "plain", "u", "p", timeout=0.3)
        started = time.monotonic()
        with pytest.raises(ImapUnavailable, match="no answer"):
            await open_imap(settings)
        assert time.monotonic() - started < 1.5
    finally:
        server.close()


async def test_missing_folder_is_command_failed(mailbox_settings: MailboxSettings):
    settings = dataclasses.replace(mailbox_settings, folder="No Such Folder")
    with pytest.raises(ImapCommandFailed, match="No Such Folder"):
        await open_imap(settings)


async def test_search_and_fetch_exact_bytes(dovecot: Dovecot, session: ImapSession):
    big = big_message()
    assert len(big) > 1_000_000
    sent = {dovecot.deliver(IMAP_USER, raw): raw for raw in (PLAIN, CP1251, big)}
    uids = sorted(sent)
    assert uids == [1, 2, 3]
    assert await session.search_uids_after(0) == uids
    assert await session.search_uids_after(1) == [2, 3]
    # "4:*" still matches UID 3 on the wire; it must not come back.
    assert await session.search_uids_after(3) == []
    assert await session.search_uids_after(1000) == []

    fetched = await session.fetch([*reversed(uids), 99])
    assert [uid for uid, _ in fetched] == uids
    for uid, raw in fetched:
        assert raw == sent[uid], uid  # appended with CRLF: served byte for byte
    assert "Здравствуйте".encode("cp1251") in dict(fetched)[2]
    # BODY.PEEK[]: fetching does not mark anything read.
    assert b"\\Seen" not in flags_of(dovecot, 1)
    assert await session.fetch([]) == []


async def test_maildir_file_with_bare_lf_is_served_with_crlf(
    dovecot: Dovecot, session: ImapSession
):
    dovecot.deliver_maildir(IMAP_USER, b"Subject: lf\n\nline 1\nline 2\n")
    uids = await session.search_uids_after(0)
    assert len(uids) == 1
    [(uid, raw)] = await session.fetch(uids)
    assert uid == uids[0]
    assert raw == b"Subject: lf\r\n\r\nline 1\r\nline 2\r\n"


async def test_mark_seen(dovecot: Dovecot, session: ImapSession):
    for raw in (PLAIN, CP1251):
        dovecot.deliver(IMAP_USER, raw)
    # UIDs are acted on as the poller does: after a search made them known to the session.
    assert await session.search_uids_after(0) == [1, 2]
    await session.mark_seen([2])
    assert b"\\Seen" in flags_of(dovecot, 2)
    assert b"\\Seen" not in flags_of(dovecot, 1)
    await session.mark_seen([])


async def test_move_creates_the_folder(
    dovecot: Dovecot, session: ImapSession, mailbox_settings: MailboxSettings
):
    for raw in (PLAIN, CP1251, PLAIN):
        dovecot.deliver(IMAP_USER, raw)
    assert await session.search_uids_after(0) == [1, 2, 3]
    await session.move([1, 2], "Processed")
    assert await session.search_uids_after(0) == [3]
    assert len(uids_in(dovecot, "Processed")) == 2
    await session.move([3], "Processed")  # folder exists now
    assert len(uids_in(dovecot, "Processed")) == 3
    assert await session.search_uids_after(0) == []

    # A NO leaves the connection usable.
    dovecot.deliver(IMAP_USER, PLAIN)
    [uid] = await session.search_uids_after(3)
    with pytest.raises(ImapCommandFailed):
        await session.move([uid], "")
    assert session.alive
    assert await session.search_uids_after(0) == [uid]
    await session.move([uid], "Processed")

    # A non-ASCII folder name goes out in modified UTF-7 and can be selected again.
    dovecot.deliver(IMAP_USER, PLAIN)
    await session.move(await session.search_uids_after(0), "Обработано")
    settings = dataclasses.replace(mailbox_settings, folder="Обработано")
    async with await open_imap(settings) as other:
        assert other.exists == 1
        [(_, raw)] = await other.fetch(await other.search_uids_after(0))
        assert raw == PLAIN


@pytest.mark.parametrize("capability", ["IMAP4rev1 IDLE UIDPLUS", "IMAP4rev1"])
async def test_lesser_servers(capability: str):
    """Servers without MOVE: COPY, \\Deleted, then UID EXPUNGE (or EXPUNGE); servers
    without IDLE: idle_wait sleeps, then asks with NOOP."""
    if reason := dovecot_missing_reason():
        missing_part(reason)
    with Dovecot(
        users={IMAP_USER: IMAP_PASSWORD}, extra_config=f"imap_capability = {capability}\n"
    ) as server:
        for raw in (PLAIN, CP1251):
            server.deliver(IMAP_USER, raw)
        settings = MailboxSettings(
            server.host, server.imap_port, "plain", IMAP_USER, IMAP_PASSWORD, timeout=5
        )
        async with await open_imap(settings) as imap:
            assert not imap.has_move
            assert ("UIDPLUS" in imap.capabilities) == ("UIDPLUS" in capability)
            await imap.move([1], "Processed")
            assert await imap.search_uids_after(0) == [2]
            assert imap.has_idle == ("IDLE" in capability)
            started = time.monotonic()
            assert await imap.idle_wait(0.2) is False
            assert 0.15 < time.monotonic() - started < 0.8
            server.deliver(IMAP_USER, PLAIN)
            assert await imap.idle_wait(0.3) is True
            assert await imap.search_uids_after(2) == [3]
        assert uids_in(server, "INBOX") == [2, 3]
        assert len(uids_in(server, "Processed")) == 1


async def test_idle_wait(dovecot: Dovecot, session: ImapSession):
    assert session.has_idle
    started = time.monotonic()
    assert await session.idle_wait(0.3) is False
    assert 0.25 < time.monotonic() - started < 1.0

    async def deliver_later() -> float:
        await asyncio.sleep(0.1)
        await asyncio.to_thread(dovecot.deliver, IMAP_USER, PLAIN)
        return time.monotonic()

    task = asyncio.create_task(deliver_later())
    assert await session.idle_wait(10) is True
    delivered_at = await task
    # dovecot batches mailbox change notifications for about 0.5 s.
    assert time.monotonic() - delivered_at < 2.0
    # The session is usable after DONE.
    assert await session.search_uids_after(0) == [1]
    await session.noop()
    assert await session.idle_wait(0.1) is False


async def test_cancelled_idle_leaves_a_dead_session(session: ImapSession):
    task = asyncio.create_task(session.idle_wait(10))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not session.alive
    with pytest.raises(ImapUnavailable):
        await session.noop()


async def test_server_restart(dovecot: Dovecot, mailbox_settings: MailboxSettings):
    dovecot.deliver(IMAP_USER, PLAIN)
    idle_session = await open_imap(mailbox_settings)
    busy_session = await open_imap(mailbox_settings)
    validity = busy_session.uidvalidity
    idle_task = asyncio.create_task(idle_session.idle_wait(10))
    await asyncio.sleep(0.1)

    started = time.monotonic()
    await asyncio.to_thread(dovecot.stop)
    # An IDLE in progress ends at once with ImapUnavailable, not at its timeout.
    with pytest.raises(ImapUnavailable):
        await idle_task
    assert time.monotonic() - started < 1.5
    # So does the next command on an open session, and the ones after it.
    with pytest.raises(ImapUnavailable):
        await busy_session.search_uids_after(0)
    with pytest.raises(ImapUnavailable):
        await busy_session.fetch([1])
    await busy_session.close()
    await idle_session.close()
    # While the server is down, connecting fails as unavailable.
    with pytest.raises(ImapUnavailable):
        await open_imap(mailbox_settings)

    await asyncio.sleep(0.5)  # the outage
    await asyncio.to_thread(dovecot.start)
    async with await open_imap(mailbox_settings) as imap:
        assert imap.uidvalidity == validity
        assert await imap.search_uids_after(0) == [1]
        [(_, raw)] = await imap.fetch([1])
        assert raw == PLAIN


async def test_uidvalidity_changes_when_the_folder_is_recreated(
    dovecot: Dovecot, mailbox_settings: MailboxSettings
):
    settings = dataclasses.replace(mailbox_settings, folder="Support")
    dovecot.deliver(IMAP_USER, PLAIN, folder="Support")
    dovecot.deliver(IMAP_USER, CP1251, folder="Support")
    async with await open_imap(settings) as imap:
        before = imap.uidvalidity
        assert await imap.search_uids_after(0) == [1, 2]

    dovecot.delete_folder(IMAP_USER, "Support")
    dovecot.deliver(IMAP_USER, PLAIN, folder="Support")
    async with await open_imap(settings) as imap:
        assert imap.uidvalidity != before
        assert await imap.search_uids_after(0) == [1]

    # INBOX cannot be deleted; a server-side restore is simulated by forgetting its UIDs:
    # the same messages come back under a new UIDVALIDITY.
    for raw in (PLAIN, CP1251):
        dovecot.deliver(IMAP_USER, raw)
    async with await open_imap(mailbox_settings) as imap:
        inbox_before = imap.uidvalidity
        await imap.mark_seen([1])
    dovecot.reset_uids(IMAP_USER)
    async with await open_imap(mailbox_settings) as imap:
        assert imap.uidvalidity != inbox_before
        uids = await imap.search_uids_after(0)
        assert sorted(raw for _, raw in await imap.fetch(uids)) == sorted([PLAIN, CP1251])


async def test_tls_and_starttls():
    if reason := dovecot_missing_reason():
        missing_part(reason)
    with Dovecot(users={IMAP_USER: IMAP_PASSWORD}, tls=True) as server:
        server.deliver(IMAP_USER, PLAIN)
        context = server.client_ssl_context()
        assert server.imaps_port is not None
        implicit = MailboxSettings(
            server.host, server.imaps_port, "tls", IMAP_USER, IMAP_PASSWORD,
            timeout=5, ssl_context=context,
        )  # fmt: skip
        upgraded = dataclasses.replace(implicit, port=server.imap_port, security="starttls")
        for settings in (implicit, upgraded):
            async with await open_imap(settings) as imap:
                assert "STARTTLS" not in imap.capabilities
                [(_, raw)] = await imap.fetch(await imap.search_uids_after(0))
                assert raw == PLAIN
        # The self-signed certificate is not trusted by default.
        with pytest.raises(ImapUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            await open_imap(dataclasses.replace(implicit, ssl_context=None))


async def test_starttls_not_offered(mailbox_settings: MailboxSettings):
    settings = dataclasses.replace(mailbox_settings, security="starttls")
    with pytest.raises(ImapUnavailable, match="STARTTLS"):
        await open_imap(settings)


async def test_closed_session_refuses_commands(session: ImapSession):
    await session.close()
    await session.close()
    with pytest.raises(ImapUnavailable):
        await session.search_uids_after(0)


def test_uid_set():
    assert uid_set([3, 1, 2, 7, 9, 10, 10]) == "1:3,7,9:10"
    assert uid_set([5]) == "5"
    with pytest.raises(ValueError):
        uid_set([])


def test_encode_mailbox_name():
    assert encode_mailbox_name("INBOX") == "INBOX"
    assert encode_mailbox_name("A&B") == "A&-B"
    assert encode_mailbox_name("Входящие") == "&BBIERQQ+BDQETwRJBDgENQ-"
    assert encode_mailbox_name("Отчёты/2024") == "&BB4EQgRHBFEEQgRL-/2024"


def test_parse_fetch_bodies_is_robust():
    lines: list[bytes | bytearray] = [
        b"5 FETCH (FLAGS (\\Seen))",  # unsolicited flag change, no body
        b"1 FETCH (BODY[] {5}",
        bytearray(b"hello"),
        b" UID 10)",  # UID after the literal
        b"2 FETCH (UID 11 FLAGS (\\Seen) BODY[] {3}",
        bytearray(b"a)b"),
        b")",
        b"3 FETCH (UID 12 BODY[] NIL)",  # gone meanwhile
    ]
    assert parse_fetch_bodies(lines) == [(10, b"hello"), (11, b"a)b")]
    assert parse_fetch_bodies([]) == []
