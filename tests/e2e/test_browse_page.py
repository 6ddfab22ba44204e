"""The browse page in headless Chromium on the local stack (issue 21, "Tested in a real
browser"): one stack, one browse server and one browser for the module.

Files arrive the real way: uploaded to the stack's bucket (moto), delivered as S3
notifications, written by the ingest function. What the page shows is compared with
ListObjectsV2 of the same bucket.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from pipeline.local.api_client import get
from pipeline.local.browse.cli import for_stack
from pipeline.local.browse.server import BrowseServer
from pipeline.local.stack import Stack
from pipeline.local.template import read_stack_config
from tests.support.browser import chromium, require_browser, wait_for

pytestmark = pytest.mark.e2e

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "browse.png"
MANY = 2_500
TREE = {
    **{f"reports/2026/q{q}/summary-{i}.csv": 100 * q + i for q in (1, 2, 3) for i in range(3)},
    **{f"reports/2026/q1/raw/part-{i:02d}.bin": 1_000 + i for i in range(4)},
    **{f"reports/2025/annual-{i}.pdf": 5_000 + i for i in range(2)},
    "reports/index.html": 42,
    "reports/2026/notes.txt": 7,
    "photos/cat.jpg": 2_048,
    "photos/2026/dog.jpg": 4_096,
    "README.txt": 12,
}
HOSTILE = [
    "hostile/<img src=x onerror=alert(1)>",
    'hostile/"><script>alert(1)</script>',
    "hostile/javascript:alert(1)",
    "hostile/invoice-\u202etxt.exe",
    "hostile/" + "k" * (1024 - len("hostile/")),
]


def upload(stack: Stack, files: dict[str, int]) -> None:
    s3 = stack.client("s3")

    def put(item: tuple[str, int]) -> None:
        s3.put_object(Bucket=stack.bucket, Key=item[0], Body=b"x" * item[1])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, files.items()))


def summary(stack: Stack, prefix: str) -> dict[str, Any]:
    query = urlencode({"prefix": prefix, "bucket": stack.bucket})
    found: dict[str, Any] = get(f"{stack.api_url}/summary?{query}", signer=stack.signer).json()
    return found


def listing(stack: Stack, prefix: str, delimiter: str | None = None) -> dict[str, Any]:
    """ListObjectsV2 of `prefix`: keys (S3 order) and sizes, common prefixes."""
    s3 = stack.client("s3")
    params: dict[str, Any] = {"Bucket": stack.bucket, "Prefix": prefix}
    if delimiter:
        params["Delimiter"] = delimiter
    keys: list[str] = []
    sizes: dict[str, int] = {}
    prefixes: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(**params):
        for obj in page.get("Contents", []):
            keys.append(obj["Key"])
            sizes[obj["Key"]] = obj["Size"]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    return {"keys": keys, "sizes": sizes, "prefixes": prefixes}


def sums(stack: Stack, prefix: str) -> tuple[int, int]:
    found = listing(stack, prefix)
    return len(found["keys"]), sum(found["sizes"].values())


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    require_browser()  # before a stack is started for nothing
    config = (
        read_stack_config()
        .with_suffix(uuid.uuid4().hex[:8])
        .with_overrides(batching_window_s=0, function_timeout_s=30)
    )
    with Stack(config, pollers=3) as running:
        running.wait_until_idle(30)
        started = time.monotonic()
        upload(running, TREE)
        upload(running, {f"many/item {i:05d}.dat": 1 + i % 97 for i in range(MANY)})
        upload(running, dict.fromkeys(HOSTILE, 3))
        uploaded = time.monotonic()
        total = len(TREE) + MANY + len(HOSTILE)
        wait_for(lambda: summary(running, "")["files"] == total, 120, f"{total} files ingested")
        print(
            f"\nseeded {total} files: uploads {uploaded - started:.1f} s, "
            f"ingested {time.monotonic() - uploaded:.1f} s after"
        )
        yield running


@pytest.fixture(scope="module")
def server(stack: Stack) -> Iterator[BrowseServer]:
    with for_stack(stack) as running:
        yield running


@pytest.fixture(scope="module")
def browser(server: BrowseServer) -> Iterator[Any]:
    driver = chromium()
    try:
        driver.get(server.url)  # the token, exchanged for the cookie
        wait_for(lambda: "token" not in driver.current_url, 20, "the token-less URL")
        yield driver
    finally:
        driver.quit()


def base(server: BrowseServer) -> str:
    return f"http://127.0.0.1:{server.port}/"


def open_page(browser: Any, server: BrowseServer, **query: str) -> None:
    browser.get(base(server) + ("?" + urlencode(query) if query else ""))
    settled(browser)


def settled(browser: Any) -> None:
    wait_for(
        lambda: browser.execute_script("return document.body.dataset.loading === 'false'"),
        20,
        "the folder to load",
    )


def folder_rows(browser: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = browser.execute_script(
        "return [...document.querySelectorAll('#folders tr')].map(r => ({"
        "prefix: r.dataset.prefix, files: Number(r.dataset.files), bytes: Number(r.dataset.bytes),"
        "text: r.querySelector('td.name').textContent}))"
    )
    return rows


def file_keys(browser: Any) -> list[str]:
    keys: list[str] = browser.execute_script(
        "return [...document.querySelectorAll('#files tr')].map(r => r.dataset.key)"
    )
    return keys


def shown_totals(browser: Any) -> tuple[int, int]:
    data = browser.execute_script("return {...document.getElementById('summary').dataset}")
    return int(data["files"]), int(data["bytes"])


def click_folder(browser: Any, prefix: str) -> None:
    from selenium.webdriver.common.by import By

    for row in browser.find_elements(By.CSS_SELECTOR, "#folders tr"):
        if row.get_attribute("data-prefix") == prefix:
            row.find_element(By.CSS_SELECTOR, "a.folder").click()
            wait_for(
                lambda: (
                    browser.execute_script("return document.body.dataset.folder") == prefix
                    and browser.execute_script("return document.body.dataset.loading") == "false"
                ),
                20,
                f"folder {prefix}",
            )
            return
    raise AssertionError(f"no folder row {prefix!r}")


def assert_no_dialog_and_no_error(browser: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 (the access is the check)
    # script errors only: a slow API's 5xx on a poll is logged by Chrome as a network error
    # (the page shows it and retries), which is not what this checks
    errors = [
        entry
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE" and entry.get("source") != "network"
    ]
    assert errors == []


def test_walking_three_folder_levels_shows_the_totals_of_listobjectsv2(
    browser: Any, server: BrowseServer, stack: Stack
) -> None:
    # Given the bucket's root
    open_page(browser, server)
    path = ["reports/", "reports/2026/", "reports/2026/q1/"]
    for level, prefix in enumerate(["", *path]):
        if prefix:
            # When a person clicks the next folder
            click_folder(browser, prefix)
        # Then the folder's totals are the sums of ListObjectsV2 under it
        assert shown_totals(browser) == sums(stack, prefix), prefix
        # And its folders and files are S3's, in S3's order, each folder with its own sums
        truth = listing(stack, prefix, "/")
        rows = folder_rows(browser)
        assert [row["prefix"] for row in rows] == truth["prefixes"], prefix
        for row in rows:
            assert (row["files"], row["bytes"]) == sums(stack, row["prefix"]), row
            assert row["text"] == row["prefix"][len(prefix) :]
        assert file_keys(browser) == truth["keys"], prefix
        crumbs = browser.execute_script("return document.querySelectorAll('#crumbs a').length")
        assert crumbs == level + 1  # the bucket, then one link per folder
    # And back and forward walk the history of folders
    browser.back()
    wait_for(
        lambda: browser.execute_script("return document.body.dataset.folder") == path[1], 10, "back"
    )
    settled(browser)
    assert shown_totals(browser) == sums(stack, path[1])
    browser.forward()
    wait_for(
        lambda: browser.execute_script("return document.body.dataset.folder") == path[2], 10, "fwd"
    )
    # And a deep link opens the folder directly
    open_page(browser, server, bucket=stack.bucket, prefix="photos/")
    assert file_keys(browser) == ["photos/cat.jpg"]
    assert [row["prefix"] for row in folder_rows(browser)] == ["photos/2026/"]
    assert_no_dialog_and_no_error(browser)


def test_paging_through_2500_files_follows_s3_order(
    browser: Any, server: BrowseServer, stack: Stack
) -> None:
    from selenium.webdriver.common.by import By

    # Given a folder of 2,500 files
    open_page(browser, server, bucket=stack.bucket, prefix="many/")
    assert shown_totals(browser) == sums(stack, "many/")
    # When "Load more" is clicked until it disappears
    clicks = 0
    while browser.find_element(By.ID, "more").is_displayed():
        shown = len(file_keys(browser))
        browser.find_element(By.ID, "more").click()
        wait_for(lambda n=shown: len(file_keys(browser)) > n, 20, "the next page")  # type: ignore[misc]
        settled(browser)
        clicks += 1
        assert clicks < 50
    # Then every file came once, in ListObjectsV2's order
    assert file_keys(browser) == listing(stack, "many/")["keys"]
    assert len(file_keys(browser)) == MANY and clicks >= 12
    # And the "starts with" filter is a prefix query inside the folder
    field = browser.find_element(By.ID, "filter")
    field.send_keys("item 012")
    wait_for(lambda: len(file_keys(browser)) == 100, 20, "the filtered listing")
    assert file_keys(browser) == listing(stack, "many/item 012")["keys"]
    assert "filter=item+012" in browser.current_url


def test_hostile_names_show_literally_and_run_nothing(
    browser: Any, server: BrowseServer, stack: Stack
) -> None:
    from selenium.webdriver.common.by import By

    # Given keys that are HTML, script, a javascript: URL, an RLO and 1,024 bytes long
    open_page(browser, server, bucket=stack.bucket, prefix="hostile/")
    # Then each is listed with its exact key, its name shown as text; `"><script>...</`
    # is a folder (the key has a slash), as ListObjectsV2 with Delimiter=/ says
    truth = listing(stack, "hostile/", "/")
    assert file_keys(browser) == truth["keys"]
    assert [row["prefix"] for row in folder_rows(browser)] == truth["prefixes"]
    assert truth["prefixes"] == ['hostile/"><script>alert(1)</']
    names = browser.execute_script(
        "return [...document.querySelectorAll('#files td.name')].map(td => td.textContent)"
    )
    expected = [key[len("hostile/") :].replace("\u202e", "U+202E") for key in truth["keys"]]
    assert names == expected and len(names) == 4
    assert folder_rows(browser)[0]["text"] == '"><script>alert(1)</'
    # And the hostile folder opens, its name literal in the breadcrumbs
    click_folder(browser, 'hostile/"><script>alert(1)</')
    assert file_keys(browser) == ['hostile/"><script>alert(1)</script>']
    crumbs = browser.find_element(By.ID, "crumbs").text
    assert crumbs.endswith('hostile / "><script>alert(1)<')
    browser.back()
    wait_for(
        lambda: browser.execute_script("return document.body.dataset.folder") == "hostile/", 10
    )
    settled(browser)
    # And nothing in them became markup
    assert (
        browser.execute_script("return document.querySelectorAll('img, #files script').length") == 0
    )
    # When the file panel of each is opened
    for key in truth["keys"]:
        for row in browser.find_elements(By.CSS_SELECTOR, "#files tr"):
            if row.get_attribute("data-key") == key:
                row.click()
        wait_for(
            lambda k=key: (
                browser.execute_script(  # type: ignore[misc]
                    "return document.getElementById('panel-uri').dataset.uri"
                )
                == f"s3://{stack.bucket}/{k}"
            ),
            10,
            "the file panel",
        )
        # Then it shows the key and its record (the API's GET /files/{key})
        fields = browser.find_element(By.ID, "panel-fields").text
        assert "3 B" in fields, fields
    # And no dialog opened and the page logged no error
    assert_no_dialog_and_no_error(browser)
    assert browser.execute_script("return document.querySelectorAll('img').length") == 0


def test_an_upload_shows_in_the_changes_pane_and_the_totals(
    browser: Any, server: BrowseServer, stack: Stack
) -> None:
    from selenium.webdriver.common.by import By

    # Given the page open on a folder, following the change feed
    open_page(browser, server, bucket=stack.bucket, prefix="reports/")
    wait_for(lambda: browser.execute_script("return document.body.dataset.feed") == "live", 20)
    before = shown_totals(browser)
    # When a file is uploaded into a subfolder
    key = f"reports/2026/live-{uuid.uuid4().hex[:6]}.txt"
    stack.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=b"y" * 321)
    # Then it appears in the changes pane marked new (the feed's settle window is 5 s)
    changes = (
        "return [...document.querySelectorAll('#changes li')]"
        ".map(li => [li.dataset.key, li.className])"
    )
    try:
        wait_for(
            lambda: [key, "new"] in browser.execute_script(changes),
            30,
            "the upload in the changes pane",
        )
    except AssertionError:
        print(browser.execute_script(changes)[:5], browser.find_element(By.ID, "freshness").text)
        raise
    # And the folder's totals and its subfolder's row are refreshed
    wait_for(lambda: shown_totals(browser) == (before[0] + 1, before[1] + 321), 30, "totals")
    assert shown_totals(browser) == sums(stack, "reports/")
    row = next(r for r in folder_rows(browser) if r["prefix"] == "reports/2026/")
    wait_for(
        lambda: (
            next(r for r in folder_rows(browser) if r["prefix"] == "reports/2026/")["files"]
            == sums(stack, "reports/2026/")[0]
        ),
        30,
        "the subfolder's row",
    )
    assert row["prefix"] == "reports/2026/"
    freshness = browser.find_element(By.ID, "freshness").text
    assert freshness.startswith("Newest change") and "ago" in freshness
    # A screenshot for the docs: the folder, its totals, the file panel and the live pane
    for item in browser.find_elements(By.CSS_SELECTOR, "#files tr"):
        if item.get_attribute("data-key") == "reports/index.html":
            item.click()
    wait_for(lambda: browser.find_element(By.ID, "panel").is_displayed(), 10, "the panel")
    time.sleep(0.3)  # let the panel paint before the screenshot (not a correctness wait)
    browser.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000
    assert_no_dialog_and_no_error(browser)


def test_refused_credentials_and_an_empty_folder_are_said_plainly(
    browser: Any, server: BrowseServer, stack: Stack
) -> None:
    from botocore.credentials import Credentials
    from selenium.webdriver.common.by import By

    from pipeline.local.api_client import Signer
    from pipeline.local.browse.upstream import Upstream

    # Given a browse server whose credentials the API refuses (a wrong secret: 403)
    wrong = Signer(Credentials("testing", "not-the-secret"), stack.region)
    with BrowseServer(Upstream(stack.api_url, lambda: wrong)) as refused:
        browser.get(refused.url)
        # Then the page says so in plain words, with what to do
        wait_for(lambda: browser.find_element(By.ID, "notice").is_displayed(), 20, "the notice")
        notice = browser.find_element(By.ID, "notice").text
        assert "AWS credentials refused or missing" in notice
        assert "reload this page" in notice and "not-the-secret" not in notice
    # And an empty folder is an empty state, not an error
    open_page(browser, server, bucket=stack.bucket, prefix="nothing/here/")
    assert not browser.find_element(By.ID, "notice").is_displayed()
    empty = browser.find_element(By.ID, "empty").text
    assert (
        empty.startswith("This folder is empty") and f"s3://{stack.bucket}/nothing/here/" in empty
    )
    assert shown_totals(browser) == (0, 0)
