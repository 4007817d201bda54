"""Stopping a request's work when its client leaves before the response has started.

Starlette lets a handler run to its end after the client has gone. Before the first byte of the
response that is the whole upstream call: retries and their back-off, and for a non-streaming
request the entire answer, all paid for and thrown away. (Once a stream has started,
`EventStreamResponse` watches for the disconnect itself.)
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.types import Receive

from app.chat.errors import ClientDisconnected
from app.observability.summary import ChatSummary


@asynccontextmanager
async def cancelled_if_client_leaves(receive: Receive, summary: ChatSummary) -> AsyncIterator[None]:
    """Cancels the block when the client disconnects, and raises `ClientDisconnected` instead.
    A failure that leaves the block ends the answer: the summary says how.

    The body must have been read already: `receive` then waits for the disconnect. The block
    runs in the calling task (one watcher task, no second task for the work), so a cancellation
    that comes from elsewhere, such as the server's shutdown, still propagates as one.
    """
    task = asyncio.current_task()
    assert task is not None
    client_left = False

    async def watch() -> None:
        nonlocal client_left
        while (await receive())["type"] != "http.disconnect":
            pass
        client_left = True
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        try:
            yield
        except asyncio.CancelledError:
            if client_left and task.uncancel() == 0:
                raise ClientDisconnected from None
            raise
    except BaseException as exc:
        summary.ended(exc)
        raise
    finally:
        watcher.cancel()
