"""The two wire formats: each encoder's frames for the answer's neutral sequence."""

import json
from typing import Any

import pytest

from app.chat.answer import Compacted, ContextUse, End, Handover, Start, Text, Thinking, Usage
from app.streaming.formats.chat_events import ChatEventsEncoder
from app.streaming.formats.ui_messages import UIMessageStreamEncoder

# Quotes, backslashes, line breaks (a raw one would cut the SSE line), non-ASCII and a fake frame.
TRICKY = 'say "hi" \\ C:\\dir\nnext\r\nline\ttab café 日本語 🙂 </script>\u2028 data: [DONE]\n\n'
START = Start("msg_01", "claude-sonnet-5-5")
HANDOVER = Handover("claude-sonnet-5-5", "claude-sonnet-4-5", "refusal")
BLOCK = {
    "type": "compaction",
    "content": "Summary of 9 earlier messages.",
    "encrypted_content": "3f9a",
    "x": [1],
}
USAGE = Usage(input_tokens=10, output_tokens=20, cache_creation_input_tokens=3, cache_read_input_tokens=100)
CONTEXT = ContextUse.after(USAGE, 200_000)


def sse_frames(raw: bytes) -> list[tuple[str | None, Any]]:
    """(event name or None, parsed data) per frame; `[DONE]` stays a string."""
    *frames, rest = raw.split(b"\n\n")
    assert rest == b"", f"a frame is not terminated: {rest!r}"
    parsed: list[tuple[str | None, Any]] = []
    for frame in frames:
        event: str | None = None
        data: list[bytes] = []
        for line in frame.split(b"\n"):
            field, _, value = line.partition(b": ")
            if field == b"event":
                event = value.decode()
            else:
                assert field == b"data", f"an unexpected line: {line!r}"
                data.append(value)
        assert len(data) == 1, f"one data line per frame: {frame!r}"
        parsed.append((event, "[DONE]" if data[0] == b"[DONE]" else json.loads(data[0])))
    return parsed


def chunks(raw: bytes) -> list[Any]:
    """The UI stream's chunks: data-only frames."""
    frames = sse_frames(raw)
    assert all(event is None for event, _ in frames)
    return [data for _, data in frames]


class TestChatEvents:
    def test_start(self) -> None:
        raw = ChatEventsEncoder().start(START)
        assert raw == b'event: start\ndata: {"type":"start","id":"msg_01","model":"claude-sonnet-5-5"}\n\n'

    def test_pieces_are_thinking_then_delta_events_in_order(self) -> None:
        raw = ChatEventsEncoder().pieces([Thinking("Let me"), Thinking(""), Text("Hi"), Text(TRICKY)])
        assert sse_frames(raw) == [
            ("thinking", {"type": "thinking", "text": "Let me"}),
            ("thinking", {"type": "thinking", "text": ""}),  # thinking, not shown
            ("delta", {"type": "delta", "text": "Hi"}),
            ("delta", {"type": "delta", "text": TRICKY}),
        ]

    def test_the_exact_bytes_of_a_delta_and_a_thinking_event(self) -> None:
        encoder = ChatEventsEncoder()
        assert encoder.pieces([Text('a "b" \\ c\n')]) == (
            b'event: delta\ndata: {"type":"delta","text":"a \\"b\\" \\\\ c\\n"}\n\n'
        )
        assert encoder.pieces([Thinking("café")]) == (
            b'event: thinking\ndata: {"type":"thinking","text":"caf\xc3\xa9"}\n\n'
        )

    def test_no_pieces_is_no_bytes(self) -> None:
        assert ChatEventsEncoder().pieces([]) == b""

    def test_end_carries_the_stop_reason_usage_and_context_then_done(self) -> None:
        raw = ChatEventsEncoder().end(End("end_turn", USAGE, context=CONTEXT))
        assert raw == (
            b'event: end\ndata: {"type":"end","stop_reason":"end_turn","usage":{"input_tokens":10,'
            b'"output_tokens":20,"cache_creation_input_tokens":3,"cache_read_input_tokens":100},'
            b'"context":{"used":133,"window":200000}}\n\n'
            b"data: [DONE]\n\n"
        )

    def test_a_window_not_yet_known_is_null(self) -> None:
        end = sse_frames(
            ChatEventsEncoder().end(End("end_turn", USAGE, context=ContextUse.after(USAGE, None)))
        )
        assert end[0][1]["context"] == {"used": 133, "window": None}

    def test_end_without_a_stop_reason(self) -> None:
        assert sse_frames(ChatEventsEncoder().end(End(None, Usage()))) == [
            (
                "end",
                {
                    "type": "end",
                    "stop_reason": None,
                    "usage": {
                        "input_tokens": 0,
                        "output_tokens": 0,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                    },
                    "context": None,
                },
            ),
            (None, "[DONE]"),
        ]

    def test_end_relays_a_refusals_stop_details(self) -> None:
        details = {"type": "refusal", "category": "cyber", "explanation": "Declined."}
        end = sse_frames(ChatEventsEncoder().end(End("refusal", USAGE, details)))[0][1]
        assert (end["stop_reason"], end["stop_details"]) == ("refusal", details)
        assert "stop_details" not in sse_frames(ChatEventsEncoder().end(End("end_turn", USAGE)))[0][1]

    def test_a_handover_is_a_fallback_event(self) -> None:
        raw = ChatEventsEncoder().handover(HANDOVER)
        assert sse_frames(raw) == [
            (
                "fallback",
                {
                    "type": "fallback",
                    "from_model": "claude-sonnet-5-5",
                    "to_model": "claude-sonnet-4-5",
                    "reason": "refusal",
                },
            )
        ]

    def test_a_compaction_is_an_event_with_the_block_as_it_came(self) -> None:
        raw = ChatEventsEncoder().compaction(Compacted(BLOCK))
        assert sse_frames(raw) == [("compaction", {"type": "compaction", "compaction": BLOCK})]

    def test_end_carries_the_compaction_block_only_when_there_was_one(self) -> None:
        end = sse_frames(ChatEventsEncoder().end(End("end_turn", USAGE, compaction=BLOCK)))[0][1]
        assert end["compaction"] == BLOCK
        assert "compaction" not in sse_frames(ChatEventsEncoder().end(End("end_turn", USAGE)))[0][1]

    def test_error_is_one_event_without_done(self) -> None:
        raw = ChatEventsEncoder().error("overloaded_error", 'Anthropic is "overloaded"')
        assert raw == (
            b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
            b'"message":"Anthropic is \\"overloaded\\""}}\n\n'
        )

    def test_no_headers_of_its_own(self) -> None:
        assert ChatEventsEncoder().headers == {}


def reasoning(kind: str, delta: str | None = None) -> dict[str, str]:
    chunk = {"type": f"reasoning-{kind}", "id": "reasoning-0"}
    return chunk if delta is None else {**chunk, "delta": delta}


def text(kind: str, delta: str | None = None) -> dict[str, str]:
    chunk = {"type": f"text-{kind}", "id": "text-0"}
    return chunk if delta is None else {**chunk, "delta": delta}


def metadata(stop_reason: str | None, usage: Usage, window: int | None = 200_000) -> dict[str, Any]:
    return {
        "type": "message-metadata",
        "messageMetadata": {
            "model": "claude-sonnet-5-5",
            "stopReason": stop_reason,
            "usage": {
                "inputTokens": usage.prompt_tokens,
                "inputTokenDetails": {
                    "noCacheTokens": usage.input_tokens,
                    "cacheReadTokens": usage.cache_read_input_tokens,
                    "cacheWriteTokens": usage.cache_creation_input_tokens,
                },
                "outputTokens": usage.output_tokens,
                "totalTokens": usage.prompt_tokens + usage.output_tokens,
            },
            "anthropicUsage": usage.as_dict(),
            "contextWindow": window,
        },
    }


FINISH_STEP = {"type": "finish-step"}


class TestUIMessages:
    def test_the_header_names_the_protocol(self) -> None:
        assert UIMessageStreamEncoder().headers == {"x-vercel-ai-ui-message-stream": "v1"}

    def test_start_is_the_message_and_its_first_step(self) -> None:
        raw = UIMessageStreamEncoder().start(START)
        assert raw == (
            b'data: {"type":"start","messageId":"msg_01","messageMetadata":{"model":"claude-sonnet-5-5"}}\n\n'
            b'data: {"type":"start-step"}\n\n'
        )

    def test_a_summarized_answer_from_start_to_finish(self) -> None:
        encoder = UIMessageStreamEncoder()
        raw = b"".join(
            [
                encoder.start(START),
                encoder.pieces([Thinking("Let me"), Thinking(" see")]),
                encoder.pieces([Thinking(" more."), Text("Hi")]),
                encoder.pieces([Text(TRICKY)]),
                encoder.end(End("end_turn", USAGE, context=CONTEXT)),
            ]
        )
        assert chunks(raw) == [
            {"type": "start", "messageId": "msg_01", "messageMetadata": {"model": "claude-sonnet-5-5"}},
            {"type": "start-step"},
            reasoning("start"),
            reasoning("delta", "Let me"),
            reasoning("delta", " see"),
            reasoning("delta", " more."),
            reasoning("end"),
            text("start"),
            text("delta", "Hi"),
            text("delta", TRICKY),
            text("end"),
            FINISH_STEP,
            metadata("end_turn", USAGE),
            {"type": "finish", "finishReason": "stop"},
            "[DONE]",
        ]

    def test_thinking_not_shown_opens_the_reasoning_part_with_no_delta(self) -> None:
        encoder = UIMessageStreamEncoder()
        encoder.start(START)
        assert chunks(encoder.pieces([Thinking("")])) == [reasoning("start")]
        assert encoder.pieces([Thinking("")]) == b""  # a second marker: already open
        assert chunks(encoder.pieces([Text("Hi")])) == [reasoning("end"), text("start"), text("delta", "Hi")]

    def test_text_starts_once_across_batches(self) -> None:
        encoder = UIMessageStreamEncoder()
        assert chunks(encoder.pieces([Text("a")])) == [text("start"), text("delta", "a")]
        assert chunks(encoder.pieces([Text("b"), Text("c")])) == [text("delta", "b"), text("delta", "c")]

    def test_end_closes_a_reasoning_part_that_no_text_followed(self) -> None:
        encoder = UIMessageStreamEncoder()
        encoder.start(START)
        encoder.pieces([Thinking("")])
        assert chunks(encoder.end(End("max_tokens", Usage()))) == [
            reasoning("end"),
            FINISH_STEP,
            metadata("max_tokens", Usage(), window=None),
            {"type": "finish", "finishReason": "length"},
            "[DONE]",
        ]

    def test_end_with_nothing_open_closes_nothing(self) -> None:
        encoder = UIMessageStreamEncoder()
        encoder.start(START)
        assert [
            chunk if isinstance(chunk, str) else chunk["type"]
            for chunk in chunks(encoder.end(End(None, USAGE)))
        ] == [
            "finish-step",
            "message-metadata",
            "finish",
            "[DONE]",
        ]

    @pytest.mark.parametrize(
        ("stop_reason", "finish_reason"),
        [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("refusal", "content-filter"),
            ("pause_turn", "other"),
            ("tool_use", "other"),
            ("a_reason_added_later", "other"),
            (None, "other"),
        ],
    )
    def test_finish_reasons(self, stop_reason: str | None, finish_reason: str) -> None:
        *_, finish, done = chunks(UIMessageStreamEncoder().end(End(stop_reason, Usage())))
        assert (finish, done) == ({"type": "finish", "finishReason": finish_reason}, "[DONE]")

    def test_usage_metadata_counts_the_whole_prompt_with_the_caches_share_in_the_details(self) -> None:
        encoder = UIMessageStreamEncoder()
        encoder.start(START)
        message_metadata = chunks(encoder.end(End("end_turn", USAGE, context=CONTEXT)))[1]
        assert message_metadata == {
            "type": "message-metadata",
            "messageMetadata": {
                "model": "claude-sonnet-5-5",
                "stopReason": "end_turn",
                "usage": {
                    "inputTokens": 113,
                    "inputTokenDetails": {"noCacheTokens": 10, "cacheReadTokens": 100, "cacheWriteTokens": 3},
                    "outputTokens": 20,
                    "totalTokens": 133,
                },
                "anthropicUsage": {
                    "input_tokens": 10,
                    "output_tokens": 20,
                    "cache_creation_input_tokens": 3,
                    "cache_read_input_tokens": 100,
                },
                "contextWindow": 200_000,
            },
        }
        # What AI Elements' <Context> takes: maxTokens and usedTokens, straight from the metadata.
        assert message_metadata["messageMetadata"]["usage"]["totalTokens"] == CONTEXT.used

    def test_a_window_not_yet_known_is_null_in_the_metadata(self) -> None:
        encoder = UIMessageStreamEncoder()
        metadata = chunks(encoder.end(End("end_turn", USAGE, context=ContextUse.after(USAGE, None))))[1]
        assert metadata["messageMetadata"]["contextWindow"] is None

    def test_the_exact_bytes_of_deltas_and_the_finish(self) -> None:
        encoder = UIMessageStreamEncoder()
        assert encoder.pieces([Thinking('a "b"\n')]) == (
            b'data: {"type":"reasoning-start","id":"reasoning-0"}\n\n'
            b'data: {"type":"reasoning-delta","id":"reasoning-0","delta":"a \\"b\\"\\n"}\n\n'
        )
        assert encoder.pieces([Text("\\ 🙂")]) == (
            b'data: {"type":"reasoning-end","id":"reasoning-0"}\n\n'
            b'data: {"type":"text-start","id":"text-0"}\n\n'
            b'data: {"type":"text-delta","id":"text-0","delta":"\\\\ \xf0\x9f\x99\x82"}\n\n'
        )
        end = encoder.end(End("refusal", Usage()))
        assert end.startswith(b'data: {"type":"text-end","id":"text-0"}\n\ndata: {"type":"finish-step"}\n\n')
        assert end.endswith(b'data: {"type":"finish","finishReason":"content-filter"}\n\ndata: [DONE]\n\n')

    def test_a_handover_updates_the_messages_model_there_and_at_the_end(self) -> None:
        encoder = UIMessageStreamEncoder()
        encoder.start(START)
        assert chunks(encoder.handover(HANDOVER)) == [
            {
                "type": "message-metadata",
                "messageMetadata": {"model": "claude-sonnet-4-5", "fallbackFrom": "claude-sonnet-5-5"},
            }
        ]
        finish = chunks(encoder.end(End("end_turn", USAGE)))
        assert finish[1]["messageMetadata"]["model"] == "claude-sonnet-4-5"

    def test_a_compaction_is_a_data_part_useChat_keeps_and_sends_back(self) -> None:
        encoder = UIMessageStreamEncoder()
        encoder.start(START)
        assert chunks(encoder.compaction(Compacted(BLOCK))) == [{"type": "data-compaction", "data": BLOCK}]
        # It opens no part: the text that follows starts as usual.
        assert chunks(encoder.pieces([Text("Hi")]))[0] == {"type": "text-start", "id": "text-0"}

    def test_error_is_the_sdks_ending_of_a_failed_stream(self) -> None:
        raw = UIMessageStreamEncoder().error("overloaded_error", "Anthropic is overloaded.")
        assert raw == (
            b'data: {"type":"error","errorText":"Anthropic is overloaded."}\n\n'
            b'data: {"type":"finish-step"}\n\n'
            b'data: {"type":"finish","finishReason":"error"}\n\n'
            b"data: [DONE]\n\n"
        )

    def test_error_does_not_depend_on_the_open_parts(self) -> None:
        # Prepared up front as shutdown's farewell, so the same bytes whatever was open.
        encoder = UIMessageStreamEncoder()
        encoder.start(START)
        encoder.pieces([Thinking("x"), Text("y")])
        assert encoder.error("t", "m") == UIMessageStreamEncoder().error("t", "m")
