"""Retention archive end to end: partitions curated by the real jobs move to Parquet on a real S3 server
(moto's, over HTTP on 127.0.0.1, through boto3), are read back equal to the originals, are deleted from
the warehouse only after that, are never archived twice, and keep their credentials out of every record."""

import hashlib
import io
import json
import shutil
from datetime import date

import dagster as dg
import polars as pl
import pytest
from dagster_duckdb import DuckDBResource

from corpus_platform.definitions import make_definitions
from corpus_platform.defs.operations.assets import ArchiveStorage, archive_resource_from_env, archived_partitions
from corpus_platform.defs.partitions import partition_key
from corpus_platform.demo.corpus import write_demo_corpus
from corpus_platform.demo.run import DEMO_DAYS, QUIET
from corpus_platform.operations.archive import (
    ARCHIVE_TABLES, ArchiveStore, ArchiveVerificationError, archive_partitions, archived_keys, cutoff_for, erase_subject,
    read_archived, redact_url, restore_partition,
)
from corpus_platform.schema import utcnow
from corpus_platform.settings import Layout
from corpus_platform.warehouse import connect

moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[dev]')")
pytest.importorskip("boto3", reason="boto3 is not installed")

OLD_DAYS, KEPT_DAY = DEMO_DAYS[:2], DEMO_DAYS[2]  # 2026-01-01 and -02 are archived, 2026-01-03 stays
# Public files every day, the chat logs on the second: 3 partitions to archive, 1 to keep.
PARTITIONS = [(DEMO_DAYS[0], "public"), (DEMO_DAYS[1], "public"), (DEMO_DAYS[1], "conversations"), (KEPT_DAY, "public")]
OLD_PARTITIONS = len(PARTITIONS) - 1
BUCKET = "corpus-archive"
KEY_ID, SECRET = "AKIA-TEST-7Q2W9E", "archive-secret-Zx81-never-logged"


def retention_keeping(day: date) -> int:
    """The retention whose cutoff is `day`: every partition before it is older than the retention period."""
    return (utcnow().date() - day).days


@pytest.fixture(scope="module")
def s3():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    store = ArchiveStore.connect(bucket=BUCKET, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                                 endpoint_url=endpoint)
    store.client.create_bucket(Bucket=BUCKET)
    yield {"endpoint": endpoint, "client": store.client}
    server.stop()


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    """The partitions through curate_partition, and the splits over them."""
    home = tmp_path_factory.mktemp("archive_home")
    write_demo_corpus(Layout(home).landing, DEMO_DAYS)
    defs = make_definitions(home)
    with dg.instance_for_test() as instance:
        job = defs.resolve_job_def("curate_partition")
        for day, source in PARTITIONS:
            assert job.execute_in_process(partition_key=partition_key(day, source), instance=instance,
                                          run_config=QUIET).success
        defs.resolve_job_def("train_and_evaluate").execute_in_process(
            instance=instance, run_config=QUIET, asset_selection=[dg.AssetKey("duplicate_clusters"), dg.AssetKey("dataset_splits")], raise_on_error=False)
    with connect(Layout(home).warehouse) as con:
        for table in ARCHIVE_TABLES:  # every archived table has rows in every partition, splits included
            n, = con.execute(f"SELECT count(DISTINCT (source, date)) FROM corpus.{table}").fetchone()
            assert n == len(PARTITIONS) or (table == "quarantine" and n > 0), table
    return home


@pytest.fixture
def home(curated, tmp_path):
    """A copy of the curated home per test (landing files and warehouse), so each test starts from the same rows."""
    copy = tmp_path / "home"
    shutil.copytree(curated, copy)
    return copy


def storage(s3, prefix: str, retention_days: int, **kw) -> ArchiveStorage:
    return ArchiveStorage(bucket=BUCKET, prefix=prefix, endpoint_url=s3["endpoint"], aws_access_key_id=KEY_ID,
                          aws_secret_access_key=SECRET, retention_days=retention_days, **kw)


def materialize(home, archive: ArchiveStorage, instance=None) -> dg.ExecuteInProcessResult:
    return dg.materialize([archived_partitions], instance=instance, raise_on_error=False, resources={
        "duckdb": DuckDBResource(database=str(Layout(home).warehouse)), "archive": archive})


def metadata(result) -> dict:
    mat = result.asset_materializations_for_node("archived_partitions")[0]
    return {k: v.value for k, v in mat.metadata.items()}


def snapshot(home, days) -> dict[str, pl.DataFrame]:
    with connect(Layout(home).warehouse) as con:
        return {t: con.execute(f"SELECT * FROM corpus.{t} WHERE date IN (SELECT unnest(?)) ORDER BY source, date, {o}",
                               [list(days)]).pl() for t, o in ARCHIVE_TABLES.items()}


def sort_like(df: pl.DataFrame, table: str) -> pl.DataFrame:
    keys = ["source", "date", *[c.strip() for c in ARCHIVE_TABLES[table].split(",")]]
    return df.sort(keys)


def objects(s3, prefix) -> dict[str, tuple[str, object]]:
    out = {}
    for page in s3["client"].get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/"):
        out.update({o["Key"]: (o["ETag"], o["LastModified"]) for o in page.get("Contents", [])})
    return out


def test_old_partitions_move_to_parquet_and_read_back_equal_to_the_originals(home, s3):
    before_old, before_kept = snapshot(home, OLD_DAYS), snapshot(home, [KEPT_DAY])
    result = materialize(home, storage(s3, "t1", retention_keeping(KEPT_DAY)))
    assert result.success
    meta = metadata(result)
    rows = {t: before_old[t].height for t in ARCHIVE_TABLES}
    assert meta["cutoff"] == str(KEPT_DAY) and meta["partitions_archived"] == OLD_PARTITIONS
    assert meta["objects_written"] == sum(before_old[t].select("source", "date").n_unique() for t in ARCHIVE_TABLES)
    assert meta["rows_by_table"] == {t: n for t, n in rows.items() if n}
    assert meta["dagster/row_count"] == sum(rows.values()) > 1000
    assert meta["catalog_partitions"] == OLD_PARTITIONS and meta["catalog_rows"] == sum(rows.values())
    assert meta["archive"] == f"s3://{BUCKET}/t1" and meta["endpoint"] == s3["endpoint"]

    # One object per table and partition, where the layout says, and nothing else.
    expected = {f"t1/{t}/source={s}/date={d}/part.parquet"
                for t in ARCHIVE_TABLES for s, d in before_old[t].select("source", "date").unique().iter_rows()}
    assert set(objects(s3, "t1")) == expected

    store = storage(s3, "t1", 0).store()
    with connect(Layout(home).warehouse) as con:
        for table in ARCHIVE_TABLES:
            # Gone from the warehouse for the old days; the kept day untouched.
            n, = con.execute(f"SELECT count(*) FROM corpus.{table} WHERE date < ?", [KEPT_DAY]).fetchone()
            assert n == 0, table
            now = con.execute(f"SELECT * FROM corpus.{table} WHERE date = ? ORDER BY source, date, {ARCHIVE_TABLES[table]}",
                              [KEPT_DAY]).pl()
            assert now.equals(before_kept[table]), table
            # Readable: every archived row back, equal to the original, types included.
            back = read_archived(store, table)
            assert back.schema == before_old[table].schema, table
            assert sort_like(back, table).equals(sort_like(before_old[table], table)), table
        catalog = con.execute("SELECT * FROM corpus.archived_partitions ORDER BY ALL").pl()
        stats = con.execute("SELECT * FROM corpus.storage_stats WHERE location = 'archive'").pl()
    assert catalog.height == len(expected) and catalog["run_id"].n_unique() == 1
    assert set(catalog["uri"]) == {f"s3://{BUCKET}/{k}" for k in expected}
    assert catalog["rows"].sum() == sum(rows.values())
    assert stats["rows"].sum() == sum(rows.values()) and stats["approx_bytes"].sum() == catalog["bytes"].sum()
    assert set(stats["partitions"]) <= {1, 2} and stats["oldest_day"].min() == OLD_DAYS[0]

    # One partition of one table, by source and day.
    one = read_archived(store, "raw_examples", source="conversations", day=OLD_DAYS[1])
    original = before_old["raw_examples"].filter((pl.col("source") == "conversations") & (pl.col("date") == OLD_DAYS[1]))
    assert one.height == original.height > 0 and one.sort("example_id").equals(original.sort("example_id"))
    assert archived_keys(store, "raw_examples", day=OLD_DAYS[1]) == sorted(
        f"t1/raw_examples/source={s}/date={OLD_DAYS[1]}/part.parquet" for s in ("public", "conversations"))
    assert archived_keys(store, "raw_examples", source="public") == [
        f"t1/raw_examples/source=public/date={d}/part.parquet" for d in OLD_DAYS]


def test_a_rerun_archives_nothing_twice(home, s3):
    archive = storage(s3, "t2", retention_keeping(KEPT_DAY))
    first = materialize(home, archive)
    assert first.success and metadata(first)["partitions_archived"] == OLD_PARTITIONS
    stored = objects(s3, "t2")
    second = materialize(home, archive)
    assert second.success
    meta = metadata(second)
    assert meta["partitions_archived"] == 0 and meta["objects_written"] == 0 and meta["dagster/row_count"] == 0
    assert meta["rematerialized_after_archive"] == 0
    assert objects(s3, "t2") == stored  # same keys, ETags and modification times: nothing uploaded again
    with connect(Layout(home).warehouse) as con:
        n, dup = con.execute("SELECT count(*), count(*) - count(DISTINCT (table_name, source, date)) "
                             "FROM corpus.archived_partitions").fetchone()
    assert n == len(stored) and dup == 0
    # A longer retention later: only the newly expired day is archived.
    third = materialize(home, storage(s3, "t2", retention_keeping(KEPT_DAY) - 1))
    assert third.success and metadata(third)["partitions_archived"] == 1
    assert set(objects(s3, "t2")) - set(stored) == {k.replace(str(OLD_DAYS[0]), str(KEPT_DAY)) for k in stored
                                                   if str(OLD_DAYS[0]) in k}


def test_a_rematerialized_archived_day_is_reported_not_uploaded_again_and_restore_brings_it_back(home, s3):
    archive = storage(s3, "t3", retention_keeping(KEPT_DAY))
    original = snapshot(home, [OLD_DAYS[1]])
    assert materialize(home, archive).success
    stored = objects(s3, "t3")
    # Someone re-runs an archived day: its rows come back from the landing files.
    defs = make_definitions(home)
    with dg.instance_for_test() as instance:
        assert defs.resolve_job_def("curate_partition").execute_in_process(
            partition_key=partition_key(OLD_DAYS[0], "public"), instance=instance, run_config=QUIET).success
        again = materialize(home, archive, instance)
        assert again.success
        warnings = [e.user_message for e in instance.all_logs(again.run_id) if e.level == 30]  # logging.WARNING
    with connect(Layout(home).warehouse) as con:  # the re-run wrote raw, filtered, dedup, scored and their decisions
        back = sum(con.execute(f"SELECT count(*) > 0 FROM corpus.{t} WHERE source = 'public' AND date = ?",
                               [OLD_DAYS[0]]).fetchone()[0] for t in ARCHIVE_TABLES)
    meta = metadata(again)
    assert meta["partitions_archived"] == 0 and meta["rematerialized_after_archive"] == back >= 5
    assert objects(s3, "t3") == stored
    assert any("archived already" in w and "raw_examples public 2026-01-01" in w for w in warnings), warnings

    # restore_partition puts the archived rows back (replacing the re-run's) and takes the day out of the catalog.
    store = archive.store()
    with connect(Layout(home).warehouse) as con:
        restored = restore_partition(con, store, "conversations", OLD_DAYS[1])
        assert restored == {t: original[t].filter(pl.col("source") == "conversations").height for t in ARCHIVE_TABLES
                            if original[t].filter(pl.col("source") == "conversations").height}
        for table in ARCHIVE_TABLES:
            now = con.execute(f"SELECT * FROM corpus.{table} WHERE source = 'conversations' AND date = ? "
                              f"ORDER BY source, date, {ARCHIVE_TABLES[table]}", [OLD_DAYS[1]]).pl()
            assert now.equals(original[table].filter(pl.col("source") == "conversations")), table
        left, = con.execute("SELECT count(*) FROM corpus.archived_partitions WHERE source = 'conversations' AND date = ?",
                            [OLD_DAYS[1]]).fetchone()
        assert left == 0
    # Back in the warehouse and out of the catalog, it is archived again on the next run (same key, overwritten).
    rerun = materialize(home, archive)
    assert rerun.success and metadata(rerun)["partitions_archived"] == 1
    assert set(objects(s3, "t3")) == set(stored)


def test_nothing_is_deleted_when_the_copy_read_back_differs(home, s3):
    class Corrupting(ArchiveStore):
        def get_bytes(self, key):  # the bucket hands back something else than what was put
            data = super().get_bytes(key)
            return data[:-9] + b"corrupted"

    real = storage(s3, "t4", 0).store()
    bad = Corrupting(client=real.client, bucket=BUCKET, prefix="t4")
    before = snapshot(home, OLD_DAYS)
    with connect(Layout(home).warehouse) as con:
        with pytest.raises(ArchiveVerificationError, match="sha256"):
            archive_partitions(con, bad, cutoff=KEPT_DAY)
        catalog, = con.execute("SELECT count(*) FROM corpus.archived_partitions").fetchone()
    assert catalog == 0
    after = snapshot(home, OLD_DAYS)
    assert all(after[t].equals(before[t]) for t in ARCHIVE_TABLES)


def test_unconfigured_archive_fails_naming_the_env_vars_and_touches_nothing(home, monkeypatch):
    for name in ("CORPUS_ARCHIVE_BUCKET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    before = snapshot(home, OLD_DAYS)
    result = materialize(home, archive_resource_from_env())
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert "CORPUS_ARCHIVE_BUCKET" in message and "AWS_ACCESS_KEY_ID" in message and "AWS_SECRET_ACCESS_KEY" in message
    after = snapshot(home, OLD_DAYS)
    assert all(after[t].equals(before[t]) for t in ARCHIVE_TABLES)


def test_credentials_from_env_never_reach_metadata_logs_or_the_catalog(home, s3, monkeypatch):
    monkeypatch.setenv("CORPUS_ARCHIVE_BUCKET", BUCKET)
    monkeypatch.setenv("CORPUS_ARCHIVE_PREFIX", "t5")
    monkeypatch.setenv("CORPUS_ARCHIVE_ENDPOINT_URL", s3["endpoint"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("CORPUS_ARCHIVE_RETENTION_DAYS", str(retention_keeping(KEPT_DAY)))
    resource = archive_resource_from_env()
    # The secrets are EnvVar references: the resource config (and so the UI) holds the names only.
    assert isinstance(resource.aws_secret_access_key, dg.EnvVar) and isinstance(resource.aws_access_key_id, dg.EnvVar)
    with dg.instance_for_test() as instance:
        result = materialize(home, resource, instance)
        assert result.success and metadata(result)["partitions_archived"] == OLD_PARTITIONS
        records = "\n".join(json.dumps(dg.serialize_value(e)) for e in instance.all_logs(result.run_id))
        run = instance.get_run_by_id(result.run_id)
        run_config = json.dumps(run.run_config, default=str)
    assert SECRET not in records and KEY_ID not in records and SECRET not in run_config
    with connect(Layout(home).warehouse) as con:
        catalog = con.execute("SELECT * FROM corpus.archived_partitions").pl()
    assert catalog.height > 0 and SECRET not in catalog.write_csv() and KEY_ID not in catalog.write_csv()


def test_helpers():
    assert redact_url("http://user:pw@127.0.0.1:9000/x") == "http://127.0.0.1:9000/x"
    assert redact_url("https://s3.example.org") == "https://s3.example.org"
    assert cutoff_for(30, date(2026, 3, 31)) == date(2026, 3, 1)
    with pytest.raises(ValueError):
        cutoff_for(-1)
    with pytest.raises(ValueError, match="not archivable"):
        archive_partitions(None, None, cutoff=date(2026, 1, 1), tables=["export_files"])



def test_erasure_reaches_archived_partitions(home, s3):
    from corpus_platform.operations.erasure import IDENTITY_FIELDS

    archive = storage(s3, "t6", retention_keeping(KEPT_DAY))
    assert materialize(home, archive).success
    store = archive.store()
    before = {t: read_archived(store, t) for t in ARCHIVE_TABLES}
    raw = before["raw_examples"]
    users = raw["metadata"].str.json_path_match("$.user_id").drop_nulls()
    subject = users.value_counts(sort=True)["metadata"][0]  # the most active user of the archived chat logs
    ids = set(raw.filter(pl.col("metadata").str.json_path_match("$.user_id") == subject)["example_id"])
    assert len(ids) >= 2
    with connect(Layout(home).warehouse) as con:
        removed = erase_subject(con, store, subject, IDENTITY_FIELDS)
        catalog = con.execute("SELECT table_name, object_key, rows, sha256 FROM corpus.archived_partitions").fetchall()
    assert removed["raw_examples"] == len(ids)
    for table in ARCHIVE_TABLES:
        after = read_archived(store, table)
        if "example_id" in after.columns:
            assert not set(after["example_id"]) & ids, table
            assert after.height == before[table].height - removed[table]
            assert removed[table] == before[table].filter(pl.col("example_id").is_in(list(ids))).height, table
    assert subject not in read_archived(store, "raw_examples")["metadata"].str.join("").item()
    for table, key, rows, sha in catalog:  # the catalog describes the rewritten objects
        data = store.get_bytes(key)
        assert hashlib.sha256(data).hexdigest() == sha and pl.read_parquet(io.BytesIO(data)).height == rows, key
    with connect(Layout(home).warehouse) as con:  # and the partition still restores, without the subject
        restore_partition(con, store, "conversations", OLD_DAYS[1])
        left, = con.execute("SELECT count(*) FROM corpus.raw_examples WHERE json_extract_string(metadata, '$.user_id') = ?",
                            [subject]).fetchone()
    assert left == 0
