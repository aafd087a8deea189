"""The baseline for the form-ingest benchmark: the hub's framework and payload, no storage.

`POST /forms/{key}` validates the same `WebFormSubmission` the hub validates and answers
201 with a body shaped like the hub's. `GET /readyz` only lets the harness wait for it the
way it waits for the hub; it is not on the measured path.

    uvicorn bench.bare_app:app --host 127.0.0.1 --port 8001 --no-access-log
"""

from __future__ import annotations

import itertools

from fastapi import FastAPI
from pydantic import BaseModel

from channels.webform.schemas import WebFormSubmission
from hub.app import telemetry_config


class Accepted(BaseModel):
    lead_id: int
    conversation_id: int
    contact_id: int


# FastAPI's telemetry as the hub ships it (off): the baseline pays for no more than it does.
app = FastAPI(
    title="omnihub bench baseline",
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
    telemetry=telemetry_config(False),
)
_ids = itertools.count(1)


@app.post("/forms/{key}", status_code=201, response_model=Accepted)
async def submit_form(key: str, submission: WebFormSubmission) -> Accepted:
    n = next(_ids)
    return Accepted(lead_id=n, conversation_id=n, contact_id=n)


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ok"}
