"""Real `omnihub worker` processes for tests that need more than one process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

OMNIHUB = Path(sys.executable).parent / "omnihub"


def worker_env(**settings: str) -> dict[str, str]:
    """This environment without its OMNIHUB_* variables, plus `settings` (OMNIHUB_ names)."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}, **settings}


def start_workers(
    env: dict[str, str], tmp_path: Path, count: int = 2
) -> tuple[list[IO[bytes]], list[subprocess.Popen[bytes]]]:
    """`count` workers, each writing its output to tmp_path/worker{i}.log."""
    logs = [open(tmp_path / f"worker{i}.log", "wb") for i in range(count)]  # noqa: SIM115
    workers = [
        subprocess.Popen([str(OMNIHUB), "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
        for log in logs
    ]
    return logs, workers


def stop_workers(workers: list[subprocess.Popen[bytes]], logs: list[IO[bytes]]) -> None:
    """SIGTERM (a clean stop), then SIGKILL for one that does not stop within 20 s."""
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    for log in logs:
        log.close()
