"""Relaying an answer as an event stream: the part every wire format shares.

The route picks an encoder (its wire format) and hands over the answer's sequence; this module
waits for its `Start` (a failure until then is still an HTTP status), then sends the encoder's
frames for the start, the pieces and the end, turns a failure midway into the encoder's error
frame, and says how the answer ended. Retries live below it (app/upstream/stream.py), pings and
the shutdown grace beside it (app/streaming/response.py).
"""

import asyncio
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

import structlog
from starlette.requests import Request

from app.chat.answer import AnswerEvent, Compacted, End, Handover, Start, Usage
from app.chat.errors import UpstreamError
from app.observability.summary import INTERNAL_ERROR, ChatSummary
from app.resumable.live import Ending
from app.resumable.resumption import Resumption
from app.resumable.store import Format
from app.streaming.client_gone import cancelled_if_client_leaves
from app.streaming.formats.base import StreamEncoder
from app.streaming.response import EventStreamResponse, OpenStreams

log = structlog.get_logger(__name__)

RESTARTING = ("service_restarting", "The service is restarting; send the request again.")
_FAILED_MIDWAY = "The service failed while relaying the answer; send the request again."
ABANDONED = (
    "answer_abandoned",
    "No reader came back for this answer within the grace period, so it was ended; send the request again.",
)
# The stop reason of an answer stopped on purpose (POST .../stop).
STOPPED = "stopped"

Answer = AsyncGenerator[AnswerEvent, None]


@dataclass(frozen=True, slots=True)
class Resumable:
    """Keep the answer for readers that come back (CHAT_REDIS_URL): under which ids, and how to
    tell a reader which of its events it last saw."""

    resumption: Resumption
    stream_id: str
    format: Format
    chat_id: str | None = None
    # A format without event ids (/chat/ui's) is always replayed from its start.
    last_event_id: Callable[[], int] = field(default=lambda: 0)


def closing_frames(encoder: StreamEncoder, ending: Ending) -> bytes:
    """How a resumable answer ended before its end reads in the encoder's format."""
    if ending == "stopped":
        return encoder.end(End(STOPPED, Usage()))  # the upstream call closed before its usage came
    if ending == "abandoned":
        return encoder.error(*ABANDONED)
    return encoder.error(*RESTARTING)


async def stream_response(
    request: Request,
    answer: Answer,
    summary: ChatSummary,
    streams: OpenStreams,
    encoder: StreamEncoder,
    resumable: Resumable | None = None,
) -> EventStreamResponse:
    """Waits for the answer's start (failures until Anthropic accepts it become HTTP statuses),
    then streams it."""
    async with cancelled_if_client_leaves(request.receive, summary):
        start = await anext(answer)
    assert type(start) is Start
    summary.note_start()
    frames = relay(start, answer, summary, encoder)
    if resumable is not None:
        # The answer runs on its own; this response is only its first reader, so neither the
        # client leaving nor the shutdown's grace ending this response ends the answer.
        live = resumable.resumption.keep(
            resumable.stream_id,
            frames,
            summary,
            format=resumable.format,
            closing_frames=lambda ending: closing_frames(encoder, ending),
            last_event_id=resumable.last_event_id,
            chat_id=resumable.chat_id,
        )
        return EventStreamResponse(
            live.local_frames(), streams=streams, headers=encoder.headers, farewell=b""
        )
    return EventStreamResponse(
        frames,
        streams=streams,
        headers=encoder.headers,
        farewell=encoder.error(*RESTARTING),
        on_shutdown=summary.mark_ended_by_shutdown,
    )


async def relay(
    start: Start, answer: Answer, summary: ChatSummary, encoder: StreamEncoder
) -> AsyncGenerator[bytes, None]:
    """start, pieces..., end; or, if the answer fails midway, the error frame."""
    ending: BaseException | None = None
    try:
        yield encoder.start(start)
        async for event in answer:
            if type(event) is list:
                if summary.ttft_ms is None:  # until the first text; no work after it
                    summary.note_first_text(event)
                yield encoder.pieces(event)  # pieces that arrived in one upstream read leave in one write
            elif type(event) is Handover:
                yield encoder.handover(event)
            elif type(event) is Compacted:
                yield encoder.compaction(event)
            else:
                assert type(event) is End
                yield encoder.end(event)
    except UpstreamError as error:
        ending = error
        log.warning("stream_failed", error_type=error.kind.value, error=error.message)
        yield encoder.error(error.kind.value, error.message)
    except (asyncio.CancelledError, GeneratorExit) as exc:
        ending = exc
        raise
    except Exception as exc:
        ending = exc
        log.exception("stream_internal_error")
        await answer.aclose()
        yield encoder.error(INTERNAL_ERROR, _FAILED_MIDWAY)
    finally:
        await answer.aclose()  # closes the upstream response, so Anthropic stops generating
        outcome = summary.ended(ending)
        if isinstance(ending, asyncio.CancelledError | GeneratorExit):
            log.info(outcome, upstream_closed=True)
