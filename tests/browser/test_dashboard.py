"""The helpdesk dashboard over a seeded broker (3,000 tickets): rendered in Chromium in under 2 s,
with the same figures as the API, its charts, filters and the CSV download."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import expect

from bench.seed_helpdesk import SeedSummary, seed_database
from tests.browser.conftest import screenshot, sign_in
from tests.support.accounts import PASSWORD, make_user
from tests.support.api import bearer, end_session, paired_session
from tests.support.broker import BrokerProcess

pytestmark = pytest.mark.slow

RENDER_LIMIT_SECONDS = 2.0
"""Issue 8: the dashboard renders the seeded data set in under 2 seconds."""
TICKETS = 3000


@pytest.fixture(scope="module")
def seeded(broker: BrokerProcess) -> SeedSummary:
    summary = seed_database(f"sqlite:///{broker.db_path}", tickets=TICKETS, seed=3, days=90)
    print("\nseed:", "; ".join(summary.lines()))
    return summary


def percent_text(rate: float | None) -> float | None:
    return None if rate is None else round(rate * 100, 1)


async def test_the_dashboard_renders_the_seeded_set_quickly_and_matches_the_api(broker, seeded, console_page) -> None:
    admin = bearer(broker.login())
    made = broker.http.post("/roles", headers=admin, json={"name": "kpi-viewer", "permissions": ["reports.read"]})
    assert made.status_code == 201, made.text
    make_user(broker, "dash-viewer", role="kpi-viewer")
    today = datetime.now(UTC).date()
    query = {"from": (today - timedelta(days=29)).isoformat(), "to": today.isoformat()}
    started = time.perf_counter()
    expected = broker.http.get("/reports/kpis", params=query, headers=admin)
    api_seconds = time.perf_counter() - started
    assert expected.status_code == 200, expected.text
    report = expected.json()
    assert report["overall"]["volume"] > 500  # the default range holds a good share of the seed

    page = await console_page(broker)
    await sign_in(page, "dash-viewer", PASSWORD)
    # The only section this account may open is the dashboard; it is where it lands.
    await expect(page.get_by_role("link", name="Dashboard")).to_have_attribute("aria-current", "page")
    await page.locator('section.dashboard[data-ready="true"]').wait_for()

    # A cold load: a fresh document, the console's modules, the report, tiles, charts and tables.
    await page.goto("about:blank")
    started = time.perf_counter()
    await page.goto(broker.base_url + "/#/dashboard")
    await page.locator('section.dashboard[data-ready="true"]').wait_for()
    render_seconds = time.perf_counter() - started
    print(f"\ndashboard render (navigation to charts drawn), {TICKETS} tickets, default 30 days: "
          f"{render_seconds * 1000:.0f} ms; GET /reports/kpis alone: {api_seconds * 1000:.0f} ms")
    assert render_seconds < RENDER_LIMIT_SECONDS

    f = report["overall"]
    for key, value in (("volume", f["volume"]), ("backlog", f["backlog"])):
        tile = page.locator(f'[data-kpi="{key}"]')
        await expect(tile.locator(".tile-value")).to_have_text(str(value))
    for key, rate in (("fcr", f["first_contact_resolution"]["rate"]), ("csat", f["csat"]["rate"]),
                      ("repeats", f["repeats"]["rate"])):
        tile = page.locator(f'[data-kpi="{key}"]')
        assert float(await tile.get_attribute("data-value") or "nan") == pytest.approx(rate)
        shown = float((await tile.locator(".tile-value").text_content() or "").split()[0])
        assert shown == pytest.approx(percent_text(rate), abs=0.051)
    assert float(await page.locator('[data-kpi="first-response"]').get_attribute("data-value") or "nan") == pytest.approx(
        f["first_response"]["median_seconds"])
    await expect(page.locator('[data-kpi="csat"] .tile-detail')).to_contain_text(f"{f['csat']['surveys']} surveys")

    # Charts: one bar per day, one backlog point per day, five rating bars.
    await expect(page.locator("#chart-volume rect.bar")).to_have_count(30)
    await expect(page.locator("#chart-backlog circle.dot")).to_have_count(30)
    await expect(page.locator("#chart-csat rect")).to_have_count(5)
    last = report["daily"][-1]
    await expect(page.locator("#chart-backlog circle.dot").last.locator("title")).to_have_text(
        f"{last['day']}: backlog {last['backlog']}")
    # Tables: a row per technician and per team, with their volumes.
    for group in report["technicians"]:
        row = page.get_by_role("table", name="Per technician").locator(f'tr[data-group="{group["name"]}"]')
        await expect(row.locator("td").first).to_have_text(str(group["figures"]["volume"]))
    await expect(page.get_by_role("table", name="Per team").locator("tbody tr")).to_have_count(len(report["teams"]))
    await screenshot(page, "dashboard-seeded")

    # The CSV button downloads the same range (and the export is audited).
    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="Download CSV").click()
    download = await download_info.value
    assert download.suggested_filename == f"deskhand-kpis-{query['from']}-to-{query['to']}.csv"
    rows = list(csv.DictReader(io.StringIO(Path(await download.path()).read_text(encoding="utf-8"))))
    assert (rows[0]["scope"], rows[0]["volume"], rows[0]["backlog"]) == ("overall", str(f["volume"]), str(f["backlog"]))
    assert broker.sql("SELECT count(*) FROM audit_events WHERE kind = 'report.exported' AND actor = 'user:dash-viewer'")[0][0] == 1

    # Filtering by a team redraws everything for that team.
    team = next(g for g in report["teams"] if g["id"] is not None)
    await page.locator('select[name="team"]').select_option(team["name"])
    await page.get_by_role("button", name="Show").click()
    await expect(page.locator(".dashboard-body > p.muted")).to_contain_text(f"team {team['name']}")
    await page.locator('section.dashboard[data-ready="true"]').wait_for()
    await expect(page.locator('[data-kpi="volume"] .tile-value')).to_have_text(str(team["figures"]["volume"]))
    await expect(page.get_by_role("table", name="Per team").locator("tbody tr")).to_have_count(1)

    # A range that ends before it starts is refused on the page (no request, no 422 in the console).
    await page.get_by_label("From (UTC)").fill(query["to"])
    await page.get_by_label("To (UTC)").fill(query["from"])
    await page.get_by_role("button", name="Show").click()
    await expect(page.get_by_role("alert")).to_have_text("The range ends before it starts: swap From and To.")


async def test_one_survey_answer_is_counted_in_the_singular(start_broker, console_page) -> None:
    fresh = start_broker(DESKHAND_REPEAT_WINDOW_DAYS="1")  # not the seeded one: exactly one answer in the range
    admin = bearer(fresh.login())
    session_id, host = paired_session(fresh, admin)
    assert end_session(fresh, admin, session_id, "fixed").status_code == 200
    answered = fresh.http.post(f"/sessions/{session_id}/survey", headers=bearer(host), json={"rating": 5})
    assert answered.is_success, answered.text

    page = await console_page(fresh)
    await sign_in(page, "admin", fresh.admin_password)
    await page.get_by_role("link", name="Dashboard").click()
    await page.locator('section.dashboard[data-ready="true"]').wait_for()
    await expect(page.locator("figure.chart figcaption").filter(has_text="Survey ratings")).to_have_text(
        "Survey ratings (1 answer)")
    await expect(page.locator('[data-kpi="csat"] .tile-detail')).to_have_text(re.compile(r"^1 survey · "))
    await expect(page.locator(".dashboard-body > p.muted")).to_contain_text("repeat window 1 day.")


async def test_the_dashboard_is_not_offered_without_reports_read(broker, console_page) -> None:
    make_user(broker, "dash-tech", role="technician")
    page = await console_page(broker)
    await sign_in(page, "dash-tech", PASSWORD)
    await expect(page.get_by_role("link", name="Dashboard")).to_have_count(0)
    await page.goto(broker.base_url + "/#/dashboard")
    await expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
