"""The Vercel AI SDK's UI message stream (`x-vercel-ai-ui-message-stream: v1`), for `useChat`.

SSE whose `data:` lines are JSON chunks, checked by the SDK against a strict schema (the package's
`ui-message-chunks`), then `data: [DONE]`:

    start · start-step · [data-compaction] · reasoning-start, reasoning-delta…, reasoning-end · text-start,
    text-delta…, text-end · finish-step · message-metadata · finish · [DONE]

Thinking comes before text. With a summary, its pieces are `reasoning-delta`s. Without one
(display omitted, or a redacted block) the model still thinks, sometimes for many seconds: the
reasoning part is opened with no delta and closed when the text begins, so a UI sees a reasoning
part in the state "streaming" with empty text for as long as the model thinks.

A failure after the start ends the stream the way the SDK's own `streamText` servers end it: an
`error` chunk (its `errorText` is what `useChat` shows), `finish-step`, `finish` with
`finishReason: "error"`, then `[DONE]`.
"""

import orjson

from app.chat.answer import Compacted, End, Handover, Pieces, Start, Text

# Ids of the parts within this message; one reasoning part and one text part at most.
_REASONING_ID = "reasoning-0"
_TEXT_ID = "text-0"

_TEXT_DELTA_HEAD = b'data: {"type":"text-delta","id":"' + _TEXT_ID.encode() + b'","delta":'
_REASONING_DELTA_HEAD = b'data: {"type":"reasoning-delta","id":"' + _REASONING_ID.encode() + b'","delta":'
_TAIL = b"}\n\n"
DONE_FRAME = b"data: [DONE]\n\n"

# Anthropic's stop reasons as the SDK's finish reasons; anything else (pause_turn, tool_use, a
# reason added later) is "other".
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",  # the answer itself ran into the context window
    "refusal": "content-filter",
}


def _chunk(data: dict[str, object]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


_REASONING_START = _chunk({"type": "reasoning-start", "id": _REASONING_ID})
_REASONING_END = _chunk({"type": "reasoning-end", "id": _REASONING_ID})
_TEXT_START = _chunk({"type": "text-start", "id": _TEXT_ID})
_TEXT_END = _chunk({"type": "text-end", "id": _TEXT_ID})
_FINISH_STEP = _chunk({"type": "finish-step"})


class UIMessageStreamEncoder:
    """One per stream: it remembers which part is open."""

    def __init__(self) -> None:
        self.headers = {"x-vercel-ai-ui-message-stream": "v1"}
        self._model = ""
        self._reasoning_open = False
        self._text_open = False

    def start(self, start: Start) -> bytes:
        self._model = start.model
        return _chunk(
            {"type": "start", "messageId": start.message_id, "messageMetadata": {"model": start.model}}
        ) + _chunk({"type": "start-step"})

    def pieces(self, pieces: Pieces) -> bytes:
        frames: list[bytes] = []
        for piece in pieces:
            if type(piece) is Text:
                if not self._text_open:
                    if self._reasoning_open:
                        frames.append(_REASONING_END)
                        self._reasoning_open = False
                    frames.append(_TEXT_START)
                    self._text_open = True
                frames.append(_TEXT_DELTA_HEAD + orjson.dumps(piece.text) + _TAIL)
            else:
                if not self._reasoning_open:
                    frames.append(_REASONING_START)
                    self._reasoning_open = True
                if piece.text:
                    frames.append(_REASONING_DELTA_HEAD + orjson.dumps(piece.text) + _TAIL)
        return b"".join(frames)

    def handover(self, handover: Handover) -> bytes:
        # useChat merges message metadata as it arrives: the message names the model that took
        # over, and the one that declined.
        self._model = handover.to_model
        return _chunk(
            {
                "type": "message-metadata",
                "messageMetadata": {"model": handover.to_model, "fallbackFrom": handover.from_model},
            }
        )

    def compaction(self, compacted: Compacted) -> bytes:
        # A data part of the message: useChat keeps it in `parts` and sends it back unchanged on
        # the next turn, where /chat/ui turns it back into the block.
        return _chunk({"type": "data-compaction", "data": compacted.block})

    def end(self, end: End) -> bytes:
        usage = end.usage
        frames = [_REASONING_END] if self._reasoning_open else []
        if self._text_open:
            frames.append(_TEXT_END)
        self._reasoning_open = self._text_open = False
        prompt = usage.prompt_tokens
        metadata: dict[str, object] = {
            "model": self._model,
            "stopReason": end.stop_reason,
            # The AI SDK's own usage shape (LanguageModelUsage), so a React app can type it as such;
            # the prompt's tokens in all, with the prompt cache's share in the details.
            "usage": {
                "inputTokens": prompt,
                "inputTokenDetails": {
                    "noCacheTokens": usage.input_tokens,
                    "cacheReadTokens": usage.cache_read_input_tokens,
                    "cacheWriteTokens": usage.cache_creation_input_tokens,
                },
                "outputTokens": usage.output_tokens,
                "totalTokens": prompt + usage.output_tokens,
            },
            # And Anthropic's figures with Anthropic's names, as in /chat's `end` event.
            "anthropicUsage": usage.as_dict(),
        }
        # With `usage.totalTokens` (what the next turn starts from), what AI Elements' <Context>
        # takes as maxTokens and usedTokens; null until the model's window is known.
        metadata["contextWindow"] = end.context.window if end.context is not None else None
        if end.stop_details is not None:
            metadata["stopDetails"] = end.stop_details
        finish_reason = FINISH_REASONS.get(end.stop_reason or "", "other")
        return b"".join(
            [
                *frames,
                _FINISH_STEP,
                _chunk({"type": "message-metadata", "messageMetadata": metadata}),
                _chunk({"type": "finish", "finishReason": finish_reason}),
                DONE_FRAME,
            ]
        )

    def error(self, error_type: str, message: str) -> bytes:
        # Independent of the open parts: the relay also prepares it up front, as shutdown's farewell.
        return b"".join(
            [
                _chunk({"type": "error", "errorText": message}),
                _FINISH_STEP,
                _chunk({"type": "finish", "finishReason": "error"}),
                DONE_FRAME,
            ]
        )
