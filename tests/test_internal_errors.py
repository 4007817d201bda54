"""A bug in a handler: the client still gets the service's JSON error shape, the operator one log line."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from fake_anthropic import FakeAnthropic
from tests.conftest import BASE_ENV, ServiceProcess
from tests.service_client import chat_body

ORIGIN = "https://frontend.example"


def app_with_a_failing_route() -> FastAPI:
    """The service as built for production, plus one route that fails as a bug would."""
    from app.main import create_app

    app = create_app()

    @app.post("/fails")
    async def fails() -> None:
        raise RuntimeError("an unexpected bug")

    return app


@pytest.fixture(scope="module")
def failing_service(
    fake: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    env = {**BASE_ENV, "ANTHROPIC_BASE_URL": fake.url, "CHAT_CORS_ORIGINS": ORIGIN}
    log_path: Path = tmp_path_factory.mktemp("failing") / "service.log"
    service = ServiceProcess(env, log_path, app="tests.test_internal_errors:app_with_a_failing_route()")
    yield service
    service.stop()


def test_an_exception_in_a_handler_is_a_json_500_with_the_request_id_logged_once(
    failing_service: ServiceProcess,
) -> None:
    response = httpx.post(
        f"{failing_service.url}/fails",
        json=chat_body(),
        headers={"X-Request-ID": "req-bug-1", "Origin": ORIGIN},
    )

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "detail": {
            "type": "internal_error",
            "message": "The service failed unexpectedly; the request id is in the logs.",
        }
    }
    assert response.headers["x-request-id"] == "req-bug-1"
    assert response.headers["access-control-allow-origin"] == ORIGIN
    lines = failing_service.log.for_request("req-bug-1")
    summary = next(line for line in lines if line["event"] == "request")
    assert (summary["status"], summary["outcome"]) == (500, "internal_error")
    with_traceback = [line for line in failing_service.log.lines() if "exception" in line]
    assert len(with_traceback) == 1, with_traceback  # not again by the server
    logged = with_traceback[0]
    assert (logged["event"], logged["request_id"], logged["level"]) == (
        "internal_error",
        "req-bug-1",
        "error",
    )
    assert logged["exception"][-1]["exc_value"] == "an unexpected bug"
    assert "Exception in ASGI application" not in failing_service.log.text()


def test_the_service_keeps_answering_after_an_internal_error(failing_service: ServiceProcess) -> None:
    httpx.post(f"{failing_service.url}/fails", json=chat_body())

    response = httpx.post(f"{failing_service.url}/chat", json=chat_body())

    assert response.status_code == 200
