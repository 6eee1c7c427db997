"""The live feed over WebSocket, and the same events over plain HTTP for catching up."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Depends, Query, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from api import feed
from api.auth import AuthError
from api.deps import DbSession, Principal, principal_for, requires, websocket_token
from api.schemas import FeedEventOut

router = APIRouter(tags=["live feed"])

Reader = Annotated[Principal, Depends(requires("cases.read"))]
PING_S = 25.0


@router.get("/feed", response_model=list[FeedEventOut])
def feed_events(
    session: DbSession,
    principal: Reader,
    after: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="The last id you saw (0: from the start)")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[FeedEventOut]:
    """Feed events after an id, oldest first (what the WebSocket would have pushed)."""
    return [
        FeedEventOut(**feed.message(r))
        for r in feed.fetch_after(session, after, principal.scope, limit)
    ]


@router.websocket("/feed/ws")
async def feed_socket(websocket: WebSocket) -> None:
    """Push ``{"id", "type": "alert"|"case"|"escalation", "at", "case_id", "data"}``.

    Connect with ``?token=<access token>`` (browsers cannot set headers on a WebSocket) and
    ``&after=<last id seen>`` to replay what was missed while disconnected. The server sends
    ``{"type": "hello", "last_id": …}`` first and ``{"type": "ping"}`` when idle. Close codes:
    4401 not authenticated, 4403 role may not read cases, 4408 too slow (reconnect with after).
    """
    app = websocket.app
    await websocket.accept()
    token = websocket_token(websocket)
    try:
        after = int(websocket.query_params.get("after", "-1"))
    except ValueError:
        await websocket.close(code=4400, reason="after must be an integer feed id")
        return

    def authenticate() -> Principal:
        with app.state.sessions() as session:
            return principal_for(session, app.state.signer, token)

    try:
        principal = await run_in_threadpool(authenticate)
    except AuthError as error:
        await websocket.close(code=4401, reason=str(error)[:120])
        return
    if not principal.can("cases.read"):
        await websocket.close(code=4403, reason=f"role '{principal.user.role}' may not read cases")
        return
    hub: feed.FeedHub = app.state.feed_hub
    subscriber = hub.subscribe(principal.name, principal.scope)
    try:
        sent = 0
        if after >= 0:

            def replay() -> list[dict]:
                with app.state.sessions() as session:
                    return [
                        feed.message(r)
                        for r in feed.fetch_after(session, after, principal.scope, 1000)
                    ]

            for message in await run_in_threadpool(replay):
                await websocket.send_json(message)
                sent = max(sent, message["id"])
        await websocket.send_json({"type": "hello", "last_id": max(sent, hub.delivered_up_to)})
        receiver = asyncio.create_task(_drain(websocket))
        try:
            while True:
                if subscriber.overflowed and subscriber.queue.empty():
                    await websocket.close(code=4408, reason="too slow: reconnect with after")
                    return
                getter = asyncio.ensure_future(subscriber.queue.get())
                done, _ = await asyncio.wait(
                    {getter, receiver}, timeout=PING_S, return_when=asyncio.FIRST_COMPLETED
                )
                if getter not in done:
                    getter.cancel()
                if receiver in done:
                    return  # the client went away
                if getter not in done:
                    await websocket.send_json({"type": "ping"})
                    continue
                message = getter.result()
                if message["id"] <= sent:
                    continue  # already replayed
                await websocket.send_json(message)
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await receiver
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.unsubscribe(subscriber)


async def _drain(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, to notice when it goes away."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            await websocket.receive_text()
