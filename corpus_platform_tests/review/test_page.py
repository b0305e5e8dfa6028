"""The review page's HTTP side: token, host, one example at a time, verdicts into the journal only."""

import duckdb
import pytest
from fastapi.testclient import TestClient

from corpus_platform.review.journal import journal_path, read_verdicts
from corpus_platform.review.page import create_review_app
from corpus_platform.review.queue import QueueSettings, build_queue
from corpus_platform.warehouse import migrate

from .conftest import DAY, build, example_id

TOKEN = "a-test-token-of-some-length"
AUTH = {"X-Review-Token": TOKEN}


@pytest.fixture
def home(tmp_path):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    migrate(con)
    build(con)
    build_queue(con, QueueSettings(daily_size=12), DAY)
    con.close()  # the page opens the warehouse read-only: no writer may hold it
    return tmp_path


@pytest.fixture
def client(home):
    return TestClient(create_review_app(home, token=TOKEN), base_url="http://127.0.0.1")


def test_the_page_is_static_and_the_api_needs_the_token(client):
    page = client.get("/review")
    assert page.status_code == 200 and "<script src=\"/review/static/app.js\"" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]  # no inline script can run
    assert "<script>" not in page.text
    assert client.get("/review/api/next").status_code == 401
    assert client.get("/review/api/next", headers={"X-Review-Token": "wrong"}).status_code == 401
    assert client.get("/review/static/app.js").status_code == 200
    assert client.get("/", follow_redirects=False).headers["location"] == "/review"


def test_another_host_is_refused(home):
    other = TestClient(create_review_app(home, token=TOKEN), base_url="http://evil.example")
    assert other.get("/review/api/next", headers=AUTH).status_code == 400


def test_one_example_at_a_time_with_its_decision_record(client):
    data = client.get("/review/api/next", headers=AUTH).json()
    assert data["pending"] == data["queued"] == 12 and data["reviewed"] == 0
    item = data["item"]
    assert item["queue"]["priority"] == 1 and item["queue"]["kind"] == "borderline"
    assert item["messages"][-1]["role"] == "assistant" and item["response"] == item["messages"][-1]["content"]
    stages = [d["stage"] for d in item["decisions"]]
    assert stages[0] == "filter" and len(stages) == len(set(stages))
    skipped = client.get("/review/api/next", params={"skip": [item["example_id"]]}, headers=AUTH).json()["item"]
    assert skipped["example_id"] != item["example_id"]


def test_verdicts_go_to_the_journal_and_leave_the_queue(client, home):
    item = client.get("/review/api/next", headers=AUTH).json()["item"]
    key = {k: item[k] for k in ("example_id", "source", "date")}
    r = client.post("/review/api/verdicts", json={**key, "verdict": "reject", "reviewer": "ann"}, headers=AUTH)
    assert r.status_code == 422 and "reason" in r.json()["detail"]
    r = client.post("/review/api/verdicts", json={**key, "verdict": "edit", "reviewer": "ann",
                                                  "edited_response": item["response"]}, headers=AUTH)
    assert r.status_code == 422
    r = client.post("/review/api/verdicts", json={**key, "verdict": "edit", "reviewer": "ann",
                                                  "edited_response": "A new answer."}, headers=AUTH)
    assert r.status_code == 201 and r.json()["pending"] == 11
    (saved,) = read_verdicts(journal_path(home))
    assert saved["edited_response"] == "A new answer." and saved["original_response"] == item["response"]
    assert saved["subject"]["author"].startswith("user-")  # what the erasure job's scrub matches
    nxt = client.get("/review/api/next", headers=AUTH).json()
    assert nxt["item"]["example_id"] != item["example_id"] and nxt["reviewed"] == 1
    unknown = client.post("/review/api/verdicts", json={**key, "example_id": "nope", "verdict": "keep", "reviewer": "ann"},
                          headers=AUTH)
    assert unknown.status_code == 404


def test_an_untrainable_example_cannot_be_kept(home):
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("UPDATE corpus.review_queue SET priority = priority + 1")
    con.execute("INSERT INTO corpus.review_queue SELECT DATE '2026-01-01', ?, 'public', ?, 'filter', 'rejected', 'empty_turn', "
                "1, 0, 'rejected', 'unscored', 's', 1, 'r', now()", [example_id("public", 40), DAY])
    con.close()
    client = TestClient(create_review_app(home, token=TOKEN), base_url="http://127.0.0.1")
    item = client.get("/review/api/next", headers=AUTH).json()["item"]
    assert item["example_id"] == example_id("public", 40) and "content" in item["untrainable"]
    assert item["found_in"] == "raw_examples" and item["pii_masked_here"]
    r = client.post("/review/api/verdicts", json={"example_id": item["example_id"], "source": "public", "date": "2026-01-01",
                                                  "verdict": "keep", "reviewer": "ann"}, headers=AUTH)
    assert r.status_code == 422 and "edit the response or reject" in r.json()["detail"]


def test_a_busy_warehouse_serves_the_last_snapshot(client, home):
    assert client.get("/review/api/next", headers=AUTH).status_code == 200
    writer = duckdb.connect(str(home / "warehouse.duckdb"))  # as a Dagster run would
    try:
        writer.execute("UPDATE corpus.review_queue SET reason = reason || '.'")  # the file changes
        writer.execute("CHECKPOINT")
        data = client.get("/review/api/next", headers=AUTH)
        assert data.status_code == 200 and data.json()["stale"].startswith("showing the queue as last read")
    finally:
        writer.close()
    fresh = client.get("/review/api/next", headers=AUTH).json()
    assert fresh["stale"] is None and fresh["item"]["queue"]["reason"].endswith(".")
    cold = TestClient(create_review_app(home, token=TOKEN), base_url="http://127.0.0.1")
    writer = duckdb.connect(str(home / "warehouse.duckdb"))
    try:
        assert cold.get("/review/api/next", headers=AUTH).status_code == 503  # nothing read yet: retry later
    finally:
        writer.close()
