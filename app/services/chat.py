"""Conversations with Claude: the Anthropic calls, their retries, and the answer they stream.

Both modes read Anthropic's event stream through the SDK's raw response: the SDK still
authenticates, builds headers and types its errors, but events are decoded with orjson instead of
a pydantic object per event, which was most of a relay's CPU. JSON mode reads a stream too, so
that the read time-out is the longest silence in both modes: a long think, during which Anthropic
sends only pings, is never cut.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, Literal, TypeVar

import anthropic
import httpx2
import structlog

from app.config import Effort, Settings, ThinkingDisplay
from app.services.answer import Answer, read_whole
from app.services.errors import (
    ErrorKind,
    UpstreamError,
    from_sdk_error,
    from_transport_error,
)
from app.services.models import ModelChoice
from app.services.retry import retrying
from app.services.sse_decoder import SseDecoder
from app.services.stream_events import Piece, Text, Thinking, Usage

T = TypeVar("T")
CacheControl = dict[str, str]
Outcome = Literal["ok", "upstream_error", "client_disconnected", "shutdown", "internal_error"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ChatParams:
    model: ModelChoice
    messages: list[dict[str, str]]
    max_tokens: int
    system: str | None
    thinking: ThinkingDisplay | None = None
    effort: Effort | None = None
    cache: CacheControl | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    id: str
    model: str
    text: str
    thinking: str | None  # the summary, when summarized thinking was asked for
    stop_reason: str | None
    usage: Usage


def _ms_since(start: float) -> float:
    return round((perf_counter() - start) * 1000, 1)


@dataclass(slots=True)
class ChatStats:
    """What one chat call did, for the request's summary log line."""

    model: ModelChoice
    stream: bool
    started: float = field(default_factory=perf_counter)
    attempts: int = 0
    retries: int = 0
    start_ms: float | None = None  # until Anthropic accepted the request (the stream's `start`)
    ttft_ms: float | None = None  # until the first text
    usage: Usage | None = None
    stop_reason: str | None = None
    upstream_request_id: str | None = None
    outcome: Outcome = "ok"
    error_type: str | None = None

    def count_retry(self) -> None:
        self.retries += 1

    def client_left(self) -> None:
        self.outcome = "client_disconnected"

    def ended_by_shutdown(self) -> None:
        self.outcome = "shutdown"

    def failed(self, error: UpstreamError) -> None:
        self.outcome = "upstream_error"
        self.error_type = error.kind.value
        self.upstream_request_id = error.request_id or self.upstream_request_id

    def log_fields(self) -> dict[str, Any]:
        return {
            "model": self.model.name,
            "stream": self.stream,
            "retries": self.retries,
            "start_ms": self.start_ms,
            "ttft_ms": self.ttft_ms,
            "input_tokens": self.usage.input_tokens if self.usage else None,
            "output_tokens": self.usage.output_tokens if self.usage else None,
            "cache_read_input_tokens": self.usage.cache_read_input_tokens if self.usage else None,
            "cache_creation_input_tokens": self.usage.cache_creation_input_tokens if self.usage else None,
            "stop_reason": self.stop_reason,
            "upstream_request_id": self.upstream_request_id,
            "outcome": self.outcome,
            "error_type": self.error_type,
        }


def _not_an_event_stream(response: anthropic.AsyncAPIResponse[Any]) -> UpstreamError | None:
    content_type = response.http_response.headers.get("content-type", "")
    if content_type.startswith("text/event-stream"):
        return None
    return UpstreamError(
        ErrorKind.UPSTREAM,
        f"Anthropic answered with {content_type or 'a body of no declared type'} instead of an event stream.",
        retryable=True,
        request_id=response.request_id,
    )


class ChatStream:
    """An answer being streamed from Anthropic, opened up to its `message_start`.

    Iterating yields, per upstream read, the pieces (thinking, then text) that arrived in it, so
    a burst of tokens can be relayed as one write. A failure before any thinking or answer text
    has been yielded is retried in place, by the same policy, invisibly to the reader; after
    that it is raised. Usage and stop reason are set once iteration ends.
    """

    def __init__(self, service: "ChatService", params: ChatParams, body: dict[str, Any], stats: ChatStats):
        self._service = service
        self._params = params
        self._body = body
        self._stats = stats
        self._resources = AsyncExitStack()
        self._chunks: AsyncIterator[bytes] | None = None
        self._decoder = SseDecoder()
        self._answer = Answer(params.model, summarized=params.thinking == "summarized")
        self._held: list[Piece] = []  # read in the same chunk as `message_start`
        self._relayed_content = False

    @property
    def id(self) -> str:
        return self._answer.id

    @property
    def model(self) -> str:
        return self._answer.model

    @property
    def usage(self) -> Usage:
        return self._answer.usage

    @property
    def stop_reason(self) -> str | None:
        return self._answer.stop_reason

    async def open(self) -> None:
        """One attempt: sends the request and reads up to Anthropic's `message_start`."""
        self._stats.attempts += 1
        resources = self._resources = AsyncExitStack()
        try:
            client = self._service.client
            try:
                response = await resources.enter_async_context(
                    client.messages.with_streaming_response.create(**self._body)
                )
            except anthropic.APIError as exc:
                raise from_sdk_error(exc, model=self._params.model) from exc
            self._stats.upstream_request_id = response.request_id
            if (error := _not_an_event_stream(response)) is not None:
                raise error
            self._chunks = response.http_response.aiter_bytes()
            self._decoder = SseDecoder()
            self._answer = Answer(self._params.model, summarized=self._params.thinking == "summarized")
            self._held = []
            while not self._answer.started:
                events = await self._read()
                if events is None:
                    raise self._ended_early()
                self._held += self._answer.pieces(events)
                if self._answer.error is not None:
                    raise self._answer.error
            if self._stats.start_ms is None:
                self._stats.start_ms = _ms_since(self._stats.started)
        except BaseException:
            await resources.aclose()
            raise

    async def _read(self) -> list[dict[str, Any]] | None:
        """The events of the next upstream read; None once the body has ended."""
        assert self._chunks is not None
        try:
            chunk = await anext(self._chunks)
        except StopAsyncIteration:
            return None
        except httpx2.TransportError as exc:
            raise from_transport_error(exc) from exc
        return self._decoder.feed(chunk)

    def _ended_early(self) -> UpstreamError:
        return UpstreamError(
            ErrorKind.UPSTREAM, "Anthropic's stream ended before the answer did.", retryable=True
        )

    async def _pieces_of_this_attempt(self) -> AsyncIterator[list[Piece]]:
        if self._held:
            held, self._held = self._held, []
            yield held
        answer = self._answer
        # Read on past `message_stop` to the end of the body, so that the connection goes back
        # to the pool instead of being closed with unread bytes.
        while (events := await self._read()) is not None:
            if pieces := answer.pieces(events):
                yield pieces
            if answer.error is not None:
                raise answer.error
        if not answer.finished:
            raise self._ended_early()

    def _note_first_content(self, pieces: list[Piece]) -> None:
        for piece in pieces:
            if piece.text:
                self._relayed_content = True
            if type(piece) is Text and self._stats.ttft_ms is None:
                self._stats.ttft_ms = _ms_since(self._stats.started)

    async def __aiter__(self) -> AsyncIterator[list[Piece]]:
        try:
            while True:
                try:
                    async for pieces in self._pieces_of_this_attempt():
                        if self._stats.ttft_ms is None:  # until the first text; no work after it
                            self._note_first_content(pieces)
                        yield pieces
                    break
                except UpstreamError as error:
                    if self._relayed_content or not error.retryable:
                        raise
                    await self._resources.aclose()
                    await self._service.retry_after_failure(error, self.open, self._stats)
            self._stats.usage = self._answer.usage
            self._stats.stop_reason = self._answer.stop_reason
        except UpstreamError as error:
            self._stats.failed(error)
            raise
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Closes the upstream response, so Anthropic stops generating tokens nobody reads."""
        await self._resources.aclose()


class ChatService:
    def __init__(self, client: anthropic.AsyncAnthropic, settings: Settings) -> None:
        self.client = client
        self._settings = settings

    async def open_stream(self, params: ChatParams, stats: ChatStats) -> ChatStream:
        """Opens the stream up to Anthropic's `message_start`, retrying any failure until then, so
        that the caller can still answer with an honest HTTP status."""
        stream = ChatStream(self, params, _request_body(params), stats)
        await self._with_retries(stream.open, stats)
        return stream

    async def complete(self, params: ChatParams, stats: ChatStats) -> Completion:
        """The whole answer, read from Anthropic's stream and assembled."""
        body = _request_body(params)

        async def attempt() -> Completion:
            stats.attempts += 1
            try:
                async with self.client.messages.with_streaming_response.create(**body) as response:
                    stats.upstream_request_id = response.request_id
                    if (error := _not_an_event_stream(response)) is not None:
                        raise error
                    chunks = [chunk async for chunk in response.http_response.aiter_bytes()]
            except anthropic.APIError as exc:
                raise from_sdk_error(exc, model=params.model) from exc
            except httpx2.TransportError as exc:
                raise from_transport_error(exc) from exc
            answer = Answer(params.model, summarized=params.thinking == "summarized")
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


def _request_body(params: ChatParams) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": params.model.name,
        "max_tokens": params.max_tokens,
        "messages": params.messages,
        "stream": True,
    }
    if params.system:
        body["system"] = params.system
    if params.thinking is not None:
        body["thinking"] = {"type": "adaptive", "display": params.thinking}
    if params.effort is not None:
        body["output_config"] = {"effort": params.effort}
    if params.cache is not None:
        # At the top level, Anthropic puts the breakpoint on the last block it can cache: the whole
        # prompt is written, and the next turn, which starts with the same bytes, reads it.
        body["cache_control"] = params.cache
    return body


def _completion(answer: Answer, pieces: list[Piece], params: ChatParams) -> Completion:
    if answer.error is not None:
        raise answer.error
    if not answer.finished:
        raise UpstreamError(
            ErrorKind.UPSTREAM, "Anthropic's stream ended before the answer did.", retryable=True
        )
    text = "".join([piece.text for piece in pieces if type(piece) is Text])
    thinking = None
    if params.thinking == "summarized":
        thinking = "".join([piece.text for piece in pieces if type(piece) is Thinking])
    return Completion(answer.id, answer.model, text, thinking, answer.stop_reason, answer.usage)
