"""The dashboard as a newcomer first sees it, in headless Chromium: a loading state, the
current percentage in its control, rates over the buckets covered, a red error % beside
`healthy` explained, thresholds in view, local ISO times. Screenshot in tests/artifacts/."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.tools.dashboard.rows import RunningDashboard, insert_bucket, insert_verdict, now_s
from tests.tools.dashboard.test_dashboard_browser import ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS
from tests.tools.dashboard.test_dashboard_browser import pytestmark as pytestmark


@pytest.fixture
async def page() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                   args=CHROMIUM_FLAGS)
        yield await browser.new_page(viewport={"width": 1400, "height": 1300})
        await browser.close()


LOCAL_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")


async def test_a_fresh_dashboard_says_it_has_no_verdicts_yet(
        page, running_dashboard: RunningDashboard, db: asyncpg.Connection) -> None:
    await db.execute("SELECT update_routing_percentage(25, 'Starting rollout at 25%')")
    await page.goto(running_dashboard.url)

    await page.locator("#loading", has_text="no verdicts yet").wait_for()
    await page.locator("#percentage", has_text="25%").wait_for()
    assert await page.locator("#percentage-input").input_value() == "25"


async def test_the_first_minutes_read_right(
        page, running_dashboard: RunningDashboard, db: asyncpg.Connection) -> None:
    await db.execute("SELECT update_routing_percentage(10, 'Starting rollout at 10%')")
    end = float(int(now_s()))
    # 20 s of traffic; unified has 1 error in 80 (1.25 %, over critical) but is healthy: one
    # error is not significant.
    for start in (end - 20, end - 10):
        await insert_bucket(db, "jobs", "unified", start_s=start, requests=40,
                            errors=1 if start == end - 10 else 0, p95_ms=200)
    await insert_verdict(db, "jobs", "unified", end_s=end, requests=80, errors=1, p95_ms=200,
                         verdict="healthy", decision="proceed")
    await page.goto(running_dashboard.url)
    unified = page.locator('#figures tr[data-domain="jobs"][data-target="unified"]')
    await unified.locator(".verdict", has_text="healthy").wait_for()

    assert await page.locator("#loading").is_hidden()
    assert await unified.locator(".rps").inner_text() == "4.00"  # 80 in 20 s, not 80 / 300 s
    assert "over-critical" in (await unified.locator(".error-pct").get_attribute("class"))
    assert "not significant yet" in await unified.locator(".error-note").inner_text()
    assert await page.locator("#percentage-input").input_value() == "10"
    for when in await page.locator("#timeline time, #history td:first-child").all_inner_texts():
        assert LOCAL_ISO.match(when), when
    # The error-% chart of a domain without errors still reaches past the critical line.
    top = await page.evaluate("() => charts['marketplace/error_pct'].scales.y.max")
    assert top >= 0.5  # the default critical_error_pct

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-first-minutes.png"), full_page=True)
