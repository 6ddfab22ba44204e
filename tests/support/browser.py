"""Headless Chromium for the browse tests: Debian's `chromium` driven by its `chromedriver`
through Selenium (nothing downloaded)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

CHROMIUM = os.environ.get("BROWSE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("BROWSE_CHROMEDRIVER", "/usr/bin/chromedriver")
INSTALL_HINT = (
    "the browser tests need Debian's chromium and chromium-driver: "
    "sudo apt-get install -y chromium chromium-driver (make test does it when run as root)"
)
T = TypeVar("T")


def require_browser() -> None:
    """Fail the test with one line saying what to install when the browser is missing."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.exists(path) or shutil.which(path)):
            pytest.fail(INSTALL_HINT, pytrace=False)


def chromium() -> Any:
    """A headless Chromium WebDriver (1400x1000), its console log kept for the tests."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def wait_for(condition: Callable[[], T | None], timeout_s: float = 20, what: str = "") -> T:
    """Poll `condition` until it returns something truthy (bounded); its last value."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as error:  # a stale element while the page re-renders
            last = error
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last error: {last})")
