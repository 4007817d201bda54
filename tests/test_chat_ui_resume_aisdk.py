"""Resumable `/chat/ui` answers as the real Vercel AI SDK (`ai` 7) meets them, in Node.

tests/aisdk/chat-page.mjs is a chat page: the SDK's `Chat` with its `DefaultChatTransport`, behind
a TCP proxy of its own that a test can cut. These tests drive it line by line (send, cut,
resume, a reload) against the service with resumption on (a real Redis) and the fake API, and
assert on what the SDK made of it: the messages, the status, the chunks it accepted.
"""

from __future__ import annotations

import json
import queue
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from fake_anthropic import FakeAnthropic, Reply
from tests.conftest import AISDK, RedisServer, Service, process_backend_only

pytestmark = process_backend_only

THINKING = ["The user greets. ", "Greet back, ", "then count."]
WORDS = [f"w{index} " for index in range(40)]
ANSWER = "".join(WORDS)
Event = dict[str, Any]


class ChatPage:
    """One Node process holding one page's `Chat` at a time (`open` again: a reload)."""

    def __init__(self, node: Path, service_url: str) -> None:
        self.process = subprocess.Popen(
            [node, AISDK / "chat-page.mjs", service_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.events: list[Event] = []
        self._incoming: queue.Queue[Event | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._incoming.put(json.loads(line))
        self._incoming.put(None)

    def do(self, op: str, **args: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.process.stdin.flush()

    def wait_for(self, condition: Callable[[Event], bool], timeout: float = 10) -> Event:
        """The first event from now on that meets `condition`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self._incoming.get(timeout=left)
            except queue.Empty:
                break
            if event is None:
                break
            self.events.append(event)
            if condition(event):
                return event
        raise AssertionError(f"no such event within {timeout} s; the last ones: {self.events[-10:]}")

    def settled(self, op: str, timeout: float = 15) -> Event:
        return self.wait_for(lambda e: e["event"] == "settled" and e["op"] == op, timeout)

    def report(self) -> Event:
        self.do("report")
        return self.wait_for(lambda e: e["event"] == "report")

    def since(self, mark: int, kind: str) -> list[Event]:
        return [event for event in self.events[mark:] if event["event"] == kind]

    def close(self) -> None:
        self.do("exit")
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def resumable_service(start_service: Callable[..., Service], redis_server: RedisServer) -> Service:
    return start_service(CHAT_REDIS_URL=redis_server.url, CHAT_RESUME_GRACE="3")


@pytest.fixture
def page(node: Path, resumable_service: Service) -> Iterator[ChatPage]:
    chat_page = ChatPage(node, resumable_service.url)
    yield chat_page
    chat_page.close()


def user_turn(text: str = "Hi") -> dict[str, Any]:
    return {"id": "u1", "role": "user", "parts": [{"type": "text", "text": text}]}


def assistant_parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [{key: part[key] for key in ("type", "text", "state") if key in part} for part in message["parts"]]


def has_text(length: int) -> Callable[[Event], bool]:
    return lambda e: e["event"] == "text" and e["length"] >= length


def chunk_types(events: list[Event]) -> list[str]:
    return [str(event["chunk"]["type"]) for event in events]


def new_chat_id() -> str:
    return secrets.token_urlsafe(16)  # unguessable, as useChat's own ids are


def thinking_reply(**kw: Any) -> Reply:
    return Reply.text(WORDS, thinking=THINKING, thinking_seconds=0.3, interval=0.05, **kw)


@contextmanager
def stopping(service_url: str, chat_id: str, fake: FakeAnthropic) -> Iterator[None]:
    """Stops the chat's answer through `service_url` (any replica); once the block has let the page
    settle: the stop was taken, and the call to Anthropic closed within a second of it."""
    stopped_at = time.monotonic()
    stop = httpx.post(f"{service_url}/chat/ui/{chat_id}/stop", timeout=5)
    yield
    assert stop.status_code == 204
    upstream = fake.received[0]
    assert fake.wait_for(lambda: upstream.client_gone, timeout=2)
    assert upstream.client_gone_at is not None
    assert upstream.client_gone_at - stopped_at < 1.0


def test_a_cut_answer_resumed_is_one_message_with_all_its_text_and_reasoning(
    page: ChatPage, fake: FakeAnthropic
) -> None:
    fake.enqueue(thinking_reply())
    page.do("open", chatId=new_chat_id(), body={"thinking": "summarized"})
    page.do("send", text="Hi")
    page.wait_for(has_text(30))

    page.do("cut")
    cut = page.settled("send")
    after_cut = page.report()
    page.do("resume")
    resumed = page.settled("resume")

    assert cut["status"] == "error"
    partial = after_cut["messages"][-1]
    assert partial["role"] == "assistant"
    assert 30 <= len(partial["parts"][-1]["text"]) < len(ANSWER)
    assert resumed["status"] == "ready"
    final = page.report()
    assert final["error"] is None
    assert [message["role"] for message in final["messages"]] == ["user", "assistant"]
    assert final["messages"][-1]["id"] == partial["id"]
    assert assistant_parts(final["messages"][-1]) == [
        {"type": "step-start"},
        {"type": "reasoning", "text": "".join(THINKING), "state": "done"},
        {"type": "text", "text": ANSWER, "state": "done"},
    ]
    assert len(fake.received) == 1
    assert not fake.received[0].client_gone  # the cut reader was not a stop


def test_after_a_network_error_the_chat_resumes_the_same_message_when_the_page_is_visible_again(
    page: ChatPage, fake: FakeAnthropic
) -> None:
    fake.enqueue(thinking_reply())
    page.do("open", chatId=new_chat_id(), body={"thinking": "summarized"}, browserErrors=True)
    page.do("send", text="Hi")
    page.wait_for(has_text(30))

    page.do("cut")
    finished = page.wait_for(lambda e: e["event"] == "onFinish")
    page.settled("send")
    mark = len(page.events)
    # What useChat({ resume: true }) runs on `visibilitychange` (@ai-sdk/react 4, for ai 7).
    page.do("resumeIfDisconnected")
    page.settled("resumeIfDisconnected")

    assert finished["isDisconnect"] is True
    assert [(e["method"], e["status"]) for e in page.since(mark, "request")] == [("GET", 200)]
    assert chunk_types(page.since(mark, "chunk"))[0] == "start"  # replayed from the start...
    final = page.report()
    assert final["status"] == "ready"
    assert [message["role"] for message in final["messages"]] == ["user", "assistant"]
    assert assistant_parts(final["messages"][-1]) == [  # ...and shown once
        {"type": "step-start"},
        {"type": "reasoning", "text": "".join(THINKING), "state": "done"},
        {"type": "text", "text": ANSWER, "state": "done"},
    ]
    assert len(fake.received) == 1


@pytest.mark.parametrize("kept", ["the question", "the question and the answer so far"])
def test_a_reloaded_page_resumes_the_answer_in_flight(page: ChatPage, fake: FakeAnthropic, kept: str) -> None:
    fake.enqueue(thinking_reply())
    chat_id = new_chat_id()
    page.do("open", chatId=chat_id, body={"thinking": "summarized"})
    page.do("send", text="Hi")
    page.wait_for(has_text(20))
    before = page.report()["messages"]

    page.do("cut")  # the old page goes, its connection with it
    page.settled("send")
    kept_messages = before[:1] if kept == "the question" else before
    mark = len(page.events)
    page.do("open", chatId=chat_id, messages=kept_messages, body={"thinking": "summarized"})
    page.do("resume")  # what useChat({ resume: true }) does when it mounts
    page.wait_for(lambda e: e["event"] == "request")
    upstream_still_writing = not fake.received[0].finished
    page.settled("resume")

    assert upstream_still_writing
    assert [(e["method"], e["status"]) for e in page.since(mark, "request")] == [("GET", 200)]
    types = chunk_types(page.since(mark, "chunk"))
    assert types[:2] == ["start", "start-step"]
    assert types[-1] == "finish"
    texts = [e["length"] for e in page.since(mark, "text")]
    assert len(texts) > 10  # followed live, not one replay at the end
    final = page.report()
    assert final["status"] == "ready"
    assert [message["role"] for message in final["messages"]] == ["user", "assistant"]
    assert final["messages"][-1]["id"] == before[-1]["id"]
    assert assistant_parts(final["messages"][-1]) == [
        {"type": "step-start"},
        {"type": "reasoning", "text": "".join(THINKING), "state": "done"},
        {"type": "text", "text": ANSWER, "state": "done"},
    ]
    assert len(fake.received) == 1


def test_a_page_reloaded_after_the_answer_ended_shows_it_once(page: ChatPage, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.text(["Done", " and", " dusted."]))
    chat_id = new_chat_id()
    page.do("open", chatId=chat_id)
    page.do("send", text="Hi")
    page.settled("send")
    before = page.report()["messages"]

    page.do("open", chatId=chat_id, messages=before)
    page.do("resume")
    page.settled("resume")

    after = page.report()
    assert after["status"] == "ready"
    assert [message["id"] for message in after["messages"]] == [message["id"] for message in before]
    assert assistant_parts(after["messages"][-1]) == assistant_parts(before[-1])
    assert assistant_parts(after["messages"][-1])[-1] == {
        "type": "text",
        "text": "Done and dusted.",
        "state": "done",
    }


def test_a_chat_with_nothing_in_flight_is_left_as_it_is(page: ChatPage, fake: FakeAnthropic) -> None:
    page.do("open", chatId=new_chat_id(), messages=[user_turn()])
    mark = len(page.events)
    page.do("resume")
    page.settled("resume")

    assert [(e["method"], e["status"]) for e in page.since(mark, "request")] == [("GET", 204)]
    assert page.since(mark, "chunk") == []
    assert page.since(mark, "onError") == []
    after = page.report()
    assert (after["status"], after["error"], after["messages"]) == ("ready", None, [user_turn()])
    assert len(fake.received) == 0


def test_stop_ends_the_answer_for_the_chat_with_what_it_had(
    page: ChatPage, resumable_service: Service, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.text(["word "] * 200, interval=0.05))
    chat_id = new_chat_id()
    page.do("open", chatId=chat_id)
    page.do("send", text="Hi")
    page.wait_for(has_text(20))

    with stopping(resumable_service.url, chat_id, fake):
        finished = page.wait_for(lambda e: e["event"] == "onFinish")
        page.settled("send")

    assert not fake.received[0].finished
    assert (finished["isError"], finished["isAbort"], finished["finishReason"]) == (False, False, "other")
    chunks = [e["chunk"] for e in page.events if e["event"] == "chunk"]
    assert [chunk["type"] for chunk in chunks[-4:]] == [
        "text-end",
        "finish-step",
        "message-metadata",
        "finish",
    ]
    final = page.report()
    assert (final["status"], final["error"]) == ("ready", None)
    message = final["messages"][-1]
    assert message["metadata"]["stopReason"] == "stopped"
    text = message["parts"][-1]
    assert text["state"] == "done"
    assert 20 <= len(text["text"]) < len("word " * 200)
    assert text["text"] == "word " * (len(text["text"]) // 5)
    assert page.since(0, "onError") == []


def test_stop_reaches_a_reloaded_page_reading_the_answer_while_the_model_thinks(
    page: ChatPage, resumable_service: Service, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.text(WORDS, thinking=THINKING, thinking_seconds=6, interval=0.05))
    chat_id = new_chat_id()
    page.do("open", chatId=chat_id, body={"thinking": "summarized"})
    page.do("send", text="Hi")
    page.wait_for(lambda e: e["event"] == "chunk" and e["chunk"]["type"] == "reasoning-delta")
    page.do("cut")
    page.settled("send")
    page.do("open", chatId=chat_id, messages=[user_turn()], body={"thinking": "summarized"})
    page.do("resume")
    page.wait_for(lambda e: e["event"] == "chunk" and e["chunk"]["type"] == "reasoning-delta")

    with stopping(resumable_service.url, chat_id, fake):
        page.settled("resume")

    final = page.report()
    assert (final["status"], final["error"]) == ("ready", None)
    assert [message["role"] for message in final["messages"]] == ["user", "assistant"]
    parts = assistant_parts(final["messages"][-1])
    assert parts[0] == {"type": "step-start"}
    assert parts[1]["type"] == "reasoning"
    assert parts[1]["state"] == "done"
    assert "".join(THINKING).startswith(parts[1]["text"])
    assert len(parts) == 2  # no text yet: the model was still thinking
    assert final["messages"][-1]["metadata"]["stopReason"] == "stopped"
    assert len(fake.received) == 1


def test_a_page_reloaded_onto_another_replica_resumes_and_stops_the_answer_running_on_the_first(
    page: ChatPage,
    start_service: Callable[..., Service],
    redis_server: RedisServer,
    fake: FakeAnthropic,
) -> None:
    # Another process with the same Redis (the grace differs only to make it another process).
    other = start_service(CHAT_REDIS_URL=redis_server.url, CHAT_RESUME_GRACE="30")
    fake.enqueue(Reply.text(["word "] * 200, interval=0.05))
    chat_id = new_chat_id()
    page.do("open", chatId=chat_id)
    page.do("send", text="Hi")
    page.wait_for(has_text(20))
    page.do("cut")
    page.settled("send")
    page.do("open", chatId=chat_id, messages=[user_turn()], serviceUrl=other.url)
    page.do("resume")
    page.wait_for(has_text(200))

    with stopping(other.url, chat_id, fake):
        page.settled("resume")

    final = page.report()
    assert (final["status"], final["error"]) == ("ready", None)
    assert [message["role"] for message in final["messages"]] == ["user", "assistant"]
    text = final["messages"][-1]["parts"][-1]["text"]
    assert 200 <= len(text) < len("word " * 200)
    assert text == "word " * (len(text) // 5)
    assert len(fake.received) == 1
