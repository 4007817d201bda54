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
