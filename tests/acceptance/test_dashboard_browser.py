"""The dashboard in a real browser: headless Chromium (Debian's ``chromium``
package, driven by Playwright with ``executable_path``; no browser download)
against the app serving the test database, with a real worker running jobs.

Screenshots land in ``tests/artifacts/`` (not committed)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pgbroker import jobs
from tests.support import job_in, require, wait_for
from tests.support.workload import probe_flaky, probe_record

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"



@pytest.fixture
def browser():
    require(Path(CHROMIUM).exists(), "no chromium (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda e: problems.append(str(e)))
    opened.problems = problems
    yield opened
    context.close()


def log_in(page, web_url: str, token: str) -> None:
    page.goto(web_url + "/")
    assert page.url.endswith("/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(web_url + "/")


def confirm(page, action: str) -> None:
    page.click(f"button[data-action={action}]")
    page.click(f"button[data-confirm={action}]")
    page.wait_for_selector(".flash")


def test_an_admin_logs_in_sees_the_queues_retries_a_dead_job_and_pauses_a_queue(
        broker, web_url, web_config, worker, page):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    for message in probe_record.send_many([{"key": f"ok-{i}"} for i in range(12)]):
        job_in(message.message_id, "done")
    # Fails on each of its 4 runs (3 retries), so it dies; a 5th run succeeds.
    dead = probe_flaky.send(key="flaky", failures=4).message_id
    job_in(dead, "dead", timeout=20)
    probe_record.send_with_options(kwargs={"key": "later"}, delay=3_600_000)

    log_in(page, web_url, web_config.admin_token)
    expect(page.locator('[data-queue="probe-flaky"]')).to_be_visible()
    expect(page.locator('[data-queue="probe-flaky"] .c-dead')).to_have_text("1")
    page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)

    page.goto(web_url + "/jobs?state=dead")
    page.click(f'a[href="/jobs/{dead}"]')
    expect(page.locator(".job-head .badge")).to_have_text("dead")
    expect(page.locator("details.attempt")).to_have_count(4)
    expect(page.locator("pre.trace").last).to_contain_text("flaky failure 4 of 4")
    page.screenshot(path=str(ARTIFACTS / "job.png"), full_page=True)

    confirm(page, "retry")
    # The page refreshes itself: the badge follows the job to done.
    expect(page.locator(".job-head .badge")).to_have_text("done", timeout=15_000)
    assert jobs.get_job(dead, broker=broker).state == "done"

    page.goto(web_url + "/")
    page.locator('[data-queue="probe-record"]').locator("button[data-action=pause]").click()
    page.click("button[data-confirm=pause]")
    expect(page.locator('[data-queue="probe-record"] .b-paused')).to_be_visible()
    assert [p.queue_name for p in jobs.paused_queues(broker=broker)] == ["probe-record"]

    # The same action without the CSRF token, with the session cookie: refused.
    refused = page.request.post(web_url + "/actions/resume",
                                form={"queue": "probe-record", "confirmed": "yes"})
    assert refused.status == 403
    assert [p.queue_name for p in jobs.paused_queues(broker=broker)] == ["probe-record"]
    jobs.resume_queue("probe-record", broker=broker)
    assert page.problems == []  # no CSP violation, no script error


def test_the_overview_refreshes_itself_and_reads_on_a_phone_in_dark_mode(
        broker, web_url, web_config, browser):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 390, "height": 844},
                                  color_scheme="dark", device_scale_factor=2)
    page = context.new_page()
    log_in(page, web_url, web_config.viewer_token)
    queued = page.locator(".total.t-queued .n")
    expect(queued).to_have_text("0")

    probe_record.send_many([{"key": f"wait-{i}"} for i in range(3)])

    expect(queued).to_have_text("3", timeout=10_000)  # no reload: htmx swapped it in
    wait_for(lambda: page.evaluate("document.body.scrollWidth") <= 390 + 1,
             what="the page to fit a phone's width")
    page.screenshot(path=str(ARTIFACTS / "overview-phone-dark.png"), full_page=True)
    assert page.locator("button[data-action]").count() == 0  # a viewer gets no buttons
    context.close()
