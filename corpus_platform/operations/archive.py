"""Retention: move (table, source, date) partitions older than the retention period out of the DuckDB
warehouse to Parquet on S3-compatible storage, and read them back.

One object per table and partition, at `s3://<bucket>/<prefix>/<table>/source=<s>/date=<d>/part.parquet`
(Hive-style, so any Parquet reader can prune by source and date). For each partition:

1. its rows of every archived table are written to a temporary Parquet file (Polars, zstd);
2. the file is uploaded with boto3 and downloaded again; the copy must have the file's sha256, the row
   count, and equal the rows read from the warehouse;
3. one transaction re-counts the rows (so a concurrent write shows as a mismatch instead of a loss),
   records each object in `corpus.archived_partitions` (sql/008) and deletes the rows.

A partition is archived once: a (table, source, date) already in the catalog is never uploaded again.
If rows come back for it (someone re-materialized an archived day), they are reported, left in place,
and not uploaded. `restore_partition` brings an archived partition back into the warehouse.

Credentials are passed to boto3 and nowhere else: not logged, not in the report, not in the catalog.
Nothing here reads the bucket through DuckDB's httpfs (an extension DuckDB downloads at run time):
reads go through boto3 `get_object` and Polars.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable, Iterable, Optional
from urllib.parse import urlsplit, urlunsplit

import duckdb
import polars as pl

from corpus_platform.schema import utcnow

# The tables archived per (source, date), each with the order its rows are written in. dataset_splits and
# the split decisions are rebuilt from scored_examples by dataset_splits; archiving them with the partition
# keeps the warehouse consistent (no split row without its scored example).
ARCHIVE_TABLES: dict[str, str] = {
    "raw_examples": "example_id",
    "quarantine": "file, line, reason",
    "filtered_examples": "example_id",
    "deduplicated_examples": "example_id",
    "scored_examples": "example_id",
    "dataset_splits": "example_id",
    "decisions": "stage, example_id",
}

# Required settings and the environment variables that carry them (read by the Dagster resource).
ARCHIVE_ENV: dict[str, str] = {
    "bucket": "CORPUS_ARCHIVE_BUCKET",
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
}
# Optional ones: the endpoint of an S3-compatible server (unset: AWS S3, or boto3's own AWS_ENDPOINT_URL_S3),
# the key prefix, the region, the retention in days.
ARCHIVE_OPTIONAL_ENV: dict[str, str] = {
    "endpoint_url": "CORPUS_ARCHIVE_ENDPOINT_URL",
    "prefix": "CORPUS_ARCHIVE_PREFIX",
    "region_name": "AWS_DEFAULT_REGION",
    "retention_days": "CORPUS_ARCHIVE_RETENTION_DAYS",
}

Log = Callable[[str], Any]


class ArchiveNotConfigured(RuntimeError):
    """Raised before anything is read or written when a required setting is missing."""

    def __init__(self, missing: list[str]):
        self.missing = missing
        super().__init__(f"the archive is not configured: set {', '.join(missing)}")


class ArchiveVerificationError(RuntimeError):
    """The object read back differs from what was written, or the rows changed while archiving."""


def redact_url(url: Optional[str]) -> Optional[str]:
    """An endpoint URL without user:password, for logs and metadata."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class ArchiveStore:
    """A bucket and key prefix on S3-compatible storage, through a boto3 S3 client."""

    client: Any = field(repr=False)
    bucket: str
    prefix: str = ""
    endpoint_url: Optional[str] = None  # for display only; the client already holds it

    @classmethod
    def connect(cls, *, bucket: str, aws_access_key_id: str, aws_secret_access_key: str, prefix: str = "",
                endpoint_url: Optional[str] = None, region_name: str = "us-east-1") -> "ArchiveStore":
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3", endpoint_url=endpoint_url or None, region_name=region_name,
            aws_access_key_id=aws_access_key_id, aws_secret_access_key=aws_secret_access_key,
            # Path-style works with every S3-compatible server (MinIO, moto, Ceph) and with AWS.
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"}),
        )
        return cls(client=client, bucket=bucket, prefix=prefix.strip("/"), endpoint_url=redact_url(endpoint_url))

    def key(self, table: str, source: str, day: date | str) -> str:
        name = f"{table}/source={source}/date={day}/part.parquet"
        return f"{self.prefix}/{name}" if self.prefix else name

    def table_prefix(self, table: str, source: Optional[str] = None) -> str:
        name = f"{table}/" + (f"source={source}/" if source else "")
        return f"{self.prefix}/{name}" if self.prefix else name

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def put_file(self, key: str, path: Path, sha256: str, rows: int) -> None:
        with open(path, "rb") as fh:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=fh, ContentType="application/vnd.apache.parquet",
                                   Metadata={"sha256": sha256, "rows": str(rows)})

    def get_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def keys(self, prefix: str) -> list[str]:
        found: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            found += [o["Key"] for o in page.get("Contents", [])]
        return sorted(found)


@dataclass(frozen=True)
class ArchivedObject:
    table: str
    source: str
    date: date
    uri: str
    key: str
    rows: int
    bytes: int
    sha256: str


@dataclass
class ArchiveReport:
    cutoff: date
    archived: list[ArchivedObject] = field(default_factory=list)
    # (table, source, date, rows): rows found for a partition the catalog says is archived already.
    rematerialized: list[tuple[str, str, date, int]] = field(default_factory=list)

    @property
    def partitions(self) -> list[tuple[str, date]]:
        return sorted({(o.source, o.date) for o in self.archived}, key=lambda p: (p[1], p[0]))

    @property
    def rows_by_table(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.archived:
            out[o.table] = out.get(o.table, 0) + o.rows
        return out


def cutoff_for(retention_days: int, today: Optional[date] = None) -> date:
    """Partitions dated strictly before the cutoff are older than the retention period."""
    if retention_days < 0:
        raise ValueError("retention_days must be >= 0")
    return (today or utcnow().date()) - timedelta(days=retention_days)


def check_tables(tables: Iterable[str]) -> list[str]:
    tables = list(tables)
    unknown = sorted(set(tables) - set(ARCHIVE_TABLES))
    if unknown:
        raise ValueError(f"not archivable: {unknown}; archivable tables are {list(ARCHIVE_TABLES)}")
    return [t for t in ARCHIVE_TABLES if t in tables]  # canonical order


def _catalogued(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str, date]]:
    return {(t, s, d) for t, s, d in con.execute("SELECT table_name, source, date FROM corpus.archived_partitions").fetchall()}


def pending(con: duckdb.DuckDBPyConnection, cutoff: date, tables: Iterable[str] = ARCHIVE_TABLES
            ) -> tuple[dict[tuple[str, date], dict[str, int]], list[tuple[str, str, date, int]]]:
    """({(source, date): {table: rows}} to archive, [(table, source, date, rows)] already archived but back)."""
    tables = check_tables(tables)
    done = _catalogued(con)
    todo: dict[tuple[str, date], dict[str, int]] = {}
    back: list[tuple[str, str, date, int]] = []
    for table in tables:
        for source, day, rows in con.execute(
                f"SELECT source, date, count(*) FROM corpus.{table} WHERE date < ? GROUP BY ALL ORDER BY ALL", [cutoff]).fetchall():
            if (table, source, day) in done:
                back.append((table, source, day, rows))
            else:
                todo.setdefault((source, day), {})[table] = rows
    return dict(sorted(todo.items(), key=lambda kv: (kv[0][1], kv[0][0]))), back


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _upload_verified(store: ArchiveStore, table: str, source: str, day: date, frame: pl.DataFrame,
                     workdir: Path) -> ArchivedObject:
    path = workdir / f"{table}.parquet"
    frame.write_parquet(path, compression="zstd", statistics=True)
    local = path.read_bytes()
    sha = _sha256(local)
    key = store.key(table, source, day)
    store.put_file(key, path, sha, frame.height)
    path.unlink()
    remote = store.get_bytes(key)  # verify the copy in the bucket, not the local file
    if _sha256(remote) != sha:
        raise ArchiveVerificationError(f"{store.uri(key)}: sha256 of the stored object differs from the file written")
    back = pl.read_parquet(io.BytesIO(remote))
    if back.height != frame.height or not back.equals(frame):
        raise ArchiveVerificationError(f"{store.uri(key)}: {back.height} rows read back, {frame.height} written")
    return ArchivedObject(table, source, day, store.uri(key), key, frame.height, len(remote), sha)


def _commit(con: duckdb.DuckDBPyConnection, store: ArchiveStore, objects: list[ArchivedObject],
            run_id: Optional[str]) -> None:
    """Catalog the objects and delete their rows, in one transaction; any row-count change aborts it."""
    now = utcnow()
    con.execute("BEGIN TRANSACTION")
    try:
        for o in objects:
            n, = con.execute(f"SELECT count(*) FROM corpus.{o.table} WHERE date = ? AND source = ?", [o.date, o.source]).fetchone()
            if n != o.rows:
                raise ArchiveVerificationError(
                    f"{o.table} {o.source} {o.date}: {n} rows now, {o.rows} archived (written to while archiving); nothing deleted")
            con.execute(
                "INSERT INTO corpus.archived_partitions (table_name, source, date, uri, bucket, object_key, rows, bytes, sha256,"
                " archived_at, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [o.table, o.source, o.date, o.uri, store.bucket, o.key, o.rows, o.bytes, o.sha256, now, run_id])
            con.execute(f"DELETE FROM corpus.{o.table} WHERE date = ? AND source = ?", [o.date, o.source])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def archive_partitions(con: duckdb.DuckDBPyConnection, store: ArchiveStore, *, cutoff: date,
                       tables: Iterable[str] = ARCHIVE_TABLES, run_id: Optional[str] = None,
                       log: Optional[Log] = None) -> ArchiveReport:
    """Archive every (source, date) partition dated before `cutoff` of `tables`; see the module doc."""
    log = log or (lambda _msg: None)
    todo, back = pending(con, cutoff, tables)
    report = ArchiveReport(cutoff=cutoff, rematerialized=back)
    for table, source, day, rows in back:
        log(f"{table} {source} {day}: {rows} rows, but this partition was archived already: left in place, not uploaded "
            f"(restore_partition it, or delete the rows)")
    with tempfile.TemporaryDirectory(prefix="corpus-archive-") as tmp:
        for (source, day), counts in todo.items():
            objects = []
            for table in counts:
                order = ARCHIVE_TABLES[table]
                frame = con.execute(f"SELECT * FROM corpus.{table} WHERE date = ? AND source = ? ORDER BY {order}",
                                    [day, source]).pl()
                objects.append(_upload_verified(store, table, source, day, frame, Path(tmp)))
            _commit(con, store, objects, run_id)
            report.archived += objects
            log(f"archived {source} {day}: " + ", ".join(f"{o.table} {o.rows}" for o in objects))
    return report


def archived_keys(store: ArchiveStore, table: str, *, source: Optional[str] = None, day: date | str | None = None) -> list[str]:
    """The objects of one table in the bucket, optionally of one source and/or day."""
    if table not in ARCHIVE_TABLES:
        raise ValueError(f"not an archived table: {table}")
    keys = store.keys(store.table_prefix(table, source))
    return [k for k in keys if day is None or f"/date={day}/" in k]


def read_archived(store: ArchiveStore, table: str, *, source: Optional[str] = None,
                  day: date | str | None = None) -> pl.DataFrame:
    """Archived rows of one table (optionally one source and/or day), read from the bucket with boto3 and
    Polars. Columns and types are those of the warehouse table when it was archived."""
    frames = [pl.read_parquet(io.BytesIO(store.get_bytes(k))) for k in archived_keys(store, table, source=source, day=day)]
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames, how="diagonal_relaxed")


def restore_partition(con: duckdb.DuckDBPyConnection, store: ArchiveStore, source: str, day: date,
                      tables: Iterable[str] = ARCHIVE_TABLES) -> dict[str, int]:
    """Put an archived partition back into the warehouse and drop it from the catalog (the objects stay in
    the bucket). Rows the warehouse holds for it are replaced. Returns rows restored per table."""
    wanted = check_tables(tables)
    catalog = con.execute(
        "SELECT table_name, object_key, rows, sha256 FROM corpus.archived_partitions WHERE source = ? AND date = ?",
        [source, day]).fetchall()
    frames = {}
    for table, key, rows, sha in catalog:
        if table not in wanted:
            continue
        data = store.get_bytes(key)
        if _sha256(data) != sha:
            raise ArchiveVerificationError(f"{store.uri(key)}: sha256 differs from the catalog's")
        frames[table] = pl.read_parquet(io.BytesIO(data))
        if frames[table].height != rows:
            raise ArchiveVerificationError(f"{store.uri(key)}: {frames[table].height} rows, catalog says {rows}")
    con.execute("BEGIN TRANSACTION")
    try:
        for table, frame in frames.items():
            con.execute(f"DELETE FROM corpus.{table} WHERE date = ? AND source = ?", [day, source])
            if frame.height:
                con.register("_restore", frame.to_arrow())
                try:
                    names = ", ".join(f'"{c}"' for c in frame.columns)
                    con.execute(f"INSERT INTO corpus.{table} ({names}) SELECT {names} FROM _restore")
                finally:
                    con.unregister("_restore")
            con.execute("DELETE FROM corpus.archived_partitions WHERE table_name = ? AND source = ? AND date = ?",
                        [table, source, day])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return {t: f.height for t, f in frames.items()}


def erase_subject(con: duckdb.DuckDBPyConnection, store: ArchiveStore, subject: str,
                  identity_fields: Iterable[str]) -> dict[str, int]:
    """GDPR erasure in the archive: drop one person's rows from every archived object and re-upload it.

    The person's examples are those whose archived raw_examples metadata names `subject` in one of
    `identity_fields` (the erasure module's IDENTITY_FIELDS); their rows go from every archived table, and
    quarantined records whose raw text names the subject in such a field go too. Each rewritten object is
    verified like an archived one, and its catalog row gets the new row count, size and sha256. Returns rows
    removed per table (0 where none). The subject is never logged or stored."""
    import json

    fields = list(identity_fields)
    catalog = con.execute(
        "SELECT table_name, source, date, object_key, rows, sha256 FROM corpus.archived_partitions ORDER BY ALL").fetchall()

    def load(key: str, sha: str) -> pl.DataFrame:
        data = store.get_bytes(key)
        if _sha256(data) != sha:
            raise ArchiveVerificationError(f"{store.uri(key)}: sha256 differs from the catalog's")
        return pl.read_parquet(io.BytesIO(data))

    names = pl.lit(False)
    for f in fields:
        names = names | (pl.col("metadata").str.json_path_match(f"$.{f}") == subject)
    erased_ids: set[str] = set()
    frames: dict[str, pl.DataFrame] = {}
    for table, source, day, key, rows, sha in catalog:
        if table == "raw_examples":
            frames[key] = load(key, sha)
            erased_ids |= set(frames[key].filter(names)["example_id"].to_list())
    needle = json.dumps(subject)
    patterns = [f'"{f}": {needle}' for f in fields] + [f'"{f}":{needle}' for f in fields]
    removed = {t: 0 for t in ARCHIVE_TABLES}
    now = utcnow()
    with tempfile.TemporaryDirectory(prefix="corpus-archive-erase-") as tmp:
        for table, source, day, key, rows, sha in catalog:
            frame = frames.get(key)
            if frame is None:
                frame = load(key, sha)
            if table == "quarantine":
                keep = ~pl.any_horizontal([pl.col("raw").fill_null("").str.contains(p, literal=True) for p in patterns])
            else:
                keep = ~pl.col("example_id").is_in(list(erased_ids))
            kept = frame.filter(keep)
            if kept.height == frame.height:
                continue
            o = _upload_verified(store, table, source, day, kept, Path(tmp))
            con.execute("UPDATE corpus.archived_partitions SET rows = ?, bytes = ?, sha256 = ?, archived_at = ? "
                        "WHERE table_name = ? AND source = ? AND date = ?", [o.rows, o.bytes, o.sha256, now, table, source, day])
            removed[table] += frame.height - kept.height
    return removed

