"""The baseline for the Telegram benchmark: the same framework and the same aiogram
Update model, no storage and no bot.

`POST /webhooks/telegram/{key}` checks the secret token header, parses the body into
aiogram's `Update` (as the hub does) and answers 200 `{"ok":true}`.

    uvicorn bench.bare_telegram:app --host 127.0.0.1 --port 8001 --no-access-log
"""

from __future__ import annotations

import hmac

from aiogram.types import Update
from fastapi import FastAPI, HTTPException, Request, Response

from hub.app import telemetry_config

SECRET = "bench-webhook-secret"

# FastAPI's telemetry as the hub ships it (off).
app = FastAPI(
    title="omnihub telegram bench baseline",
    docs_url=None,
    redoc_url=None,
    telemetry=telemetry_config(False),
)


@app.post("/webhooks/telegram/{key}")
async def webhook(key: str, request: Request) -> Response:
    token = request.headers.get("x-telegram-bot-api-secret-token", "")
    if not hmac.compare_digest(token.encode(), SECRET.encode()):
        raise HTTPException(status_code=401)
    update = Update.model_validate_json(await request.body())
    if update.update_id < 0:
        raise HTTPException(status_code=400)
    return Response(b'{"ok":true}', media_type="application/json")


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ok"}
