"""A page on another port of the same host cannot play, export or download anything as the signed-in admin.

Ports do not make sites: a page at ``http://127.0.0.1:OTHER`` is the same site as the
broker at ``http://127.0.0.1:PORT``, so Chromium sends even the ``SameSite=Strict``
session cookie with the requests that page makes. Here such a page (a tiny
``http.server`` in the test) embeds the recording in ``<img>`` and ``<video>``, links
to it and to the export, and posts plain forms at the broker while the admin is signed
in: nothing is audited in the admin's name and not a byte of evidence comes back. The
console's own audit page still plays, seeks and exports.
"""

from __future__ import annotations

import http.server
import re
import threading
import zipfile
from collections.abc import Iterator

import pytest
from playwright.async_api import Request, expect

from tests.browser.conftest import sign_in
from tests.support.api import end_session, paired_session
from tests.support.broker import BrokerProcess
from tests.support.polling import async_wait_until
from tests.support.segments import put_segment, webm_segment

pytestmark = pytest.mark.slow

KPIS = "reports/kpis.csv?from=2026-01-01&to=2026-01-31"
EVIDENCE_KINDS = ("recording.played", "audit.exported", "report.exported")
ACCESS_LINE = re.compile(r'uvicorn\.access: \S+ - "(GET|POST|HEAD) (\S+) HTTP/[\d.]+" (\d{3})')
"""A line of the broker's access log: method, path with query, status."""


def foreign_html(api: str, session_id: str) -> str:
    """What another site would try: embed, link and post at the broker."""
    session = f"{api}/audit/sessions/{session_id}"
    forms = "".join(
        f'<form method="post" action="{action}" target="sink"><button id="{name}">{name}</button></form>'
        for name, action in (("post-playback", f"{session}/playbacks"), ("post-export", f"{session}/export"),
                             ("post-kpis", f"{api}/{KPIS}"))
    )
    return f"""<!doctype html><title>Cute cats</title>
<img src="{session}/recording"><img src="{session}/export"><img src="{api}/{KPIS}">
<video src="{session}/recording" preload="auto" autoplay muted></video>
<a id="link-recording" href="{session}/recording">cats</a> <a id="link-export" href="{session}/export">more cats</a>
{forms}<iframe name="sink"></iframe>"""


@pytest.fixture
def foreign_site(broker: BrokerProcess, recorded_session: str) -> Iterator[str]:
    """The URL of a page served from another port of 127.0.0.1."""
    page = foreign_html(broker.api, recorded_session).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cats.html"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def recorded_session(broker: BrokerProcess, admin: dict[str, str]) -> str:
    """An ended session with a three-second recording (three grey segments)."""
    session_id, host_token = paired_session(broker, admin)
    for index in range(3):
        stored = put_segment(broker, session_id, host_token, index, webm_segment(50 + 70 * index), offset_ms=index * 1000)
        assert stored.status_code == 204, stored.text
    assert end_session(broker, admin, session_id).status_code == 200
    return session_id


def evidence_events(broker: BrokerProcess) -> list[str]:
    marks = ",".join("?" * len(EVIDENCE_KINDS))
    return [str(k) for (k,) in broker.sql(f"SELECT kind FROM audit_events WHERE kind IN ({marks}) ORDER BY id", *EVIDENCE_KINDS)]


def broker_answers(broker: BrokerProcess, since: int) -> list[tuple[str, str, int]]:
    """(method, path, status) of every API request the broker answered since output line ``since`` (its access log)."""
    found = []
    for line in broker.output[since:]:
        if (logged := ACCESS_LINE.search(line)) and logged.group(2).startswith("/api/v1/"):
            found.append((logged.group(1), logged.group(2).split("?")[0].removeprefix("/api/v1"), int(logged.group(3))))
    return found


async def test_a_page_on_another_port_gets_nothing_and_records_nothing(broker, recorded_session, foreign_site, console_page) -> None:
    page = await console_page(broker)
    await sign_in(page, "admin", broker.admin_password)
    sent: list[Request] = []
    attacker = await page.context.new_page()
    attacker.on("request", lambda request: sent.append(request) if request.url.startswith(broker.api) else None)
    since = len(broker.output)
    session = f"/audit/sessions/{recorded_session}"

    def count(method: str, path: str) -> int:
        return sum((m, p) == (method, path) for m, p, _ in broker_answers(broker, since))

    async def answered(method: str, path: str, before: int = 0) -> None:
        await async_wait_until(lambda: count(method, path) > before, f"the broker to answer {method} {path}", timeout=15)

    await attacker.goto(foreign_site)
    for method, path in (("GET", f"{session}/recording"), ("GET", f"{session}/export"), ("GET", "/reports/kpis.csv")):
        await answered(method, path)
    for form, path in (("post-playback", f"{session}/playbacks"), ("post-export", f"{session}/export"),
                       ("post-kpis", "/reports/kpis.csv")):
        await attacker.locator(f"#{form}").click()
        await answered("POST", path)
    for link, path in (("link-recording", f"{session}/recording"), ("link-export", f"{session}/export")):
        await attacker.goto(foreign_site)
        await attacker.wait_for_load_state("networkidle")
        before = count("GET", path)
        await attacker.locator(f"#{link}").click()
        await answered("GET", path, before)
    targets = {f"{session}/recording", f"{session}/export", f"{session}/playbacks", "/reports/kpis.csv"}
    answers = [answer for answer in broker_answers(broker, since) if answer[1] in targets]  # not the console's own
    assert len(answers) >= 10 and [answer for answer in answers if answer[2] < 400] == [], answers
    # The browser did send the admin's cookie along, so it is the broker that gave nothing away: the
    # recording's GETs were signed in (403, no playback; 401 without the cookie), and the documents
    # (forms, links), whose request headers Playwright sees, carried it.
    assert {status for method, path, status in answers if path == f"{session}/recording"} == {403}, answers
    documents = [request for request in sent if request.resource_type == "document"]
    assert len(documents) == 5
    for request in documents:
        assert "deskhand_session=" in (await request.all_headers()).get("cookie", ""), request.url
    assert evidence_events(broker) == []

    # The console's own audit page plays, seeks and exports, each audited once.
    await page.evaluate(f"() => {{ location.hash = '#/audit/{recorded_session}'; }}")
    video = page.locator("video#recording")
    await page.wait_for_function("() => document.querySelector('video#recording')?.readyState >= 2", timeout=15_000)
    await video.evaluate("v => new Promise((done) => { v.addEventListener('seeked', done, { once: true }); v.currentTime = 2.4; })")
    assert await video.evaluate("v => v.seekable.length > 0 && v.seekable.end(0) > 2.5")
    assert abs(await video.evaluate("v => v.currentTime") - 2.4) < 0.1
    async with page.expect_download() as waiting:
        await page.get_by_role("button", name="Export bundle").click()
    download = await waiting.value
    assert download.suggested_filename == f"deskhand-session-{recorded_session}.zip"
    with zipfile.ZipFile(await download.path()) as bundle:
        assert "recording.webm" in bundle.namelist()
    await expect(page.locator("#export-status")).to_contain_text("Exported")
    assert evidence_events(broker) == ["recording.played", "audit.exported"]
