"""Conversations with Claude: the Anthropic calls, their retries, and stream translation.

Both modes use the SDK's raw responses: the SDK still authenticates, builds headers and types
its errors, but the per-token path decodes events with orjson instead of building a pydantic
object per event, which was most of a relay's CPU.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, Literal, TypeVar

import anthropic
import httpx2
import orjson

from app.config import Settings
from app.services.errors import (
    ErrorKind,
    UpstreamError,
    from_error_body,
    from_sdk_error,
    from_transport_error,
)
from app.services.events import EventDecoder
from app.services.models import ModelChoice
from app.services.retry import retrying

T = TypeVar("T")
Outcome = Literal["ok", "upstream_error", "client_disconnected", "shutdown"]


@dataclass(frozen=True, slots=True)
class ChatParams:
    model: ModelChoice
    messages: list[dict[str, str]]
    max_tokens: int
    system: str | None


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Completion:
    id: str
    model: str
    text: str
    stop_reason: str | None
    usage: Usage


@dataclass(slots=True)
class ChatStats:
    """What one chat call did, for the request's summary log line."""

    model: ModelChoice
    stream: bool
    started: float = field(default_factory=perf_counter)
    retries: int = 0
    ttft_ms: float | None = None
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
            "ttft_ms": self.ttft_ms,
            "input_tokens": self.usage.input_tokens if self.usage else None,
            "output_tokens": self.usage.output_tokens if self.usage else None,
            "stop_reason": self.stop_reason,
            "upstream_request_id": self.upstream_request_id,
            "outcome": self.outcome,
            "error_type": self.error_type,
        }


class ChatStream:
    """An answer being streamed from Anthropic, opened and read up to its first text.

    Iterating yields, per upstream read, the text deltas that arrived in it, so a burst of
    tokens can be relayed as one write. Usage and stop reason are set once iteration ends.
    """

    def __init__(
        self, response: anthropic.AsyncAPIResponse[Any], resources: AsyncExitStack, stats: ChatStats
    ) -> None:
        self._chunks = response.http_response.aiter_bytes()
        self._resources = resources
        self._decoder = EventDecoder()
        self._stats = stats
        self._first: list[str] = []
        self._finished = False
        # An error that arrived in the same read as text: raised once that text is relayed.
        self._error: UpstreamError | None = None
        self.id = ""
        self.model = stats.model.name
        self.usage = Usage()
        self.stop_reason: str | None = None

    async def _read_to_first_text(self) -> None:
        while not self._first and not self._finished:
            self._first = await self._next_texts() or []
        if self._error is not None:
            raise self._error  # nothing has reached the client yet, so this can still be retried
        self._stats.ttft_ms = round((perf_counter() - self._stats.started) * 1000, 1)

    async def _next_texts(self) -> list[str] | None:
        """The texts of the next upstream read; None once the body has ended after the answer."""
        if self._error is not None:
            raise self._error
        try:
            chunk = await anext(self._chunks)
        except StopAsyncIteration:
            if self._finished:
                return None
            raise UpstreamError(
                ErrorKind.UPSTREAM, "Anthropic's stream ended before the answer did.", retryable=True
            ) from None
        except httpx2.TransportError as exc:
            raise from_transport_error(exc) from exc
        texts: list[str] = []
        for event in self._decoder.feed(chunk):
            kind = event.get("type")
            if kind == "content_block_delta":
                delta = event.get("delta") or {}
                if delta.get("type") == "text_delta":
                    texts.append(delta["text"])
            elif kind == "message_start":
                message = event.get("message") or {}
                self.id = message.get("id", "")
                self.model = message.get("model", self.model)
                self.usage.input_tokens = (message.get("usage") or {}).get("input_tokens", 0)
            elif kind == "message_delta":
                self.stop_reason = (event.get("delta") or {}).get("stop_reason")
                usage = event.get("usage") or {}
                self.usage.output_tokens = usage.get("output_tokens", self.usage.output_tokens)
                self.usage.input_tokens = usage.get("input_tokens") or self.usage.input_tokens
            elif kind == "message_stop":
                self._finished = True
            elif kind == "error":
                error = from_error_body(event, model=self._stats.model)
                if not texts:
                    raise error
                self._error = error
                break
            # ping, content_block_start/stop and event types added later are ignored.
        return texts

    async def __aiter__(self) -> AsyncIterator[list[str]]:
        try:
            if self._first:
                yield self._first
            # Read on past `message_stop` to the end of the body, so that the connection goes
            # back to the pool instead of being closed with unread bytes.
            while (texts := await self._next_texts()) is not None:
                if texts:
                    yield texts
            self._stats.usage = self.usage
            self._stats.stop_reason = self.stop_reason
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
        self._client = client
        self._settings = settings

    async def complete(self, params: ChatParams, stats: ChatStats) -> Completion:
        async def attempt() -> Completion:
            try:
                response = await self._client.messages.with_raw_response.create(
                    **_request_body(params, stream=False)
                )
                raw = await response.read()
            except anthropic.APIError as exc:
                raise from_sdk_error(exc, model=params.model) from exc
            stats.upstream_request_id = response.request_id
            return _completion(raw, params.model.name)

        completion = await self._with_retries(attempt, stats)
        stats.usage = completion.usage
        stats.stop_reason = completion.stop_reason
        return completion

    async def open_stream(self, params: ChatParams, stats: ChatStats) -> ChatStream:
        """Opens the stream and reads it up to the first text, retrying any failure until then,
        so that the caller can still answer with an honest HTTP status."""

        async def attempt() -> ChatStream:
            return await self._open_stream(params, stats)

        return await self._with_retries(attempt, stats)

    async def _open_stream(self, params: ChatParams, stats: ChatStats) -> ChatStream:
        resources = AsyncExitStack()
        try:
            try:
                response = await resources.enter_async_context(
                    self._client.messages.with_streaming_response.create(**_request_body(params, stream=True))
                )
            except anthropic.APIError as exc:
                raise from_sdk_error(exc, model=params.model) from exc
            stats.upstream_request_id = response.request_id
            stream = ChatStream(response, resources, stats)
            await stream._read_to_first_text()
            return stream
        except BaseException:
            await resources.aclose()
            raise

    async def _with_retries(self, attempt: Callable[[], Awaitable[T]], stats: ChatStats) -> T:
        try:
            return await retrying(self._settings, on_retry=stats.count_retry)(attempt)
        except UpstreamError as error:
            stats.failed(error)
            raise


def _request_body(params: ChatParams, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": params.model.name,
        "max_tokens": params.max_tokens,
        "messages": params.messages,
        "stream": stream,
    }
    if params.system:
        body["system"] = params.system
    return body


def _completion(raw: bytes, model: str) -> Completion:
    try:
        body = orjson.loads(raw)
        usage = body.get("usage") or {}
        return Completion(
            id=body["id"],
            model=body.get("model", model),
            text="".join(block["text"] for block in body.get("content", ()) if block.get("type") == "text"),
            stop_reason=body.get("stop_reason"),
            usage=Usage(usage.get("input_tokens", 0), usage.get("output_tokens", 0)),
        )
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError) as exc:
        raise UpstreamError(
            ErrorKind.UPSTREAM, "Anthropic's answer could not be read.", retryable=True
        ) from exc
