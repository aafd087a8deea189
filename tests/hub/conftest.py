"""The CLI tests' `cli`: `omnihub` on an embedded install that is already migrated."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.hub.console import Cli, make_cli


@pytest.fixture
def cli(tmp_path: Path, data_dir: Path, sqlite_template: Path) -> Cli:
    """`omnihub` on a copy of the migrated template (saves a migration per run). The data
    directory may exist already (the shared fixture makes it) or not (test_cli's)."""
    data_dir.mkdir(exist_ok=True)
    shutil.copyfile(sqlite_template, data_dir / "omnihub.db")
    return make_cli(tmp_path, data_dir)
