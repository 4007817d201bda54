"""Fixtures: a fake Anthropic API on 127.0.0.1 and the real service, run by uvicorn, in front of it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.anthropic_api import FakeAnthropic
from tests.service_client import LogReader

API_KEY = "sk-ant-test-0123456789abcdef"
CURRENT_MODEL = "claude-sonnet-4-5"

# The settings every test service runs with; fast retries and short time-outs keep tests quick.
BASE_ENV = {
    "ANTHROPIC_API_KEY": API_KEY,
    "CHAT_MODEL": CURRENT_MODEL,
    "CHAT_ALLOWED_MODELS": f"{CURRENT_MODEL},claude-haiku-4-5,claude-3-5-sonnet-latest",
    "CHAT_SYSTEM_PROMPT": "You are the default assistant.",
    "CHAT_MAX_TOKENS_DEFAULT": "256",
    "CHAT_MAX_TOKENS_CEILING": "4096",
    "CHAT_READ_TIMEOUT": "1.5",
    "CHAT_CONNECT_TIMEOUT": "1",
    "CHAT_RETRY_ATTEMPTS": "3",
    "CHAT_RETRY_INITIAL_WAIT": "0.05",
    "CHAT_RETRY_MAX_WAIT": "2",
    "CHAT_PING_INTERVAL": "0.3",
    "CHAT_LOG_FORMAT": "json",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """`uvicorn app.main:app` in a subprocess, configured only through its environment."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = LogReader(log_path)
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CHAT_"))}
        self._log_file = log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env={**clean, **env},
            cwd=log_path.parent,  # away from any developer's .env
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        self._wait_until_healthy()

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited early:\n{self.log.text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"service did not become healthy:\n{self.log.text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log_file.close()


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic(api_key=API_KEY).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_fake(fake: FakeAnthropic) -> None:
    fake.reset()


@pytest.fixture(scope="session")
def start_service(fake: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Starts a service with BASE_ENV plus overrides; each distinct configuration starts once."""
    started: dict[tuple[tuple[str, str], ...], ServiceProcess] = {}

    def start(**overrides: str) -> ServiceProcess:
        env = {**BASE_ENV, "ANTHROPIC_BASE_URL": fake.url, **overrides}
        env = {k: v for k, v in env.items() if v is not None}
        key = tuple(sorted(env.items()))
        if key not in started:
            started[key] = ServiceProcess(env, tmp_path_factory.mktemp("service") / "service.log")
        return started[key]

    yield start
    for service in started.values():
        service.stop()


@pytest.fixture(scope="session")
def service(start_service) -> ServiceProcess:  # type: ignore[no-untyped-def]
    return start_service()


@pytest.fixture
def client(service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=15) as http:
        yield http
