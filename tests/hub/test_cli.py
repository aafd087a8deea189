"""The real `omnihub` console script, run as a subprocess against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import click
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from hub.cli import main
from storage.db import Database
from storage.migrate import alembic_config
from tests.conftest import POSTGRES_URL, missing_part
from tests.factories import create_channel, create_manager
from tests.hub.console import SECRET, Cli, Result, make_cli, query

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Not created yet (unlike the shared fixture's): `fresh_cli` starts without it."""
    return tmp_path / "var"


@pytest.fixture
def fresh_cli(tmp_path: Path, data_dir: Path) -> Cli:
    """`omnihub` on a data directory that does not exist yet."""
    return make_cli(tmp_path, data_dir)


def seeded(data_dir: Path) -> Database:
    return Database(f"sqlite+aiosqlite:///{data_dir / 'omnihub.db'}")


def in_parallel(cli: Cli, *runs: tuple[str, ...]) -> list[Result]:
    with ThreadPoolExecutor(len(runs)) as pool:
        return list(pool.map(lambda args: cli(*args), runs))


def commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name)


EVERY_COMMAND = [
    (),
    ("serve",),
    ("worker",),
    ("db",),
    ("db", "upgrade"),
    ("managers",),
    ("managers", "add"),
    ("tokens",),
    ("tokens", "create"),
    ("channels",),
    ("channels", "list"),
    ("channels", "enable"),
    ("channels", "disable"),
    ("channels", "add"),
    ("channels", "add", "webform"),
    ("channels", "add", "email"),
    ("channels", "add", "telegram"),
    ("channels", "telegram"),
    ("channels", "telegram", "set-webhook"),
    ("channels", "add", "telephony"),
    ("channels", "quarantine"),
    ("channels", "quarantine", "list"),
    ("channels", "quarantine", "retry"),
    ("maintenance",),
    ("maintenance", "prune"),
]


@pytest.fixture(scope="module")
def help_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[tuple[str, ...], Result]]:
    """Every command's --help, run side by side once (each is a separate process)."""
    root = tmp_path_factory.mktemp("cli-help")
    cli = make_cli(root, root / "var")
    runs = [(*path, "--help") for path in EVERY_COMMAND]
    return root / "var", dict(zip(EVERY_COMMAND, in_parallel(cli, *runs), strict=True))


class TestHelp:
    def test_every_command_is_listed_here(self) -> None:
        assert set(commands(main)) == set(EVERY_COMMAND)

    @pytest.mark.parametrize("path", EVERY_COMMAND, ids=lambda p: " ".join(p) or "omnihub")
    def test_help_exits_zero(
        self, help_runs: tuple[Path, dict[tuple[str, ...], Result]], path: tuple[str, ...]
    ) -> None:
        data_dir, results = help_runs
        result = results[path]

        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"Usage: omnihub {' '.join(path)}".rstrip())
        assert result.stderr == ""
        assert not data_dir.exists(), "--help must not create anything"


class TestDbUpgrade:
    def test_creates_the_sqlite_database_at_head(self, fresh_cli: Cli, data_dir: Path) -> None:
        result = fresh_cli("db", "upgrade")

        assert result.returncode == 0, result.stderr
        assert result.stdout == "database at head\n"
        assert query(data_dir, "SELECT version_num FROM alembic_version") == [(HEAD,)]
        tables = {row[0] for row in query(data_dir, "SELECT name FROM sqlite_master")}
        assert {"channels", "contacts", "leads", "outbox_events"} <= tables
        assert (data_dir / "secret_key").exists()


class TestChannels:
    ADD_SHOP = (
        "channels",
        "add",
        "webform",
        "--key",
        "shop",
        "--title",
        "Shop",
        "--allowed-origin",
        "https://shop.example.ru",
    )

    def test_disabled_and_enabled_channel_is_listed_so_and_announced(
        self, cli: Cli, data_dir: Path
    ) -> None:
        assert cli(*self.ADD_SHOP).returncode == 0
        disabled = cli("channels", "disable", "shop")
        listed = cli("channels", "list")
        enabled = cli("channels", "enable", "shop")
        unknown = cli("channels", "enable", "nothing")

        assert (disabled.returncode, disabled.stdout) == (0, "channel shop disabled\n")
        assert listed.stdout == "webform\tshop\tShop\tinactive\tok\t\n"
        assert (enabled.returncode, enabled.stdout) == (0, "channel shop enabled\n")
        assert (unknown.returncode, unknown.stderr) == (1, "Error: no channel 'nothing'\n")
        # Added, disabled, enabled: each tells the pollers of every process.
        events = query(data_dir, "SELECT topic FROM outbox_events WHERE topic = 'channel.changed'")
        assert len(events) == 3

    def test_added_webform_is_listed(self, cli: Cli, data_dir: Path) -> None:
        added = cli(*self.ADD_SHOP)
        listed = cli("channels", "list")

        assert added.returncode == 0, added.stderr
        assert added.stdout == "web form shop added: /forms/shop\n"
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout == "webform\tshop\tShop\tactive\tok\t\n"
        ((config,),) = query(data_dir, "SELECT config FROM channels WHERE key = 'shop'")
        assert '"https://shop.example.ru"' in str(config)

    def test_a_russian_form_asks_for_consent_and_an_english_one_may(
        self, cli: Cli, data_dir: Path
    ) -> None:
        policy = "https://shop.example.ru/privacy"
        russian = cli(*self.ADD_SHOP, "--privacy-policy", policy)
        english = cli(
            "channels", "add", "webform", "--key", "intl", "--title", "Intl", "--language", "en"
        )
        unlinked = cli(
            "channels",
            "add",
            "webform",
            "--key",
            "x",
            "--title",
            "X",
            "--language",
            "en",
            "--consent",
        )

        assert russian.returncode == 0, russian.stderr
        assert english.returncode == 0, english.stderr
        rows = dict(query(data_dir, "SELECT key, config FROM channels"))
        shop, intl = json.loads(rows["shop"]), json.loads(rows["intl"])
        assert shop["consent"]["required"] is True
        assert shop["consent"]["policy_url"] == policy
        assert intl["consent"]["required"] is False
        assert json.loads(rows["x"])["consent"]["required"] is True
        # The consent refers to a policy: the operator hears that the link is missing.
        assert unlinked.returncode == 0, unlinked.stderr
        assert "--privacy-policy" in unlinked.stderr
        assert "--privacy-policy" not in russian.stderr

    async def test_list_filters_by_kind(self, cli: Cli, data_dir: Path) -> None:
        db = seeded(data_dir)
        await create_channel(db, key="shop", kind="webform", title="Shop")
        await create_channel(db, key="bot", kind="telegram", title="Bot")
        await db.dispose()

        every, forms, mail = in_parallel(
            cli,
            ("channels", "list"),
            ("channels", "list", "--kind", "webform"),
            ("channels", "list", "--kind", "email"),
        )

        assert (
            every.stdout == "telegram\tbot\tBot\tactive\tok\t\nwebform\tshop\tShop\tactive\tok\t\n"
        )
        assert forms.stdout == "webform\tshop\tShop\tactive\tok\t\n"
        assert (mail.returncode, mail.stdout) == (0, "")

    def test_added_mailbox_is_listed_with_its_password_sealed(
        self, cli: Cli, data_dir: Path
    ) -> None:
        added = cli(
            "channels",
            "add",
            "email",
            "--key",
            "support",
            "--imap-host",
            "imap.example.ru",
            "--imap-user",
            "support@example.ru",
            "--smtp-host",
            "smtp.example.ru",
            "--from-address",
            "Support@Example.ru",
            env={"OMNIHUB_IMAP_PASSWORD": "очень-секретно"},
        )
        listed = cli("channels", "list", "--kind", "email")
        quarantine = cli("channels", "quarantine", "list")

        assert added.returncode == 0, added.stderr
        assert added.stdout == "mailbox support added: support@example.ru\n"
        assert listed.stdout == (
            "email\tsupport\tsupport@example.ru\tactive\tok\t\tlast fetch never\n"
        )
        assert (quarantine.returncode, quarantine.stdout) == (0, "")
        ((config, secrets),) = query(
            data_dir, "SELECT config, secrets FROM channels WHERE key = 'support'"
        )
        compact = str(config).replace(" ", "")  # the JSON column may be stored compact
        assert '"imap.example.ru"' in compact and '"port":993' in compact
        assert '"port":465' in compact
        assert "секретно" not in str(config) + str(secrets)
        assert secrets

    def test_mailbox_without_smtp_login(self, cli: Cli, data_dir: Path) -> None:
        mailbox = (
            "channels", "add", "email", "--imap-host", "imap.example.ru",
            "--imap-user", "support@example.ru", "--imap-password", "p",
            "--smtp-host", "relay.example.ru", "--smtp-security", "plain",
            "--from-address", "support@example.ru",
        )  # fmt: skip
        relay = cli(*mailbox, "--key", "relay", "--no-smtp-login")
        login = cli(*mailbox, "--key", "login")
        both = cli(*mailbox, "--key", "both", "--no-smtp-login", "--smtp-user", "u")

        assert relay.returncode == 0, relay.stderr
        assert login.returncode == 0, login.stderr
        configs = dict(query(data_dir, "SELECT key, config FROM channels ORDER BY key"))
        assert json.loads(str(configs["relay"]))["smtp"]["user"] is None
        assert json.loads(str(configs["login"]))["smtp"]["user"] == "support@example.ru"
        assert both.returncode == 2
        assert "--smtp-user" in both.stderr and "--no-smtp-login" in both.stderr
        assert "both" not in configs

    def test_mailbox_with_bad_settings_fails_clearly(self, cli: Cli) -> None:
        result = cli(
            "channels",
            "add",
            "email",
            "--key",
            "support",
            "--imap-host",
            "imap.example.ru",
            "--imap-user",
            "u",
            "--imap-password",
            "p",
            "--smtp-host",
            "smtp.example.ru",
            "--from-address",
            "not-an-address",
        )
        assert result.returncode == 1
        assert "from_address must be an email address" in result.stderr

    def test_quarantine_retry_of_unknown_item_fails_clearly(self, cli: Cli) -> None:
        result = cli("channels", "quarantine", "retry", "42")
        assert result.returncode == 1
        assert result.stderr == "Error: no quarantined email 42\n"

    async def test_duplicate_key_fails_clearly(self, cli: Cli, data_dir: Path) -> None:
        db = seeded(data_dir)
        await create_channel(db, key="shop", kind="telegram", title="Bot")
        await db.dispose()

        result = cli(*self.ADD_SHOP)

        assert result.returncode == 1
        assert result.stderr == "Error: a channel with key 'shop' exists\n"
        assert query(data_dir, "SELECT count(*) FROM channels") == [(1,)]

    def test_invalid_key_fails_clearly(self, cli: Cli) -> None:
        result = cli("channels", "add", "webform", "--key", "Shop Form", "--title", "x")

        assert result.returncode == 1
        assert "lowercase letters, digits" in result.stderr
        assert "Traceback" not in result.stderr


class TestManagersAdd:
    def test_password_is_stored_as_argon2(self, cli: Cli, data_dir: Path) -> None:
        result = cli(
            "managers", "add", "--email", "Anna@Example.ru", "--name", "Анна",
            "--role", "admin", "--password", "correct horse battery",
        )  # fmt: skip

        assert result.returncode == 0, result.stderr
        assert result.stdout == "manager 1 <anna@example.ru> added as admin\n"
        ((email, name, role, password_hash),) = query(
            data_dir, "SELECT email, name, role, password_hash FROM managers"
        )
        assert (email, name, role) == ("anna@example.ru", "Анна", "admin")
        assert str(password_hash).startswith("$argon2id$")
        assert "correct horse battery" not in str(password_hash)

    def test_without_a_terminal_no_password_is_asked(self, cli: Cli, data_dir: Path) -> None:
        result = cli("managers", "add", "--email", "b@example.ru", "--name", "Борис")

        assert result.returncode == 0, result.stderr
        assert query(data_dir, "SELECT password_hash FROM managers") == [(None,)]

    async def test_duplicate_email_fails_clearly(self, cli: Cli, data_dir: Path) -> None:
        db = seeded(data_dir)
        await create_manager(db, email="a@example.ru")
        await db.dispose()

        result = cli("managers", "add", "--email", "A@EXAMPLE.RU", "--name", "B")

        assert result.returncode == 1
        assert result.stderr == "Error: a manager with email a@example.ru exists\n"
        assert query(data_dir, "SELECT count(*) FROM managers") == [(1,)]


class TestTokensCreate:
    def test_token_is_printed_once_and_stored_hashed(self, cli: Cli, data_dir: Path) -> None:
        result = cli("tokens", "create", "--name", "1C ERP")

        assert result.returncode == 0, result.stderr
        token = result.stdout.strip()
        assert result.stdout == token + "\n"
        assert token.startswith("omh_") and len(token) >= 40
        assert "shown only this once" in result.stderr
        assert token not in result.stderr
        ((name, token_hash, prefix),) = query(
            data_dir, "SELECT name, token_hash, prefix FROM api_tokens"
        )
        assert name == "1C ERP"
        assert token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token.startswith(str(prefix)) and len(str(prefix)) < len(token)
        assert token.encode() not in (data_dir / "omnihub.db").read_bytes()


@pytest.fixture
async def empty_postgres_url() -> AsyncIterator[str]:
    """A PostgreSQL database that nothing has migrated yet."""
    name = f"omnihub_test_cli_{uuid.uuid4().hex[:10]}"
    admin = make_url(POSTGRES_URL).set(drivername="postgresql")
    try:
        conn = await asyncpg.connect(admin.render_as_string(hide_password=False), timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        missing_part(f"PostgreSQL unreachable at {POSTGRES_URL}: {exc}")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def pg_fetch(url: str, sql: str) -> list[asyncpg.Record]:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


class TestPostgres:
    async def test_upgrade_then_channels_and_tokens(
        self, fresh_cli: Cli, empty_postgres_url: str, data_dir: Path
    ) -> None:
        env: dict[str, str | None] = {
            "OMNIHUB_DATABASE_URL": empty_postgres_url,
            "OMNIHUB_SECRET_KEY": SECRET,
        }

        pg = Cli(fresh_cli.workdir, {**fresh_cli.env, **env})

        upgraded = pg("db", "upgrade")
        added, token_run = in_parallel(
            pg, TestChannels.ADD_SHOP, ("tokens", "create", "--name", "erp")
        )
        listed = pg("channels", "list")
        token = token_run.stdout.strip()

        assert upgraded.returncode == 0, upgraded.stderr
        versions = await pg_fetch(empty_postgres_url, "SELECT version_num FROM alembic_version")
        assert [r["version_num"] for r in versions] == [HEAD]
        assert added.returncode == 0, added.stderr
        assert listed.stdout == "webform\tshop\tShop\tactive\tok\t\n"
        (row,) = await pg_fetch(empty_postgres_url, "SELECT token_hash FROM api_tokens")
        assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
        written = await asyncio.to_thread(data_dir.exists)
        assert not written, "nothing is written to the data dir outside embedded mode"

    async def test_without_a_secret_key_fails_clearly(
        self, fresh_cli: Cli, empty_postgres_url: str
    ) -> None:
        result = fresh_cli("channels", "list", env={"OMNIHUB_DATABASE_URL": empty_postgres_url})

        assert result.returncode == 1
        assert result.stderr == (
            "Error: OMNIHUB_SECRET_KEY is required when OMNIHUB_DATABASE_URL is not SQLite\n"
        )

    async def test_unmigrated_database_fails_clearly(
        self, fresh_cli: Cli, empty_postgres_url: str
    ) -> None:
        env: dict[str, str | None] = {
            "OMNIHUB_DATABASE_URL": empty_postgres_url,
            "OMNIHUB_SECRET_KEY": SECRET,
        }

        result = fresh_cli("channels", "list", env=env)

        assert result.returncode == 1
        assert result.stderr.startswith("Error: database schema is at nothing")
        assert "omnihub db upgrade" in result.stderr
        assert "Traceback" not in result.stderr

    def test_unreachable_server_fails_clearly(self, fresh_cli: Cli) -> None:
        env: dict[str, str | None] = {
            "OMNIHUB_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:1/omnihub",
            "OMNIHUB_SECRET_KEY": SECRET,
        }

        result = fresh_cli("db", "upgrade", env=env)

        assert result.returncode == 1
        assert result.stderr.startswith("Error: cannot connect:")
        assert "Traceback" not in result.stderr
