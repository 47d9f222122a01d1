"""`kubectl cronfleet dashboard` in a real headless Chromium, against the real control plane.

The browser is Debian's `chromium` driven through Debian's `chromedriver`
(nothing downloaded by Selenium), with background networking off and a proxy
that refuses everything but loopback, so the pages can reach nothing else.
Set CRONFLEET_DASHBOARD_SCREENSHOTS=<directory> to save both pages as PNGs
(the README's: `CRONFLEET_DASHBOARD_SCREENSHOTS=docs pytest ... -k run_now`).
"""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml
from aiohttp import web
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from cronfleet.plugin.dashboard.server import build_app, start
from cronfleet.plugin.kubeconfig import load_session
from cronfleet_devcluster.kube import NAMESPACES, SCHEDULES, Object, Resource
from tests.integration.conftest import REPO_ROOT, Cluster, OperatorProcess
from tests.integration.test_chart import ROLEBINDINGS, user_token

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    # Everything not on loopback goes to a proxy that is not there: refused.
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=127.0.0.1;localhost",
    "--window-size=1280,800",
)
ROLES = Resource("rbac.authorization.k8s.io/v1", "roles")
SCREENSHOTS = os.environ.get("CRONFLEET_DASHBOARD_SCREENSHOTS", "")
WAIT = 20


# -- the dashboard, served from a thread of the test process ----------------------------


@dataclass
class Served:
    url: str
    port: int
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    runner: web.AppRunner

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


def serve(kubeconfig: Path, namespace: str | None) -> Served:
    """The dashboard as `kubectl cronfleet dashboard --port 0` builds it, with this kubeconfig."""
    session = load_session(str(kubeconfig), None, namespace)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="dashboard", daemon=True)
    thread.start()

    async def starting() -> tuple[web.AppRunner, str]:
        runner, url = await start(build_app(session, namespace, long_poll_seconds=10), 0)
        return runner, url

    runner, url = asyncio.run_coroutine_threadsafe(starting(), loop).result(30)
    port = int(url.rsplit(":", 1)[1].strip("/"))
    return Served(url, port, loop, thread, runner)


@pytest.fixture
def dashboard_for(cluster: Cluster) -> Iterator[Callable[[Path, str | None], Served]]:
    started: list[Served] = []

    def start_one(kubeconfig: Path, namespace: str | None) -> Served:
        served = serve(kubeconfig, namespace)
        started.append(served)
        return served

    yield start_one
    for served in started:
        served.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} missing: the dashboard's browser tests need Debian's "
            "packages: apt-get install -y chromium chromium-driver"
        )
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


# -- what the tests read and write -------------------------------------------------------


def example(name: str, namespace: str) -> Object:
    """One of the repository's examples (a `command` task), moved into the test's namespace."""
    body: Object = yaml.safe_load((REPO_ROOT / "examples" / f"{name}.yaml").read_text())
    body["metadata"]["namespace"] = namespace
    return body


def command_schedule(name: str, cron: str, argv: list[str]) -> Object:
    return {
        "apiVersion": "cronfleet.io/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": name},
        "spec": {"cron": cron, "task": "command", "params": {"argv": argv}},
    }


def wait_for(
    driver: webdriver.Chrome, what: str, probe: Callable[[], Any], timeout: float = WAIT
) -> Any:
    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=ignored).until(
        lambda _: probe(), message=f"{what} not seen within {timeout:.0f}s"
    )


# The live blocks are replaced whenever a Schedule changes: each read below is one
# script, so it sees one version of the page (no element found, then replaced).
def rows(driver: webdriver.Chrome) -> list[tuple[str, str]]:
    found = driver.execute_script(
        "return Array.from(document.querySelectorAll('#fleet tr.schedule'))"
        ".map(row => [row.dataset.namespace, row.dataset.name]);"
    )
    return [(str(namespace), str(name)) for namespace, name in found]


def row_cells(driver: webdriver.Chrome, name: str) -> list[str]:
    found = driver.execute_script(
        "const row = document.querySelector(`#fleet tr.schedule[data-name='${arguments[0]}']`);"
        "return row ? Array.from(row.cells).map(cell => cell.innerText) : [];",
        name,
    )
    return [str(text) for text in found]


def text_of(driver: webdriver.Chrome, selector: str) -> str:
    found = driver.execute_script(
        "const el = document.querySelector(arguments[0]); return el ? el.innerText : '';",
        selector,
    )
    return str(found)


def cell(driver: webdriver.Chrome, name: str, index: int) -> str:
    cells = row_cells(driver, name)
    return cells[index] if index < len(cells) else ""


def click(driver: webdriver.Chrome, selector: str) -> bool:
    driver.find_element(By.CSS_SELECTOR, selector).click()
    return True


def choose(driver: webdriver.Chrome, selector: str, value: str) -> bool:
    Select(driver.find_element(By.CSS_SELECTOR, selector)).select_by_value(value)
    return True


def card(driver: webdriver.Chrome, name: str) -> int:
    text = text_of(driver, f"#stat-{name}")
    return int(text) if text.isdigit() else -1


def still_there(element: WebElement) -> bool:
    """False once the page was reloaded (its old elements are gone)."""
    try:
        element.get_attribute("id")
    except StaleElementReferenceException:
        return False
    return True


def screenshot(driver: webdriver.Chrome, name: str, height: int = 943) -> None:
    # The window is its viewport plus what headless Chromium keeps for its frame: 800 px shown.
    if SCREENSHOTS:
        directory = Path(SCREENSHOTS)
        directory.mkdir(parents=True, exist_ok=True)
        size = driver.get_window_size()
        driver.set_window_size(1280, height)
        try:
            driver.save_screenshot(str(directory / name))
        finally:
            driver.set_window_size(size["width"], size["height"])


def send(
    served: Served,
    method: str,
    path: str,
    host: str | None = None,
    headers: dict[str, str] | None = None,
    body: str | None = None,
) -> tuple[int, str, http.client.HTTPResponse]:
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host=True)
        connection.putheader("Host", host or f"127.0.0.1:{served.port}")
        for key, value in (headers or {}).items():
            connection.putheader(key, value)
        encoded = (body or "").encode()
        if method == "POST":
            connection.putheader("Content-Type", "application/x-www-form-urlencoded")
            connection.putheader("Content-Length", str(len(encoded)))
        connection.endheaders(encoded if method == "POST" else None)
        response = connection.getresponse()
        return response.status, response.read().decode(), response
    finally:
        connection.close()


def session_credentials(served: Served, schedule_path: str) -> tuple[str, str]:
    """What a page of the dashboard hands its user: the CSRF cookie and the form's token."""
    status, _, response = send(served, "GET", schedule_path)
    assert status == 200
    cookie = (response.getheader("Set-Cookie") or "").split(";", 1)[0]
    assert cookie.startswith(f"cronfleet_dashboard_csrf_{served.port}="), cookie
    status, form, _ = send(served, "GET", f"{schedule_path}/confirm/run-now")
    assert status == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token is not None, form
    return cookie, token.group(1)


def annotations_of(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    found: dict[str, str] = (
        cluster.kube.get(SCHEDULES, name, namespace)["metadata"].get("annotations") or {}
    )
    return found


def viewer_kubeconfig(cluster: Cluster, namespace: str, directory: Path) -> Path:
    """A kubeconfig with a real ServiceAccount token whose role reads Schedules, and no more."""
    cluster.kube.create(
        ROLES,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "schedule-viewer"},
            "rules": [
                {
                    "apiGroups": ["cronfleet.io"],
                    "resources": ["schedules"],
                    "verbs": ["get", "list", "watch"],
                },
                {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
            ],
        },
        namespace,
    )
    token = user_token(cluster, namespace, "viewer")
    cluster.kube.create(
        ROLEBINDINGS,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "viewer-schedule-viewer"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "schedule-viewer",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": namespace}],
        },
        namespace,
    )
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["users"] = [{"name": "viewer", "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = "viewer"
        context["context"]["namespace"] = namespace
    path = directory / "viewer.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


# -- the tests -----------------------------------------------------------------------------


def test_the_table_shows_the_examples_filters_them_and_follows_changes(
    request: pytest.FixtureRequest,
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    browser: webdriver.Chrome,
    dashboard_for: Callable[[Path, str | None], Served],
) -> None:
    for name in ("heartbeat", "nightly-cleanup"):
        cluster.kube.create(SCHEDULES, example(name, namespace), namespace)
    # A second namespace, so that the namespace filter has something to leave out.
    other = f"{namespace}-other"
    cluster.kube.create(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}}
    )
    request.addfinalizer(lambda: cluster.kube.delete(NAMESPACES, other))
    cluster.kube.create(SCHEDULES, command_schedule("heartbeat", "0 4 * * *", ["true"]), other)
    served = dashboard_for(cluster.kubeconfig, None)  # -A: every namespace
    browser.get(served.url)
    mine = {(namespace, "heartbeat"), (namespace, "nightly-cleanup")}
    wait_for(
        browser, "every namespace", lambda: mine | {(other, "heartbeat")} <= set(rows(browser))
    )
    # The operator's status arrives through the watch: the phase and the schedule in words.
    wait_for(browser, "heartbeat Active", lambda: "Active" in cell(browser, "heartbeat", 3))
    cleanup = row_cells(browser, "nightly-cleanup")
    assert cleanup[2] == "At 00:00 (Europe/Berlin)", cleanup
    body = browser.find_element(By.TAG_NAME, "body")

    wait_for(browser, "namespace chosen", lambda: choose(browser, "#namespace", namespace))
    wait_for(browser, "only this namespace", lambda: set(rows(browser)) == mine)
    address = f"/?{urlencode({'namespace': namespace})}"
    wait_for(browser, "the filter in the address", lambda: browser.current_url.endswith(address))
    assert card(browser, "schedules") == 2

    search = browser.find_element(By.ID, "search")
    search.send_keys("NIGHT")
    wait_for(browser, "the search", lambda: rows(browser) == [(namespace, "nightly-cleanup")])
    search.clear()
    search.send_keys("x")  # `clear` fires no input event; a key does
    wait_for(browser, "no match", lambda: rows(browser) == [])
    assert "No Schedule matches" in text_of(browser, "#fleet")
    search.send_keys("\b")
    wait_for(browser, "both again", lambda: set(rows(browser)) == mine)

    # A Schedule made elsewhere appears, counted, without a reload.
    cluster.kube.create(
        SCHEDULES, command_schedule("made-elsewhere", "0 3 * * *", ["true"]), namespace
    )
    wait_for(
        browser, "the new Schedule", lambda: (namespace, "made-elsewhere") in set(rows(browser))
    )
    wait_for(browser, "three Schedules counted", lambda: card(browser, "schedules") == 3)
    cluster.kube.patch(
        SCHEDULES,
        "made-elsewhere",
        {"metadata": {"annotations": {"cronfleet.io/pause": "x"}}},
        namespace,
    )
    wait_for(browser, "Paused", lambda: "Paused" in cell(browser, "made-elsewhere", 3))
    wait_for(browser, "two enabled", lambda: card(browser, "enabled") == 2)
    wait_for(browser, "phase chosen", lambda: choose(browser, "#phase", "Paused"))
    wait_for(browser, "the phase filter", lambda: rows(browser) == [(namespace, "made-elsewhere")])
    assert still_there(body), "the page was reloaded"


def test_run_now_with_confirmation_adds_the_run_to_the_history_without_a_reload(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    browser: webdriver.Chrome,
    dashboard_for: Callable[[Path, str | None], Served],
) -> None:
    cluster.kube.create(SCHEDULES, example("nightly-cleanup", namespace), namespace)
    cluster.kube.create(SCHEDULES, example("heartbeat", namespace), namespace)
    paused = command_schedule("report-export", "30 6 * * 1-5", ["true"])
    paused["metadata"]["annotations"] = {"cronfleet.io/pause": "quarter close"}
    cluster.kube.create(SCHEDULES, paused, namespace)
    served = dashboard_for(cluster.kubeconfig, namespace)
    page = f"{served.url}schedules/{namespace}/nightly-cleanup"
    browser.get(page)
    wait_for(browser, "Active", lambda: text_of(browser, "#phase") == "Active")
    assert "No run yet." in text_of(browser, "#history")
    next_runs = text_of(browser, "table.next-runs")
    # Midnight in Berlin, and the same moment in UTC (23:00 or 22:00 the day before).
    assert re.search(r"\d{4}-\d\d-\d\d 00:00:00 CES?T\s+\d{4}-\d\d-\d\d 2[23]:00:00 UTC", next_runs)
    body = browser.find_element(By.TAG_NAME, "body")

    wait_for(browser, "Run now clicked", lambda: click(browser, "#action-run-now"))
    confirm = wait_for(browser, "the confirmation", lambda: browser.find_element(By.ID, "confirm"))
    assert "Start a run of" in browser.find_element(By.ID, "dialog").text
    # Nothing is sent before the confirmation.
    assert "cronfleet.io/run-now" not in annotations_of(cluster, namespace, "nightly-cleanup")
    confirm.click()
    result = wait_for(browser, "the answer", lambda: browser.find_element(By.ID, "result"))
    assert result.text.startswith("Run requested"), result.text
    token = annotations_of(cluster, namespace, "nightly-cleanup")["cronfleet.io/run-now"]
    assert token in result.text

    manual = '#history tr.run[data-trigger="Manual"][data-result="Succeeded"]'
    job = wait_for(
        browser,
        "the manual run in the history",
        lambda: browser.execute_script(
            "const run = document.querySelector(arguments[0]); return run && run.dataset.job;",
            manual,
        ),
        120,
    )
    assert str(job).startswith("nightly-cleanup"), job
    assert still_there(body), "the page was reloaded"
    assert text_of(browser, "dl.facts").count("Last run\t—") == 0
    screenshot(browser, "dashboard-schedule.png", height=1043)

    browser.get(f"{served.url}?{urlencode({'namespace': namespace})}")
    wait_for(browser, "the table", lambda: len(rows(browser)) == 3)
    wait_for(browser, "one succeeded run", lambda: card(browser, "succeeded") == 1)
    assert (card(browser, "schedules"), card(browser, "enabled")) == (3, 2)
    assert "quarter close" in cell(browser, "report-export", 3)
    screenshot(browser, "dashboard-schedules.png")


def test_a_view_only_user_sees_why_actions_are_disabled_and_the_api_server_refuses_them(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    browser: webdriver.Chrome,
    dashboard_for: Callable[[Path, str | None], Served],
    tmp_path: Path,
) -> None:
    cluster.kube.create(SCHEDULES, example("nightly-cleanup", namespace), namespace)
    served = dashboard_for(viewer_kubeconfig(cluster, namespace, tmp_path), namespace)
    path = f"/schedules/{namespace}/nightly-cleanup"
    browser.get(served.url.rstrip("/") + path)
    wait_for(browser, "Active", lambda: text_of(browser, "#phase") == "Active")
    disabled = browser.execute_script(
        "return Array.from(document.querySelectorAll('.actions button'))"
        ".map(button => [button.id, button.disabled, button.title]);"
    )
    assert [(name, off) for name, off, _ in disabled] == [
        (f"action-{action}", True) for action in ("run-now", "pause", "resume", "reset")
    ]
    why = text_of(browser, ".actions .why-disabled")
    assert why.startswith(f'you may not patch schedules.cronfleet.io in namespace "{namespace}"'), (
        why
    )

    # Forced anyway, from the page: the API server's refusal is shown in it.
    browser.execute_script(
        "document.getElementById('action-run-now').removeAttribute('disabled');"
        "document.getElementById('action-run-now').setAttribute("
        f"'hx-get', '{path}/confirm/run-now');"
        "htmx.process(document.getElementById('action-run-now'));"
    )
    wait_for(browser, "Run now clicked", lambda: click(browser, "#action-run-now"))
    wait_for(browser, "the confirmation", lambda: browser.find_element(By.ID, "confirm")).click()
    result = wait_for(browser, "the refusal", lambda: browser.find_element(By.ID, "result"))
    print(result.text)
    assert result.text.startswith("Run now refused: forbidden: "), result.text
    assert 'cannot patch resource "schedules" in API group "cronfleet.io"' in result.text
    assert f"system:serviceaccount:{namespace}:viewer" in result.text

    # And from outside the browser, with the session's cookie and token: 403, nothing written.
    cookie, token = session_credentials(served, path)
    status, text, _ = send(
        served,
        "POST",
        f"{path}/actions/pause",
        headers={"Cookie": cookie},
        body=urlencode({"csrf_token": token, "reason": "forced"}),
    )
    assert status == 403, text
    assert "Pause refused: forbidden: " in text and "cannot patch resource" in text
    assert annotations_of(cluster, namespace, "nightly-cleanup") == {}


def test_a_foreign_host_header_is_refused(
    cluster: Cluster,
    namespace: str,
    crd: None,
    dashboard_for: Callable[[Path, str | None], Served],
) -> None:
    served = dashboard_for(cluster.kubeconfig, namespace)
    port = served.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        status, text, _ = send(served, "GET", "/", host=host)
        assert status == 200, (host, text)
    # A DNS-rebinding page reaches 127.0.0.1 under its own name.
    for host in (f"rebind.example:{port}", "127.0.0.1", f"127.0.0.1:{port + 1}", "[::1]:80"):
        status, text, response = send(served, "GET", "/", host=host)
        assert status in (403, 421), (host, status)
        assert "is not this dashboard's address" in text
        assert response.getheader("Content-Security-Policy", "").startswith("default-src 'self'")


def test_a_post_without_the_csrf_token_is_refused(
    cluster: Cluster,
    namespace: str,
    crd: None,
    dashboard_for: Callable[[Path, str | None], Served],
) -> None:
    cluster.kube.create(SCHEDULES, example("nightly-cleanup", namespace), namespace)
    served = dashboard_for(cluster.kubeconfig, namespace)
    path = f"/schedules/{namespace}/nightly-cleanup"
    cookie, token = session_credentials(served, path)
    pause = f"{path}/actions/pause"
    attempts = {
        "no token at all": ({}, ""),
        "the cookie alone": ({"Cookie": cookie}, ""),
        "the form's token alone": ({}, urlencode({"csrf_token": token})),
        "a wrong token": (
            {"Cookie": cookie},
            urlencode({"csrf_token": token[:-2] + ("AA" if token[-2:] != "AA" else "BB")}),
        ),
    }
    for what, (headers, body) in attempts.items():
        status, text, _ = send(served, "POST", pause, headers=headers, body=body)
        assert status == 403, (what, status, text)
        assert "CSRF token" in text, what
    assert "cronfleet.io/pause" not in annotations_of(cluster, namespace, "nightly-cleanup")
    # The same request with both copies of the token goes through.
    status, text, _ = send(
        served,
        "POST",
        pause,
        headers={"Cookie": cookie},
        body=urlencode({"csrf_token": token, "reason": "maintenance"}),
    )
    assert status == 200, text
    assert (
        annotations_of(cluster, namespace, "nightly-cleanup")["cronfleet.io/pause"] == "maintenance"
    )


def test_the_command_prints_its_url_serves_until_interrupted_and_listens_on_loopback_only(
    cluster: Cluster, namespace: str, crd: None
) -> None:
    cluster.kube.create(SCHEDULES, example("nightly-cleanup", namespace), namespace)
    program = str(Path(sys.executable).parent / "kubectl-cronfleet")
    command = [program, "dashboard", "--kubeconfig", str(cluster.kubeconfig), "-n", namespace]
    process = subprocess.Popen(
        [*command, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        print(line)
        found = re.fullmatch(
            rf"cronfleet dashboard: http://127\.0\.0\.1:(\d+)/ \(context cronfleet-local, "
            rf"namespace {namespace}; Ctrl-C stops it\)",
            line,
        )
        assert found, line
        port = int(found.group(1))
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read().decode()
        assert 'data-name="nightly-cleanup"' in page
        listening = [
            entry.split()[1]
            for entry in Path("/proc/net/tcp").read_text().splitlines()[1:]
            if entry.split()[1].endswith(f":{port:04X}") and entry.split()[3] == "0A"
        ]
        assert listening == [f"0100007F:{port:04X}"], listening  # 127.0.0.1, and nothing else
    finally:
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "cronfleet dashboard: stopped" in stderr

    refused = subprocess.run(
        [*command, "--address", "0.0.0.0"], check=False, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0
    assert "'0.0.0.0' is not allowed" in refused.stderr and "127.0.0.1 only" in refused.stderr
