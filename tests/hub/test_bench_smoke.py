"""The benchmarks' shared measuring code, in a short run against a real `omnihub serve`:
the sustained rate counts every answer and waits until routing has assigned them all."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bench.access_log import main as access_log_bench
from bench.load import Submissions
from bench.sustained import run_whole, seed_staff, sqlite_url, wait_for_empty_backlog
from tests.served import free_port, hub_environment, serve_process


class TestSustained:
    def test_a_short_form_load_is_answered_routed_and_assigned(self, tmp_path: Path) -> None:
        port = free_port()
        data_dir = tmp_path / "var"
        env = hub_environment(port, data_dir=str(data_dir), forms_rate_limit="0")
        with serve_process(tmp_path, env, ready_within=180):
            url = sqlite_url(data_dir)
            seed_staff(url, managers=3)
            result, sustained = run_whole(
                f"http://127.0.0.1:{port}",
                url,
                drain_timeout=120,
                concurrency=4,
                duration=1.0,
                warmup=0.5,
                bodies=Submissions(start=100).next_body,
            )
        assert result.errors == 0
        assert sustained.answered == result.answered >= result.ok > 0
        assert sustained.parked == 0
        assert sustained.seconds >= 1.5  # from the first request, warmup included
        assert sustained.rate == sustained.answered / sustained.seconds
        with sqlite3.connect(data_dir / "omnihub.db") as db:
            (conversations,) = db.execute("SELECT count(*) FROM conversations").fetchone()
        assert conversations == sustained.answered
        assert sustained.assigned == conversations  # every one routed to the staff
        assert wait_for_empty_backlog(url, within=1.0)[0] == 0


def test_the_access_log_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert access_log_bench(["--requests", "2000"]) == 0
    printed = capsys.readouterr().out
    assert "as shipped" in printed and "batched" in printed
