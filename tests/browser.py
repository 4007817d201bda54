"""A real browser for the tests: Playwright driving Debian's Chromium.

Playwright's own browser download needs a CDN this machine cannot reach, so the browser is the
distribution's (`apt-get install -y chromium`; `.ci/run` installs it).
"""

from __future__ import annotations

import os
import shutil
from functools import cache
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@cache
def chromium_problem() -> str | None:
    if shutil.which(CHROMIUM) is None:
        return f"no Chromium at {CHROMIUM}"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Playwright is not installed"
    return None


def require_chromium() -> None:
    if (problem := chromium_problem()) is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{problem}; CI must run the browser tests (.ci/run installs Chromium)")
    pytest.skip(f"{problem}: `apt-get install -y chromium` enables the browser tests")


def launch_chromium(playwright: Playwright) -> Browser:
    # Chromium's sandbox cannot start as root, as in CI containers.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    return playwright.chromium.launch(executable_path=CHROMIUM, args=args)
