"""The answer as a neutral sequence: what every wire format the service speaks is encoded from.

An answer is a start (the message id and model), pieces of thinking and of text in the order the
model produced them, then an end (stop reason and usage), or a failure. Each wire format (`/chat`'s
events, the AI SDK's UI message stream) is one encoder over this sequence.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Thinking:
    """Thinking the model did before it answers. `text` is empty when the model thinks but its
    summary is not shown (display omitted, or a redacted block): a UI can still say "Thinking…"."""

    text: str


@dataclass(frozen=True, slots=True)
class Text:
    text: str


Piece = Thinking | Text


@dataclass(slots=True)
class Usage:
    """Anthropic's token counts, with its names. `output_tokens` includes the thinking tokens;
    `input_tokens` is the part of the prompt neither read from nor written to the prompt cache."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
        }
