"""The benchmark still runs and still checks every request: a few requests per scenario, no figures.

`bench/run.py --smoke` starts the reference relay and the service (one uvicorn worker each, on
core 0) and the fake Anthropic API, sends a few requests of each scenario straight to the fake
and through both relays, and exits non-zero if any answer is wrong (token count, exact text,
event order, `[DONE]`) or failed. It writes nothing to docs/.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MISSING = [name for name in ("sse_starlette", "uvloop", "orjson") if importlib.util.find_spec(name) is None]


@pytest.mark.skipif(
    bool(MISSING), reason=f"bench dependency group not installed ({', '.join(MISSING)}): uv sync --all-groups"
)
@pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2 or shutil.which("taskset") is None,
    reason="the benchmark needs 2 usable cores and taskset (relay on core 0, load on core 1)",
)
def test_benchmark_smoke_run_passes_its_correctness_checks() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "all requests correct" in result.stdout
