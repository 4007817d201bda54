"""The demo page (CHAT_DEMO_PAGE) in a real browser, against the real service and the fake API.

Against uvicorn; the first test against the container too (the page's files ship in the image).
With resumption on (CHAT_REDIS_URL, a real Redis): a reload, a dropped connection and Stop; and the
browser's own EventSource on GET /chat/streams/{id} through a connection that drops.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from fake_anthropic import FakeAnthropic, Reply
from tests.browser import launch_chromium, require_chromium
from tests.conftest import FRONTEND_ENV, RedisServer, Service
from tests.dropping_proxy import Cut, DroppingProxy
from tests.service_client import chat_body, iter_events

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

UVICORN_ONLY = pytest.mark.parametrize("backend", ["process"], indirect=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, frontend_service: Service) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.goto(frontend_service.url)
    yield page
    context.close()


def send(page: Page, text: str) -> Locator:
    """Types and sends a message; the locator of the answer being written."""
    page.get_by_label("Message").fill(text)
    page.get_by_role("button", name="Send").click()
    return page.get_by_role("log").locator(".message.assistant").last


def wait_until_idle(page: Page) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    expect(page.get_by_role("button", name="Stop")).to_be_disabled()


def test_answer_appears_progressively(page: Page, fake: FakeAnthropic) -> None:
    from playwright.sync_api import expect

    tokens = ["Once", " upon", " a", " time", ",", " there", " was", " a", " relay", "."]
    fake.enqueue(Reply.text(tokens, interval=0.15))

    answer = send(page, "Tell me a story")

    expect(answer).to_have_text(re.compile(r"^Once upon"))
    assert not fake.received[-1].finished, "the first words were shown only after the whole answer"
    expect(answer).to_have_text("".join(tokens))
    wait_until_idle(page)
    expect(page.get_by_role("alert")).to_be_hidden()
    assert page.get_by_role("log").locator(".message.user").inner_text() == "Tell me a story"


@UVICORN_ONLY
def test_thinking_shows_while_the_model_thinks(page: Page, fake: FakeAnthropic) -> None:
    from playwright.sync_api import expect

    fake.enqueue(Reply.text(["Here", " it", " is."], thinking=["Let me see. ", "Yes."], thinking_seconds=1.0))

    answer = send(page, "Think first")

    expect(page.get_by_role("status")).to_have_text("Thinking…")
    assert not fake.received[-1].finished
    expect(answer).to_have_text("Here it is.")
    expect(page.get_by_role("status")).to_be_hidden()
    expect(page.get_by_role("log").locator("details")).to_contain_text("Let me see. Yes.")
    assert fake.received[-1].body["thinking"]["display"] == "summarized"
    wait_until_idle(page)
    assert page.get_by_role("log").locator(".message.assistant").inner_text() == "Here it is."


@UVICORN_ONLY
def test_second_turn_sends_the_first_answer_as_history(page: Page, fake: FakeAnthropic) -> None:
    from playwright.sync_api import expect

    fake.enqueue(Reply.text(["Paris", "."]), Reply.text(["About 2.1", " million."]))

    expect(send(page, "Capital of France?")).to_have_text("Paris.")
    wait_until_idle(page)
    expect(send(page, "And its population?")).to_have_text("About 2.1 million.")

    assert fake.received[-1].body["messages"] == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And its population?"},
    ]


@UVICORN_ONLY
def test_the_meter_shows_how_full_the_conversation_is(page: Page, fake: FakeAnthropic) -> None:
    from playwright.sync_api import expect

    fake.enqueue(Reply.text(["Paris", "."]), Reply.text(["Yes", "."]))
    meter = page.get_by_label("Context used")
    expect(meter).to_be_hidden()  # nothing to say before the first answer

    # 1,500 words and the default system prompt's 5 in, 2 tokens out (the fake's estimate).
    expect(send(page, " ".join(["word"] * 1500))).to_have_text("Paris.")
    expect(meter).to_have_text("1,507 / 200,000 tokens")
    wait_until_idle(page)
    # The next turn starts from there: the answer (one word) and the new question (one) join it.
    expect(send(page, "Sure?")).to_have_text("Yes.")
    expect(meter).to_have_text("1,509 / 200,000 tokens")


@UVICORN_ONLY
def test_a_refusal_fallback_replaces_the_declined_text(
    browser: Browser, start_service: Callable[..., Service], fake: FakeAnthropic
) -> None:
    from playwright.sync_api import expect

    service = start_service(**FRONTEND_ENV, CHAT_REFUSAL_FALLBACK="default")
    fake.enqueue(
        Reply.text(["I can", "not.", "Here", " it is."], refused_after=2, interval=0.05),
        Reply.text(["Thanks", "!"]),
    )
    context = browser.new_context()
    page = context.new_page()
    page.goto(service.url)

    expect(send(page, "Explain it")).to_have_text("Here it is.")
    wait_until_idle(page)
    send(page, "Thanks")
    wait_until_idle(page)
    context.close()

    # The conversation holds the answer of the model that took over, not the declined text.
    assert fake.received[-1].body["messages"][1] == {"role": "assistant", "content": "Here it is."}


@UVICORN_ONLY
def test_enter_sends_and_shift_enter_starts_a_new_line(page: Page, fake: FakeAnthropic) -> None:
    from playwright.sync_api import expect

    fake.enqueue(Reply.text(["Two lines received."]))
    box = page.get_by_label("Message")

    box.press_sequentially("first line")
    box.press("Shift+Enter")
    box.press_sequentially("second line")
    expect(box).to_have_value("first line\nsecond line")
    box.press("Enter")

    expect(page.get_by_role("log").locator(".message.assistant")).to_have_text("Two lines received.")
    assert fake.received[-1].body["messages"] == [{"role": "user", "content": "first line\nsecond line"}]
    expect(box).to_have_value("")


@UVICORN_ONLY
def test_stop_closes_the_upstream_stream_within_a_second(page: Page, fake: FakeAnthropic) -> None:
    from playwright.sync_api import expect

    fake.enqueue(Reply.text(["word "] * 200, interval=0.05))
    answer = send(page, "Talk for a while")
    expect(answer).to_contain_text("word word")

    page.get_by_role("button", name="Stop").click()
    stopped_at = time.monotonic()

    upstream = fake.received[-1]
    assert fake.wait_for(lambda: upstream.client_gone, timeout=5), "upstream was never closed"
    assert upstream.client_gone_at is not None
    assert upstream.client_gone_at - stopped_at < 1.0
    assert not upstream.finished
    wait_until_idle(page)
    expect(page.get_by_role("alert")).to_be_hidden()
    shown = answer.text_content()
    assert shown.startswith("word word")  # what was shown stays, and is the history of the next turn

    fake.enqueue(Reply.text(["Sure."]))
    expect(send(page, "Go on")).to_have_text("Sure.")
    assert [message["content"] for message in fake.received[-1].body["messages"]] == [
        "Talk for a while",
        shown,
        "Go on",
    ]


@UVICORN_ONLY
@pytest.mark.parametrize(
    ("reply", "shown"),
    [
        (
            Reply.text(["Half", " an", " answer"], interval=0.1, error_after=2, error_message="Overloaded"),
            "Overloaded",
        ),
        (Reply.error(400, "invalid_request_error", "prompt is too long: 2 tokens > 1 maximum"), "too long"),
    ],
    ids=["mid-stream", "before the stream"],
)
def test_upstream_error_shows_in_the_alert(page: Page, fake: FakeAnthropic, reply: Reply, shown: str) -> None:
    from playwright.sync_api import expect

    fake.enqueue(reply)
    send(page, "Hello?")

    expect(page.get_by_role("alert")).to_contain_text(shown)
    wait_until_idle(page)
    expect(page.get_by_label("Message")).to_have_value("Hello?")  # back, to send again


@UVICORN_ONLY
def test_model_text_that_looks_like_html_is_shown_as_text(page: Page, fake: FakeAnthropic) -> None:
    from playwright.sync_api import expect

    tokens = ["<b>bold</b>", " and ", '<img src="x" onerror="window.pwned = 1">']
    fake.enqueue(Reply.text(tokens))

    answer = send(page, "Show me some HTML")

    expect(answer).to_have_text("".join(tokens))
    wait_until_idle(page)
    assert page.locator("#log b, #log img").count() == 0
    assert page.evaluate("window.pwned") is None


@UVICORN_ONLY
def test_page_fits_a_phone_screen(browser: Browser, frontend_service: Service, fake: FakeAnthropic) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 375, "height": 667}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(frontend_service.url)
    fake.enqueue(Reply.text(["A long answer that has to wrap on a narrow screen. " * 8]))
    expect(send(page, "Hi")).to_contain_text("narrow screen")

    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    for name in ("Send", "Stop"):
        box = page.get_by_role("button", name=name).bounding_box()
        assert box is not None
        assert box["x"] + box["width"] <= 375
        assert box["y"] + box["height"] <= 667
    context.close()


def test_page_is_off_unless_configured(service: Service, frontend_service: Service) -> None:
    assert httpx.get(f"{service.url}/").status_code == 404
    page = httpx.get(f"{frontend_service.url}/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert httpx.get(f"{frontend_service.url}/static/chat.js").status_code == 200
    assert "/" not in httpx.get(f"{frontend_service.url}/openapi.json").json()["paths"]


@UVICORN_ONLY
def test_a_compaction_is_noted_and_its_block_kept_in_the_history(
    browser: Browser, start_service: Callable[..., Service], fake: FakeAnthropic
) -> None:
    from playwright.sync_api import expect

    service = start_service(**FRONTEND_ENV, CHAT_COMPACTION="auto", CHAT_COMPACTION_TRIGGER="50000")
    # Over the trigger: Anthropic summarises before it answers, and thinks a while after.
    long_question = "x " * 50_001
    fake.enqueue(Reply.text(["Summed", " up."], thinking=["Hm."], thinking_seconds=1.0), Reply.text(["Yes."]))
    context = browser.new_context()
    page = context.new_page()
    page.goto(service.url)

    answer = send(page, long_question)
    note = page.get_by_role("log").locator(".note")
    expect(note).to_have_text("Summarising earlier messages…")
    assert not fake.received[-1].finished
    expect(answer).to_have_text("Summed up.")
    expect(note).to_have_text("Earlier messages summarised.")
    wait_until_idle(page)
    send(page, "Go on")
    wait_until_idle(page)
    context.close()

    block = fake.received[-1].body["messages"][1]["content"][0]
    assert block["type"] == "compaction"
    assert block["content"] == "Summary of 1 earlier messages."
    assert fake.received[-1].body["messages"][1]["content"][1] == {"type": "text", "text": "Summed up."}


@UVICORN_ONLY
def test_a_reload_shows_the_conversation_again(page: Page, fake: FakeAnthropic) -> None:
    from playwright.sync_api import expect

    fake.enqueue(Reply.text(["Paris", "."]), Reply.text(["About 2.1", " million."]))
    expect(send(page, "Capital of France?")).to_have_text("Paris.")
    wait_until_idle(page)

    page.reload()

    expect(page.get_by_role("log").locator(".message")).to_have_text(["Capital of France?", "Paris."])
    expect(page.get_by_label("Context used")).to_be_visible()
    expect(send(page, "And its population?")).to_have_text("About 2.1 million.")
    assert fake.received[-1].body["messages"] == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And its population?"},
    ]


@UVICORN_ONLY
def test_a_reload_mid_answer_without_resumption_keeps_what_was_shown(page: Page, fake: FakeAnthropic) -> None:
    from playwright.sync_api import expect

    fake.enqueue(Reply.text(["word "] * 200, interval=0.05))
    answer = send(page, "Talk for a while")
    expect(answer).to_contain_text("word word")

    page.reload()

    upstream = fake.received[-1]
    assert fake.wait_for(lambda: upstream.client_gone, timeout=5), "upstream was never closed"
    wait_until_idle(page)
    expect(page.get_by_role("alert")).to_contain_text("reloaded before the answer was complete")
    shown = answer.text_content()
    assert shown.startswith("word word")
    assert len(fake.received) == 1  # nothing was asked again
    fake.enqueue(Reply.text(["Sure."]))
    expect(send(page, "Go on")).to_have_text("Sure.")
    assert [message["content"] for message in fake.received[-1].body["messages"]] == [
        "Talk for a while",
        shown,
        "Go on",
    ]


# With resumption on (CHAT_REDIS_URL): a real Redis, the page picks answers up again.


@pytest.fixture
def resumable_service(start_service: Callable[..., Service], redis_server: RedisServer) -> Service:
    return start_service(**FRONTEND_ENV, CHAT_REDIS_URL=redis_server.url)


def port_of(service: Service) -> int:
    return int(service.url.rsplit(":", 1)[1])


@UVICORN_ONLY
def test_a_reload_mid_answer_resumes_it_and_shows_it_once(
    browser: Browser, resumable_service: Service, fake: FakeAnthropic
) -> None:
    from playwright.sync_api import Request, expect

    tokens = [f"w{number} " for number in range(60)]
    fake.enqueue(Reply.text(tokens, interval=0.05, thinking=["Let me see. ", "Yes."], thinking_seconds=0.4))
    context = browser.new_context()
    page = context.new_page()
    page.goto(resumable_service.url)
    answer = send(page, "Talk for a while")
    expect(answer).to_contain_text("w3 ")
    resumes: list[Request] = []
    page.on("request", lambda request: resumes.append(request) if "/chat/streams/" in request.url else None)

    assert not fake.received[-1].finished
    page.reload()

    expect(answer).to_have_text("".join(tokens))
    wait_until_idle(page)
    log = page.get_by_role("log")
    expect(log.locator(".message")).to_have_count(2)
    expect(log.locator("details")).to_have_text("ThoughtsLet me see. Yes.")
    expect(page.get_by_role("alert")).to_be_hidden()
    assert len(fake.received) == 1, "the question was asked again"
    assert len(resumes) == 1
    assert int(resumes[0].all_headers()["last-event-id"]) > 3  # after what the page had shown

    fake.enqueue(Reply.text(["Sure."]))
    expect(send(page, "Go on")).to_have_text("Sure.")
    assert fake.received[-1].body["messages"][1] == {"role": "assistant", "content": "".join(tokens)}
    context.close()


@UVICORN_ONLY
def test_a_dropped_connection_mid_answer_is_picked_up_again(
    browser: Browser, resumable_service: Service, fake: FakeAnthropic
) -> None:
    from playwright.sync_api import expect

    tokens = [f"w{number} " for number in range(40)]
    fake.enqueue(Reply.text(tokens, interval=0.05))
    proxy = DroppingProxy(port_of(resumable_service), Cut("POST /chat ", count=5))
    context = browser.new_context()
    page = context.new_page()
    page.goto(proxy.url)

    answer = send(page, "Talk for a while")

    expect(answer).to_have_text("".join(tokens))
    wait_until_idle(page)
    expect(page.get_by_role("alert")).to_be_hidden()
    assert proxy.cut.done.is_set(), "the connection was never cut"
    assert len(fake.received) == 1
    (resume,) = proxy.headers_of("GET /chat/streams/")
    assert resume["last-event-id"] == proxy.cut.last_complete_event_id
    context.close()
    proxy.close()


# The browser's own EventSource: what it does after a drop (reconnect with Last-Event-ID) and after
# the end ([DONE], then the connection closes: it reconnects once more, and the 204 stops it).
EVENT_SOURCE = """(streamId) => new Promise((resolve, reject) => {
  const source = new EventSource(`/chat/streams/${streamId}`);
  const deltas = [];
  let opened = 0;
  let done = false;
  source.onopen = () => opened++;
  source.addEventListener("delta", (event) => deltas.push([Number(event.lastEventId), JSON.parse(event.data).text]));
  source.onmessage = (event) => { done ||= event.data === "[DONE]"; };
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) resolve({ deltas, done, opened });
  };
  setTimeout(() => reject(new Error("EventSource still open")), 30000);
})"""


@UVICORN_ONLY
def test_event_source_reconnects_after_a_drop_and_shows_every_delta_once(
    browser: Browser, resumable_service: Service, fake: FakeAnthropic
) -> None:
    tokens = [f"t{number} " for number in range(60)]
    fake.enqueue(Reply.text(tokens, interval=0.1))
    proxy = DroppingProxy(port_of(resumable_service), Cut("GET /chat/streams/", count=5))
    # The answer is asked for, then its first reader leaves: the service goes on without one.
    body = chat_body("Count", stream=True)
    with httpx.stream("POST", f"{resumable_service.url}/chat", json=body, timeout=10) as response:
        stream_id = next(iter_events(response)).json["stream_id"]
    context = browser.new_context()
    page = context.new_page()
    page.goto(proxy.url)

    seen = page.evaluate(EVENT_SOURCE, stream_id)

    assert seen["done"]
    assert "".join(text for _, text in seen["deltas"]) == "".join(tokens)
    ids = [event_id for event_id, _ in seen["deltas"]]
    assert ids == sorted(set(ids)), "a delta came twice"
    assert proxy.cut.done.is_set(), "the connection was never cut"
    assert seen["opened"] == 2  # the first connection, then the one after the drop; the 204 opens nothing
    first, after_drop, after_end = proxy.headers_of("GET /chat/streams/")
    assert "last-event-id" not in first
    assert after_drop["last-event-id"] == proxy.cut.last_complete_event_id
    assert int(after_end["last-event-id"]) > ids[-1]  # the [DONE]'s
    assert ids[0] < int(after_drop["last-event-id"]) < ids[-1]  # the drop came mid-answer
    assert len(fake.received) == 1
    context.close()
    proxy.close()


@UVICORN_ONLY
def test_stop_with_resumption_stops_the_answer_in_the_service(
    browser: Browser, resumable_service: Service, fake: FakeAnthropic
) -> None:
    from playwright.sync_api import expect

    fake.enqueue(Reply.text(["word "] * 200, interval=0.05))
    context = browser.new_context()
    page = context.new_page()
    page.goto(resumable_service.url)
    with page.expect_response(lambda response: response.url.endswith("/chat")) as chat:
        answer = send(page, "Talk for a while")
    expect(answer).to_contain_text("word word")

    with page.expect_request(lambda request: request.url.endswith("/stop")) as stop:
        page.get_by_role("button", name="Stop").click()
    stopped_at = time.monotonic()

    assert stop.value.method == "POST"
    upstream = fake.received[-1]
    assert fake.wait_for(lambda: upstream.client_gone, timeout=5), "upstream was never closed"
    assert upstream.client_gone_at is not None
    assert upstream.client_gone_at - stopped_at < 1.0
    assert not upstream.finished
    wait_until_idle(page)
    expect(page.get_by_role("alert")).to_be_hidden()
    # The stream itself ended as a stopped answer ends, not as a dropped connection.
    frames = chat.value.text().strip().split("\n\n")
    assert frames[-1].endswith("data: [DONE]")
    assert '"stop_reason":"stopped"' in frames[-2]
    summary = resumable_service.log.summary(chat.value.headers["x-request-id"])
    assert summary["outcome"] == "stopped"
    shown = answer.text_content()
    assert shown.startswith("word word")

    fake.enqueue(Reply.text(["Sure."]))
    expect(send(page, "Go on")).to_have_text("Sure.")
    assert [message["content"] for message in fake.received[-1].body["messages"]] == [
        "Talk for a while",
        shown,
        "Go on",
    ]
    context.close()


@UVICORN_ONLY
def test_an_answer_the_service_no_longer_has_is_kept_as_shown(
    browser: Browser, start_service: Callable[..., Service], redis_server: RedisServer, fake: FakeAnthropic
) -> None:
    from playwright.sync_api import expect

    service = start_service(
        **FRONTEND_ENV, CHAT_REDIS_URL=redis_server.url, CHAT_RESUME_GRACE="1", CHAT_RESUME_TTL="1"
    )
    fake.enqueue(Reply.text(["word "] * 200, interval=0.05))
    context = browser.new_context()
    page = context.new_page()
    page.goto(service.url)
    answer = send(page, "Talk for a while")
    expect(answer).to_contain_text("word word")

    # The tab goes elsewhere; without a reader the answer is closed after the grace, then expires.
    page.goto("about:blank")
    upstream = fake.received[-1]
    assert fake.wait_for(lambda: upstream.client_gone, timeout=5), "upstream was never closed"
    time.sleep(2)
    page.goto(service.url)

    expect(page.get_by_role("alert")).to_contain_text("could not be resumed")
    wait_until_idle(page)
    shown = page.get_by_role("log").locator(".message.assistant").text_content()
    assert shown.startswith("word word")
    fake.enqueue(Reply.text(["Sure."]))
    expect(send(page, "Go on")).to_have_text("Sure.")
    assert [message["content"] for message in fake.received[-1].body["messages"]] == [
        "Talk for a while",
        shown,
        "Go on",
    ]
    context.close()
