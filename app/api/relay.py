"""Relaying an answer as an event stream: the part every wire format shares.

The route picks an encoder (its wire format); this module opens the stream, sends the encoder's
frames for the answer's start, pieces and end, turns a failure midway into the encoder's error
frame, and notes a client that left. Retries before the first piece, pings and the shutdown grace
live below it, in the chat service and the event-stream response.
"""

import asyncio
from collections.abc import AsyncGenerator
from typing import Protocol

import structlog
from starlette.requests import Request

from app.api.disconnect import cancelled_if_client_leaves
from app.api.internal_errors import INTERNAL_ERROR
from app.api.open_streams import OpenStreams
from app.api.sse import EventStreamResponse
from app.services.chat import ChatService
from app.services.chat_request import ChatParams
from app.services.chat_stats import ChatStats
from app.services.chat_stream import ChatStream
from app.services.errors import UpstreamError
from app.services.stream_events import Piece, Usage

log = structlog.get_logger(__name__)

RESTARTING = ("service_restarting", "The service is restarting; send the request again.")
_FAILED_MIDWAY = "The service failed while relaying the answer; send the request again."


class StreamEncoder(Protocol):
    """One wire format. One instance per stream, so it may keep state (open parts, ids).

    `error` must not depend on that state being consistent: its frames are also prepared up
    front, as the farewell sent when shutdown's grace period ends a stream."""

    headers: dict[str, str]

    def start(self, message_id: str, model: str) -> bytes: ...

    def pieces(self, pieces: list[Piece]) -> bytes: ...

    def end(self, stop_reason: str | None, usage: Usage) -> bytes: ...

    def error(self, error_type: str, message: str) -> bytes: ...


async def relay(stream: ChatStream, stats: ChatStats, encoder: StreamEncoder) -> AsyncGenerator[bytes, None]:
    """start, pieces..., end; or, if the answer fails midway, the error frame."""
    yield encoder.start(stream.id, stream.model)
    try:
        async for pieces in stream:
            yield encoder.pieces(pieces)  # pieces that arrived in one upstream read leave in one write
    except UpstreamError as error:
        log.warning("stream_failed", error_type=error.kind.value, error=error.message)
        yield encoder.error(error.kind.value, error.message)
        return
    except (asyncio.CancelledError, GeneratorExit):
        if stats.outcome == "ok":  # not ended by shutdown's grace period
            stats.outcome = "client_disconnected"
        log.info(stats.outcome, upstream_closed=True)
        raise
    except Exception:
        log.exception("stream_internal_error")
        stats.outcome = "internal_error"
        stats.error_type = INTERNAL_ERROR
        await stream.aclose()
        yield encoder.error(INTERNAL_ERROR, _FAILED_MIDWAY)
        return
    yield encoder.end(stream.stop_reason, stream.usage)


async def stream_response(
    request: Request,
    service: ChatService,
    params: ChatParams,
    stats: ChatStats,
    streams: OpenStreams,
    encoder: StreamEncoder,
) -> EventStreamResponse:
    """Opens the answer (failures until Anthropic accepts it become HTTP statuses), then streams it."""
    async with cancelled_if_client_leaves(request.receive, on_leave=stats.client_left):
        stream = await service.open_stream(params, stats)
    return EventStreamResponse(
        relay(stream, stats, encoder),
        streams=streams,
        headers=encoder.headers,
        farewell=encoder.error(*RESTARTING),
        on_shutdown=stats.ended_by_shutdown,
    )
