"""The compose files as an operator runs them: published on loopback unless told otherwise."""

import os
import shutil
import subprocess

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


def published(file: str, **env: str) -> list[tuple[str, str]]:
    """(host address, host port) of each port the `chat` service publishes, as compose resolves them."""
    clean = {k: v for k, v in os.environ.items() if k not in ("BIND_ADDRESS", "PORT")}
    result = subprocess.run(
        [*compose_command(), "-f", file, "config"],
        env={**clean, "ANTHROPIC_API_KEY": "config-check", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    ports = yaml.safe_load(result.stdout)["services"]["chat"]["ports"]
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
