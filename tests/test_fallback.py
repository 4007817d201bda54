"""CHAT_FALLBACK_MODELS: an overloaded or unavailable model gives way to the next, before `start`."""

from collections.abc import Callable

import httpx
import pytest

from fake_anthropic import FakeAnthropic, Reply
from tests.conftest import CURRENT_MODEL, Service, process_backend_only
from tests.service_client import chat_body, read_stream
from tests.test_chat_ui import chunks, ui_body
from tests.test_metrics import scrape

pytestmark = process_backend_only  # the same code in the container; its metrics are tested there

FALLBACK = "claude-haiku-4-5"
MODES = pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
ANSWER = ["From", " the", " fallback", "."]
ATTEMPTS = 3  # CHAT_RETRY_ATTEMPTS in the tests' BASE_ENV


@pytest.fixture(scope="module")
def with_fallback(start_service: Callable[..., Service]) -> Service:
    return start_service(CHAT_FALLBACK_MODELS=f"{FALLBACK}, claude-3-5-sonnet-latest")


@pytest.fixture
def client(with_fallback: Service) -> httpx.Client:
    return httpx.Client(base_url=with_fallback.url, timeout=15)


def ask(client: httpx.Client, stream: bool, **extra: object) -> tuple[int, str, str, str]:
    """(status, the model the client is told, the text, the request id)."""
    request_id = f"req-fallback-{stream}-{len(extra)}-{id(extra)}"
    headers = {"X-Request-ID": request_id}
    if not stream:
        response = client.post("/chat", json=chat_body(**extra), headers=headers)
        body = response.json()
        return response.status_code, body.get("model", ""), body.get("content", ""), request_id
    with client.stream("POST", "/chat", json=chat_body(stream=True, **extra), headers=headers) as response:
        events = read_stream(response)
    model = events.events[0].json.get("model", "") if events.events else ""
    return response.status_code, model, events.text, request_id


def models_asked(fake: FakeAnthropic) -> list[str]:
    return [received.body["model"] for received in fake.received]


def fallbacks_counted(service: Service) -> float:
    labels = frozenset({("from_model", CURRENT_MODEL), ("to_model", FALLBACK)})
    return scrape(service.url).get(("chat_fallbacks_total", labels), 0.0)


@MODES
def test_an_overloaded_model_gives_way_to_the_next(
    client: httpx.Client, with_fallback: Service, fake: FakeAnthropic, stream: bool
) -> None:
    fake.overloaded_models.add(CURRENT_MODEL)
    fake.enqueue(Reply.text(ANSWER))
    counted = fallbacks_counted(with_fallback)

    status, model, text, request_id = ask(client, stream)

    assert (status, model, text) == (200, FALLBACK, "From the fallback.")
    assert models_asked(fake) == [CURRENT_MODEL] * ATTEMPTS + [FALLBACK]  # its own retries first
    summary = with_fallback.log.summary(request_id)
    assert (summary["model"], summary["fallback_from"], summary["outcome"]) == (
        FALLBACK,
        [CURRENT_MODEL],
        "ok",
    )
    warning = next(
        line for line in with_fallback.log.for_request(request_id) if line["event"] == "upstream_fallback"
    )
    assert (warning["from_model"], warning["to_model"], warning["error_type"]) == (
        CURRENT_MODEL,
        FALLBACK,
        "overloaded_error",
    )
    assert fallbacks_counted(with_fallback) == counted + 1


def test_the_ui_stream_names_the_model_that_answered(client: httpx.Client, fake: FakeAnthropic) -> None:
    fake.overloaded_models.add(CURRENT_MODEL)
    fake.enqueue(Reply.text(ANSWER))

    response, sent = chunks(client, ui_body())

    assert response.status_code == 200
    assert sent[0]["messageMetadata"]["model"] == FALLBACK
    metadata = next(
        chunk for chunk in sent if isinstance(chunk, dict) and chunk["type"] == "message-metadata"
    )
    assert metadata["messageMetadata"]["model"] == FALLBACK
    assert "".join(
        chunk["delta"] for chunk in sent if isinstance(chunk, dict) and chunk["type"] == "text-delta"
    ) == ("From the fallback.")


@MODES
def test_server_errors_and_broken_streams_fall_back_too(
    client: httpx.Client, fake: FakeAnthropic, stream: bool
) -> None:
    fake.enqueue(
        Reply.error(500, "api_error"),
        Reply(error_at_start=True, error_type="api_error"),
        Reply(drop=True),
        Reply.text(ANSWER),
    )

    status, model, text, _ = ask(client, stream)

    assert (status, model, text) == (200, FALLBACK, "From the fallback.")
    assert models_asked(fake) == [CURRENT_MODEL] * ATTEMPTS + [FALLBACK]


@MODES
def test_every_model_overloaded_is_a_503_after_each_models_retries(
    client: httpx.Client, fake: FakeAnthropic, stream: bool
) -> None:
    fake.overloaded_models.update({CURRENT_MODEL, FALLBACK, "claude-3-5-sonnet-latest"})

    status, _, _, _ = ask(client, stream)

    assert status == 503
    assert (
        models_asked(fake)
        == [CURRENT_MODEL] * ATTEMPTS + [FALLBACK] * ATTEMPTS + ["claude-3-5-sonnet-latest"] * ATTEMPTS
    )


def test_a_fallback_model_anthropic_does_not_know_is_the_operators_to_fix(
    client: httpx.Client, fake: FakeAnthropic
) -> None:
    fake.overloaded_models.add(CURRENT_MODEL)
    fake.enqueue(Reply.error(404, "not_found_error", f"model: {FALLBACK}"))

    response = client.post("/chat", json=chat_body())

    assert response.status_code == 502
    detail = response.json()["detail"]
    assert detail["type"] == "configured_model_not_found"
    assert "Set CHAT_FALLBACK_MODELS to a current model" in detail["message"]
    assert models_asked(fake) == [CURRENT_MODEL] * ATTEMPTS + [FALLBACK]  # a 404 moves no further


@MODES
def test_a_request_error_never_falls_back(client: httpx.Client, fake: FakeAnthropic, stream: bool) -> None:
    fake.enqueue(Reply.error(400, "invalid_request_error", "messages: roles must alternate"))

    status, _, _, _ = ask(client, stream)

    assert status == 400
    assert models_asked(fake) == [CURRENT_MODEL]


@MODES
def test_a_request_that_names_its_model_gets_that_model_or_a_503(
    client: httpx.Client, fake: FakeAnthropic, stream: bool
) -> None:
    fake.overloaded_models.add(CURRENT_MODEL)

    status, _, _, _ = ask(client, stream, model=CURRENT_MODEL)

    assert status == 503
    assert models_asked(fake) == [CURRENT_MODEL] * ATTEMPTS


def test_a_stream_whose_start_was_sent_keeps_its_model(client: httpx.Client, fake: FakeAnthropic) -> None:
    # `start` told the client the model: overloaded after it, the stream ends with an error
    # event rather than a text from another model than the one it announced.
    fake.enqueue(*[Reply(error_after=0, error_type="overloaded_error")] * ATTEMPTS, Reply.text(ANSWER))

    status, model, text, _ = ask(client, stream=True)

    assert (status, model, text) == (200, CURRENT_MODEL, "")
    assert models_asked(fake) == [CURRENT_MODEL] * ATTEMPTS


def test_a_json_answer_shows_nothing_until_the_end_so_it_falls_back_at_any_point(
    client: httpx.Client, fake: FakeAnthropic
) -> None:
    fake.enqueue(*[Reply(error_after=2, error_type="overloaded_error")] * ATTEMPTS, Reply.text(ANSWER))

    status, model, text, _ = ask(client, stream=False)

    assert (status, model, text) == (200, FALLBACK, "From the fallback.")
    assert models_asked(fake) == [CURRENT_MODEL] * ATTEMPTS + [FALLBACK]


# -- CHAT_REFUSAL_FALLBACK: Anthropic's server-side fallback after a refusal ---------------------

REFUSAL_FALLBACK = "claude-sonnet-4-5"  # the fake's default fallback for the configured model
DECLINED_THEN_ANSWERED = Reply.text(
    ["Partial", " text.", "Answer", " from", " the", " fallback."], refused_after=2
)


@pytest.fixture(scope="module")
def refusal_fallback(start_service: Callable[..., Service]) -> Service:
    return start_service(CHAT_REFUSAL_FALLBACK="default")


def test_with_refusal_fallback_a_declined_answer_goes_on_on_the_fallback_model(
    refusal_fallback: Service, fake: FakeAnthropic
) -> None:
    fake.enqueue(DECLINED_THEN_ANSWERED)
    request_id = "req-refusal-fallback-stream"

    with httpx.stream(
        "POST",
        f"{refusal_fallback.url}/chat",
        json=chat_body(stream=True),
        headers={"X-Request-ID": request_id},
        timeout=15,
    ) as response:
        events = read_stream(response)

    sent = fake.received[0]
    assert sent.body["fallbacks"] == "default"
    assert "server-side-fallback-2026-07-01" in sent.headers["anthropic-beta"]
    assert events.names[:3] == ["start", "delta", "delta"]  # the declining model's text, as sent
    handover = events.events[3]
    assert (handover.name, handover.json) == (
        "fallback",
        {"type": "fallback", "from_model": CURRENT_MODEL, "to_model": REFUSAL_FALLBACK, "reason": "refusal"},
    )
    assert "".join(event.json["text"] for event in events.events[4:] if event.name == "delta") == (
        "Answer from the fallback."
    )
    assert events.events[-2].json["stop_reason"] == "end_turn"
    summary = refusal_fallback.log.summary(request_id)
    assert (summary["model"], summary["fallback_from"]) == (REFUSAL_FALLBACK, [CURRENT_MODEL])


def test_a_json_answer_after_a_refusal_fallback_is_the_fallbacks_alone(
    refusal_fallback: Service, fake: FakeAnthropic
) -> None:
    fake.enqueue(DECLINED_THEN_ANSWERED)

    body = httpx.post(f"{refusal_fallback.url}/chat", json=chat_body(), timeout=15).json()

    # Anthropic's advice: what came before the fallback block is not sent back as the turn.
    assert (body["model"], body["content"]) == (REFUSAL_FALLBACK, "Answer from the fallback.")


def test_the_ui_stream_says_which_model_took_over(refusal_fallback: Service, fake: FakeAnthropic) -> None:
    fake.enqueue(DECLINED_THEN_ANSWERED)

    with httpx.Client(base_url=refusal_fallback.url, timeout=15) as client:
        response, sent = chunks(client, ui_body())

    assert response.status_code == 200
    metadata = [
        chunk["messageMetadata"] for chunk in sent if isinstance(chunk, dict) and "messageMetadata" in chunk
    ]
    assert metadata[0] == {"model": CURRENT_MODEL}
    assert metadata[1] == {"model": REFUSAL_FALLBACK, "fallbackFrom": CURRENT_MODEL}
    assert metadata[-1]["model"] == REFUSAL_FALLBACK


def test_a_model_without_a_fallback_refuses_as_before(refusal_fallback: Service, fake: FakeAnthropic) -> None:
    fake.refusal_fallbacks.clear()
    fake.enqueue(Reply.text(["Partial", " text."], refused_after=2))

    body = httpx.post(f"{refusal_fallback.url}/chat", json=chat_body(), timeout=15).json()

    assert (body["model"], body["content"], body["stop_reason"]) == (
        CURRENT_MODEL,
        "Partial text.",
        "refusal",
    )
    assert body["stop_details"]["category"] == "general_harms"  # Anthropic's account, as sent


def test_refusal_fallback_is_off_by_default(client: httpx.Client, fake: FakeAnthropic) -> None:
    fake.enqueue(DECLINED_THEN_ANSWERED)

    body = client.post("/chat", json=chat_body()).json()

    assert "fallbacks" not in fake.received[0].body
    assert (body["model"], body["stop_reason"]) == (CURRENT_MODEL, "refusal")
