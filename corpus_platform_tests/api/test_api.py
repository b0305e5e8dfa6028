"""The capture API over real HTTP: concurrent writes, idempotency, key scoping, limits, the deletion queue,
readiness and stats."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import duckdb
import pytest

from corpus_platform.sources.conversations import read_conversations
from corpus_platform_tests.api.conftest import KEYS

THREADS, PER_THREAD = 20, 500


def body(user: str = "u-1", **kw) -> dict:
    return {"user_message": "How do I reset my password?", "response": "Click 'Forgot password'.", "user_id": user, **kw}


def test_concurrent_writers_lose_and_duplicate_nothing(server):
    def work(t: int) -> list[str]:
        with server.client("shop") as c:
            ids = []
            for i in range(PER_THREAD):
                r = c.post("/v1/interactions", json=body(f"cw-{t}", user_message=f"q {t} {i}", session_id=f"s-{t}"))
                assert r.status_code == 201, r.text
                ids.append(r.json()["interaction_id"])
                days.add(r.json()["day"])
            return ids

    days: set[str] = set()

    start = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        ids = [i for chunk in pool.map(work, range(THREADS)) for i in chunk]
    elapsed = time.monotonic() - start
    print(f"{THREADS * PER_THREAD} POSTs in {elapsed:.1f}s ({THREADS * PER_THREAD / elapsed:.0f}/s)")
    mine = [r for r in server.records() if str(r.get("user_id", "")).startswith("cw-")]
    assert len(mine) == len(ids) == THREADS * PER_THREAD
    assert {r["interaction_id"] for r in mine} == set(ids) and len(set(ids)) == len(ids)
    assert {(r["user_message"]) for r in mine} == {f"q {t} {i}" for t in range(THREADS) for i in range(PER_THREAD)}
    assert all(r["app_id"] == "shop" for r in mine)
    for day in days:  # the platform reads every line back
        batch = read_conversations(server.landing / day, date.fromisoformat(day))
        assert batch.quarantine.height == 0 and batch.examples.height >= len(ids) // len(days)


def test_idempotent_retry_is_stored_once(server):
    b = body("idem-user", user_message="retry me")
    with server.client("shop") as c:
        first = c.post("/v1/interactions", json=b, headers={"Idempotency-Key": "order-42"})
        again = c.post("/v1/interactions", json=b, headers={"Idempotency-Key": "order-42"})
        assert first.status_code == again.status_code == 201
        assert first.json() == again.json() and again.headers["Idempotent-Replayed"] == "true"
        other = c.post("/v1/interactions", json={**b, "user_message": "something else"}, headers={"Idempotency-Key": "order-42"})
        assert other.status_code == 409 and "different request" in other.json()["detail"]
    with server.client("blog") as c:  # keys are scoped per API key: another app may use the same string
        assert c.post("/v1/interactions", json=b, headers={"Idempotency-Key": "order-42"}).status_code == 201

    # a burst of simultaneous retries (across both workers): one write, every success the same answer
    def retry(_):
        with server.client("shop") as c:
            return c.post("/v1/interactions", json=body("idem-user", user_message="burst"), headers={"Idempotency-Key": "burst-1"})

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(retry, range(8)))
    assert {r.status_code for r in results} <= {201, 409}
    assert len({json.dumps(r.json()) for r in results if r.status_code == 201}) == 1
    stored = [r for r in server.records() if r["user_id"] == "idem-user"]
    assert sorted(r["user_message"] for r in stored) == ["burst", "retry me", "retry me"]  # shop once, blog once
    with server.client("shop") as c:
        fb = {"interaction_id": first.json()["interaction_id"], "kind": "thumbs_up"}
        one = c.post("/v1/feedback", json=fb, headers={"Idempotency-Key": "fb-1"})
        two = c.post("/v1/feedback", json=fb, headers={"Idempotency-Key": "fb-1"})
        assert one.status_code == two.status_code == 201 and one.json() == two.json()
    assert sum(r.get("type") == "feedback" and r["interaction_id"] == fb["interaction_id"] for r in server.records()) == 1


def test_app_keys_see_only_their_own_users(server):
    with server.client("shop") as shop, server.client("blog") as blog, server.client("admin") as admin:
        s = shop.post("/v1/interactions", json=body("alice", user_message="shop q")).json()
        blog.post("/v1/interactions", json=body("alice", user_message="blog q"))
        blog.post("/v1/interactions", json=body("bob"))
        assert shop.post("/v1/interactions", json=body("x", app_id="blog")).status_code == 403
        assert shop.post("/v1/feedback", json={"interaction_id": s["interaction_id"], "kind": "edit", "text": "t"}).status_code == 201
        assert blog.post("/v1/feedback", json={"interaction_id": s["interaction_id"], "kind": "report"}).status_code == 404

        mine = shop.get("/v1/users/alice/interactions").json()
        assert [i["record"]["user_message"] for i in mine["interactions"]] == ["shop q"] and mine["app_id"] == "shop"
        assert [f["kind"] for f in mine["interactions"][0]["feedback"]] == ["edit"]
        assert shop.get("/v1/users/bob/interactions").status_code == 404
        assert shop.get("/v1/users/alice/interactions", params={"app_id": "blog"}).status_code == 403

        everyone = admin.get("/v1/users/alice/interactions").json()
        assert sorted(i["record"]["user_message"] for i in everyone["interactions"]) == ["blog q", "shop q"]
        only_blog = admin.get("/v1/users/alice/interactions", params={"app_id": "blog"}).json()
        assert [i["record"]["user_message"] for i in only_blog["interactions"]] == ["blog q"]
        assert admin.get("/v1/users/bob/interactions").json()["count"] == 1


def test_foreign_lines_in_the_landing_folder_never_cause_a_500(server):
    folder = server.landing / "2025-12-31"  # another producer's file, in a day of its own
    folder.mkdir(parents=True)
    (folder / "other.jsonl").write_bytes(
        b'{"interaction_id": "ext-1", "user_id": "ext", "timestamp": "2025-12-31T10:00:00Z", "user_message": "\\ud800", "bot_response": "x"}\n'
        b'{"interaction_id": "ext-2", "user_id": "ext", "timestamp": "2025-12-31T10:00:00Z", "user_message": "q", "bot_response": NaN}\n'
        b'not json\n')
    with server.client("admin") as admin:
        r = admin.get("/v1/users/ext/interactions")
        assert r.status_code == 200 and [i["record"]["interaction_id"] for i in r.json()["interactions"]] == ["ext-1"]


def test_malformed_and_oversized_bodies_write_nothing(server):
    before = len(server.records())
    with server.client("shop") as c:
        cases = [
            c.post("/v1/interactions", content=b'{"user_message": "hi", ', headers={"content-type": "application/json"}),
            c.post("/v1/interactions", json={"user_message": "hi", "response": "yo"}),  # no user_id
            c.post("/v1/interactions", json=body(extra_field=1)),
            c.post("/v1/interactions", json=body(user_message=3)),
            c.post("/v1/interactions", json=body("bad/user")),
            c.post("/v1/interactions", json=body(metadata={"bot_response": "forged"})),
            c.post("/v1/interactions", content=b'{"user_message": "\\ud800", "response": "r", "user_id": "u"}',
                   headers={"content-type": "application/json"}),
            c.post("/v1/interactions", content=b'{"user_message": "q", "response": "r", "user_id": "u", "metadata": {"x": NaN}}',
                   headers={"content-type": "application/json"}),
            c.post("/v1/feedback", json={"interaction_id": "x", "kind": "meh"}),
            c.post("/v1/interactions", json=body(), headers={"Idempotency-Key": "x" * 300}),
        ]
        assert [r.status_code for r in cases] == [422] * len(cases), [r.text for r in cases]
        assert cases[1].json()["detail"][0]["loc"] == ["body", "user_id"]
        huge = body(user_message="x" * 70_000)
        assert c.post("/v1/interactions", json=huge).status_code == 413
        chunked = c.post("/v1/interactions", content=iter([json.dumps(huge).encode()[i:i + 8192] for i in range(0, 70_100, 8192)]),
                         headers={"content-type": "application/json"})
        assert chunked.status_code == 413  # no Content-Length: counted while streaming
    assert len(server.records()) == before


def test_authentication(server):
    with server.client() as anon:
        assert anon.post("/v1/interactions", json=body()).status_code == 401
        r = anon.get("/v1/stats", headers={"Authorization": "Bearer not-a-real-key-000000000"})
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        assert anon.get("/v1/stats", headers={"X-API-Key": KEYS["shop"][1] + "x"}).status_code == 401
        assert anon.get("/v1/stats", headers={"X-API-Key": KEYS["shop"][1]}).status_code == 200
        assert anon.get("/v1/stats", headers={"Authorization": KEYS["shop"][1]}).status_code == 401  # no scheme
        assert anon.get("/openapi.json").status_code == 200
    log = (server.home / "server.log").read_text()
    assert not any(secret in log for _, secret, _, _ in KEYS.values())


def test_rate_limit(server):
    # tiny-key: 3 requests of burst, then one per 5 s; each of the 2 workers keeps its own bucket
    with server.client("tiny") as c:
        codes = [c.get("/v1/stats") for _ in range(10)]
    ok = [r for r in codes if r.status_code == 200]
    limited = [r for r in codes if r.status_code == 429]
    assert 3 <= len(ok) <= 6 and len(ok) + len(limited) == 10
    assert all(1 <= int(r.headers["Retry-After"]) <= 5 for r in limited)


def test_delete_queues_a_request(server):
    with server.client("shop") as shop, server.client("admin") as admin:
        r = shop.delete("/v1/users/alice")
        assert r.status_code == 202 and r.json()["status"] == "queued" and r.json()["app_id"] == "shop"
        assert shop.delete("/v1/users/alice", params={"app_id": "blog"}).status_code == 403
        assert admin.delete("/v1/users/bob").json()["app_id"] is None
        assert shop.get("/v1/users/alice/interactions").status_code == 200  # a queue: the data stays until the job runs
    raw = (server.home / "requests" / "deletions.jsonl").read_text()
    rows = [json.loads(line) for line in raw.splitlines()]
    assert [(q["user_id"], q["app_id"], q["requested_by"], q["role"]) for q in rows] == [
        ("alice", "shop", "shop-key", "app"), ("bob", None, "ops-key", "admin")]
    assert all(q["status"] == "queued" and q["requested_at"] and q["request_id"] for q in rows)
    assert not any(secret in raw for _, secret, _, _ in KEYS.values())


def test_readiness_and_stats(fresh_server):
    srv = fresh_server
    with srv.client("shop") as shop, srv.client("blog") as blog, srv.client("admin") as admin:
        ids = [shop.post("/v1/interactions", json=body(f"r-{i % 3}")).json()["interaction_id"] for i in range(10)]
        blog.post("/v1/interactions", json=body("b-1"))
        for iid, kind in zip(ids, ["thumbs_up", "thumbs_up", "thumbs_up", "thumbs_down"]):
            assert shop.post("/v1/feedback", json={"interaction_id": iid, "kind": kind}).status_code == 201
        shop.post("/v1/feedback", json={"interaction_id": ids[0], "kind": "correction", "text": "fixed"})  # latest wins

        r = shop.get("/v1/readiness/conversations").json()
        assert r["from"] == "landing"
        assert (r["total_interactions"], r["with_feedback"], r["positive_feedback"]) == (11, 4, 2)
        assert r["feedback_by_kind"] == {"thumbs_up": 2, "thumbs_down": 1, "correction": 1}
        assert r["score"] == round(100 * (0.5 * 11 / 1000 + 0.2 * 4 / 11 + 0.3 * 2 / 4), 1) and "formula" in r
        assert shop.get("/v1/readiness/public").json()["total_interactions"] == 0
        assert shop.get("/v1/readiness/nope").status_code == 422

        s = shop.get("/v1/stats").json()
        assert (s["app_id"], s["interactions"], s["users"], s["feedback"]) == ("shop", 10, 3, 5)
        assert s["feedback_by_kind"] == {"correction": 1, "thumbs_down": 1, "thumbs_up": 3}
        a = admin.get("/v1/stats").json()
        assert a["interactions"] == 11 and a["interactions_by_app"] == {"blog": 1, "shop": 10}

        # once curation has run, the warehouse is the source of the numbers (opened read-only)
        wh = srv.home / "warehouse.duckdb"
        con = duckdb.connect(str(wh))
        con.execute("CREATE SCHEMA corpus; CREATE TABLE corpus.raw_examples (source VARCHAR, date DATE, metadata JSON);"
                    "CREATE TABLE corpus.scored_examples (source VARCHAR, quality_score DOUBLE)")
        con.execute("""INSERT INTO corpus.raw_examples VALUES ('conversations', '2026-01-02', '{"feedback": {"kind": "thumbs_up"}}'),
                       ('conversations', '2026-01-02', '{"feedback": null}'), ('public', '2026-01-02', '{}')""")
        con.execute("INSERT INTO corpus.scored_examples VALUES ('conversations', 7.5)")
        r = shop.get("/v1/readiness/conversations").json()  # a writer holds the file: fall back to landing, say why
        assert r["from"] == "landing" and r["warehouse_error"]
        con.close()
        r = shop.get("/v1/readiness/conversations").json()
        assert r["from"] == "warehouse" and (r["total_interactions"], r["with_feedback"], r["positive_feedback"]) == (2, 1, 1)
        assert r["curated_examples"] == 1 and r["mean_quality"] == 7.5 and r["days"] == 1
    # the conversations source sees the same feedback join the readiness reported
    (folder,) = srv.landing.iterdir()
    batch = read_conversations(folder, date.fromisoformat(folder.name))
    kinds = [json.loads(m)["feedback"] for m in batch.examples["metadata"]]
    assert sum(f is not None for f in kinds) == 4 and batch.quarantine.height == 0


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_openapi_property_no_server_errors(server, mode, tmp_path_factory, monkeypatch):
    """Schemathesis cases from /openapi.json, valid and invalid, sent with an admin key: none may get a 5xx."""
    schemathesis = pytest.importorskip("schemathesis")
    monkeypatch.setenv("HYPOTHESIS_STORAGE_DIRECTORY", str(tmp_path_factory.mktemp("hypothesis")))  # not the repo
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    headers = {"Authorization": f"Bearer {KEYS['admin'][1]}"}
    failures: list[str] = []
    lock = threading.Lock()
    for result in schema.get_all_operations():
        op = result.ok()

        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy(generation_mode=schemathesis.GenerationMode(mode)))
        def check(case):
            response = case.call(base_url=server.url, headers=headers, timeout=30)
            if response.status_code >= 500:
                with lock:
                    failures.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}")

        check()
    assert not failures, failures[:5]
