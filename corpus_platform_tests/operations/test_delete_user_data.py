"""GDPR erasure end to end: after delete_user_data no table, landing file, spool or export holds the
user's id or text; the exports are rebuilt without them; other users are untouched; an audit row says
what was done without naming the user."""

import gzip
import json
from datetime import date

import dagster as dg

from corpus_platform.curation.exports import latest_export
from corpus_platform.definitions import make_definitions
from corpus_platform.defs.curation.resources import CurationSettings
from corpus_platform.defs.operations.sensors import deletion_requests_sensor
from corpus_platform.defs.partitions import partition_key
from corpus_platform.defs.resources import CorpusHome
from corpus_platform.demo.corpus import write_demo_corpus
from corpus_platform.demo.run import QUIET
from corpus_platform.operations.erasure import all_text, subject_hash
from corpus_platform.settings import Layout
from corpus_platform.warehouse import connect

DAYS = [date(2026, 1, 1), date(2026, 1, 2)]
SUBJECT = "erase-me-7f3a"
SECRET_TEXTS = [f"My account number is ZQX-{i}-private and my street is Elm Hollow {i}." for i in range(6)]


def land_subject(layout):
    for d, day in enumerate(DAYS):
        folder = layout.landing_dir("conversations", day.isoformat())
        lines = [json.dumps({"interaction_id": f"erase-{d}-{i}", "session_id": f"erase-s{d}", "user_id": SUBJECT,
                             "timestamp": f"{day}T09:0{i}:00Z", "user_message": SECRET_TEXTS[d * 3 + i],
                             "bot_response": f"Thanks, I noted your details for request {d}-{i}. Anything else?"})
                 for i in range(3)]
        lines.append(json.dumps({"type": "feedback", "interaction_id": f"erase-{d}-0", "kind": "thumbs_up",
                                 "timestamp": f"{day}T10:00:00Z"}))
        lines.append('{"interaction_id": "broken", "user_id": "%s", "user_message": 5}' % SUBJECT)  # quarantined
        (folder / "subject.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))


def run_pipeline(defs, instance):
    curate = defs.resolve_job_def("curate_partition")
    for day in DAYS:
        for source in ("public", "conversations"):
            assert curate.execute_in_process(partition_key=partition_key(day, source), instance=instance, run_config=QUIET).success
    splits = defs.resolve_job_def("train_and_evaluate")
    result = splits.execute_in_process(instance=instance, run_config=QUIET, asset_selection=[
        dg.AssetKey("duplicate_clusters"), dg.AssetKey("dataset_splits"), dg.AssetKey("training_exports")])
    assert result.success


def traces(layout):
    """Files under CORPUS_HOME (the Dagster instance aside) that still hold the subject's id or text."""
    found = []
    for path in layout.home.rglob("*"):
        if not path.is_file() or "dagster" in path.relative_to(layout.home).parts or path.suffix == ".duckdb":
            continue
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        if SUBJECT.encode() in data or any(t.encode() in data for t in SECRET_TEXTS):
            found.append(str(path))
    return found


def test_delete_user_data_leaves_no_trace(tmp_path):
    layout = Layout(tmp_path)
    write_demo_corpus(layout.landing, DAYS)
    land_subject(layout)
    defs = make_definitions(tmp_path, curation=CurationSettings(min_val_rows=1, min_test_rows=1))
    queue = tmp_path / "requests" / "deletions.jsonl"
    queue.parent.mkdir(parents=True)
    queue.write_text(json.dumps({"type": "user_deletion", "request_id": "req-1", "user_id": SUBJECT,
                                 "requested_by": "ops-key", "requested_at": "2026-01-03T00:00:00+00:00"}) + "\n")
    with dg.instance_for_test() as instance:
        run_pipeline(defs, instance)
        with connect(layout.warehouse) as con:
            before_other = con.execute("SELECT count(*) FROM corpus.raw_examples").fetchone()[0]
            assert SUBJECT in all_text(con)  # the data really was there
        old_export = latest_export(layout.exports).name
        assert traces(layout)

        # The API's queue drives the job: the sensor turns the request into a run keyed by its id.
        tick = deletion_requests_sensor(dg.build_sensor_context(resources={"corpus_home": CorpusHome(path=str(tmp_path))}))
        assert [r.run_key for r in tick.run_requests] == ["req-1"]
        again = deletion_requests_sensor(dg.build_sensor_context(cursor=tick.cursor, resources={"corpus_home": CorpusHome(path=str(tmp_path))}))
        assert again.run_requests == []
        result = defs.resolve_job_def("delete_user_data").execute_in_process(
            instance=instance, run_config={**QUIET, **tick.run_requests[0].run_config})
        assert result.success
        report = result.output_for_node("erase_user_data")
        assert report["examples"] == 6 and report["rows_deleted"]["raw_examples"] == 6
        assert report["rows_deleted"]["quarantine"] == 2
        assert old_export in report["exports_removed"]

        with connect(layout.warehouse) as con:
            text = all_text(con).replace(subject_hash(SUBJECT), "")
            assert SUBJECT not in text and not any(t in text for t in SECRET_TEXTS)
            assert con.execute("SELECT count(*) FROM corpus.raw_examples").fetchone()[0] == before_other - 6
            audit = con.execute("SELECT request_id, subject_sha256, requested_by, examples FROM corpus.deletion_audit").fetchall()
            assert audit == [("req-1", subject_hash(SUBJECT), "ops-key", 6)]
            n_splits = con.execute("SELECT count(*) FROM corpus.dataset_splits").fetchone()[0]
        assert traces(layout) == []
        new_export = latest_export(layout.exports)
        assert new_export.name != old_export and new_export.name == report["export_version"]
        manifest = json.loads((new_export / "manifest.json").read_text())
        assert sum(manifest["counts"].values()) == n_splits
        # The rebuild shows in the UI as new materializations of the two assets.
        mat = instance.fetch_materializations(dg.AssetKey("training_exports"), limit=1).records[0]
        assert mat.asset_materialization.metadata["rebuilt_by"].value == "delete_user_data"
        # The run config names the request, never the user.
        assert SUBJECT not in json.dumps(instance.get_run_by_id(result.run_id).run_config)
