"""The compose files as an operator runs them: published on loopback unless told otherwise."""

import os
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT


def compose_command() -> list[str]:
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if os.environ.get("CI"):
        pytest.fail("no docker compose in CI (bash .ci/docker-setup installs it)")
    pytest.skip("no docker compose: bash .ci/docker-setup installs it")


def resolved(file: str, **env: str) -> dict[str, Any]:
    """The compose file as compose resolves it, with none of the variables it reads set but `env`."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("BIND_ADDRESS", "PORT", "REDIS_IMAGE", "CHAT_REDIS_URL")
    }
    result = subprocess.run(
        [*compose_command(), "-f", file, "config"],
        env={**clean, "ANTHROPIC_API_KEY": "config-check", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def published(file: str, **env: str) -> list[tuple[str, str]]:
    """(host address, host port) of each port the `chat` service publishes, as compose resolves them."""
    ports = resolved(file, **env)["services"]["chat"]["ports"]
    found = []
    for port in ports:
        if isinstance(port, dict):  # compose v2's long form
            found.append((port.get("host_ip", "0.0.0.0"), str(port["published"])))
        else:  # v1: "127.0.0.1:8000:8000/tcp"
            parts = str(port).split(":")
            found.append((parts[0] if len(parts) == 3 else "0.0.0.0", parts[-2]))
    return found


@pytest.mark.parametrize("file", ["docker-compose.yml", "docker-compose.demo.yml"])
def test_compose_publishes_on_loopback_unless_bind_address_says_otherwise(file: str) -> None:
    assert published(file) == [("127.0.0.1", "8000")]
    assert published(file, BIND_ADDRESS="0.0.0.0", PORT="9000") == [("0.0.0.0", "9000")]


@pytest.mark.parametrize("file", ["docker-compose.scale.yml", "docker-compose.demo.yml"])
def test_the_scale_and_demo_stacks_share_a_redis_without_persistence_for_resumable_answers(file: str) -> None:
    services = resolved(file)["services"]
    redis = services["redis"]
    command = redis["command"]
    options = dict(zip(command[1::2], command[2::2], strict=True))

    assert command[0] == "redis-server"
    assert services["chat"]["environment"]["CHAT_REDIS_URL"] == "redis://redis:6379/0"
    assert "redis" in services["chat"]["depends_on"]
    # Answers live minutes: nothing on disk, and bounded memory that gives up the answers least
    # recently written or read first (an answer in flight is written to all along).
    assert (options["--save"], options["--appendonly"]) == ("", "no")
    assert options["--maxmemory"]
    assert options["--maxmemory-policy"] == "allkeys-lru"
    assert "ports" not in redis  # reached by the service only, over the stack's own network
    assert redis["image"] == "redis:7"
    assert resolved(file, REDIS_IMAGE="chat-service-redis:bookworm")["services"]["redis"]["image"] == (
        "chat-service-redis:bookworm"
    )


def test_the_plain_stack_stays_stateless_without_redis() -> None:
    services = resolved("docker-compose.yml")["services"]
    assert set(services) == {"chat"}
    assert not any("REDIS" in name for name in services["chat"]["environment"])
