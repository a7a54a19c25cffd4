"""The dashboard and the portal in a real browser: Debian's headless Chromium driven by Selenium (Debian's
chromedriver; no browser download), against `tollway demo --serve` (the walkthrough's six requests, an invoice
issued and paid). Screenshots of each page go to $TOLLWAY_TEST_ARTIFACTS (default: the test's tmp dir)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import service_missing
from tests.support.net import free_port

pytestmark = pytest.mark.slow

ACME_INPUT, ACME_OUTPUT = "25,283", "4,800"  # the demo's six requests, as the simulator counts them
ACME_TOTAL = "30,083"
GLOBEX_TOKENS = 777_777  # another customer's usage: never on Acme's portal


def _binaries() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        service_missing("chromium and chromium-driver are not installed (make chromium installs the Debian packages)")
    try:
        import selenium  # noqa: F401
    except ModuleNotFoundError:
        service_missing("selenium is not installed (the dev extra)")
    assert browser is not None
    assert driver is not None
    return browser, driver


class Demo:
    def __init__(self, process: subprocess.Popen[str], base: str, token: str) -> None:
        self.process, self.base, self.token = process, base, token

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    _binaries()
    port = free_port()
    workdir = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLWAY_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "tollway", "demo", "--serve", "--port", str(port)],
        cwd=workdir,
        env={**env, "COLUMNS": "200", "NO_COLOR": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    token = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if found := re.search(r"sign in with the admin token (\S+)\)", line):
            token = found.group(1)
        if line.startswith("Serving on"):
            break
    if token is None or process.poll() is not None:
        process.kill()
        raise AssertionError("tollway demo --serve did not start serving:\n" + "".join(lines))
    served = Demo(process, f"http://127.0.0.1:{port}", token)
    try:
        _add_globex(served)
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
            process.stdout.close()


def _add_globex(demo: Demo) -> None:
    """A second customer with usage of its own, in Acme's period."""
    with demo.admin() as admin:
        acme_invoice = admin.get("/api/v1/invoices", params={"customer": "acme"}).json()["items"][0]
        when = datetime.fromisoformat(acme_invoice["period"]["from"].replace("Z", "+00:00")) + timedelta(days=20)
        created = admin.post(
            "/api/v1/customers",
            json={"key": "globex", "name": "Globex Industries", "usageAttribution": {"subjectKeys": ["globex-agent"]}},
        )
        assert created.status_code == 201, created.text
        event = {
            "specversion": "1.0",
            "id": "globex-1",
            "source": "test",
            "type": "llm.tokens",
            "subject": "globex-agent",
            "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data": {"tokens": GLOBEX_TOKENS, "type": "input", "model": "globex-secret-model", "provider": "x"},
        }
        stored = admin.post("/api/v1/events", json=event, headers={"Content-Type": "application/cloudevents+json"})
        assert stored.status_code in (200, 202, 204), stored.text


@pytest.fixture(scope="module")
def browser(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = _binaries()
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "plugins.always_open_pdf_externally": True,
        },
    )
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.downloads = downloads  # type: ignore[attr-defined]
    try:
        yield driver
    finally:
        driver.quit()


def _wait(condition: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def test_operator_and_customer_in_a_browser(demo: Demo, browser: Any, tmp_path: Path) -> None:
    artifacts = Path(os.environ.get("TOLLWAY_TEST_ARTIFACTS") or tmp_path) / "dashboard"
    artifacts.mkdir(parents=True, exist_ok=True)
    try:
        _scenario(demo, browser, artifacts)
    except BaseException:
        browser.save_screenshot(str(artifacts / "failure.png"))
        (artifacts / "failure.html").write_text(browser.page_source)
        raise


def _scenario(demo: Demo, browser: Any, artifacts: Path) -> None:
    from selenium.webdriver.common.by import By

    def shot(name: str) -> None:
        browser.save_screenshot(str(artifacts / f"{name}.png"))

    def text(css: str) -> str:
        return str(browser.find_element(By.CSS_SELECTOR, css).text)

    def cell(table: str, kind: str) -> str:
        return text(f"#{table} td[data-type='{kind}']")

    # sign in: a page without a session sends to the sign-in form
    browser.get(demo.base + "/dashboard")
    assert "/dashboard/signin" in browser.current_url
    shot("01-signin")
    browser.find_element(By.ID, "token").send_keys(demo.token)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    _wait(lambda: browser.find_elements(By.ID, "total-tokens"))
    cookie = browser.get_cookie("tollway_session")
    assert cookie is not None
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"

    # the overview: the six requests with their exact token counts
    browser.get(demo.base + "/dashboard?range=30d")
    assert text("#total-requests") == "6"  # Globex's usage came as an event, not through the gateway
    assert cell("tokens-by-type-table", "output") == ACME_OUTPUT
    assert cell("tokens-by-type-table", "input") == f"{25_283 + GLOBEX_TOKENS:,}"
    assert text("#top-customers td[data-customer='acme']") == ACME_TOTAL
    assert text("#billed-revenue") == "$0.13"  # the demo's invoice, for the period that ended in the range
    _wait(lambda: browser.execute_script("return !!document.querySelector('canvas[data-drawn]')"))
    shot("02-overview")

    # Acme Corp's page
    browser.get(demo.base + "/dashboard/customers")
    browser.find_element(By.LINK_TEXT, "Acme Corp").click()
    _wait(lambda: browser.find_elements(By.ID, "customer-usage"))
    assert cell("customer-usage", "input") == ACME_INPUT
    assert cell("customer-usage", "output") == ACME_OUTPUT
    shot("03-customer")

    # the invoice, its document and its PDF
    invoice_link = browser.find_element(By.CSS_SELECTOR, "#customer-invoices a")
    number = invoice_link.text
    assert re.fullmatch(r"TW-\d{4}-\d{6}", number)
    invoice_link.click()
    _wait(lambda: browser.find_elements(By.ID, "download-pdf"))
    assert text("#invoice-total") == "$0.13"
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe.document"))
    assert number in _wait(lambda: browser.find_element(By.TAG_NAME, "body").text)
    browser.switch_to.default_content()
    browser.find_element(By.ID, "download-pdf").click()
    pdf = _wait(lambda: [p for p in browser.downloads.iterdir() if p.suffix == ".pdf"], timeout=20)[0]
    assert pdf.read_bytes().startswith(b"%PDF")
    shot("04-invoice")

    # a portal link for Acme: the token leaves the address bar; Acme's usage, nothing of Globex
    browser.get(demo.base + "/dashboard/customers/acme")
    browser.find_element(By.CSS_SELECTOR, "form[action$='/portal-link'] button").click()
    link = _wait(lambda: browser.find_element(By.ID, "portal-link").get_attribute("value"))
    assert "/portal?token=twp_" in link
    browser.get(link + "&range=30d")
    _wait(lambda: browser.find_elements(By.ID, "portal-title"))
    assert browser.current_url == demo.base + "/portal"
    assert text("#portal-title") == "Acme Corp"
    browser.get(demo.base + "/portal?range=30d")
    assert text("#portal-tokens") == ACME_TOTAL
    assert number in text("#portal-invoices")
    page = browser.page_source
    for other in ("Globex", "globex", f"{GLOBEX_TOKENS:,}", "globex-secret-model"):
        assert other not in page
    shot("05-portal")
    browser.set_window_size(390, 900)  # a phone
    shot("06-portal-phone")
    browser.set_window_size(1280, 1000)

    # a key: created (shown once), works at the gateway, revoked, refused by the gateway
    browser.get(demo.base + "/dashboard/consumers/acme-corp")
    browser.find_element(By.ID, "key-name").send_keys("browser-test")
    browser.find_element(By.ID, "create-key").click()
    plain = _wait(lambda: browser.find_element(By.ID, "new-key").get_attribute("value"))
    shot("07-new-key")
    request = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=demo.base, timeout=30) as gateway:
        assert (
            gateway.post("/v1/chat/completions", json=request, headers={"Authorization": f"Bearer {plain}"}).status_code
            == 200
        )
        row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#keys tbody tr") if "browser-test" in r.text)
        row.find_element(By.CSS_SELECTOR, "button.danger").click()
        _wait(lambda: "revoked" in text(".flash"))
        refused = gateway.post("/v1/chat/completions", json=request, headers={"Authorization": f"Bearer {plain}"})
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"
    shot("08-revoked")

    # Live: a new request appears without a reload (htmx polls every 5 s)
    browser.get(demo.base + "/dashboard/live")
    rows = len(browser.find_elements(By.CSS_SELECTOR, "#live-rows tr"))
    browser.execute_script("window.notReloaded = true;")
    with httpx.Client(base_url=demo.base, timeout=30) as gateway:
        answer = gateway.post("/v1/chat/completions", json=request, headers={"Authorization": "Bearer acme-secret-key"})
        assert answer.status_code == 200
    _wait(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#live-rows tr")) == rows + 1, timeout=12)
    assert browser.execute_script("return window.notReloaded === true;")
    shot("09-live")
