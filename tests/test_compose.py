"""docker-compose.yml stays a valid Compose file with the scale-out stack in it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import yaml  # installed with uvicorn[standard]

from tests.conftest import missing_part

ROOT = Path(__file__).resolve().parent.parent


def compose_config(
    *args: str, secret: str | None = "compose-secret-0123456789"
) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        missing_part("docker-compose is not installed (Debian package docker-compose)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
    if secret is not None:
        env["OMNIHUB_SECRET_KEY"] = secret
    return subprocess.run(
        [str(binary), "-f", str(ROOT / "docker-compose.yml"), "config", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_the_file_is_valid() -> None:
    result = compose_config("-q")
    assert result.returncode == 0, result.stderr


def test_it_runs_hub_workers_postgres_and_redis() -> None:
    result = compose_config("--services")
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == {"postgres", "redis", "migrate", "hub", "worker"}


def test_hub_and_worker_share_database_redis_and_secret() -> None:
    result = compose_config()
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    hub = config["services"]["hub"]["environment"]
    worker = config["services"]["worker"]["environment"]
    assert hub == worker
    assert hub["OMNIHUB_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert hub["OMNIHUB_REDIS_URL"].startswith("redis://")
    assert hub["OMNIHUB_SECRET_KEY"] == "compose-secret-0123456789"
    assert json.dumps(config["services"]["worker"]["command"]) == '["omnihub", "worker"]'


def test_a_missing_secret_is_refused() -> None:
    result = compose_config("-q", secret=None)
    assert result.returncode != 0
    assert "OMNIHUB_SECRET_KEY" in result.stderr
