"""Real mail servers for tests and benchmarks: Debian's dovecot (IMAP) and an aiosmtpd recorder.

Nothing here depends on pytest, so a benchmark can use the same servers::

    with Dovecot(users={"hub@example.test": "secret"}) as server:
        server.deliver("hub@example.test", raw)
        ... # IMAP on server.host:server.imap_port, plain LOGIN, no TLS

    recorder = SmtpRecorder(); recorder.start()
    ... # SMTP on recorder.host:recorder.port
    recorder.stop()

Dovecot runs as a child process (`dovecot -F -c CONF`) in its own process group with a
config, a passwd-file and maildirs under a fresh temporary directory. Mail is stored under
an unprivileged uid (`nobody`, or the current user when not run as root).
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import imaplib
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

DOVECOT_CANDIDATES = ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot")
HOST = "127.0.0.1"

_APPENDUID_RE = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")
_maildir_counter = itertools.count(1)


def free_port(host: str = HOST) -> int:
    """A TCP port that was free a moment ago on host."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_dovecot() -> str | None:
    """The dovecot binary, or None when it is not installed."""
    found = shutil.which("dovecot")
    if found:
        return found
    for candidate in DOVECOT_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def dovecot_missing_reason() -> str | None:
    """Why Dovecot cannot run here, or None when it can."""
    if find_dovecot() is None:
        return "dovecot is not installed (Debian: apt-get install dovecot-imapd)"
    return None


def make_self_signed_cert(directory: Path, host: str = HOST) -> tuple[Path, Path]:
    """A throwaway certificate for host (also valid for localhost); returns (cert, key)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=localhost",
            "-addext", f"subjectAltName=DNS:localhost,IP:{host}",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


class DovecotError(RuntimeError):
    pass


class Dovecot:
    """A private dovecot IMAP server on loopback: plain IMAP (optionally TLS too), maildirs.

    `start()` returns once the server has sent its `* OK` greeting. `restart(down_for)`
    stops the server, waits, and starts it again on the same port with the same mail.
    Users authenticate with LOGIN/PLAIN against a passwd-file that dovecot re-reads when
    it changes, so `add_user()` works while the server runs.
    """

    def __init__(
        self,
        users: dict[str, str] | None = None,
        *,
        host: str = HOST,
        port: int | None = None,
        tls: bool = False,
        extra_config: str = "",
        root: str | Path | None = None,
    ) -> None:
        binary = find_dovecot()
        if binary is None:
            raise DovecotError("dovecot is not installed")
        self.binary = binary
        self.host = host
        self.imap_port = port or free_port(host)
        self.tls = tls
        self.imaps_port: int | None = free_port(host) if tls else None
        self.extra_config = extra_config
        self.users: dict[str, str] = {}
        # The mail processes run as this uid; the directory must be traversable by it,
        # so it lives in its own world-readable temp dir, not under pytest's 0700 tmp_path.
        root_user = os.geteuid() == 0
        account = pwd.getpwnam("nobody") if root_user else pwd.getpwuid(os.geteuid())
        self.mail_uid, self.mail_gid = account.pw_uid, account.pw_gid
        self._account_name = account.pw_name
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="omnihub-dovecot-", dir=root))
        self.root.chmod(0o755)
        self.config_path = self.root / "dovecot.conf"
        self.passwd_path = self.root / "passwd"
        self.log_path = self.root / "dovecot.log"
        self.cert_path: Path | None = None
        self.key_path: Path | None = None
        for sub in ("run", "state"):
            (self.root / sub).mkdir()
        home = self.root / "home"
        home.mkdir()
        self._chown(home)
        self.passwd_path.write_text("")
        self.passwd_path.chmod(0o644)
        if tls:
            self.cert_path, self.key_path = make_self_signed_cert(self.root, host)
        self._process: subprocess.Popen[bytes] | None = None
        for name, password in (users or {}).items():
            self.add_user(name, password)
        self._write_config()

    # lifecycle

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        log = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(
                [self.binary, "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its own process group: stop() signals all children
            )
        finally:
            log.close()
        try:
            self._wait_greeting(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down dovecot and all its processes; clients get `* BYE` and a closed socket."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            # All processes get SIGTERM at once: sessions say `* BYE` and close. The master
            # then sometimes sleeps a whole second (or more) before reaping its children;
            # nothing is left to flush by then, so it is not waited for.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(0.25)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout)
        # Children left in the group (they normally exit with the master) are killed too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

    def restart(self, down_for: float = 0.0) -> None:
        """Stop, stay down for `down_for` seconds, start again on the same port and mail."""
        self.stop()
        if down_for > 0:
            time.sleep(down_for)
        self.start()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Dovecot:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def version(self) -> str:
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True)
        return out.stdout.strip()

    # users and mail

    def add_user(self, name: str, password: str) -> None:
        """Add (or replace) a user; works while the server runs."""
        if any(ch in name + password for ch in ":\n\r") or "/" in name:
            raise ValueError("user names and passwords may not contain ':', '/' or newlines")
        self.users[name] = password
        home = self.home(name)
        home.mkdir(exist_ok=True)
        self._chown(home)
        lines = [
            f"{user}:{{PLAIN}}{secret}:{self.mail_uid}:{self.mail_gid}::{self.home(user)}::"
            for user, secret in self.users.items()
        ]
        tmp = self.passwd_path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.chmod(0o644)
        tmp.replace(self.passwd_path)

    def home(self, user: str) -> Path:
        return self.root / "home" / user

    def maildir(self, user: str, folder: str = "INBOX") -> Path:
        """The maildir of one folder (Maildir++ layout: subfolders are `.Name`)."""
        base = self.home(user) / "Maildir"
        if folder.upper() == "INBOX":
            return base
        return base / ("." + folder.replace("/", "."))

    def imap_client(self, user: str) -> imaplib.IMAP4:
        """A logged-in stdlib IMAP client, for test setup."""
        client = imaplib.IMAP4(self.host, self.imap_port, timeout=10)
        typ, data = client.login(user, self.users[user])
        if typ != "OK":
            raise DovecotError(f"login {user}: {data!r}")
        return client

    def deliver(
        self,
        user: str,
        raw: bytes,
        folder: str = "INBOX",
        *,
        flags: Iterable[str] = (),
    ) -> int:
        """Store a message via IMAP APPEND (creating the folder); returns its UID.

        imaplib turns bare LF/CR into CRLF; a message given with CRLF is stored as is.
        """
        client = self.imap_client(user)
        try:
            if folder.upper() != "INBOX":
                client.create(_imap_quote(folder))  # NO [ALREADYEXISTS] is fine
            flag_arg = "(" + " ".join(flags) + ")" if flags else None
            typ, data = client.append(_imap_quote(folder), flag_arg, None, raw)
            if typ != "OK":
                raise DovecotError(f"APPEND to {folder}: {data!r}")
            match = _APPENDUID_RE.search(data[0] or b"")
            if match is None:
                raise DovecotError(f"APPEND to {folder}: no APPENDUID in {data!r}")
            return int(match.group(2))
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def deliver_maildir(self, user: str, raw: bytes, folder: str = "INBOX") -> Path:
        """Drop a message file into the folder's maildir `new/` (cheap for bulk loads).

        Dovecot assigns it a UID when a session next looks at the folder.
        """
        directory = self._ensure_maildir(user, folder)
        name = (
            f"{int(time.time())}.M{time.time_ns() % 1_000_000_000}P{os.getpid()}"
            f"Q{next(_maildir_counter)}.omnihub-test,S={len(raw)}"
        )
        tmp = directory / "tmp" / name
        tmp.write_bytes(raw)
        os.chown(tmp, self.mail_uid, self.mail_gid)
        tmp.chmod(0o600)
        target = directory / "new" / name
        tmp.rename(target)
        return target

    def create_folder(self, user: str, folder: str) -> None:
        client = self.imap_client(user)
        try:
            typ, data = client.create(_imap_quote(folder))
            if typ != "OK" and b"ALREADYEXISTS" not in (data[0] or b""):
                raise DovecotError(f"CREATE {folder}: {data!r}")
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def delete_folder(self, user: str, folder: str) -> None:
        """IMAP DELETE a folder with its messages (a new folder of that name gets a new
        UIDVALIDITY)."""
        client = self.imap_client(user)
        try:
            typ, data = client.delete(_imap_quote(folder))
            if typ != "OK":
                raise DovecotError(f"DELETE {folder}: {data!r}")
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def reset_uids(self, user: str, folder: str = "INBOX") -> None:
        """Forget a folder's UIDs, as after a server-side restore: the messages stay, but
        the folder gets a new UIDVALIDITY and the messages new UIDs. Works for INBOX too.
        Call it while no session has the folder selected."""
        directory = self.maildir(user, folder)
        for path in directory.iterdir():
            if path.name == "dovecot-uidlist" or path.name.startswith("dovecot.index"):
                path.unlink()

    def messages_in(self, user: str, folder: str = "INBOX") -> list[Path]:
        """The message files of a folder's maildir (new/ and cur/)."""
        directory = self.maildir(user, folder)
        return sorted(
            path
            for sub in ("new", "cur")
            if (directory / sub).is_dir()
            for path in (directory / sub).iterdir()
        )

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate (tls=True)."""
        if self.cert_path is None:
            raise DovecotError("this server was started without tls=True")
        return ssl.create_default_context(cafile=str(self.cert_path))

    # internals

    def _chown(self, path: Path) -> None:
        os.chown(path, self.mail_uid, self.mail_gid)

    def _ensure_maildir(self, user: str, folder: str) -> Path:
        if user not in self.users:
            raise KeyError(user)
        base = self.maildir(user, "INBOX")
        directory = self.maildir(user, folder)
        for path in (base, directory):
            path.mkdir(mode=0o700, exist_ok=True)
            self._chown(path)
            for sub in ("cur", "new", "tmp"):
                (path / sub).mkdir(mode=0o700, exist_ok=True)
                self._chown(path / sub)
        if directory != base:
            marker = directory / "maildirfolder"
            marker.touch()
            self._chown(marker)
        return directory

    def _write_config(self) -> None:
        root = self.root
        if os.geteuid() == 0:
            users = ""
        else:  # unprivileged: every dovecot process runs as the current user
            users = (
                f"default_login_user = {self._account_name}\n"
                f"default_internal_user = {self._account_name}\n"
            )
        if self.tls:
            ssl_part = f"ssl = yes\nssl_cert = <{self.cert_path}\nssl_key = <{self.key_path}\n"
            imaps_port = self.imaps_port
        else:
            ssl_part = "ssl = no\n"
            imaps_port = 0
        self.config_path.write_text(
            f"""# written by tests/mailservers.py for dovecot 2.3
instance_name = omnihub-test-{root.name}
base_dir = {root}/run
state_dir = {root}/state
log_path = {self.log_path}
{users}protocols = imap
listen = {self.host}
{ssl_part}disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:~/Maildir
first_valid_uid = 1
mailbox_idle_check_interval = 1 secs
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.passwd_path}
  override_fields = nodelay=yes
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.passwd_path}
}}
# No brute-force penalty: tests log in with wrong passwords on purpose.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = {self.host}
    port = {imaps_port}
  }}
}}
{self.extra_config}
"""
        )

    def _wait_greeting(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            process = self._process
            if process is None or process.poll() is not None:
                raise DovecotError(f"dovecot exited while starting:\n{self.log_text()[-3000:]}")
            try:
                with socket.create_connection((self.host, self.imap_port), timeout=1) as sock:
                    greeting = sock.recv(4096)
                if greeting.startswith(b"* OK"):
                    return
                last_error = DovecotError(f"unexpected greeting {greeting!r}")
            except OSError as exc:
                last_error = exc
            time.sleep(0.01)
        raise DovecotError(
            f"dovecot did not greet on {self.host}:{self.imap_port} within {timeout}s "
            f"({last_error}):\n{self.log_text()[-3000:]}"
        )


def _imap_quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


# SMTP


@dataclass
class RecordedMessage:
    """One message the recorder accepted."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes  # as received after DATA (CRLF line ends, dot-unstuffed)
    message: EmailMessage  # parsed with policy.default
    login: str | None = None  # the AUTH user, if the client authenticated
    tls: bool = False  # whether the message came over TLS (STARTTLS or implicit)
    mail_options: list[str] = field(default_factory=list)
    peer: Any = None


class _RecorderHandler:
    def __init__(self, recorder: SmtpRecorder) -> None:
        self.recorder = recorder

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self.recorder.auth_required and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.recorder.refused_recipients.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        recorder = self.recorder
        with recorder._cond:
            if recorder._drop > 0:
                recorder._drop -= 1
                drop = True
            else:
                drop = False
            failure = None
            if not drop and recorder._failures:
                failure = recorder._failures.pop(0)
        if drop:
            # Hang up after the client sent the whole message, before any reply.
            if isinstance(server.transport, asyncio.Transport):
                server.transport.abort()
            return "421 4.3.0 connection dropped by test"
        if failure is not None:
            return failure
        content = envelope.original_content or b""
        if isinstance(envelope.content, bytes):
            content = envelope.content
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        record = RecordedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            content=content,
            message=parsed,
            login=session.auth_data if isinstance(session.auth_data, str) else None,
            tls=server.transport is not None
            and server.transport.get_extra_info("ssl_object") is not None,
            mail_options=list(envelope.mail_options),
            peer=session.peer,
        )
        with recorder._cond:
            recorder._messages.append(record)
            recorder._cond.notify_all()
        return "250 2.0.0 OK queued as " + f"test{len(recorder._messages)}"


class SmtpRecorder:
    """An aiosmtpd server on loopback that records every message it accepts.

    Switches: `fail_next(count, reply)` answers the next messages' DATA with a failure
    (`fail_temporarily` = 451, `fail_permanently` = 550), `drop_next(count)` hangs up after
    DATA without a reply, `refuse_recipient(address, reply)` rejects RCPT TO for an address.
    Without `auth` it offers no AUTH (EHLO lists none; a login fails as on a relay that
    takes mail from the local network). With `auth=(user, password)` it offers AUTH
    PLAIN/LOGIN over plain text and, with
    `auth_required=True`, refuses mail from unauthenticated clients. With `tls_context` it
    offers STARTTLS; with `implicit_tls_context` it speaks TLS from the first byte.
    """

    def __init__(
        self,
        *,
        host: str = HOST,
        port: int | None = None,
        auth: tuple[str, str] | None = None,
        auth_required: bool = False,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls_context: ssl.SSLContext | None = None,
        data_size_limit: int = 64 * 1024 * 1024,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.auth = auth
        self.refused_recipients: dict[str, str] = {}
        self.auth_attempts: list[tuple[str, bool]] = []
        self._messages: list[RecordedMessage] = []
        self._failures: list[str] = []
        self._drop = 0
        self._cond = threading.Condition()
        kwargs: dict[str, Any] = {
            "data_size_limit": data_size_limit,
            # Without `auth` no AUTH is offered at all, as by a relay on the local network.
            "auth_require_tls": auth is None,
        }
        # aiosmtpd's own auth_required warns without TLS; the handler enforces it instead.
        self.auth_required = auth_required
        if auth is not None:
            kwargs["authenticator"] = self._authenticate
        if tls_context is not None:
            kwargs["tls_context"] = tls_context
        self._controller = Controller(
            _RecorderHandler(self),
            hostname=host,
            port=self.port,
            ssl_context=implicit_tls_context,
            server_hostname="omnihub-test-smtp",
            **kwargs,
        )
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._controller.start()
            self._started = True

    def stop(self) -> None:
        if self._started:
            self._controller.stop()
            self._started = False

    def __enter__(self) -> SmtpRecorder:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def messages(self) -> list[RecordedMessage]:
        with self._cond:
            return list(self._messages)

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()
            self._failures.clear()
            self._drop = 0
            self.refused_recipients.clear()

    def fail_next(self, count: int = 1, reply: str = "451 4.3.0 try again later") -> None:
        with self._cond:
            self._failures.extend([reply] * count)

    def fail_temporarily(self, count: int = 1) -> None:
        self.fail_next(count, "451 4.3.0 temporary failure, try again later")

    def fail_permanently(self, count: int = 1) -> None:
        self.fail_next(count, "550 5.7.1 message rejected")

    def drop_next(self, count: int = 1) -> None:
        with self._cond:
            self._drop += count

    def refuse_recipient(self, address: str, reply: str = "550 5.1.1 no such user") -> None:
        self.refused_recipients[address.lower()] = reply

    async def wait_for(
        self,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 (a plain number suits tests best)
    ) -> list[RecordedMessage]:
        """Wait (without blocking the event loop) until `count` messages arrived."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                if len(self._messages) >= count:
                    return list(self._messages)
                got = len(self._messages)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"expected {count} messages within {timeout}s, got {got}")
            await asyncio.sleep(0.01)

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        if self.auth is None or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        ok = (login, password) == self.auth
        self.auth_attempts.append((login, ok))
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)
