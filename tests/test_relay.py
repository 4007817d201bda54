"""The relay every wire format shares: a bug of ours midway is an error frame, not a cut stream."""

import asyncio
from collections.abc import AsyncIterator

from app.api.encoders.chat_events import ChatEventsEncoder
from app.api.relay import relay
from app.services.chat_stats import ChatStats
from app.services.models import ModelChoice
from app.services.stream_events import Piece, Text, Usage


class _BrokenStream:
    """An answer whose reading fails with an exception the service did not expect."""

    id = "msg_1"
    model = "claude-sonnet-5-5"
    usage = Usage()
    stop_reason = None
    closed = False

    async def __aiter__(self) -> AsyncIterator[list[Piece]]:
        yield [Text("Hel")]
        raise RuntimeError("a bug")

    async def aclose(self) -> None:
        self.closed = True


def test_an_unexpected_exception_midway_ends_the_stream_with_an_internal_error_event() -> None:
    stream = _BrokenStream()
    stats = ChatStats(model=ModelChoice("claude-sonnet-5-5", configured=True), stream=True)

    async def frames() -> list[bytes]:
        return [frame async for frame in relay(stream, stats, ChatEventsEncoder())]  # type: ignore[arg-type]

    sent = b"".join(asyncio.run(frames()))

    assert sent.startswith(b"event: start\n")
    assert b'"text":"Hel"' in sent
    assert sent.endswith(
        b'event: error\ndata: {"type":"error","error":{"type":"internal_error",'
        b'"message":"The service failed while relaying the answer; send the request again."}}\n\n'
    )
    assert b"[DONE]" not in sent
    assert stream.closed  # upstream closed
    assert stats.outcome == "internal_error"
