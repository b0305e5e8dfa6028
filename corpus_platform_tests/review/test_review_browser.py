"""The review page in headless Chromium (Playwright driving Debian's /usr/bin/chromium) on demo data curated
through the real Dagster jobs: keep, reject and edit three examples, then see the next export change."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from corpus_platform.curation.datasets import export_splits, rebuild_splits
from corpus_platform.definitions import make_definitions
from corpus_platform.defs.curation.resources import CurationSettings
from corpus_platform.defs.partitions import partition_key
from corpus_platform.demo.corpus import write_demo_corpus
from corpus_platform.demo.run import DEMO_DAYS, QUIET
from corpus_platform.review.content import example_content, untrainable
from corpus_platform.review.journal import journal_path, read_verdicts
from corpus_platform.settings import FILE_SOURCES, REPO_ROOT, Layout
from corpus_platform.warehouse import connect, query

CHROMIUM = os.environ.get("CORPUS_CHROMIUM", "/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CORPUS_CHROMIUM)")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]' "
                                                             "(the test uses Debian's chromium, no `playwright install`)")

TOKEN = "browser-test-token-0123456789"
EDITED = "Edited by a reviewer: Paris is the capital of France, on the Seine."
REVIEWER = "playwright-reviewer"


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    """One demo day of both file sources curated by `curate_partition`, and the queue by `build_review_queue`."""
    home = tmp_path_factory.mktemp("review_home")
    write_demo_corpus(Layout(home).landing, DEMO_DAYS[:1])
    defs = make_definitions(home)
    with dg.instance_for_test() as instance:
        curate = defs.resolve_job_def("curate_partition")
        for source in FILE_SOURCES:
            r = curate.execute_in_process(partition_key=partition_key(DEMO_DAYS[0], source), instance=instance, run_config=QUIET)
            assert r.success
        assert defs.resolve_job_def("build_review_queue").execute_in_process(instance=instance, run_config=QUIET).success
    return home


def conversations(manifest: dict, exports: Path) -> list[list[tuple[str, str]]]:
    files = [f for f in manifest["files"] if f["format"] == "openai_chat"]
    return [[(m["role"], m["content"]) for m in json.loads(line)["messages"]]
            for f in files for line in (exports / manifest["version"] / f["path"]).read_text().splitlines()]


def pick_targets(con) -> dict[str, dict]:
    """From the queue, in the page's order: two examples the pipeline kept (to reject, to edit) and one it
    dropped that could be trained on and is no exact copy of a kept one (to keep)."""
    queue = query(con, "SELECT * FROM corpus.review_queue ORDER BY queued_on DESC, priority")
    kept = queue.filter(queue["decision"] == "kept")
    dropped = queue.filter(queue["decision"] != "kept")
    content = {r["example_id"]: r for r in example_content(con, dropped.select("example_id", "source", "date")).iter_rows(named=True)}
    hashes = set(query(con, "SELECT content_hash FROM corpus.scored_examples")["content_hash"])
    keep = next(r for r in dropped.iter_rows(named=True)
                if untrainable(content[r["example_id"]]["messages"]) is None and content[r["example_id"]]["content_hash"] not in hashes)
    texts = {r["example_id"]: r for r in query(con, "SELECT example_id, messages FROM corpus.scored_examples").iter_rows(named=True)}
    as_pairs = lambda msgs: [(m["role"], m["content"]) for m in msgs]  # noqa: E731
    rows = kept.iter_rows(named=True)
    reject, edit = next(rows), next(rows)
    return {
        "reject": {**reject, "conversation": as_pairs(texts[reject["example_id"]]["messages"])},
        "edit": {**edit, "conversation": as_pairs(texts[edit["example_id"]]["messages"])},
        "keep": {**keep, "conversation": as_pairs(content[keep["example_id"]]["messages"])},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(home: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "CORPUS_HOME": str(home), "CORPUS_REVIEW_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "corpus_platform.review", "--no-build", "--no-open", "--port", str(port)],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the review page exited: {proc.stdout.read()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/review", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError("the review page did not start within 60 s")


def review_in_browser(url: str, targets: dict[str, dict]) -> None:
    wanted = {t["example_id"]: action for action, t in targets.items()}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page()
            page.goto(url)
            sync_api.expect(page.locator("#example-id")).not_to_be_empty()
            assert "token=" not in page.url  # the token leaves the address bar (and the history)
            page.fill("#reviewer", REVIEWER)
            done = []
            for _ in range(200):
                if len(done) == 3:
                    break
                current = page.text_content("#example-id")
                action = wanted.get(current)
                if action == "keep":
                    assert "Decision record" in page.text_content("aside")
                    assert page.locator("#decisions tbody tr").count() >= 1
                    page.click("#btn-keep")
                elif action == "reject":
                    page.click("#btn-reject")  # no reason yet: refused in the page
                    sync_api.expect(page.locator("#status")).to_have_text("A rejection needs a reason.")
                    page.fill("#reject-reason", "wrong or misleading answer")
                    page.click("#btn-reject")
                elif action == "edit":
                    page.click("#btn-edit")
                    assert page.input_value("#edit-text") == targets["edit"]["conversation"][-1][1]
                    page.fill("#edit-text", EDITED)
                    page.click("#btn-save-edit")
                else:
                    page.click("#btn-skip")
                if action:
                    verdict = {"keep": "keep", "reject": "reject", "edit": "edit"}[action]
                    sync_api.expect(page.locator("#status")).to_have_text(f"Saved: {verdict} {current}.")
                    done.append(current)
                sync_api.expect(page.locator("#example-id")).not_to_have_text(current)
            assert sorted(done) == sorted(wanted), f"reviewed {done}, wanted {wanted}"
        finally:
            browser.close()


def test_keep_reject_and_edit_in_the_browser_change_the_next_export(curated):
    home, layout = curated, Layout(curated)
    with connect(layout.warehouse) as con:
        rebuild_splits(con, CurationSettings().splits())
        first = export_splits(con, layout.exports)
        targets = pick_targets(con)
    before = conversations(first, layout.exports)
    assert targets["reject"]["conversation"] in before and targets["edit"]["conversation"] in before
    assert targets["keep"]["conversation"] not in before

    port = free_port()
    server = serve(home, port)
    try:
        review_in_browser(f"http://127.0.0.1:{port}/review?token={TOKEN}", targets)
    finally:
        server.terminate()
        server.wait(timeout=30)
    verdicts = read_verdicts(journal_path(home))
    assert sorted(v["verdict"] for v in verdicts) == ["edit", "keep", "reject"] and {v["reviewer"] for v in verdicts} == {REVIEWER}

    with connect(layout.warehouse) as con:
        rebuild_splits(con, CurationSettings().splits())
        second = export_splits(con, layout.exports)
        decisions = query(con, "SELECT example_id, decision, rule FROM corpus.decisions WHERE stage = 'review'")
        agreement = query(con, "SELECT * FROM corpus.review_agreement")
        outcome = query(con, "SELECT final_stage, decision, rule FROM corpus.example_outcomes WHERE example_id = ?",
                        [targets["reject"]["example_id"]])
    after = conversations(second, layout.exports)
    assert second["version"] != first["version"]
    assert targets["reject"]["conversation"] not in after  # rejected: gone
    edited = targets["edit"]["conversation"][:-1] + [("assistant", EDITED)]
    assert edited in after and targets["edit"]["conversation"] not in after  # edited text in, original out
    assert targets["keep"]["conversation"] in after  # dropped by the pipeline, kept by the reviewer: back
    assert len(after) == len(before) + 1 - 1
    assert dict(zip(decisions["example_id"], decisions["rule"])) == {
        targets["reject"]["example_id"]: "reviewer:wrong_or_misleading_answer",
        targets["edit"]["example_id"]: "reviewer:edit",
        targets["keep"]["example_id"]: "reviewer:keep",
    }
    assert outcome.row(0) == ("review", "rejected", "reviewer:wrong_or_misleading_answer")
    # Agreement: the edit agrees with the pipeline's keep; the reject and the bring-back overrule it.
    assert agreement["reviewed"].sum() == 3 and agreement["agreed"].sum() == 1
    assert agreement["reviewer_rejected_kept"].sum() == 1 and agreement["reviewer_kept_dropped"].sum() == 1
    keep_rule = targets["keep"]["rule"]
    row = agreement.filter(agreement["rule"] == keep_rule).row(0, named=True)
    assert (row["stage"], row["reviewed"], row["agreed"], row["agreement_rate"]) == (targets["keep"]["stage"], 1, 0, 0.0)
