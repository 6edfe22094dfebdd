"""The review page in a real browser: headless Debian Chromium driven by Selenium through
Debian's chromedriver, against `bastion serve` running as a real process.

A reviewer logs in with their key, sees the pending item, opens it, approves it and sees
it leave the pending queue; the audit trail records who decided. Without Chromium (the
Debian packages chromium and chromium-driver, installed by scripts/env.sh) the test skips
with the reason, and fails under CI.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import load_bench
from test_service_support import ATTACK, BENIGN, fresh_store, write_serve_config

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# an upstream never called: the embedded SmolLM2 is not loaded in the background


def missing(why: str) -> None:
    message = (f"{why}; install Debian's chromium and chromium-driver "
               "(scripts/env.sh dev does, as root) and the Python package selenium")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def browser() -> Any:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service as DriverService
    except ImportError as exc:
        missing(f"selenium is not importable ({exc})")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.exists(path) or shutil.which(Path(path).name)):
            missing(f"{path} is missing")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM if os.path.exists(CHROMIUM) else str(
        shutil.which("chromium"))
    for flag in ("--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver_path = CHROMEDRIVER if os.path.exists(CHROMEDRIVER) else shutil.which(
        "chromedriver")
    # An explicit driver path: Selenium Manager would otherwise try to download one.
    return webdriver.Chrome(options=options, service=DriverService(str(driver_path)))


@pytest.fixture
def driver() -> Iterator[Any]:
    """Headless Chromium; skips (fails under CI) when there is none."""
    chromium = browser()
    try:
        yield chromium
    finally:
        chromium.quit()


def test_reviewer_logs_in_and_approves_an_item_in_chromium(tmp_path: Path, driver: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    bench = load_bench("service_load.py", "service_load")
    url = f"sqlite:///{tmp_path / 'review.db'}"
    store = fresh_store(url)
    client_key = store.create_key("app", "client").key
    reviewer = store.create_key("alice", "reviewer")
    store.close()
    config = write_serve_config(tmp_path, database_url=url)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("BASTION_DATABASE_URL", None)
    args = ["--config", str(config), "--workers", "1", "--log-level", "warning"]
    hostile = f"{ATTACK} <script>document.title='pwned'</script>"
    with bench.ServeProcess(args, env=env, log=tmp_path / "serve.log") as server:
        auth = {"Authorization": f"Bearer {client_key}"}
        filed = httpx.post(f"{server.url}/v1/scan/input", json={"text": hostile},
                           headers=auth).json()
        assert filed["verdict"] == "review"
        item = filed["review_id"]
        other = httpx.post(f"{server.url}/v1/scan/input", headers=auth,
                           json={"text": f"{ATTACK} (second)"}).json()["review_id"]
        assert httpx.post(f"{server.url}/v1/scan/input", json={"text": BENIGN},
                          headers=auth).json()["review_id"] is None
        wait = WebDriverWait(driver, 20)

        driver.get(f"{server.url}/review")  # not logged in: sent to the log-in page
        wait.until(ec.presence_of_element_located((By.ID, "key")))
        assert driver.current_url.endswith("/review/login")
        driver.find_element(By.ID, "key").send_keys(client_key)  # not a reviewer
        driver.find_element(By.ID, "login").click()
        error = wait.until(ec.presence_of_element_located((By.ID, "error")))
        assert "not a live reviewer" in error.text

        driver.find_element(By.ID, "key").send_keys(reviewer.key)
        driver.find_element(By.ID, "login").click()
        wait.until(ec.presence_of_element_located((By.ID, "queue")))
        rows = driver.find_elements(By.CSS_SELECTOR, "#queue tr.item")
        assert sorted(int(r.get_attribute("data-id")) for r in rows) == sorted(
            [item, other])
        assert "2 pending" in driver.find_element(By.TAG_NAME, "body").text

        driver.find_element(By.LINK_TEXT, f"#{item}").click()
        text = wait.until(ec.presence_of_element_located((By.ID, "text")))
        assert text.text == hostile  # shown as text, not run as a script
        assert driver.title != "pwned"
        assert driver.find_element(By.ID, "state").text == "pending"
        layers = driver.find_element(By.ID, "layers").text
        assert "rules" in layers and "review" in layers
        driver.find_element(By.NAME, "note").send_keys("a quoted attack, fine")
        driver.find_element(By.ID, "approve").click()

        wait.until(ec.presence_of_element_located((By.ID, "queue")))
        assert driver.current_url.endswith("/review")
        rows = driver.find_elements(By.CSS_SELECTOR, "#queue tr.item")
        assert [int(r.get_attribute("data-id")) for r in rows] == [other]
        assert "1 pending" in driver.find_element(By.TAG_NAME, "body").text
        driver.find_element(By.LINK_TEXT, "approved").click()
        wait.until(ec.url_contains("state=approved"))
        rows = driver.find_elements(By.CSS_SELECTOR, "#queue tr.item")
        assert [int(r.get_attribute("data-id")) for r in rows] == [item]

        got = httpx.get(f"{server.url}/v1/review/items/{item}",
                        headers={"Authorization": f"Bearer {reviewer.key}"}).json()
        assert got["state"] == "approved" and got["decided_by"] == reviewer.key_id
        decide = [a for a in got["audit"] if a["action"] == "decide"]
        assert len(decide) == 1
        assert decide[0]["actor"] == reviewer.key_id
        assert decide[0]["detail"] == "approved a quoted attack, fine"
