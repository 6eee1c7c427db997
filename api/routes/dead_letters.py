"""Dead-lettered alert entries: what the consumer could not record, and why.

Entries land here when they are malformed or failed ``consumer.max_deliveries`` times. An
operator or engineer reads the error, fixes the cause, and requeues the entry to the alert
stream (its idempotency key still prevents a duplicate case) or discards it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import AfterValidator, BaseModel

from api.consumer import DEAD_LETTER_META
from api.deps import CurrentUser, Principal

router = APIRouter(prefix="/dead-letters", tags=["dead letters"])

_UINT64_MAX = 2**64 - 1


def _stream_id(value: str) -> str:
    """Redis stream ids are two unsigned 64-bit numbers; larger ones are a 422, not a 503."""
    milliseconds, _, sequence = value.partition("-")
    if int(milliseconds) > _UINT64_MAX or int(sequence) > _UINT64_MAX:
        raise ValueError(f"{value!r} is not a Redis stream id: both parts must be < 2^64")
    return value


EntryId = Annotated[
    str,
    Path(
        pattern=r"^\d{1,20}-\d{1,20}$", description="The dead-letter entry id, e.g. 1700000000000-0"
    ),
    AfterValidator(_stream_id),
]


class DeadLetter(BaseModel):
    id: str
    original_id: str | None
    error: str | None
    consumer: str | None
    deliveries: int | None
    dead_lettered_at: str | None
    idempotency_key: str | None
    kind: str | None
    event: dict[str, Any] | None  # the event, when its JSON still parses
    fields: dict[str, str]  # the original entry's fields as they were in the stream


class DeadLetterPage(BaseModel):
    items: list[DeadLetter]
    total: int
    next_before: str | None  # pass as ?before= for the next (older) page


class Requeued(BaseModel):
    id: str
    requeued_as: str


def _organisation_admin(principal: CurrentUser) -> Principal:
    """Dead letters hold events of every centre: only an organisation-wide admin sees them."""
    principal.require("deliveries.manage")
    if principal.scope is not None:
        raise HTTPException(
            403,
            "dead letters span the whole organisation: only an admin without a centre "
            "(organisation-wide) may read or requeue them",
        )
    return principal


DeliveryAdmin = Annotated[Principal, Depends(_organisation_admin)]


def _client(request: Request) -> redis.Redis:
    return request.app.state.redis


def _unavailable(error: redis.RedisError) -> HTTPException:
    return HTTPException(503, f"Redis unavailable, dead letters cannot be read: {error}")


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _dead_letter(entry_id: bytes | str, raw: dict) -> DeadLetter:
    fields = {_text(k): _text(v) for k, v in raw.items()}
    original = {k: v for k, v in fields.items() if k not in DEAD_LETTER_META}
    event = None
    try:
        parsed = json.loads(original.get("event", ""))
        event = parsed if isinstance(parsed, dict) else None
    except ValueError:
        pass
    deliveries = fields.get("deliveries")
    return DeadLetter(
        id=_text(entry_id),
        original_id=fields.get("original_id"),
        error=fields.get("error"),
        consumer=fields.get("consumer"),
        deliveries=int(deliveries) if deliveries and deliveries.isdigit() else None,
        dead_lettered_at=fields.get("dead_lettered_at"),
        idempotency_key=original.get("key"),
        kind=original.get("kind"),
        event=event,
        fields=original,
    )


def _fetch(request: Request, entry_id: str) -> dict:
    stream = request.app.state.config.redis.dead_letter_stream
    try:
        rows = _client(request).xrange(stream, entry_id, entry_id, count=1)
    except redis.RedisError as error:
        raise _unavailable(error) from None
    if not rows:
        raise HTTPException(404, f"dead letter {entry_id} does not exist")
    return rows[0][1]


@router.get("", response_model=DeadLetterPage)
def list_dead_letters(
    _admin: DeliveryAdmin,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[
        str | None, Query(pattern=r"^\d{1,20}-\d{1,20}$"), AfterValidator(_stream_id)
    ] = None,
) -> DeadLetterPage:
    """Newest first; page with ``before`` (exclusive)."""
    stream = request.app.state.config.redis.dead_letter_stream
    client = _client(request)
    try:
        total = int(client.xlen(stream))
        if before is not None and before.replace("0", "") == "-":
            rows = []  # nothing comes before the smallest possible id (0-0)
        else:
            rows = client.xrevrange(stream, f"({before}" if before else "+", "-", count=limit)
    except redis.RedisError as error:
        raise _unavailable(error) from None
    items = [_dead_letter(entry_id, fields) for entry_id, fields in rows]
    return DeadLetterPage(
        items=items,
        total=total,
        next_before=items[-1].id if len(items) == limit else None,
    )


@router.get(
    "/{entry_id}", response_model=DeadLetter, responses={404: {"description": "No such entry"}}
)
def get_dead_letter(_admin: DeliveryAdmin, request: Request, entry_id: EntryId) -> DeadLetter:
    return _dead_letter(entry_id, _fetch(request, entry_id))


@router.post(
    "/{entry_id}/requeue",
    response_model=Requeued,
    responses={404: {"description": "No such entry"}, 409: {"description": "Nothing to requeue"}},
)
def requeue_dead_letter(_admin: DeliveryAdmin, request: Request, entry_id: EntryId) -> Requeued:
    """Put the original entry back on the alert stream and remove it from the dead letters.

    Its idempotency key is unchanged, so an event that was recorded after all cannot make a
    second case.
    """
    settings = request.app.state.config.redis
    letter = _dead_letter(entry_id, _fetch(request, entry_id))
    if not letter.fields:
        raise HTTPException(409, f"dead letter {entry_id} holds no original fields to requeue")
    pipe = _client(request).pipeline(transaction=True)
    pipe.xadd(settings.stream, letter.fields, maxlen=settings.maxlen, approximate=True)  # type: ignore[arg-type]
    pipe.xdel(settings.dead_letter_stream, entry_id)
    try:
        new_id, _deleted = pipe.execute()
    except redis.RedisError as error:
        raise _unavailable(error) from None
    return Requeued(id=entry_id, requeued_as=_text(new_id))


@router.delete("/{entry_id}", status_code=204, responses={404: {"description": "No such entry"}})
def discard_dead_letter(_admin: DeliveryAdmin, request: Request, entry_id: EntryId) -> Response:
    """Remove an entry for good (after its cause was understood)."""
    stream = request.app.state.config.redis.dead_letter_stream
    try:
        deleted = _client(request).xdel(stream, entry_id)
    except redis.RedisError as error:
        raise _unavailable(error) from None
    if not deleted:
        raise HTTPException(404, f"dead letter {entry_id} does not exist")
    return Response(status_code=204)
