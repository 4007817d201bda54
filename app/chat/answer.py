"""The answer as a neutral sequence: what every wire format the service speaks is encoded from.

An answer is a `Start` (the message id and model), batches of `Thinking` and `Text` pieces in the
order the model produced them (one batch per upstream read, so a burst leaves in one write), then
an `End` (stop reason and usage); or a failure, raised as `UpstreamError`. Each wire format is one
encoder over this sequence; JSON mode assembles it into a `Completion`.
"""

from dataclasses import dataclass, field, fields
from typing import Any


# Pieces are made once per token: not frozen, whose __init__ costs twice as much.
@dataclass(slots=True)
class Thinking:
    """Thinking the model did before it answers. `text` is empty when the model thinks but its
    summary is not shown (display omitted, or a redacted block): a UI can still say "Thinking…"."""

    text: str


@dataclass(slots=True)
class Text:
    text: str


Piece = Thinking | Text
Pieces = list[Piece]

# Thinking whose text is not shown: the marker an encoder turns into "the model is thinking".
THINKING_NOT_SHOWN = Thinking("")


def _count(kind: str, description: str) -> int:
    # `kind` is the metric label (chat_tokens{kind}); the field's name is Anthropic's.
    return field(default=0, metadata={"kind": kind, "description": description})


@dataclass(slots=True)
class Usage:
    """Anthropic's token counts, with its names: every consumer (JSON, events, UI metadata, the
    log line, metrics) reads the fields from here. The prompt is input + cache writes + cache reads."""

    input_tokens: int = _count("input", "Prompt tokens neither read from nor written to the prompt cache.")
    output_tokens: int = _count("output", "Answer and thinking tokens.")
    cache_creation_input_tokens: int = _count("cache_write", "Prompt tokens written to the prompt cache.")
    cache_read_input_tokens: int = _count("cache_read", "Prompt tokens read from the prompt cache.")

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in USAGE_FIELDS}


USAGE_FIELDS = tuple(usage_field.name for usage_field in fields(Usage))


@dataclass(frozen=True, slots=True)
class Start:
    message_id: str
    model: str


@dataclass(frozen=True, slots=True)
class ContextUse:
    """How full the conversation is after this answer: what the next turn starts from."""

    used: int  # this turn's prompt (uncached + cache read + cache write) plus its output
    window: int | None  # the model's max_input_tokens; None until the Models API has said

    @classmethod
    def after(cls, usage: Usage, window: int | None) -> "ContextUse":
        return cls(usage.prompt_tokens + usage.output_tokens, window)

    def as_dict(self) -> dict[str, int | None]:
        return {"used": self.used, "window": self.window}


@dataclass(frozen=True, slots=True)
class End:
    stop_reason: str | None
    usage: Usage
    # Anthropic's own account of a refusal (category, explanation, recommended_model), relayed
    # as it came; None for every other ending.
    stop_details: dict[str, Any] | None = None
    # The meter, for the model that answered.
    context: ContextUse | None = None
    # The last compaction block of the answer (see `Compacted`), for the client to send back.
    compaction: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Handover:
    """Anthropic moved the answer to another model midway (its server-side fallback, after a
    refusal): what came before is the declining model's, and the answer goes on from here."""

    from_model: str
    to_model: str
    reason: str  # the trigger's type, e.g. "refusal"


@dataclass(frozen=True, slots=True)
class Compacted:
    """Anthropic summarised the conversation's older turns before answering (server-side
    compaction). `block` is its `compaction` content block exactly as it came (type, content,
    encrypted_content, signature...): opaque, for the client to send back on this assistant turn,
    so that the next request starts from the summary."""

    block: dict[str, Any]


AnswerEvent = Start | Pieces | Handover | Compacted | End


@dataclass(frozen=True, slots=True)
class Completion:
    """The whole answer, for JSON mode."""

    id: str
    model: str
    text: str
    thinking: str | None  # the summary, when summarized thinking was asked for
    end: End  # how it ended: the stop reason, usage, the meter, what a refusal or compaction left

    @classmethod
    def of(cls, start: Start, pieces: Pieces, end: End, *, summarized: bool) -> "Completion":
        """`pieces`: those of the model that answered (after the last `Handover`, if any)."""
        text = "".join([piece.text for piece in pieces if type(piece) is Text])
        thinking = (
            "".join([piece.text for piece in pieces if type(piece) is Thinking]) if summarized else None
        )
        return cls(start.message_id, start.model, text, thinking, end)
