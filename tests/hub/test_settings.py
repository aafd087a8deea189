"""Settings from OMNIHUB_* variables and .env: embedded defaults, secrets, refusals."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from hub.settings import Settings, SettingsError

PG_URL = "postgresql+asyncpg://hub@db.example/omnihub"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No OMNIHUB_* from the outside, and a working directory without a .env."""
    for name in list(os.environ):
        if name.startswith("OMNIHUB_") and not name.startswith("OMNIHUB_TEST"):
            monkeypatch.delenv(name)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "var"
    monkeypatch.setenv("OMNIHUB_DATA_DIR", str(path))
    return path


def _read_secret(start: Any, answers: Any) -> None:
    settings = Settings()
    start.wait()
    try:
        answers.put(("secret", settings.secret))
    except BaseException as exc:
        answers.put(("error", repr(exc)))


class TestEmbeddedDefaults:
    def test_sqlite_in_the_data_dir(self, data_dir: Path) -> None:
        settings = Settings()

        assert settings.embedded is True
        assert settings.database_url is None
        assert settings.resolved_database_url == f"sqlite+aiosqlite:///{data_dir / 'omnihub.db'}"
        assert settings.blob_dir == data_dir / "blobs"
        assert settings.redis_url is None

    def test_relative_data_dir_resolves_to_an_absolute_url(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("OMNIHUB_DATA_DIR", "var")

        url = Settings().resolved_database_url

        assert url == f"sqlite+aiosqlite:///{Path.cwd() / 'var' / 'omnihub.db'}"

    def test_default_data_dir_is_var(self) -> None:
        assert Settings().data_dir == Path("var")

    def test_sqlite_url_is_embedded(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.setenv("OMNIHUB_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/x.db")

        assert Settings().embedded is True


class TestSecret:
    def test_generated_once_with_owner_only_mode(self, data_dir: Path) -> None:
        secret = Settings().secret

        path = data_dir / "secret_key"
        assert path.read_text().strip() == secret
        assert len(secret) >= 32
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_stable_across_instances(self, data_dir: Path) -> None:
        first = Settings().secret

        assert Settings().secret == first
        assert Settings().secret == first

    def test_different_data_dirs_get_different_secrets(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("OMNIHUB_DATA_DIR", str(tmp_path / "a"))
        first = Settings().secret
        monkeypatch.setenv("OMNIHUB_DATA_DIR", str(tmp_path / "b"))

        assert Settings().secret != first

    def test_processes_starting_together_agree(self, data_dir: Path) -> None:
        # `omnihub serve` and `omnihub worker` may start at the same moment: none may
        # crash on the other's file or read it half-written.
        context = multiprocessing.get_context("fork")
        for _ in range(12):
            start = context.Barrier(8)
            answers = context.Queue()
            processes = [
                context.Process(target=_read_secret, args=(start, answers)) for _ in range(8)
            ]
            for process in processes:
                process.start()
            results = [answers.get(timeout=10) for _ in processes]
            for process in processes:
                process.join(10)
            assert [kind for kind, _ in results] == ["secret"] * 8, results
            assert len({secret for _, secret in results}) == 1
            assert len(results[0][1]) >= 32
            assert sorted(p.name for p in data_dir.iterdir()) == ["secret_key"]
            (data_dir / "secret_key").unlink()

    def test_empty_secret_file_is_refused(self, data_dir: Path) -> None:
        data_dir.mkdir()
        (data_dir / "secret_key").write_text("\n")

        with pytest.raises(SettingsError, match="secret_key"):
            _ = Settings().secret

    def test_given_key_is_used_and_nothing_written(
        self, data_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("OMNIHUB_SECRET_KEY", "k" * 40)

        assert Settings().secret == "k" * 40
        assert not (data_dir / "secret_key").exists()

    def test_short_key_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OMNIHUB_SECRET_KEY", "short")

        with pytest.raises(SettingsError, match="at least 16"):
            _ = Settings().secret

    def test_postgresql_without_a_key_is_refused(
        self, data_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("OMNIHUB_DATABASE_URL", PG_URL)

        settings = Settings()

        assert settings.embedded is False
        assert settings.resolved_database_url == PG_URL
        with pytest.raises(SettingsError, match="OMNIHUB_SECRET_KEY is required"):
            _ = settings.secret
        assert not (data_dir / "secret_key").exists()

    def test_postgresql_with_a_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OMNIHUB_DATABASE_URL", PG_URL)
        monkeypatch.setenv("OMNIHUB_SECRET_KEY", "0123456789abcdef")

        assert Settings().secret == "0123456789abcdef"

    def test_key_is_not_shown_in_repr(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OMNIHUB_SECRET_KEY", "very-secret-value-123")

        assert "very-secret-value-123" not in repr(Settings())


class TestEnvFile:
    def test_dotenv_in_the_working_directory_is_honoured(self, tmp_path: Path) -> None:
        Path(".env").write_text(
            f"OMNIHUB_DATABASE_URL={PG_URL}\n"
            "OMNIHUB_SECRET_KEY=from-dotenv-0123456789\n"
            "OMNIHUB_PORT=8123\n"
            "OMNIHUB_DEFAULT_REGION=KZ\n"
            "UNRELATED=1\n",
            encoding="utf-8",
        )

        settings = Settings()

        assert settings.database_url == PG_URL
        assert settings.secret == "from-dotenv-0123456789"
        assert settings.port == 8123
        assert settings.default_region == "KZ"

    def test_blank_values_mean_unset(self, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        # A .env copied from a template leaves the values it does not need blank.
        Path(".env").write_text(
            "OMNIHUB_SECRET_KEY=\nOMNIHUB_REDIS_URL=\nOMNIHUB_PUBLIC_URL=\n", encoding="utf-8"
        )
        monkeypatch.setenv("OMNIHUB_DATABASE_URL", "")

        settings = Settings()

        assert settings.embedded is True
        assert settings.resolved_database_url.startswith("sqlite+aiosqlite:///")
        assert (settings.redis_url, settings.public_url) == (None, None)
        assert settings.secret == (data_dir / "secret_key").read_text().strip()

    def test_environment_wins_over_dotenv(self, monkeypatch: pytest.MonkeyPatch) -> None:
        Path(".env").write_text("OMNIHUB_PORT=8123\n", encoding="utf-8")
        monkeypatch.setenv("OMNIHUB_PORT", "9000")

        assert Settings().port == 9000

    def test_invalid_value_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OMNIHUB_PORT", "eighty")

        with pytest.raises(ValueError, match="port"):
            Settings()

    def test_booleans_from_text(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OMNIHUB_RUN_WORKER", "0")

        assert Settings().run_worker is False
