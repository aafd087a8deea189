"""The real `omnihub` console script for the CLI tests: run as a subprocess with a clean
OMNIHUB_* environment, its embedded database read back with sqlite3."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

OMNIHUB = Path(sys.executable).parent / "omnihub"
SECRET = "cli-test-secret-0123456789"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class Cli:
    """Runs `omnihub` with a clean OMNIHUB_* environment in a scratch directory."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env

    def __call__(self, *args: str, env: dict[str, str | None] | None = None) -> Result:
        full = {**self.env}
        for name, value in (env or {}).items():
            if value is None:
                full.pop(name, None)
            else:
                full[name] = value
        done = subprocess.run(
            [str(OMNIHUB), *args],
            cwd=self.workdir,
            env=full,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return Result(done.returncode, done.stdout, done.stderr)


def make_cli(root: Path, data_dir: Path) -> Cli:
    if not OMNIHUB.exists():
        pytest.fail(f"{OMNIHUB} is missing: install the project into the venv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
    env.update({"OMNIHUB_DATA_DIR": str(data_dir), "OMNIHUB_LOG_FORMAT": "text"})
    workdir = root / "cwd"
    workdir.mkdir()
    return Cli(workdir, env)


def query(data_dir: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(data_dir / "omnihub.db") as connection:
        return connection.execute(sql).fetchall()
