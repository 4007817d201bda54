"""An answer streamed from Anthropic: opened up to its start, read piece by piece, retried in
place until something was shown."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import anthropic
import httpx2

from app.services.answer import Answer
from app.services.chat_request import ChatParams
from app.services.chat_stats import ChatStats, ms_since
from app.services.errors import ErrorKind, UpstreamError, from_sdk_error, from_transport_error
from app.services.sse_decoder import SseDecoder
from app.services.stream_events import Piece, Text, Usage

if TYPE_CHECKING:
    from app.services.chat import ChatService


def not_an_event_stream(response: anthropic.AsyncAPIResponse[Any]) -> UpstreamError | None:
    content_type = response.http_response.headers.get("content-type", "")
    if content_type.startswith("text/event-stream"):
        return None
    return UpstreamError(
        ErrorKind.UPSTREAM,
        f"Anthropic answered with {content_type or 'a body of no declared type'} instead of an event stream.",
        retryable=True,
        request_id=response.request_id,
    )


def ended_early() -> UpstreamError:
    return UpstreamError(
        ErrorKind.UPSTREAM, "Anthropic's stream ended before the answer did.", retryable=True
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
        self._answer = Answer(params)
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
            if (error := not_an_event_stream(response)) is not None:
                raise error
            self._chunks = response.http_response.aiter_bytes()
            self._decoder = SseDecoder()
            self._answer = Answer(self._params)
            self._held = []
            while not self._answer.started:
                events = await self._read()
                if events is None:
                    raise ended_early()
                self._held += self._answer.pieces(events)
                if self._answer.error is not None:
                    raise self._answer.error
            if self._stats.start_ms is None:
                self._stats.start_ms = ms_since(self._stats.started)
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
            raise ended_early()

    def _note_first_content(self, pieces: list[Piece]) -> None:
        for piece in pieces:
            if piece.text:
                self._relayed_content = True
            if type(piece) is Text and self._stats.ttft_ms is None:
                self._stats.ttft_ms = ms_since(self._stats.started)

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
