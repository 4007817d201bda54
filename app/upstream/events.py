"""What Anthropic's stream events mean: the one reading of them that both modes share.

Anything unexpected either carries nothing a user needs and is skipped (pings, signatures,
blocks and events of types added later), or is malformed and fails the answer with an
`UpstreamError`: a stream is never cut silently, nor shown with a piece missing.
"""

from typing import Any

from app.chat.answer import THINKING_NOT_SHOWN, USAGE_FIELDS, Handover, Pieces, Text, Thinking, Usage
from app.chat.errors import UpstreamError
from app.chat.params import ChatParams, ModelChoice
from app.upstream.errors import from_error_body, malformed


class EventReader:
    """One attempt's events as they arrive: pieces out; what the start and the end carry kept."""

    __slots__ = (
        "_model_choice",
        "_summarized",
        "answering_model",
        "finished",
        "handovers",
        "id",
        "model",
        "started",
        "stop_details",
        "stop_reason",
        "usage",
    )

    def __init__(self, params: ChatParams, model: ModelChoice | None = None) -> None:
        model = model or params.model
        self._model_choice = model
        # Thinking text will follow, so the start of a thinking block needs no signal of its own.
        self._summarized = params.summarized
        self.id = ""
        self.model = model.name  # as `message_start` names it: the model asked
        self.answering_model = self.model  # after a handover, the model that took over
        self.usage = Usage()
        self.stop_reason: str | None = None
        self.stop_details: dict[str, Any] | None = None
        self.started = False
        self.finished = False
        # Each with the number of this read's pieces before it; emptied by `take_handovers`.
        self.handovers: list[tuple[int, Handover]] = []

    def read(self, events: list[dict[str, Any]]) -> tuple[Pieces, UpstreamError | None]:
        """The pieces of these events, and the failure among them if there is one: the pieces
        before a failure are still the answer's, to relay before the failure is raised."""
        pieces: Pieces = []
        try:
            for event in events:
                kind = event.get("type")
                if kind == "content_block_delta":
                    delta = event.get("delta")
                    # Nearly every event is a text delta: read here, without a call.
                    if type(delta) is dict and delta.get("type") == "text_delta":
                        if type(text := delta.get("text")) is not str:
                            raise malformed("a text delta without its text")
                        pieces.append(Text(text))
                    else:
                        self._delta(delta, pieces)
                elif kind == "content_block_start":
                    self._block_started(event.get("content_block"), pieces)
                elif kind == "message_start":
                    self._message_started(event.get("message"))
                elif kind == "message_delta":
                    self._message_delta(event)
                elif kind == "message_stop":
                    self.finished = True
                elif kind == "error":
                    raise from_error_body(event, model=self._model_choice)
                # ping, content_block_stop and event types added later carry nothing to show.
        except UpstreamError as error:
            return pieces, error
        return pieces, None

    def _delta(self, delta: object, pieces: Pieces) -> None:
        """A delta other than text's."""
        if not isinstance(delta, dict):
            raise malformed("a content delta without its delta")
        if delta.get("type") == "thinking_delta":
            thinking = delta.get("thinking")
            if type(thinking) is not str:
                raise malformed("a thinking delta without its text")
            if thinking:
                pieces.append(Thinking(thinking))
        # signature_delta and the delta types of other blocks carry nothing to show.

    def _block_started(self, block: object, pieces: Pieces) -> None:
        if not isinstance(block, dict):
            raise malformed("a content block without its content")
        block_type = block.get("type")
        if block_type == "text":
            if text := block.get("text"):  # empty in practice: the text follows as deltas
                pieces.append(Text(str(text)))
        elif block_type == "redacted_thinking" or (block_type == "thinking" and not self._summarized):
            pieces.append(THINKING_NOT_SHOWN)
        elif block_type == "fallback":
            self._handed_over(block, len(pieces))
        # Blocks of other types (tools are out of scope; types added later) are not shown.

    def _handed_over(self, block: dict[str, Any], at: int) -> None:
        to, trigger = block.get("to"), block.get("trigger")
        if not isinstance(to, dict) or not isinstance(to_model := to.get("model"), str):
            raise malformed("a fallback block without the model it hands over to")
        reason = trigger.get("type") if isinstance(trigger, dict) else None
        from_model = self.handovers[-1][1].to_model if self.handovers else self.answering_model
        handover = Handover(from_model, to_model, reason if isinstance(reason, str) else "unknown")
        self.handovers.append((at, handover))
        self.answering_model = to_model

    def take_handovers(self, pieces: Pieces) -> tuple[Pieces, list[Handover | Pieces]]:
        """This read's pieces split at its handovers: those of the model that declined, then
        each handover followed by the pieces after it. Rare: a read has none, and costs this
        call only when it does."""
        before = pieces[: self.handovers[0][0]]
        after: list[Handover | Pieces] = []
        ends = [at for at, _ in self.handovers[1:]] + [len(pieces)]
        for (at, handover), end in zip(self.handovers, ends, strict=True):
            after.append(handover)
            if pieces[at:end]:
                after.append(pieces[at:end])
        self.handovers = []
        return before, after

    def _message_started(self, message: object) -> None:
        if not isinstance(message, dict):
            raise malformed("a message start without its message")
        self.started = True
        self.id = str(message.get("id", ""))
        self.model = self.answering_model = str(message.get("model") or self.model)
        usage = message.get("usage")
        if isinstance(usage, dict):
            self._count_usage(usage)

    def _message_delta(self, event: dict[str, Any]) -> None:
        delta = event.get("delta")
        if isinstance(delta, dict):
            self.stop_reason = delta.get("stop_reason", self.stop_reason)
            if isinstance(details := delta.get("stop_details"), dict):
                self.stop_details = details
        usage = event.get("usage")
        if isinstance(usage, dict):
            self._count_usage(usage)

    def _count_usage(self, usage: dict[str, Any]) -> None:
        """Counts as Anthropic sends them: in `message_start`, then cumulative in `message_delta`."""
        for name in USAGE_FIELDS:
            if type(value := usage.get(name)) is int:
                setattr(self.usage, name, value)
