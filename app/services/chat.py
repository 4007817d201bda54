"""Conversations with Claude: the Anthropic calls, their retries, and the answer they stream.

Both modes read Anthropic's event stream through the SDK's raw response: the SDK still
authenticates, builds headers and types its errors, but events are decoded with orjson instead of
a pydantic object per event, which was most of a relay's CPU. JSON mode reads a stream too, so
that the read time-out is the longest silence in both modes: a long think, during which Anthropic
sends only pings, is never cut.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anthropic
import httpx2

from app.config import Settings
from app.services.answer import Answer, read_whole
from app.services.chat_request import ChatParams, request_body
from app.services.chat_stats import ChatStats
from app.services.chat_stream import ChatStream, ended_early, not_an_event_stream
from app.services.errors import UpstreamError, from_sdk_error, from_transport_error
from app.services.retry import retrying
from app.services.stream_events import Piece, Text, Thinking, Usage

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Completion:
    id: str
    model: str
    text: str
    thinking: str | None  # the summary, when summarized thinking was asked for
    stop_reason: str | None
    usage: Usage


class ChatService:
    def __init__(self, client: anthropic.AsyncAnthropic, settings: Settings) -> None:
        self.client = client
        self._settings = settings

    async def open_stream(self, params: ChatParams, stats: ChatStats) -> ChatStream:
        """Opens the stream up to Anthropic's `message_start`, retrying any failure until then, so
        that the caller can still answer with an honest HTTP status."""
        stream = ChatStream(self, params, request_body(params), stats)
        await self._with_retries(stream.open, stats)
        return stream

    async def complete(self, params: ChatParams, stats: ChatStats) -> Completion:
        """The whole answer, read from Anthropic's stream and assembled."""
        body = request_body(params)

        async def attempt() -> Completion:
            stats.attempts += 1
            try:
                async with self.client.messages.with_streaming_response.create(**body) as response:
                    stats.upstream_request_id = response.request_id
                    if (error := not_an_event_stream(response)) is not None:
                        raise error
                    chunks = [chunk async for chunk in response.http_response.aiter_bytes()]
            except anthropic.APIError as exc:
                raise from_sdk_error(exc, model=params.model) from exc
            except httpx2.TransportError as exc:
                raise from_transport_error(exc) from exc
            answer = Answer(params)
            return _completion(answer, read_whole(b"".join(chunks), answer), params)

        completion = await self._with_retries(attempt, stats)
        stats.usage = completion.usage
        stats.stop_reason = completion.stop_reason
        return completion

    async def retry_after_failure(
        self, error: UpstreamError, attempt: Callable[[], Awaitable[None]], stats: ChatStats
    ) -> None:
        """Retries `attempt` after `error`, an attempt that already failed, within what is left
        of the request's attempts: the same waits and limits as any other retry."""
        replay = [error]

        async def replayed_then_attempt() -> None:
            if replay:
                raise replay.pop()
            await attempt()

        attempts_left = self._settings.retry_attempts - stats.attempts + 1
        await retrying(self._settings, on_retry=stats.count_retry, attempts=attempts_left)(
            replayed_then_attempt
        )

    async def _with_retries(self, attempt: Callable[[], Awaitable[T]], stats: ChatStats) -> T:
        try:
            return await retrying(self._settings, on_retry=stats.count_retry)(attempt)
        except UpstreamError as error:
            stats.failed(error)
            raise


def _completion(answer: Answer, pieces: list[Piece], params: ChatParams) -> Completion:
    if answer.error is not None:
        raise answer.error
    if not answer.finished:
        raise ended_early()
    text = "".join([piece.text for piece in pieces if type(piece) is Text])
    thinking = None
    if params.thinking == "summarized":
        thinking = "".join([piece.text for piece in pieces if type(piece) is Thinking])
    return Completion(answer.id, answer.model, text, thinking, answer.stop_reason, answer.usage)
