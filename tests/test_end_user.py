"""Who spent what: the gateway names the end user in a header; Anthropic gets it as
`metadata.user_id` and the summary line carries it, for every mode."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from fake_anthropic import FakeAnthropic
from tests.conftest import FRONTEND_ORIGIN, Service
from tests.service_client import chat_body

HEADER = "X-End-User-Id"
UI_BODY = {"id": "c1", "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}]}

# (mode, path, body) for the three ways of asking.
MODES = [
    ("json", "/chat", chat_body()),
    ("stream", "/chat", chat_body(stream=True)),
    ("ui", "/chat/ui", UI_BODY),
]


def _ask(http: httpx.Client, path: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    response = http.post(path, json=body, headers=headers)
    response.read()
    return response


@pytest.mark.parametrize(("mode", "path", "body"), MODES, ids=[mode[0] for mode in MODES])
def test_the_end_user_reaches_anthropic_and_the_summary_line(
    client: httpx.Client, service: Service, fake: FakeAnthropic, mode: str, path: str, body: dict[str, Any]
) -> None:
    request_id = f"end-user-{mode}"

    response = _ask(client, path, body, {HEADER: "tenant-7:u.42@sso", "X-Request-ID": request_id})

    assert response.status_code == 200, response.text
    assert fake.received[0].body["metadata"] == {"user_id": "tenant-7:u.42@sso"}
    assert service.log.summary(request_id)["end_user_id"] == "tenant-7:u.42@sso"


@pytest.mark.parametrize("headers", [{}, {HEADER: ""}], ids=["not sent", "empty"])
def test_without_an_end_user_nothing_is_sent_or_logged(
    client: httpx.Client, service: Service, fake: FakeAnthropic, headers: dict[str, str]
) -> None:
    request_id = f"no-end-user-{len(headers)}"

    response = _ask(client, "/chat", chat_body(), {**headers, "X-Request-ID": request_id})

    assert response.status_code == 200
    assert "metadata" not in fake.received[0].body
    assert service.log.summary(request_id)["end_user_id"] is None


def test_the_longest_end_user_id_anthropic_takes_is_accepted(
    client: httpx.Client, fake: FakeAnthropic
) -> None:
    response = _ask(client, "/chat", chat_body(), {HEADER: "a" * 256})

    assert response.status_code == 200, response.text
    assert fake.received[0].body["metadata"] == {"user_id": "a" * 256}


@pytest.mark.parametrize("path", ["/chat", "/chat/ui"])
@pytest.mark.parametrize(
    ("value", "error_type"),
    [
        ("a" * 257, "string_too_long"),
        ("alice smith", "string_pattern_mismatch"),
        ("a/b", "string_pattern_mismatch"),
        ("<script>", "string_pattern_mismatch"),
    ],
    ids=["too long", "space", "slash", "markup"],
)
def test_a_bad_end_user_id_is_422_and_never_reaches_anthropic(
    client: httpx.Client, fake: FakeAnthropic, path: str, value: str, error_type: str
) -> None:
    body = UI_BODY if path == "/chat/ui" else chat_body()

    response = _ask(client, path, body, {HEADER: value})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["type"], error["loc"]) == (error_type, ["header", HEADER])
    assert error["input"].startswith(value[:20])
    assert not fake.received


def test_the_header_twice_is_422(service: Service, fake: FakeAnthropic) -> None:
    # A gateway that adds its header beside the client's own would otherwise let the client choose.
    headers = [
        ("Content-Type", "application/json"),
        (HEADER, "from-the-client"),
        (HEADER, "from-the-gateway"),
    ]
    response = httpx.post(
        f"{service.url}/chat", content=b'{"messages":[{"role":"user","content":"hi"}]}', headers=headers
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", HEADER]
    assert not fake.received


def test_a_renamed_header_is_read_and_the_default_one_ignored(
    start_service: Callable[..., Service], fake: FakeAnthropic
) -> None:
    service = start_service(CHAT_END_USER_HEADER="X-Gateway-User")
    with httpx.Client(base_url=service.url, timeout=15) as http:
        renamed = _ask(http, "/chat", chat_body(), {"X-Gateway-User": "u-1", "X-Request-ID": "renamed"})
        default = _ask(http, "/chat", chat_body(), {HEADER: "u-2", "X-Request-ID": "default-name"})
        refused = _ask(http, "/chat", chat_body(), {"X-Gateway-User": "not ok"})

    assert (renamed.status_code, default.status_code) == (200, 200)
    assert fake.received[0].body["metadata"] == {"user_id": "u-1"}
    assert "metadata" not in fake.received[1].body
    assert service.log.summary("renamed")["end_user_id"] == "u-1"
    assert service.log.summary("default-name")["end_user_id"] is None
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["header", "X-Gateway-User"]


def test_the_end_user_is_never_a_metric_label(client: httpx.Client) -> None:
    assert _ask(client, "/chat", chat_body(), {HEADER: "metric-probe-7"}).status_code == 200

    assert "metric-probe-7" not in client.get("/metrics").text


def test_a_browser_may_send_the_header_where_cors_is_configured(frontend_service: Service) -> None:
    preflight = {
        "Origin": FRONTEND_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": f"content-type, {HEADER.lower()}",
    }
    response = httpx.options(f"{frontend_service.url}/chat", headers=preflight, timeout=15)

    assert response.status_code == 200
    allowed = {
        header.strip().lower() for header in response.headers["access-control-allow-headers"].split(",")
    }
    assert HEADER.lower() in allowed


def test_openapi_documents_the_header_by_its_configured_name(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    for path in ("/chat", "/chat/ui", "/chat/count_tokens"):
        [header] = [p for p in paths[path]["post"]["parameters"] if p["in"] == "header"]
        assert (header["name"], header["required"], header["schema"]["maxLength"]) == (HEADER, False, 256)


@pytest.mark.parametrize(
    ("metadata", "says"),
    [({"user_id": "a" * 257}, "at most 256"), ({"user_id": "u", "tenant": "t"}, "metadata.tenant")],
)
def test_the_fake_refuses_metadata_as_anthropic_does(
    fake: FakeAnthropic, metadata: dict[str, str], says: str
) -> None:
    # The service's own limit is Anthropic's: the fake must not accept what the real API refuses.
    body = {**chat_body(), "model": "claude-sonnet-5-5", "max_tokens": 16, "metadata": metadata}
    response = httpx.post(
        f"{fake.url}/v1/messages", json=body, headers={"x-api-key": "sk-ant-test-0123456789abcdef"}
    )

    assert response.status_code == 400
    assert says in response.json()["error"]["message"]
