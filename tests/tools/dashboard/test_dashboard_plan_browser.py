"""A rollout plan walked through the dashboard in headless Chromium: set, bake, promote, pause,
abort, with a domain taken back on its own on the way. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import asyncpg

from tests.tools.dashboard.rows import RunningDashboard, insert_verdict, now_s
from tests.tools.dashboard.test_dashboard_browser import ARTIFACTS, page, pytestmark

__all__ = ["page", "pytestmark"]


async def _proceed_everywhere(db: asyncpg.Connection, count: int) -> None:
    """``count`` stored unified proceed verdicts per rollout domain, newest last."""
    end = now_s()
    for domain in ("jobs", "marketplace", "property"):
        for i in range(count):
            await insert_verdict(db, domain, "unified", end_s=end - 10 * (count - i),
                                 requests=200, errors=0, p95_ms=300, verdict="healthy",
                                 decision="proceed")


async def test_a_plan_walked_through_the_dashboard(
        page, running_dashboard: RunningDashboard, db: asyncpg.Connection) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    panel = page.locator("#plan")
    await page.goto(f"{running_dashboard.url}/#token={running_dashboard.token}")
    await page.locator("#mode", has_text="controls on").wait_for()
    await page.locator('#plan[data-state="none"]').wait_for()

    # Set: 10, 25, 50 % with a 2 s bake; step 1 is in force at once, not baked, no evidence.
    await page.fill("#plan-steps-input", "10,25,50")
    await page.fill("#plan-bake-input", "2s")
    await page.fill("#reason", "rollout day from the dashboard")
    await page.click('button[data-action="plan-set"]')
    await page.locator('#plan[data-state="running"][data-step="1"]').wait_for(timeout=10_000)
    await page.locator("#percentage", has_text="10%").wait_for(timeout=10_000)
    await page.locator("#plan-blockers li", has_text="0 of 30 proceed verdicts").first.wait_for()
    await page.screenshot(path=str(ARTIFACTS / "dashboard-plan-1-set.png"), full_page=True)

    # Bake: the step bakes and proceed verdicts arrive; the blockers give way to "ready".
    await _proceed_everywhere(db, 30)
    await page.locator("#plan-blockers li.ready").wait_for(timeout=15_000)
    jobs = page.locator('#plan-evidence tr[data-domain="jobs"] .evidence')
    assert await jobs.inner_text() == "30 / 30"
    await page.screenshot(path=str(ARTIFACTS / "dashboard-plan-2-baked.png"), full_page=True)

    # Promote: step 2, 25 % for every domain; the new step bakes from zero.
    await page.fill("#reason", "promote from the dashboard")
    await page.click('button[data-action="plan-promote"]')
    await page.locator('#plan[data-state="running"][data-step="2"]').wait_for(timeout=10_000)
    await page.locator("#percentage", has_text="25%").wait_for(timeout=10_000)
    assert await panel.locator(".steps li.current").inner_text() == "25%"
    await page.screenshot(path=str(ARTIFACTS / "dashboard-plan-3-promoted.png"), full_page=True)

    # One domain taken back on its own (a worker's rollback): the others keep routing.
    await db.execute("SELECT set_routing_enabled(false, 'jobs 5xx', 'jobs')")
    jobs_row = page.locator('#plan-evidence tr[data-domain="jobs"]')
    await jobs_row.locator("td", has_text="25% off (own)").wait_for(timeout=10_000)
    assert "25% on" in await page.locator(
        '#plan-evidence tr[data-domain="property"]').inner_text()

    # Pause: the plan holds and says why.
    await page.fill("#reason", "pause from the dashboard")
    await page.click('button[data-action="plan-pause"]')
    await page.locator('#plan[data-state="paused"]').wait_for(timeout=10_000)
    await page.locator("#plan-blockers li", has_text="plan is paused").wait_for()
    await page.screenshot(path=str(ARTIFACTS / "dashboard-plan-4-paused.png"), full_page=True)

    # Abort: the plan ends and every domain goes back to legacy.
    await page.fill("#reason", "abort from the dashboard")
    await page.click('button[data-action="plan-abort"]')
    await page.locator('#plan[data-state="aborted"]').wait_for(timeout=10_000)
    await page.locator("#enabled", has_text="disabled").wait_for(timeout=10_000)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-plan-5-aborted.png"), full_page=True)

    actions = await db.fetch("SELECT action, created_by, notes FROM webhook_rollout_plan "
                             "ORDER BY id")
    assert [(r["action"], r["created_by"]) for r in actions] == [
        ("set", "dashboard"), ("promote", "dashboard"), ("pause", "dashboard"),
        ("abort", "dashboard")]
    assert actions[1]["notes"] == "promote from the dashboard"


async def test_plan_controls_need_the_token(
        page, running_dashboard: RunningDashboard, db: asyncpg.Connection) -> None:
    await page.goto(f"{running_dashboard.url}/#token=not-the-token")
    await page.locator("#mode", has_text="controls on").wait_for()

    await page.click('button[data-action="plan-set"]')

    result = page.locator("#control-result")
    await result.locator("text=refused").wait_for(timeout=10_000)
    assert await result.get_attribute("data-status") == "401"
    assert await db.fetchval("SELECT count(*) FROM webhook_rollout_plan") == 0


async def test_one_domain_rolled_back_from_the_dashboard_the_others_keep_routing(
        page, running_dashboard: RunningDashboard, db: asyncpg.Connection) -> None:
    await db.execute("SELECT update_routing_percentage(25, 'rollout at 25%')")
    await page.goto(f"{running_dashboard.url}/#token={running_dashboard.token}")
    await page.locator('#domain-select option[value="jobs"]').wait_for(state="attached")

    await page.select_option("#domain-select", "jobs")
    await page.fill("#reason", "jobs errors, by hand")
    await page.click('button[data-action="rollback"]')

    jobs_row = page.locator('#plan-evidence tr[data-domain="jobs"]')
    await jobs_row.locator("td", has_text="25% off (own)").wait_for(timeout=10_000)
    rows = await db.fetch("SELECT domain, enabled FROM webhook_routing_domains")
    assert {r["domain"]: r["enabled"] for r in rows} == {
        "jobs": False, "marketplace": True, "property": True}
    await page.screenshot(path=str(ARTIFACTS / "dashboard-domain-rollback.png"), full_page=True)
