"""Settings from OMNIHUB_* environment variables (and a .env file)."""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(RuntimeError):
    """The configuration cannot work; raised at start-up with what to set."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OMNIHUB_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # `OMNIHUB_SECRET_KEY=` left blank (as in a copied template) means unset, not "".
        env_ignore_empty=True,
    )

    data_dir: Path = Field(default=Path("var"), description="Embedded database, secret, blobs")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; unset means SQLite in data_dir"
    )
    redis_url: str | None = Field(default=None, description="Redis for bus, limits, FSM")
    secret_key: SecretStr | None = Field(
        default=None, description="Required outside the embedded mode"
    )
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = Field(default=None, description="How clients reach the hub")
    default_region: str = Field(default="RU", description="Region for national phone numbers")
    forms_rate_limit: str = Field(default="20/minute", description="Per IP; 0 turns it off")
    login_rate_limit: str = Field(default="10/15m", description="Sign-ins per account; 0: none")
    login_ip_rate_limit: str = Field(default="50/15m", description="Sign-ins per IP; 0: none")
    max_body_bytes: int = 30 * 1024 * 1024
    reply_file_max_bytes: int = Field(
        default=25 * 1024 * 1024, ge=1, description="Largest file attached to a manager's reply"
    )
    header_timeout: float = Field(
        default=10.0, description="Seconds for a request's line and headers to arrive"
    )
    body_timeout: float = Field(default=60.0, description="Seconds for a request body to arrive")
    keep_alive_timeout: int = Field(default=5, description="Seconds an idle connection is kept")
    limit_concurrency: int = Field(
        default=1000, description="Connections and requests at once (503 beyond); 0: no limit"
    )
    backlog: int = Field(default=2048, description="Connections waiting to be accepted")
    run_worker: bool = Field(default=True, description="Run the outbox worker inside serve")
    poll_mailboxes: bool = Field(
        default=True, description="Watch the email channels' IMAP mailboxes in worker processes"
    )
    poll_telegram: bool = Field(
        default=True, description="Long-poll the bot channels in polling mode in worker processes"
    )
    worker_poll_seconds: float = 1.0
    outbox_max_attempts: int = 8
    prune_interval_seconds: float = Field(
        default=3600.0, ge=0, description="How often workers delete rows past retention; 0: never"
    )
    retention_telegram_updates_days: float = Field(
        default=7.0,
        ge=1.0,
        description="Handled Telegram update ids kept for redelivery checks (Telegram: 24 h)",
    )
    retention_sessions_days: float = Field(
        default=30.0, ge=0, description="Ended (signed-out, expired) browser sessions kept"
    )
    retention_outbox_days: float = Field(
        default=14.0, ge=0, description="Handled (done) outbox events kept; parked ones stay"
    )
    first_assignee_becomes_owner: bool = Field(
        default=True, description="The first manager assigned becomes the contact's owner"
    )
    notify_smtp_host: str | None = Field(
        default=None, description="SMTP server for managers' email notifications; unset: none"
    )
    notify_smtp_port: int = 25
    notify_from: str = Field(default="omnihub@localhost", description="From of notifications")
    notify_smtp_tls: bool = Field(default=False, description="Implicit TLS (SMTPS)")
    notify_smtp_username: str | None = None
    notify_smtp_password: SecretStr | None = None
    log_level: str = "info"
    log_format: Literal["json", "text"] = "json"
    access_log: bool = True
    # FastAPI's own OpenTelemetry spans, metrics and logs, for an operator who configures
    # OpenTelemetry (e.g. `opentelemetry-instrument omnihub serve`). Off, no request pays
    # for looking up the global providers (omnihub sets none).
    telemetry: bool = False
    db_pool_size: int = 10

    @property
    def embedded(self) -> bool:
        """SQLite in the data directory: the one-command install with no other services."""
        return self.database_url is None or self.database_url.startswith("sqlite")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'omnihub.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @cached_property
    def secret(self) -> str:
        """The hub's secret key; generated into data_dir on the first embedded run."""
        if self.secret_key is not None:
            value = self.secret_key.get_secret_value()
            if len(value) < 16:
                raise SettingsError("OMNIHUB_SECRET_KEY must be at least 16 characters long")
            return value
        if not self.embedded:
            raise SettingsError(
                "OMNIHUB_SECRET_KEY is required when OMNIHUB_DATABASE_URL is not SQLite"
            )
        path = self.data_dir / "secret_key"
        if not path.exists():
            _create_secret_file(path)
        value = path.read_text().strip()
        if len(value) < 16:
            raise SettingsError(f"{path} is empty or too short: delete it to generate a new one")
        return value


def _create_secret_file(path: Path) -> None:
    """Write a new secret so that processes starting together all read the same whole one.

    It is written aside and hard-linked into place: a reader never sees a half-written
    file, and when two processes race exactly one link wins.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(aside, path)
    except FileExistsError:
        pass
    finally:
        aside.unlink(missing_ok=True)
