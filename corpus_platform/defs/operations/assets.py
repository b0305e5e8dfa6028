"""archived_partitions: source × day partitions older than the retention period move from the warehouse
to Parquet on S3-compatible storage (corpus_platform/operations/archive.py), verified before deletion."""

import os
from typing import Optional

import dagster as dg
from dagster_duckdb import DuckDBResource

from corpus_platform.defs.curation.assets import dataset_splits, deduplicated_examples, filtered_examples, scored_examples
from corpus_platform.defs.ingest.assets import raw_examples
from corpus_platform.defs.partitions import WAREHOUSE_POOL
from corpus_platform.defs.resources import warehouse
from corpus_platform.operations.archive import (
    ARCHIVE_ENV, ARCHIVE_OPTIONAL_ENV, ARCHIVE_TABLES, ArchiveNotConfigured, ArchiveStore, ArchiveVerificationError,
    archive_partitions, check_tables, cutoff_for,
)

DEFAULT_RETENTION_DAYS = 365
DEFAULT_PREFIX = "corpus"


class ArchiveStorage(dg.ConfigurableResource):
    """Where archived partitions go. Credentials arrive only through `EnvVar` (the UI shows the variable's
    name, never its value); an unset bucket or credential fails the run naming the variables to set."""

    bucket: Optional[str] = None
    prefix: str = DEFAULT_PREFIX
    endpoint_url: Optional[str] = None  # an S3-compatible server (MinIO, Ceph, ...); None: AWS S3
    region_name: str = "us-east-1"
    aws_access_key_id: Optional[str] = None
    aws_secret_access_key: Optional[str] = None
    retention_days: int = DEFAULT_RETENTION_DAYS
    tables: list[str] = list(ARCHIVE_TABLES)

    def store(self) -> ArchiveStore:
        missing = [env for name, env in ARCHIVE_ENV.items() if not getattr(self, name)]
        if missing:
            raise ArchiveNotConfigured(missing)
        return ArchiveStore.connect(bucket=self.bucket, prefix=self.prefix, endpoint_url=self.endpoint_url,
                                    region_name=self.region_name, aws_access_key_id=self.aws_access_key_id,
                                    aws_secret_access_key=self.aws_secret_access_key)


def _env(name: str) -> Optional[dg.EnvVar]:
    """`EnvVar(name)` when set, else None, so an unconfigured archive fails only its own runs."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def archive_resource_from_env() -> ArchiveStorage:
    """The archive as the environment configures it (README, Operations)."""
    optional = {k: os.environ.get(v) or None for k, v in ARCHIVE_OPTIONAL_ENV.items()}
    return ArchiveStorage(
        bucket=_env(ARCHIVE_ENV["bucket"]),
        aws_access_key_id=_env(ARCHIVE_ENV["aws_access_key_id"]),
        aws_secret_access_key=_env(ARCHIVE_ENV["aws_secret_access_key"]),
        endpoint_url=optional["endpoint_url"],
        prefix=optional["prefix"] or DEFAULT_PREFIX,
        region_name=optional["region_name"] or "us-east-1",
        retention_days=int(optional["retention_days"] or DEFAULT_RETENTION_DAYS),
    )


def _objects_table(report, limit: int = 60) -> str:
    rows = [f"| {o.source} | {o.date} | {o.table} | {o.rows} | {o.bytes} | `{o.uri}` |" for o in report.archived[:limit]]
    more = [f"| … {len(report.archived) - limit} more | | | | | |"] if len(report.archived) > limit else []
    return "\n".join(["| source | date | table | rows | bytes | object |", "|---|---|---|---|---|---|", *rows, *more])


@dg.asset(
    deps=[raw_examples, filtered_examples, deduplicated_examples, scored_examples, dataset_splits],
    group_name="operations",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "parquet", "s3"},
    description="Source × day partitions older than the retention period, moved from the warehouse to Parquet on "
                "S3-compatible storage: uploaded, read back and checked (rows, sha256), cataloged in "
                "corpus.archived_partitions, then deleted. Read them back with corpus_platform.operations.archive.read_archived.",
)
def archived_partitions(context: dg.AssetExecutionContext, duckdb: DuckDBResource, archive: ArchiveStorage) -> dg.MaterializeResult:
    try:
        store = archive.store()
        cutoff = cutoff_for(archive.retention_days)
        check_tables(archive.tables)
    except (ArchiveNotConfigured, ValueError) as e:
        raise dg.Failure(description=str(e), allow_retries=False) from e
    context.log.info(f"archiving partitions dated before {cutoff} (retention {archive.retention_days} days) "
                     f"to s3://{store.bucket}/{store.prefix}")
    try:
        with warehouse(duckdb) as con:
            report = archive_partitions(con, store, cutoff=cutoff, tables=archive.tables, run_id=context.run_id,
                                        log=context.log.info)
            catalog_partitions, catalog_rows, catalog_bytes = con.execute(
                "SELECT count(DISTINCT (source, date)), coalesce(sum(rows), 0), coalesce(sum(bytes), 0) "
                "FROM corpus.archived_partitions").fetchone()
    except ArchiveVerificationError as e:
        raise dg.Failure(description=str(e)) from e
    for table, source, day, rows in report.rematerialized:
        context.log.warning(f"{table} {source} {day}: {rows} rows for a partition archived already (not uploaded again)")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": sum(o.rows for o in report.archived),
        "cutoff": str(cutoff),
        "retention_days": archive.retention_days,
        "partitions_archived": len(report.partitions),
        "objects_written": len(report.archived),
        "bytes_written": sum(o.bytes for o in report.archived),
        "rows_by_table": dg.MetadataValue.json(report.rows_by_table),
        "rematerialized_after_archive": len(report.rematerialized),
        "archive": f"s3://{store.bucket}/{store.prefix}",
        "endpoint": store.endpoint_url or "AWS S3",
        "catalog_partitions": int(catalog_partitions),
        "catalog_rows": int(catalog_rows),
        "catalog_bytes": int(catalog_bytes),
        "objects": dg.MetadataValue.md(_objects_table(report)),
    })
