"""Makes the README's screenshots of the demo page: the real service, the fake API, Chromium.

uv run python -m tests.demo_screenshot        # writes docs/demo-page.png and docs/demo-page-phone.png
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from fake_anthropic import FakeAnthropic, Reply
from tests.browser import launch_chromium
from tests.conftest import API_KEY, BASE_ENV, FRONTEND_ENV, ROOT, ServiceProcess

CONVERSATION = [
    (
        "What does this service do?",
        "It relays a conversation to Claude and streams the answer back, token by token.",
    ),
    (
        "How does the page know\nwhat was said before?",
        "It sends the whole conversation with every message:\nthe service itself remembers nothing.",
    ),
]


def words(text: str) -> list[str]:
    return [word + " " for word in text.split(" ")[:-1]] + [text.split(" ")[-1]]


def converse(page: Page, fake: FakeAnthropic) -> None:
    for question, answer in CONVERSATION:
        fake.enqueue(
            Reply.text(words(answer), thinking=["The user asks about the service. ", "Keep it short."])
        )
        page.get_by_label("Message").fill(question)
        page.get_by_role("button", name="Send").click()
        expect(page.get_by_role("log").locator(".message.assistant").last).to_have_text(answer)
        expect(page.get_by_role("button", name="Send")).to_be_enabled()
    page.get_by_role("log").locator("details").first.click()  # the first thoughts, unfolded
    # A third question, caught while the model thinks.
    thoughts = ["The user asks what Stop does. ", *["…"] * 39]
    fake.enqueue(Reply.text(["Then", " it", " stops."], thinking=thoughts, thinking_seconds=20))
    page.get_by_label("Message").fill("And if I press Stop?")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("status")).to_be_visible()


def main() -> None:
    out = ROOT / "docs"
    fake = FakeAnthropic(api_key=API_KEY).start()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**BASE_ENV, **FRONTEND_ENV, "ANTHROPIC_BASE_URL": fake.url}
        service = ServiceProcess(env, Path(tmp) / "service.log")
        try:
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                for name, options in {
                    "demo-page.png": {"viewport": {"width": 960, "height": 760}},
                    "demo-page-phone.png": {"viewport": {"width": 390, "height": 720}, "is_mobile": True},
                }.items():
                    context = browser.new_context(**options, device_scale_factor=1)  # type: ignore[arg-type]
                    page = context.new_page()
                    page.goto(service.url)
                    converse(page, fake)
                    page.screenshot(path=out / name)
                    page.get_by_role("button", name="Stop").click()
                    context.close()
                    print(out / name)
                browser.close()
        finally:
            service.stop()
            fake.stop()


if __name__ == "__main__":
    main()
