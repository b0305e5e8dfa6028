"""The Dagster UI in a real browser: after curating 2 days x 2 sources and building the splits and exports
on a temp CORPUS_HOME, `dagster-webserver` serves that instance on 127.0.0.1 and headless Chromium (Debian's
package, driven by Playwright) checks what a person would look at: the global asset lineage shows every
asset of the code location, raw_examples' partition matrix shows the materialized source x day cells with
their row counts, and the checks tab shows each check's results. Screenshots go to $CORPUS_HOME/screenshots/.

Skips, naming the reason, where Playwright or Chromium is missing (`make test` installs both where it can).
Every wait is on a DOM condition (Playwright's auto-waiting locators and `expect`), never a sleep."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from corpus_platform.settings import REPO_ROOT, SOURCES, Layout

CHROMIUM = Path(os.environ.get("CORPUS_CHROMIUM", "/usr/bin/chromium"))
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed: pip install -e '.[dev]' (make test does)")
if not CHROMIUM.exists():
    pytest.skip(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium (make test tries when root), "
                "or point CORPUS_CHROMIUM at a Chromium binary", allow_module_level=True)

from playwright.sync_api import Page, expect  # noqa: E402

DAYS = [date(2026, 1, 1), date(2026, 1, 2)]
MATERIALIZED_SOURCES = ("public", "conversations")
KEYS = [(day, source) for day in DAYS for source in MATERIALIZED_SOURCES]
CHECKED_ASSET = "scored_examples"  # its checks run in every curate_partition run
TIMEOUT_MS = 30_000
pytestmark = pytest.mark.timeout(400)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url + "/server_info", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.25)  # polling a socket that is not open yet
    raise RuntimeError(f"dagster-webserver did not answer within {timeout} s:\n{log.read_text()[-4000:]}")


def stop(proc: subprocess.Popen) -> None:
    """The webserver and the code server it spawned: their own process group, started by us."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    from corpus_platform.definitions import make_definitions
    from corpus_platform.defs.partitions import partition_key
    from corpus_platform.demo.corpus import write_demo_corpus
    from corpus_platform.demo.run import QUIET
    from corpus_platform.warehouse import connect

    home = tmp_path_factory.mktemp("ui_home")
    layout = Layout(home)
    dagster_home = layout.dagster_home  # as `make dagster-home`: the shipped dagster.yaml linked in
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").symlink_to(REPO_ROOT / "dagster.yaml")
    (home / "screenshots").mkdir()
    port = free_port()
    env = {**os.environ, "CORPUS_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}
    log = home / "webserver.log"
    # The webserver loads the code location while the runs go; the pages are opened once both are done.
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
             "-m", "corpus_platform.definitions"],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        write_demo_corpus(layout.landing, DAYS)
        defs = make_definitions(home)
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            curate = defs.resolve_job_def("curate_partition")
            for day, source in KEYS:
                assert curate.execute_in_process(partition_key=partition_key(day, source), instance=instance,
                                                 run_config=QUIET).success
            defs.resolve_job_def("train_and_evaluate").execute_in_process(
                instance=instance, run_config=QUIET, raise_on_error=False,
                asset_selection=[dg.AssetKey("duplicate_clusters"), dg.AssetKey("dataset_splits"), dg.AssetKey("training_exports")])
        with connect(layout.warehouse) as con:
            rows = {(d, s): n for d, s, n in con.execute(
                "SELECT date, source, count(*) FROM corpus.raw_examples GROUP BY ALL").fetchall()}
        checks = sorted(spec.name for c in defs.asset_checks for spec in c.check_specs
                        if spec.asset_key == dg.AssetKey(CHECKED_ASSET))
        url = f"http://127.0.0.1:{port}"
        wait_for_server(url, proc, log)
        yield {"url": url, "home": home, "rows": rows, "checks": checks,
               "assets": sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys())}
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, ui):
    context = browser.new_context(viewport={"width": 1920, "height": 1200})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    # On a fresh instance Dagster greets 127.0.0.1 with a "Join the Dagster community" dialog: Skip it
    # whenever it covers what a step is about to touch.
    page.add_locator_handler(page.get_by_text("Join the Dagster community"),
                             lambda _: page.get_by_role("button", name="Skip").click())
    yield page
    context.close()


def shot(page: Page, ui, name: str) -> Path:
    expect(page.get_by_text("Join the Dagster community")).to_have_count(0)
    path = ui["home"] / "screenshots" / f"{name}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    return path


def test_global_asset_lineage_shows_every_asset(page, ui):
    page.goto(ui["url"] + "/asset-groups")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    nodes = page.locator("[class*='AssetNode_minimalName']")
    collapsed = page.locator("[class*='CollapsedGroupNode_collapsedGroupNodeBox']")
    page.locator("[class*='GroupNode'], [class*='AssetNode_minimalName']").first.wait_for()
    if collapsed.count():
        # With several groups the graph opens with the groups collapsed: "Expand all groups" (⌥E), then load
        # the page again so the view fits the expanded graph (nodes outside the view are not rendered).
        page.keyboard.press("Alt+e")
        expect(collapsed).to_have_count(0)
        page.reload()
    expect(nodes).to_have_count(len(ui["assets"]))
    shown = set()
    for node in nodes.all():
        name = node.inner_text()
        if "…" in name:  # middle-truncated at this zoom: the full key is in the node's tooltip
            head, tail = name.split("…")
            tooltip = page.get_by_role("tooltip").filter(has_text=re.compile(f"^{re.escape(head)}.+{re.escape(tail)}$"))
            for attempt in range(3):  # a popup dismissed mid-hover (the community banner) can swallow the hover
                node.hover()
                try:
                    expect(tooltip).to_have_count(1, timeout=4000)
                    break
                except AssertionError:
                    if attempt == 2:
                        raise
                    page.mouse.move(0, 0)
            name = tooltip.inner_text()
            page.keyboard.press("Escape")
        shown.add(name)
    assert shown == set(ui["assets"])
    shot(page, ui, "asset_graph")


def test_partition_matrix_shows_the_materialized_source_day_cells(page, ui):
    first, last = DAYS[0], DAYS[-1]
    page.goto(ui["url"] + f"/assets/raw_examples?view=partitions&date_range=%5B{first}...{last}%5D")
    expect(page.locator(f"input[value='[{first}...{last}]']")).to_be_visible()
    n_keys, n_done = len(DAYS) * len(SOURCES), len(KEYS)
    expect(page.get_by_text(f"{n_keys} Partitions Selected")).to_be_visible()
    expect(page.get_by_text(f"Materialized ({n_done})")).to_be_visible()
    expect(page.get_by_text(f"Missing ({n_keys - n_done})")).to_be_visible()
    rows = page.locator("[class*='VirtualizedTable_row']")
    green, gray = "div[style*='--color-accent-green']", "div[style*='--color-accent-gray']"
    for source in SOURCES:  # the source column over the selected days: all materialized, or none
        row = rows.filter(has=page.locator(f"[title='{source}']"))
        expect(row).to_have_count(1)
        done = source in MATERIALIZED_SOURCES
        expect(row.locator(green)).to_have_count(1 if done else 0)
        expect(row.locator(gray)).to_have_count(0 if done else 1)
    for day in DAYS:  # the date column: each day partly materialized (2 of 6 sources)
        row = rows.filter(has_text=str(day))
        expect(row.locator(green)).to_have_count(1)
        expect(row.locator(gray)).to_have_count(1)
    shot(page, ui, "partition_matrix")

    for day, source in KEYS:  # each cell: materialized, by curate_partition, with the warehouse's row count
        page.goto(ui["url"] + f"/assets/raw_examples?view=partitions&partition={day}%7C{source}")
        expect(page.get_by_text(f"{day}|{source}", exact=True).first).to_be_visible()
        expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
        expect(page.get_by_role("link", name="curate_partition")).to_be_visible()
        row_count = page.locator("tr", has_text="dagster/row_count")
        expect(row_count).to_contain_text(str(ui["rows"][(day, source)]))
        if (day, source) == KEYS[-1]:
            shot(page, ui, f"partition_{day}_{source}")


def test_checks_tab_shows_every_check_passed_on_every_partition(page, ui):
    expected = sorted(f"{day}|{source}" for day, source in KEYS)
    for i, check in enumerate(ui["checks"]):
        page.goto(ui["url"] + f"/assets/{CHECKED_ASSET}?view=checks")
        expect(page.get_by_text(f"Checks ({len(ui['checks'])})")).to_be_visible()
        for name in ui["checks"]:  # the list: every check, its latest execution succeeded
            item = page.locator("span").filter(has=page.locator(f"[title='{name}']")).filter(has_text="Succeeded")
            expect(item).to_have_count(1)
        page.get_by_text(check, exact=True).first.click()
        expect(page.get_by_text("Latest execution")).to_be_visible()
        expect(page.get_by_text("Evaluation result").locator("..")).to_contain_text("Passed")
        if i == 0:
            shot(page, ui, f"checks_{CHECKED_ASSET}")
        page.get_by_text("Execution history", exact=True).click()
        history = page.locator("tbody tr")
        expect(history).to_have_count(len(KEYS))  # one evaluation per materialized partition
        texts = history.all_inner_texts()
        assert all(t.startswith("Passed") for t in texts), texts
        assert sorted(k for t in texts for k in expected if k in t) == expected
        if i == 0:
            shot(page, ui, f"checks_{CHECKED_ASSET}_history")
