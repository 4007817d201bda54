"""What Anthropic's stream events mean: the one reading of them that both modes share.

Anything unexpected either carries nothing a user needs and is skipped (pings, signatures,
blocks and events of types added later), or is malformed and fails the answer with an
`UpstreamError`: a stream is never cut silently, nor shown with a piece missing.
"""

from typing import Any

from app.chat.answer import (
    THINKING_NOT_SHOWN,
    USAGE_FIELDS,
    Compacted,
    Handover,
    Pieces,
    Text,
    Thinking,
    Usage,
)
from app.chat.errors import UpstreamError
from app.chat.params import ChatParams, ModelChoice
from app.upstream.errors import from_error_body, malformed


class EventReader:
    """One attempt's events as they arrive: pieces out; what the start and the end carry kept."""

    __slots__ = (
        "_compacting",
        "_model_choice",
        "_summarized",
        "answering_model",
        "compaction",
        "compaction_input_tokens",
        "compaction_output_tokens",
        "compactions",
        "finished",
        "id",
        "marks",
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
        # Handovers and compactions, each with the number of this read's pieces before it;
        # emptied by `take_marks`.
        self.marks: list[tuple[int, Handover | Compacted]] = []
        self._compacting: dict[str, Any] | None = None  # a compaction block, until its stop
        self.compaction: dict[str, Any] | None = None  # the last one, whole
        self.compactions = 0
        # What the compactions cost (their `usage.iterations` entries), apart from `usage`.
        self.compaction_input_tokens = 0
        self.compaction_output_tokens = 0

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
                elif kind == "content_block_stop" and self._compacting is not None:
                    self._compacted(len(pieces))
                elif kind == "error":
                    raise from_error_body(event, model=self._model_choice)
                # ping, other blocks' stops and event types added later carry nothing to show.
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
        elif self._compacting is not None:
            self._compaction_delta(delta)
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
        elif block_type == "compaction":
            self._compacting = dict(block)  # what follows, as deltas, fills it in
        # Blocks of other types (tools are out of scope; types added later) are not shown.

    def _handed_over(self, block: dict[str, Any], at: int) -> None:
        to, trigger = block.get("to"), block.get("trigger")
        if not isinstance(to, dict) or not isinstance(to_model := to.get("model"), str):
            raise malformed("a fallback block without the model it hands over to")
        reason = trigger.get("type") if isinstance(trigger, dict) else None
        # The model answering so far: the last handover's, else the one message_start named.
        handover = Handover(self.answering_model, to_model, reason if isinstance(reason, str) else "unknown")
        self.marks.append((at, handover))
        self.answering_model = to_model

    def _compaction_delta(self, delta: dict[str, Any]) -> None:
        """A delta of the open compaction block: each field it carries replaces the block's, as
        the SDK's own accumulator does."""
        assert self._compacting is not None
        kind = delta.get("type")
        if kind == "compaction_delta":
            for name in ("content", "encrypted_content"):
                if name in delta:
                    self._compacting[name] = delta[name]
        elif kind == "signature_delta":
            self._compacting["signature"] = delta.get("signature")

    def _compacted(self, at: int) -> None:
        assert self._compacting is not None
        block, self._compacting = self._compacting, None
        self.compaction = block
        self.compactions += 1
        self.marks.append((at, Compacted(block)))

    def take_marks(self, pieces: Pieces) -> tuple[Pieces, list[Handover | Compacted | Pieces]]:
        """This read's pieces split at its handovers and compactions: the pieces before the
        first, then each mark followed by the pieces after it. Rare: a read has none, and costs
        this call only when it does."""
        before = pieces[: self.marks[0][0]]
        after: list[Handover | Compacted | Pieces] = []
        ends = [at for at, _ in self.marks[1:]] + [len(pieces)]
        for (at, mark), end in zip(self.marks, ends, strict=True):
            after.append(mark)
            if pieces[at:end]:
                after.append(pieces[at:end])
        self.marks = []
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
            if isinstance(iterations := usage.get("iterations"), list):
                self._count_compactions(iterations)

    def _count_compactions(self, iterations: list[Any]) -> None:
        """The compactions' own tokens: not in the top-level usage, which is the answer's."""
        entries = [
            entry for entry in iterations if isinstance(entry, dict) and entry.get("type") == "compaction"
        ]
        self.compaction_input_tokens = sum(
            _tokens(entry, "input_tokens")
            + _tokens(entry, "cache_creation_input_tokens")
            + _tokens(entry, "cache_read_input_tokens")
            for entry in entries
        )
        self.compaction_output_tokens = sum(_tokens(entry, "output_tokens") for entry in entries)

    def _count_usage(self, usage: dict[str, Any]) -> None:
        """Counts as Anthropic sends them: in `message_start`, then cumulative in `message_delta`."""
        for name in USAGE_FIELDS:
            if type(value := usage.get(name)) is int:
                setattr(self.usage, name, value)


def _tokens(entry: dict[str, Any], name: str) -> int:
    value = entry.get(name)
    return value if type(value) is int else 0
