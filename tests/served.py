"""A real `omnihub serve` for tests that need the whole server (sockets, a browser):
started from the venv's console script in a fresh directory, stopped with SIGTERM,
its log free of tracebacks."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import missing_part

OMNIHUB = Path(sys.executable).parent / "omnihub"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def hub_environment(port: int, **settings: str) -> dict[str, str]:
    """The caller's environment without any OMNIHUB_* setting, as on a fresh clone, plus
    the port, text logs and `settings` (OMNIHUB_ names without the prefix)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
    env["OMNIHUB_PORT"] = str(port)
    env["OMNIHUB_LOG_FORMAT"] = "text"
    env.update({f"OMNIHUB_{name.upper()}": value for name, value in settings.items()})
    return env


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextlib.contextmanager
def serving(workdir: Path, env: dict[str, str]) -> Iterator[Path]:
    """`omnihub serve` in `workdir`, ready (/readyz answers 200); yields its log."""
    with serve_process(workdir, env) as (_process, log):
        yield log


@contextlib.contextmanager
def serve_process(
    workdir: Path, env: dict[str, str], *args: str, ready_within: float = 60.0
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """`omnihub serve ARGS` in `workdir`, ready; yields the process and its log. Stopped
    with SIGTERM afterwards unless the test stopped it; its log must hold no traceback."""
    if not OMNIHUB.exists():
        missing_part(f"the omnihub console script is not installed at {OMNIHUB}")
    log = workdir / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(OMNIHUB), "serve", *args],
            cwd=workdir,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{env['OMNIHUB_PORT']}/readyz"
    try:
        deadline = time.monotonic() + ready_within
        while True:
            if process.poll() is not None:
                pytest.fail(f"omnihub serve exited with {process.returncode}:\n{tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(
                    f"omnihub serve was not ready within {ready_within:.0f} s:\n{tail(log)}"
                )
            time.sleep(0.2)
        yield process, log
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()  # its serving processes stop themselves when it is gone
                process.wait(timeout=10)
    assert "Traceback" not in log.read_text(errors="replace"), tail(log, 80)
