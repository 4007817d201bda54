"""The benchmark still runs and still checks every request (a few per scenario, no figures)."""

import importlib.util
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.skipif(
    importlib.util.find_spec("sse_starlette") is None,
    reason="the bench dependency group is not installed: uv sync --all-groups",
)
def test_benchmark_smoke_run_passes_its_correctness_checks() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=180
    )

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "all requests correct" in result.stdout
