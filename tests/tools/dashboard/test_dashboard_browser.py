"""The dashboard in headless Chromium: live figures arrive unreloaded; controls need the token.

Screenshots land in tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.tools.dashboard.rows import (
    RunningDashboard,
    insert_bucket,
    insert_verdict,
    now_s,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason=f"{CHROMIUM} is not installed (.ci/run installs Debian's chromium)",
)


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                   args=CHROMIUM_FLAGS)
        page = await browser.new_page(viewport={"width": 1400, "height": 1300})
        yield page
        await browser.close()


async def _seed_jobs(db: asyncpg.Connection, *, end_s: float, verdict: str, decision: str,
                     errors: int) -> None:
    """A 10 s bucket ending at ``end_s`` per target, and the evaluation at ``end_s``."""
    for target, target_errors in [("unified", errors), ("legacy", 0)]:
        await insert_bucket(db, "jobs", target, start_s=end_s - 10, requests=40,
                            errors=target_errors, p95_ms=400 + 5 * target_errors)
        await insert_verdict(db, "jobs", target, end_s=end_s, requests=200,
                             errors=target_errors, p95_ms=400,
                             verdict=verdict if target == "unified" else "healthy",
                             decision=decision)


async def test_live_figures_update_without_a_reload(
        page, running_dashboard: RunningDashboard, db: asyncpg.Connection) -> None:
    await db.execute("SELECT update_routing_percentage(10, 'Starting rollout at 10%')")
    now = now_s()
    for end_s in (now - 40, now - 30, now - 20, now - 10):
        await _seed_jobs(db, end_s=end_s, verdict="healthy", decision="proceed", errors=0)
    await page.goto(running_dashboard.url)
    unified = page.locator('#figures tr[data-domain="jobs"][data-target="unified"]')
    await unified.locator(".verdict", has_text="healthy").wait_for()
    assert await page.locator("#percentage").inner_text() == "10%"
    assert await page.locator(".uplot").count() == 9  # 3 domains x req/s, error %, P95

    # A critical verdict written by the workers shows up through the live feed.
    await _seed_jobs(db, end_s=now, verdict="critical", decision="rollback", errors=10)
    await unified.locator(".verdict", has_text="critical").wait_for(timeout=10_000)
    assert await unified.locator(".error-pct").inner_text() == "5.00"
    assert "over-critical" in (await unified.locator(".error-pct").get_attribute("class"))
    assert await page.locator("#timeline li", has_text="critical").count() >= 1

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-live.png"), full_page=True)


async def test_controls_are_read_only_until_the_token_is_given(
        page, running_dashboard: RunningDashboard, db: asyncpg.Connection) -> None:
    await page.goto(running_dashboard.url)
    set_percentage = page.locator('button[data-action="percentage"]')
    await page.locator("#percentage", has_text="0%").wait_for()
    assert await set_percentage.is_disabled()
    assert await page.locator("#mode").inner_text() == "read-only"

    await page.fill("#token", running_dashboard.token)
    await page.click("#token-form button")
    await page.fill("#percentage-input", "35")
    await page.fill("#reason", "Scaling to 35% from the dashboard")
    await set_percentage.click()
    await page.locator("#percentage", has_text="35%").wait_for(timeout=10_000)

    row = await db.fetchrow("SELECT percentage::float8 AS percentage, enabled, created_by, notes "
                            "FROM webhook_routing_config ORDER BY created_at DESC LIMIT 1")
    assert dict(row) == {"percentage": 35.0, "enabled": True, "created_by": "dashboard",
                         "notes": "Scaling to 35% from the dashboard"}
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-controls.png"), full_page=True)


async def test_a_wrong_token_changes_nothing(
        page, running_dashboard: RunningDashboard, db: asyncpg.Connection) -> None:
    await page.goto(f"{running_dashboard.url}/#token=not-the-token")
    await page.locator("#mode", has_text="controls on").wait_for()
    await page.fill("#percentage-input", "50")
    await page.click('button[data-action="percentage"]')
    result = page.locator("#control-result")
    await result.locator("text=refused").wait_for(timeout=10_000)
    assert await result.get_attribute("data-status") == "401"
    assert await db.fetchval("SELECT count(*) FROM webhook_routing_config") == 1
