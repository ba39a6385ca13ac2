"""The console in a real headless Chromium, against `llmloop up` filled by `llmloop demo`.

Debian's chromium and chromedriver (scripts/install-browser.sh, run by
`scripts/install.sh dev`) are driven by Selenium; no browser is downloaded.
Screenshots of every page go to test-artifacts/console/ (LLMLOOP_TEST_ARTIFACTS).
"""

from __future__ import annotations

import http.server
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from llmloop.contracts.panels import DASHBOARDS
from llmloop.testing.server import wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

LLMLOOP = str(Path(sys.executable).with_name("llmloop"))
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("LLMLOOP_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "console"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str, timeout: float = 300) -> str:
    result = subprocess.run(
        [LLMLOOP, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


class Console:
    """`llmloop up` on a data dir holding demo history for projects demo and beta."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / "up.log"
        self.proc = subprocess.Popen(
            [LLMLOOP, "up", "--data-dir", str(data_dir), "--port", str(self.port)],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        wait_ready(self.url, self.proc, self.log, path="/healthz", timeout_s=90)
        deadline = time.monotonic() + 30
        while not (
            link := re.search(r"console: (http://\S+/console/signin\?token=\S+)", self.text())
        ):
            assert time.monotonic() < deadline, "llmloop up printed no sign-in link"
            time.sleep(0.2)
        self.signin_link = link[1]

    def text(self) -> str:
        return self.log.read_text()

    def query(self, sql: str) -> str:
        return cli("query", sql, "--data-dir", str(self.data_dir)).strip()

    def post(self, events: list[dict]) -> None:
        key = (self.data_dir / "local.key").read_text().strip()
        response = httpx.post(
            f"{self.url}/v1/events",
            json={"events": events},
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert response.status_code == 202, response.text

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("console") / "data"
    cli("demo", "--data-dir", str(data_dir), "--hours", "2")
    cli("demo", "--data-dir", str(data_dir), "--hours", "0.5", "--project", "beta")
    up = Console(data_dir)
    yield up
    up.stop()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), (
        "no /usr/bin/chromium + chromedriver: run scripts/install-browser.sh"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,1600")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def open_page(driver, url: str, shot: str) -> list[dict]:
    """Load ``url``, wait until the page says it is done, save a screenshot; its console log."""
    driver.get(url)
    deadline = time.monotonic() + 60
    while driver.execute_script("return document.body.dataset.loaded || ''") == "":
        assert time.monotonic() < deadline, f"{url} did not finish loading"
        time.sleep(0.1)
    driver.save_screenshot(str(ARTIFACTS / f"{shot}.png"))
    assert driver.execute_script("return document.body.dataset.loaded") == "true", (
        driver.find_element("tag name", "main").text[:500]
    )
    return driver.get_log("browser")


def errors(log: list[dict]) -> list[str]:
    return [e["message"] for e in log if e["level"] in ("SEVERE", "ERROR")]


def sign_in(driver, link: str) -> None:
    driver.delete_all_cookies()
    driver.get(link)
    assert "/console/d/" in driver.current_url, driver.current_url
    driver.get_log("browser")  # start each page's log empty


@pytest.mark.parametrize("uid", [d.uid for d in DASHBOARDS])
def test_each_dashboard_draws_its_charts_with_data_and_no_console_error(console, browser, uid):
    sign_in(browser, console.signin_link)
    log = open_page(browser, f"{console.url}/console/d/{uid}", f"dashboard-{uid}")
    assert errors(log) == []
    panels = browser.execute_script(
        "return [...document.querySelectorAll('#dashboard .panel')].map(p => "
        "({kind: p.dataset.kind, state: p.dataset.state, points: +p.dataset.points, "
        "canvases: p.querySelectorAll('canvas').length, title: p.querySelector('h3').textContent}))"
    )
    (dashboard,) = [d for d in DASHBOARDS if d.uid == uid]
    assert [p["title"] for p in panels] == [p.title for p in dashboard.panels]
    for panel in panels:
        assert panel["state"] == "ready" and panel["points"] > 0, panel
        if panel["kind"] in ("timeseries", "barchart"):
            assert panel["canvases"] >= 1, panel  # drawn by uPlot on a canvas


def test_the_root_sends_a_stranger_to_sign_in_and_the_api_docs_work_offline(console, browser):
    browser.delete_all_cookies()
    browser.get(console.url + "/")
    assert browser.current_url.endswith("/console/signin")
    browser.get(console.url + "/docs")
    deadline = time.monotonic() + 30
    while not browser.find_elements("css selector", ".swagger-ui .opblock"):
        assert time.monotonic() < deadline, "Swagger UI did not render"
        time.sleep(0.2)
    browser.save_screenshot(str(ARTIFACTS / "api-docs.png"))
    assert "/v1/events" in browser.find_element("tag name", "body").text
    assert errors(browser.get_log("browser")) == []


def test_a_conversation_opens_with_its_steps_and_feedback(console, browser):
    sign_in(browser, console.signin_link)
    log = open_page(
        browser, f"{console.url}/console/conversations?project=demo&flag=feedback", "conversations"
    )
    assert errors(log) == []
    rows = browser.find_elements("css selector", "#conversation-list tr.clickable")
    assert rows, "no conversations with feedback"
    rows[0].click()
    deadline = time.monotonic() + 30
    while browser.execute_script("return document.body.dataset.loaded || ''") == "" or (
        "/console/conversations/" not in browser.current_url
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    open_page(browser, browser.current_url, "conversation")
    steps = browser.find_elements("css selector", ".step")
    assert steps
    feedback = browser.find_elements("css selector", ".step table.feedback tr td")
    assert feedback, "the conversation shows no feedback"
    assert "Prompt" in steps[0].text and "Completion" in steps[0].text
    assert errors(browser.get_log("browser")) == []


def test_an_alert_shows_its_deliveries(console, browser):
    fingerprint = console.query(
        "SELECT fingerprint FROM notification_attempts WHERE project_id = 'demo' "
        "GROUP BY fingerprint ORDER BY count() DESC LIMIT 1"
    )
    sign_in(browser, console.signin_link)
    log = open_page(browser, f"{console.url}/console/alerts", "alerts")
    assert browser.find_elements("css selector", "#alert-list tr.clickable")
    log += open_page(browser, f"{console.url}/console/alerts/{fingerprint}", "alert")
    assert errors(log) == []
    deliveries = int(browser.find_element("id", "deliveries").get_attribute("data-rows"))
    assert deliveries > 0
    assert "delivered" in browser.find_element("id", "deliveries").text
    assert browser.find_elements("css selector", "#metric-history canvas")


def wait_until(check, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_a_reviewer_picks_the_better_answer_and_the_pair_reaches_the_retraining_data(
    console, browser
):
    marker = uuid.uuid4().hex[:8]
    prompt = f"How do I reset my password? ({marker})"
    better = f"Open Settings, choose Security, then Reset password ({marker})."
    worse = f"I cannot help with that ({marker})."
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    console.post(
        [
            {
                "type": "completion",
                "event_id": i,
                "model": "gpt-4o-mini",
                "prompt": prompt,
                "completion": text,
            }
            for i, text in zip(ids, [worse, better], strict=True)
        ]
    )
    wait_until(
        lambda: console.query(f"SELECT count() FROM completions WHERE prompt = '{prompt}'") == "2",
        what="the completions in the store",
    )
    sign_in(browser, console.signin_link)
    log = open_page(browser, f"{console.url}/console/review?kind=pair&project=default", "review")
    answers = browser.find_elements("css selector", "#review-item .answer")
    assert len(answers) == 2 and prompt in browser.find_element("css selector", "pre.prompt").text
    (choice,) = [a for a in answers if better in a.text]
    choice.find_element("css selector", "button.choose").click()
    wait_until(lambda: browser.find_elements("id", "judged"), 20, "the judgment to be sent")
    browser.save_screenshot(str(ARTIFACTS / "review-judged.png"))
    # The judgment is a feedback event through ingest, like the SDK's: in the store...
    wait_until(
        lambda: (
            console.query(
                "SELECT count() FROM feedback WHERE kind = 'preference' AND source = 'annotator' "
                f"AND toString(chosen_id) = '{ids[1]}' AND toString(rejected_id) = '{ids[0]}'"
            )
            == "1"
        ),
        what="the preference feedback row",
    )

    # ... and the retraining join made it a DPO pair, shown on the retraining page.
    def pair_shown() -> bool:
        open_page(browser, f"{console.url}/console/retraining?project=default", "retraining")
        return better in browser.find_element("id", "pairs").text

    wait_until(pair_shown, 60, "the pair on the retraining page")
    pairs = browser.find_element("id", "pairs").text
    assert worse in pairs and "preference" in pairs
    assert errors(log + browser.get_log("browser")) == []


def test_a_token_for_one_project_sees_nothing_of_another(console, browser):
    out = cli(
        "console", "token", "create", "--project", "beta", "--data-dir", str(console.data_dir)
    )
    token = out.splitlines()[0]
    assert token.startswith("llc_")
    demo_id = console.query(
        "SELECT toString(event_id) FROM completions WHERE project_id = 'demo' LIMIT 1"
    )
    demo_alert = console.query("SELECT fingerprint FROM alerts WHERE project_id = 'demo' LIMIT 1")
    sign_in(browser, f"{console.url}/console/signin?token={token}")
    open_page(browser, f"{console.url}/console/d/llmloop-overview", "scoped-overview")
    options = browser.execute_script(
        "return [...document.querySelector('select[name=project]').options].map(o => o.value)"
    )
    assert options == ["beta"]

    def api(path: str) -> tuple[int, str]:
        return browser.execute_script(
            "const r = await fetch(arguments[0]); return [r.status, await r.text()];", path
        )

    assert api("/console/api/d/llmloop-overview/0?project=demo")[0] == 403
    assert api(f"/console/api/conversations/{demo_id}")[0] == 404
    assert api(f"/console/api/alerts/{demo_alert}")[0] == 404
    status, listed = api("/console/api/conversations")
    assert status == 200 and demo_id not in listed
    status, retraining = api("/console/api/retraining")
    assert status == 200 and '"project_id":"demo"' not in retraining.replace(" ", "")
    status, alerts = api("/console/api/alerts")
    assert status == 200 and "project=demo" not in alerts and '"demo"' not in alerts
    beta = console.query("SELECT count() FROM completions WHERE project_id = 'beta'")
    table = browser.execute_script(
        "return document.querySelector('#dashboard .panel:last-child table').innerText"
    )
    lines = [line.split("\t") for line in table.strip().splitlines()]
    assert lines[0][:2] == ["model", "requests"]
    requests = sum(int(cells[1].replace(",", "")) for cells in lines[1:])
    assert requests == int(beta)  # the latency table counts beta's completions, not demo's


class _Attacker(http.server.BaseHTTPRequestHandler):
    target = ""

    def do_GET(self):
        page = f"""<!doctype html><html><body>
<form id="f" method="post" action="{self.target}" enctype="text/plain">
<input name='{{"key":"x","verdict":"preference","chosen_id":"' value='"}}'></form>
<script>document.getElementById("f").submit()</script></body></html>"""
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(page.encode())

    def log_message(self, *args):
        pass


def test_a_cross_site_post_is_refused(console, browser):
    before = console.query("SELECT count() FROM feedback WHERE source = 'annotator'")
    _Attacker.target = f"{console.url}/console/api/review/judge"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Attacker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sign_in(browser, console.signin_link)  # the victim is signed in
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        wait_until(lambda: "/console/api/review/judge" in browser.current_url, 20, "the POST")
        body = browser.find_element("tag name", "body").text
        browser.save_screenshot(str(ARTIFACTS / "cross-site-post.png"))
    finally:
        server.shutdown()
    assert "cross-site request refused" in body or "CSRF" in body, body
    # Same origin but without the page's CSRF token: refused too.
    status = browser.execute_script(
        "const r = await fetch('/console/api/review/skip', {method: 'POST', body: '{}', "
        "headers: {'Content-Type': 'application/json'}}); return r.status;"
    )
    assert status == 403
    time.sleep(1)
    assert console.query("SELECT count() FROM feedback WHERE source = 'annotator'") == before


def test_promoting_a_model_version_asks_first_and_a_failed_gate_needs_the_override(
    console, browser
):
    version, passed = console.query(
        "SELECT version, gate_passed FROM model_versions FINAL WHERE project_id = 'demo' "
        "ORDER BY registered_at DESC LIMIT 1"
    ).split("\t")
    sign_in(browser, console.signin_link)
    open_page(browser, f"{console.url}/console/retraining?project=demo", "retraining-demo")
    button = browser.find_element("css selector", f"button.promote[data-version='{version}']")
    button.click()
    dialog = browser.find_element("id", "confirm")
    assert version in dialog.text
    if passed == "false":
        assert "FAILED" in dialog.text and "Override the gate" in dialog.text
    browser.find_element("id", "confirm-no").click()  # cancelled: nothing happens
    time.sleep(1)
    assert (
        console.query(f"SELECT status FROM model_versions FINAL WHERE version = '{version}'")
        != "promoted"
    )
    button.click()
    browser.find_element("id", "confirm-yes").click()
    wait_until(lambda: browser.find_elements("id", "notice"), 20, "the answer to the promotion")
    notice = browser.find_element("id", "notice").text
    assert notice.startswith("promoted"), notice
    wait_until(
        lambda: (
            console.query(f"SELECT status FROM model_versions FINAL WHERE version = '{version}'")
            == "promoted"
        ),
        60,
        "the promotion recorded by the processor",
    )
    assert errors(browser.get_log("browser")) == []


def test_llmloop_console_serves_a_store_on_its_own(tmp_path):
    """The distributed runtime's console: `llmloop console --store …` reads, needs a token."""
    data_dir = tmp_path / "data"
    cli("migrate", "--data-dir", str(data_dir))
    token = cli(
        "console", "token", "create", "--project", "shop", "--data-dir", str(data_dir)
    ).split()[0]
    port = free_port()
    log = tmp_path / "console.log"
    proc = subprocess.Popen(
        [LLMLOOP, "console", "--data-dir", str(data_dir), "--console-port", str(port)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log, path="/console/signin", timeout_s=60)
        with httpx.Client(base_url=url) as client:
            assert client.get("/console/api/d/llmloop-overview/0").status_code == 401
            client.get(f"/console/signin?token={token}")
            panel = client.get("/console/api/d/llmloop-overview/0")
            assert panel.status_code == 200 and panel.json()["kind"] == "timeseries"
            assert client.get("/console/api/filters").json()["project"] == ["shop"]
            assert client.get("/v1/events").status_code == 404  # no ingest API here
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def test_an_alerts_window_opens_its_conversations(console, browser):
    fingerprint = console.query(
        "SELECT fingerprint FROM alerts WHERE project_id = 'demo' ORDER BY ts DESC LIMIT 1"
    )
    sign_in(browser, console.signin_link)
    open_page(browser, f"{console.url}/console/alerts/{fingerprint}", "alert-latest")
    browser.find_element("id", "conversations-window").click()
    wait_until(lambda: "/console/conversations?" in browser.current_url, 20, "the conversations")
    open_page(browser, browser.current_url, "conversations-alert-window")
    rows = int(browser.find_element("id", "conversation-list").get_attribute("data-rows"))
    assert rows > 0
    assert errors(browser.get_log("browser")) == []
