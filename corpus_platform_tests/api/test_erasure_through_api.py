"""A user's deletion through the capture API leaves no trace once the platform's deletion has run:
interactions and feedback POSTed over HTTP, curated into the warehouse and exports, DELETE
/v1/users/{id}, the queue sensor's run of delete_user_data, then nothing left in the warehouse, the
landing files, the API's index or any export, and the API answers 404 for the user."""

import gzip
import sqlite3

import dagster as dg

from corpus_platform.definitions import make_definitions
from corpus_platform.defs.curation.resources import CurationSettings
from corpus_platform.defs.operations.sensors import deletion_requests_sensor
from corpus_platform.defs.partitions import partition_key
from corpus_platform.defs.resources import CorpusHome
from corpus_platform.demo.run import QUIET
from corpus_platform.operations.erasure import all_text, subject_hash
from corpus_platform.settings import Layout
from corpus_platform.warehouse import connect
from corpus_platform_tests.api.conftest import start_server, stop_server

SUBJECT = "user-to-forget-91c2"
TEXTS = [f"Please remember my locker code {n}{n}{n}7 at the Birchwood gym." for n in range(4)]


def post_traffic(client):
    ids, day = [], None
    for i, text in enumerate(TEXTS):
        r = client.post("/v1/interactions", json={"user_message": text, "response": f"Noted, locker request {i} is saved.",
                                                  "user_id": SUBJECT, "session_id": f"forget-{i}"})
        assert r.status_code == 201, r.text
        ids.append(r.json()["interaction_id"])
        day = r.json()["day"]
    for i in range(40):
        r = client.post("/v1/interactions", json={
            "user_message": f"How do I export report number {i} to a spreadsheet file?",
            "response": f"Open report {i}, choose Export, then pick the spreadsheet format and save the file.",
            "user_id": f"other-{i % 7}", "session_id": f"other-{i}"})
        assert r.status_code == 201, r.text
    assert client.post("/v1/feedback", json={"interaction_id": ids[0], "kind": "thumbs_up"}).status_code == 201
    return day


def test_deletion_through_the_api_leaves_no_trace(tmp_path):
    home = tmp_path / "home"
    server = start_server(home)
    try:
        with server.client("shop") as shop:
            day = post_traffic(shop)
    finally:
        stop_server(server)

    defs = make_definitions(home, curation=CurationSettings(min_val_rows=0, min_test_rows=0, min_train_rows=1))
    with dg.instance_for_test() as instance:
        assert defs.resolve_job_def("curate_partition").execute_in_process(
            partition_key=partition_key(day, "conversations"), instance=instance, run_config=QUIET).success
        assert defs.resolve_job_def("train_and_evaluate").execute_in_process(
            instance=instance, run_config=QUIET, asset_selection=[dg.AssetKey("duplicate_clusters"), dg.AssetKey("dataset_splits"), dg.AssetKey("training_exports")]).success
        with connect(Layout(home).warehouse) as con:
            assert SUBJECT in all_text(con)

        server = start_server(home)
        try:
            with server.client("admin") as admin:
                assert admin.delete(f"/v1/users/{SUBJECT}").status_code == 202
        finally:
            stop_server(server)

        tick = deletion_requests_sensor(dg.build_sensor_context(resources={"corpus_home": CorpusHome(path=str(home))}))
        assert len(tick.run_requests) == 1
        result = defs.resolve_job_def("delete_user_data").execute_in_process(
            instance=instance, run_config={**QUIET, **tick.run_requests[0].run_config})
        assert result.success
        report = result.output_for_node("erase_user_data")
        assert report["examples"] == len(TEXTS) and report["rows_deleted"]["api_index_interactions"] == len(TEXTS)

    with connect(Layout(home).warehouse) as con:
        text = all_text(con).replace(subject_hash(SUBJECT), "")
        assert SUBJECT not in text and not any(t in text for t in TEXTS)
        assert con.execute("SELECT count(*) FROM corpus.raw_examples").fetchone()[0] == 40
    index = sqlite3.connect(home / "api" / "state.sqlite3")
    try:
        assert index.execute("SELECT count(*) FROM interactions WHERE user_id = ?", (SUBJECT,)).fetchone()[0] == 0
    finally:
        index.close()
    leftovers = []
    for path in home.rglob("*"):
        if not path.is_file() or path.suffix == ".duckdb" or "dagster" in path.parts:
            continue
        data = path.read_bytes()
        data = gzip.decompress(data) if path.name.endswith(".gz") else data
        if SUBJECT.encode() in data or any(t.encode() in data for t in TEXTS):
            leftovers.append(str(path.relative_to(home)))
    assert leftovers == []

    server = start_server(home)
    try:
        with server.client("admin") as admin:
            assert admin.get(f"/v1/users/{SUBJECT}/interactions").status_code == 404
            assert admin.get("/v1/users/other-1/interactions").status_code == 200
    finally:
        stop_server(server)
