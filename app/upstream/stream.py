"""One answer from Anthropic, start to end, through one retry loop: the path both modes take.

Both modes read Anthropic's event stream through the SDK's raw response: the SDK still
authenticates, builds headers and types its errors, but events are decoded with orjson instead of
a pydantic object per event, which was most of a relay's CPU. JSON mode reads the same stream to
its end, so the read time-out is the longest silence in both modes: a long think, during which
Anthropic sends only pings, is never cut.
"""

from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing, nullcontext
from dataclasses import dataclass
from typing import Any, Final

import anthropic
import httpx2
import structlog
from opentelemetry.trace import Tracer

from app.chat.answer import AnswerEvent, Compacted, Completion, ContextUse, End, Handover, Pieces, Start
from app.chat.errors import ErrorKind, UpstreamError
from app.chat.params import ChatParams, ModelChoice
from app.config import Settings
from app.observability.summary import ChatSummary
from app.upstream.errors import ended_early
from app.upstream.events import EventReader
from app.upstream.model_catalog import ModelCatalog
from app.upstream.request import compaction_trigger, count_tokens_body, request_body, with_compaction
from app.upstream.retry import retrying
from app.upstream.sdk_errors import from_sdk_error, from_transport_error
from app.upstream.spans import AttemptSpan
from app.upstream.sse import SseDecoder

log = structlog.get_logger(__name__)

_UNTRACED: Final = nullcontext(None)


@dataclass(frozen=True, slots=True)
class TokenCount:
    input_tokens: int
    context_window: int | None


class Upstream:
    """Anthropic's Messages API as the service asks it: one per process, around the one client."""

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        settings: Settings,
        tracer: Tracer | None = None,
        catalog: ModelCatalog | None = None,
    ) -> None:
        """`tracer`: each attempt gets a client span (None: traces are off, and cost nothing).
        `catalog`: what the Models API says of each model (None: nothing is looked up)."""
        self.client = client
        self._settings = settings
        self._tracer = tracer
        self.catalog = catalog
        self._cannot_compact: set[str] = set()  # models already warned about, once per process

    def context_window(self, model: str) -> int | None:
        """The model's window as known now; asking starts its look-up, never waits for it."""
        facts = self.catalog.facts(model) if self.catalog is not None else None
        return facts.context_window if facts is not None else None

    async def count_tokens(self, params: ChatParams, summary: ChatSummary) -> TokenCount:
        """The conversation's input tokens as `answer` would send it, with the model's window.
        Retried like an answer; no fallback model: the count is the asked model's."""
        body = count_tokens_body(params)
        async for attempt in retrying(self._settings, on_retry=summary.count_retry, may_retry=lambda: True):
            with attempt:
                try:
                    counted = await self.client.messages.count_tokens(**body)
                except anthropic.APIError as exc:
                    raise from_sdk_error(exc, model=params.model) from exc
        return TokenCount(counted.input_tokens, self.context_window(params.model.name))

    def _fill_in_window(self, error: UpstreamError, model: str) -> None:
        """Anthropic's message gave no window: the catalog's, when it knows it."""
        if error.details is not None and error.details.get("context_window") is None:
            error.details["context_window"] = self.context_window(model)

    async def answer(
        self, params: ChatParams, summary: ChatSummary, *, restartable: bool = False
    ) -> AsyncGenerator[AnswerEvent, None]:
        """`Start` once Anthropic has accepted the request (its `message_start`), then a batch of
        pieces per upstream read, then `End`; a failure is raised as `UpstreamError`.

        One retry loop for the whole answer: a failure before `Start` is retried like one after
        it, with the same attempts and the backoff going on where it was, for as long as the
        reader has been shown no text. `restartable` (JSON mode, where nothing is shown until the
        end) retries at any point, and a new attempt begins with a new `Start`.
        """
        body = request_body(params)
        started = shown = False

        def may_retry() -> bool:
            return restartable or not shown

        models = params.models
        for number, model in enumerate(models, start=1):
            try:
                # tenacity's AttemptManager records whatever leaves the block, a reader's
                # cancellation or close included, and raises it again from the loop when it is
                # not an UpstreamError to retry: the upstream response is closed either way.
                async for attempt in retrying(
                    self._settings, on_retry=summary.count_retry, may_retry=may_retry
                ):
                    asked = self._with_compaction({**body, "model": model.name}, params)
                    tracing = _UNTRACED if self._tracer is None else AttemptSpan(self._tracer, asked)
                    with attempt, tracing as span:
                        async with aclosing(self._attempt(asked, model, params, summary, span)) as events:
                            async for event in events:
                                if type(event) is list:
                                    if not shown and any(piece.text for piece in event):
                                        shown = True
                                        if span is not None:
                                            span.first_token()
                                elif type(event) is Start:
                                    if started and not restartable:
                                        continue  # the reader has its start; this attempt goes on from it
                                    # A first start, or a restartable reader's new one: nothing shown of it.
                                    started, shown = True, False
                                yield event
                return
            except UpstreamError as error:
                # Another model only while the reader has been told none (its `start` names
                # the model), and only for a failure another model need not share.
                if number == len(models) or not error.model_unavailable or (started and not restartable):
                    raise
                fallback = models[number].name
                log.warning(
                    "upstream_fallback",
                    from_model=model.name,
                    to_model=fallback,
                    error_type=error.kind.value,
                    error=error.message,
                )
                summary.note_fallback(fallback)

    async def complete(self, params: ChatParams, summary: ChatSummary) -> Completion:
        """The whole answer: the same stream, read to its end and assembled."""
        start: Start | None = None
        end: End | None = None
        pieces: Pieces = []
        # Read to the generator's own end (End is its last event): closing it early would throw
        # into the retry loop, which costs more than the step that is left.
        async for event in self.answer(params, summary, restartable=True):
            if type(event) is list:
                pieces += event
            elif type(event) is Start:
                start, pieces = event, []  # a new attempt: the last one's pieces are void
            elif type(event) is Handover:
                # What the declining model wrote is not the answer, nor sent back with it.
                assert start is not None
                start, pieces = Start(start.message_id, event.to_model), []
            elif type(event) is Compacted:
                pass  # the End carries the block
            else:
                assert type(event) is End
                end = event
        assert start is not None
        assert end is not None
        return Completion.of(start, pieces, end, summarized=params.summarized)

    def _with_compaction(self, body: dict[str, Any], params: ChatParams) -> dict[str, Any]:
        """The body with Anthropic's compaction edit, when asked for and the model can compact.
        A model whose facts are still being looked up goes without, this once."""
        model = body["model"]
        if not params.compaction or self.catalog is None or (facts := self.catalog.facts(model)) is None:
            return body
        if not facts.compaction:
            if model not in self._cannot_compact:
                self._cannot_compact.add(model)
                log.warning(
                    "compaction_unsupported",
                    model=model,
                    message="The Models API says this model cannot compact: its conversations "
                    "are sent whole, as with compaction off.",
                )
            return body
        return with_compaction(body, compaction_trigger(params.compaction_trigger, facts.context_window))

    async def _attempt(
        self,
        body: dict[str, Any],
        model: ModelChoice,
        params: ChatParams,
        summary: ChatSummary,
        span: AttemptSpan | None,
    ) -> AsyncGenerator[AnswerEvent, None]:
        """One call to Anthropic, read to the end of its body: past `message_stop`, so that the
        connection goes back to the pool instead of being closed with unread bytes."""
        announced = False
        held: Pieces = []  # anything before `message_start`, which Anthropic sends first
        if span is not None:  # `traceparent` naming this attempt's span, beside any beta header
            body = {**body, "extra_headers": {**body.get("extra_headers", {}), **span.headers}}
        try:
            async with self.client.messages.with_streaming_response.create(**body) as response:
                summary.upstream_request_id = response.request_id
                _check_is_event_stream(response)
                decoder = SseDecoder()
                reader = EventReader(params, model)
                async for chunk in response.http_response.aiter_bytes():
                    pieces, error = reader.read(decoder.feed(chunk))
                    marked: Sequence[Handover | Compacted | Pieces] = ()
                    if reader.marks:  # rare: a handover to another model, or a compaction
                        pieces, marked = reader.take_marks(pieces)
                    if not reader.started:
                        held += pieces
                    elif not announced:
                        announced = True
                        if span is not None:
                            span.started(reader.id, reader.model, response.request_id)
                        yield Start(reader.id, reader.model)
                        if pieces := held + pieces:
                            yield pieces
                    elif pieces:
                        yield pieces
                    for event in marked:
                        if type(event) is Handover:
                            summary.note_fallback(event.to_model)
                            if span is not None:
                                span.handed_over(event.to_model)
                        yield event
                    if error is not None:
                        raise error
        except anthropic.APIError as exc:
            error = from_sdk_error(exc, model=model)
            if error.kind is ErrorKind.CONTEXT_WINDOW_EXCEEDED:
                self._fill_in_window(error, model.name)
            raise error from exc
        except httpx2.TransportError as exc:
            raise from_transport_error(exc) from exc
        if not reader.finished:
            raise ended_early()
        summary.usage = reader.usage
        summary.stop_reason = reader.stop_reason
        if reader.compactions:
            summary.note_compactions(
                reader.compactions, reader.compaction_input_tokens, reader.compaction_output_tokens
            )
        if span is not None:
            span.answered(reader.stop_reason, reader.usage)
        context = ContextUse.after(reader.usage, self.context_window(reader.answering_model))
        yield End(reader.stop_reason, reader.usage, reader.stop_details, context, reader.compaction)


def _check_is_event_stream(response: anthropic.AsyncAPIResponse[Any]) -> None:
    content_type = response.http_response.headers.get("content-type", "")
    if not content_type.startswith("text/event-stream"):
        raise UpstreamError(
            ErrorKind.UPSTREAM,
            f"Anthropic answered with {content_type or 'a body of no declared type'} instead of an event stream.",
            retryable=True,
            request_id=response.request_id,
        )
