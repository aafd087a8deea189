"""The baseline for the telephony benchmark: the hub's framework and payload, no storage.

`POST /webhooks/telephony/{key}/{token}` validates the same Generic CTI event the hub
reads (a JSON object: event, from, to, direction, callId, user, answeringNumber, cause),
checks the token and answers `{}` as the hub does. `GET /readyz` lets the harness wait
for it; it is not on the measured path.

    uvicorn bench.bare_telephony:app --host 127.0.0.1 --port 8001 --no-access-log
"""

from __future__ import annotations

import hmac
from typing import Literal

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from hub.app import telemetry_config

TOKEN = "bench-telephony-token-0123456789"


class GenericEvent(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    event: Literal["newCall", "answer", "hangup"]
    from_: str = Field(alias="from", max_length=64)
    to: str = Field(max_length=64)
    direction: Literal["in", "out"] = "in"
    call_id: str = Field(alias="callId", max_length=250)
    user: list[str] = []
    answering_number: str | None = Field(default=None, alias="answeringNumber")
    cause: str | None = None


# FastAPI's telemetry as the hub ships it (off).
app = FastAPI(
    title="omnihub telephony bench baseline",
    docs_url=None,
    openapi_url=None,
    telemetry=telemetry_config(False),
)


@app.post("/webhooks/telephony/{key}/{token}")
async def webhook(key: str, token: str, event: GenericEvent) -> dict[str, str]:
    if not hmac.compare_digest(token.encode(), TOKEN.encode()):
        raise HTTPException(403)
    return {}


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ok"}
