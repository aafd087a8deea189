"""An HTTP/1.1 keep-alive load generator for web-form submissions.

N connections each send one request at a time for a warmup and then a fixed measured
window; every request is a new, realistic submission (its own name, email and phone, so
the hub creates a new contact each time). Two clients do the same work:

- `raw`: a minimal HTTP/1.1 client on `asyncio.open_connection` (default; it is the
  faster of the two, so the client is not what limits the figures),
- `httpx`: `httpx.AsyncClient`, kept to compare with.

    python -m bench.load http://127.0.0.1:8000 --duration 10 --concurrency 64 --client raw
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from channels.webform.schemas import WebFormSubmission

CLIENTS = ("raw", "httpx")
FORM_PATH = "/forms/default?utm_source=bench&utm_medium=cpc"
USER_AGENT = "omnihub-bench/1"

# Payloads -----------------------------------------------------------------------------------

_RU_FIRST = (
    "Анна",
    "Мария",
    "Елена",
    "Ольга",
    "Наталья",
    "Татьяна",
    "Ирина",
    "Екатерина",
    "Светлана",
    "Юлия",
    "Александр",
    "Дмитрий",
    "Сергей",
    "Андрей",
    "Алексей",
    "Максим",
    "Иван",
    "Михаил",
    "Никита",
    "Павел",
    "Артём",
    "Владимир",
    "Евгений",
    "Ксения",
)
_RU_LAST = (
    ("Иванов", "Иванова"),
    ("Смирнов", "Смирнова"),
    ("Кузнецов", "Кузнецова"),
    ("Попов", "Попова"),
    ("Васильев", "Васильева"),
    ("Петров", "Петрова"),
    ("Соколов", "Соколова"),
    ("Михайлов", "Михайлова"),
    ("Новиков", "Новикова"),
    ("Фёдоров", "Фёдорова"),
    ("Морозов", "Морозова"),
    ("Волков", "Волкова"),
    ("Алексеев", "Алексеева"),
    ("Лебедев", "Лебедева"),
    ("Семёнов", "Семёнова"),
    ("Егоров", "Егорова"),
    ("Павлов", "Павлова"),
)
_EN_FIRST = ("John", "Emily", "Michael", "Sarah", "David", "Laura", "James", "Olivia", "Peter")
_EN_LAST = ("Smith", "Johnson", "Brown", "Taylor", "Wilson", "Clarke", "Walker", "Hughes")
_SENTENCES = (
    "Здравствуйте! Хотели бы узнать стоимость поставки оборудования в наш филиал.",
    "Нам нужно подключить двадцать рабочих мест до конца следующего месяца.",
    "Подскажите, пожалуйста, есть ли у вас скидки для постоянных клиентов и отсрочка платежа?",
    "Заказ оформляли на сайте неделю назад, но счёт на оплату так и не пришёл на почту.",
    "Прошу перезвонить мне в рабочее время, удобнее всего после обеда.",
    "Интересует доставка в Екатеринбург и монтаж силами ваших специалистов.",
    "Пришлите, пожалуйста, коммерческое предложение и образец договора.",
    "Менеджер обещал связаться в понедельник, но звонка не было.",
    "Можно ли оплатить по безналичному расчёту с НДС и получить закрывающие документы?",
    "Сравниваем несколько поставщиков, поэтому важны сроки и гарантийные условия.",
    "Также хотим уточнить, входит ли обучение сотрудников в стоимость внедрения.",
    "Спасибо заранее, ждём ответа в ближайшее время.",
)


def _message(i: int) -> str:
    """About 300 characters of Cyrillic text; consecutive requests differ."""
    n = len(_SENTENCES)
    parts: list[str] = []
    k = i
    while sum(len(p) + 1 for p in parts) < 250:
        parts.append(_SENTENCES[k % n])
        k += 5  # coprime with n: every sentence comes up, in a different order per i
    parts.append(f"Номер обращения {i}.")
    return " ".join(parts)


def submission(i: int) -> dict[str, Any]:
    """The i-th submission: unique email and phone, Russian names three times in four.

    No custom `fields`: the hub's `default` form declares none and refuses unknown ones.
    """
    if i % 4 == 3:
        name = f"{_EN_FIRST[i % len(_EN_FIRST)]} {_EN_LAST[i // 7 % len(_EN_LAST)]}"
    else:
        first = _RU_FIRST[i % len(_RU_FIRST)]
        male = i % len(_RU_FIRST) >= 10 and first != "Ксения"
        last = _RU_LAST[i // 5 % len(_RU_LAST)][0 if male else 1]
        name = f"{first} {last}"
    return {
        "name": name,
        "email": f"user{i}@example.ru",
        "phone": f"+7 912 {i // 10000 % 1000:03d}-{i // 100 % 100:02d}-{i % 100:02d}",
        "message": _message(i),
        "consent": True,  # the built-in form asks for it (152-FZ)
    }


class Submissions:
    """Serialized submissions, numbered on from `start`; one instance per benchmark."""

    def __init__(self, start: int = 1) -> None:
        self._numbers = itertools.count(start)

    def next_body(self) -> bytes:
        data = submission(next(self._numbers))
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()

    def check(self) -> None:
        """Raise if the payloads no longer fit the hub's `WebFormSubmission`."""
        for i in (1, 3, 12345, 9_999_999):
            WebFormSubmission.model_validate(submission(i), strict=True)


# Results ------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    client: str
    concurrency: int
    seconds: float
    ok: int
    errors: int
    latencies: list[float] = field(repr=False)
    statuses: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    # The whole run, warmup and the requests finished after the window included:
    # what the hub must also route before its work is done (bench/sustained.py).
    answered: int = 0  # 2xx answers
    started: float = 0.0  # perf_counter() when the first request was sent

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        """Nearest-rank percentile of the successful requests' latency, in milliseconds."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(q / 100 * len(ordered)))
        return ordered[rank - 1] * 1000

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99)

    def summary(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "concurrency": self.concurrency,
            "seconds": round(self.seconds, 3),
            "requests_per_s": round(self.rps, 1),
            "p50_ms": _round(self.p50_ms),
            "p99_ms": _round(self.p99_ms),
            "ok": self.ok,
            "errors": self.errors,
            "statuses": dict(self.statuses),
            "error_samples": self.error_samples,
        }

    def line(self) -> str:
        return (
            f"{self.client:5} c={self.concurrency:<3} {self.rps:9.1f} req/s  "
            f"p50 {self.p50_ms:7.2f} ms  p99 {self.p99_ms:7.2f} ms  errors {self.errors}"
        )


def _round(ms: float) -> float | None:
    return None if math.isnan(ms) else round(ms, 2)


class _Run:
    """Shared state of one measurement: the window, the latencies, the errors."""

    def __init__(self, warmup: float, duration: float) -> None:
        now = time.perf_counter()
        self.begin = now + warmup
        self.end = self.begin + duration
        self.stopping = False
        self.inflight = 0
        self.started = now
        self.latencies: list[float] = []
        self.answered = 0
        self.errors = 0
        self.statuses: Counter[str] = Counter()
        self.error_samples: list[str] = []

    def record(self, status: int, started: float, done: float, body: bytes) -> None:
        self.statuses[str(status)] += 1
        if 200 <= status < 300:
            self.answered += 1
        if not self.begin <= done <= self.end:
            return  # warmup, or after the window closed
        if 200 <= status < 300:
            self.latencies.append(done - started)
        else:
            self.errors += 1
            self._sample(f"HTTP {status}: {body[:300].decode(errors='replace')}")

    def failed(self, exc: BaseException) -> None:
        """A transport error (connect, reset, malformed response)."""
        self.statuses[type(exc).__name__] += 1
        if self.begin <= time.perf_counter() <= self.end:
            self.errors += 1
            self._sample(f"{type(exc).__name__}: {exc}")

    def _sample(self, text: str) -> None:
        if len(self.error_samples) < 5 and text not in self.error_samples:
            self.error_samples.append(text)


# The raw client -----------------------------------------------------------------------------


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Read one HTTP/1.1 response: (status, body, connection stays open)."""
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1."):
        raise ValueError(f"not an HTTP response: {head[:40]!r}")
    status = int(head[9:12])
    lower = head.lower()
    keep = b"\r\nconnection: close" not in lower
    if status < 200 or status in (204, 304):
        return status, b"", keep
    start = lower.find(b"\r\ncontent-length:")
    if start >= 0:
        stop = lower.index(b"\r\n", start + 2)
        length = int(lower[start + 17 : stop])
        return status, await reader.readexactly(length) if length else b"", keep
    if b"\r\ntransfer-encoding: chunked" in lower:
        chunks: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers
                return status, b"".join(chunks), keep
            chunks.append((await reader.readexactly(size + 2))[:-2])
    return status, await reader.read(), False  # delimited by the connection's close


_RAW_ERRORS = (
    OSError,
    EOFError,
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
    ValueError,
)


async def _raw_worker(
    host: str,
    port: int,
    target: str,
    bodies: Callable[[], bytes],
    run: _Run,
    headers: dict[str, str] | None = None,
) -> None:
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (
        f"POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: {USER_AGENT}\r\n"
        f"Accept: application/json\r\n{extra}Content-Type: application/json\r\nContent-Length: "
    ).encode()
    writer: asyncio.StreamWriter | None = None
    try:
        while not run.stopping:
            if writer is None:
                try:
                    reader, writer = await asyncio.open_connection(host, port)
                except OSError as exc:
                    run.failed(exc)
                    await asyncio.sleep(0.05)
                    continue
            body = bodies()
            run.inflight += 1
            started = time.perf_counter()
            try:
                writer.write(b"%s%d\r\n\r\n%s" % (head, len(body), body))
                status, answer, keep = await read_response(reader)
            except _RAW_ERRORS as exc:
                run.inflight -= 1
                run.failed(exc)
                writer.close()
                writer = None
                continue
            run.inflight -= 1
            run.record(status, started, time.perf_counter(), answer)
            if not keep:
                writer.close()
                writer = None
    finally:
        if writer is not None:
            writer.close()


# The httpx client ---------------------------------------------------------------------------


async def _httpx_worker(
    client: httpx.AsyncClient,
    url: str,
    bodies: Callable[[], bytes],
    run: _Run,
    extra: dict[str, str] | None = None,
) -> None:
    headers = {"Content-Type": "application/json", "Accept": "application/json", **(extra or {})}
    while not run.stopping:
        body = bodies()
        run.inflight += 1
        started = time.perf_counter()
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            run.inflight -= 1
            run.failed(exc)
            await asyncio.sleep(0.01)
            continue
        run.inflight -= 1
        run.record(response.status_code, started, time.perf_counter(), response.content)


# Driving a run ------------------------------------------------------------------------------


async def generate_load(
    base_url: str,
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    client: str = "raw",
    bodies: Callable[[], bytes] | None = None,
    path: str = FORM_PATH,
    grace: float = 5.0,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """Run `concurrency` closed-loop connections for `warmup` + `duration` seconds.

    Only requests that complete inside the measured window count. Requests still open
    `grace` seconds after the window closes are cancelled and counted as errors.
    """
    if client not in CLIENTS:
        raise ValueError(f"unknown client {client!r}; choose from {', '.join(CLIENTS)}")
    bodies = bodies or Submissions().next_body
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    run = _Run(warmup, duration)
    http: httpx.AsyncClient | None = None
    if client == "raw":
        workers = [_raw_worker(host, port, path, bodies, run, headers) for _ in range(concurrency)]
    else:
        http = httpx.AsyncClient(
            base_url=base_url,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            timeout=httpx.Timeout(60.0),
            headers={"User-Agent": USER_AGENT},
        )
        workers = [_httpx_worker(http, path, bodies, run, headers) for _ in range(concurrency)]
    tasks = [asyncio.create_task(w) for w in workers]
    try:
        await asyncio.sleep(max(0.0, run.end - time.perf_counter()))
        run.stopping = True
        _, pending = await asyncio.wait(tasks, timeout=grace)
        if pending:
            run.errors += run.inflight
            run._sample(f"{run.inflight} request(s) unanswered {grace:.0f} s after the end")
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error  # a bug in the client, not a failed request
    finally:
        for task in tasks:
            task.cancel()
        if http is not None:
            await http.aclose()
    return LoadResult(
        client=client,
        concurrency=concurrency,
        seconds=duration,
        ok=len(run.latencies),
        errors=run.errors,
        latencies=run.latencies,
        statuses=run.statuses,
        error_samples=run.error_samples,
        answered=run.answered,
        started=run.started,
    )


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_load(base_url: str, **kwargs: Any) -> LoadResult:
    """`generate_load` on a fresh event loop (uvloop when installed), without the cyclic GC.

    The collector is paused so its pauses do not show up as server latency.
    """
    gc.collect()
    gc.disable()
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(generate_load(base_url, **kwargs))
    finally:
        gc.enable()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="base URL of a running hub or bare app")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--client", default="raw", choices=(*CLIENTS, "both"))
    parser.add_argument("--json", action="store_true", help="print JSON instead of a line")
    args = parser.parse_args(argv)
    Submissions().check()
    bodies = Submissions(start=int(time.time()) % 1_000_000 * 10).next_body
    for client in CLIENTS if args.client == "both" else (args.client,):
        result = run_load(
            args.url,
            concurrency=args.concurrency,
            duration=args.duration,
            warmup=args.warmup,
            client=client,
            bodies=bodies,
        )
        print(json.dumps(result.summary(), ensure_ascii=False) if args.json else result.line())
        for sample in result.error_samples:
            print("   ", sample)


if __name__ == "__main__":
    main()
