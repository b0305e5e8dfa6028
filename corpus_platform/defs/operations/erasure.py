"""delete_user_data: erase one user's data from every table, file and export, rebuild the exports
without it, and record an audit row. Fed by the capture API's deletion queue or run by an operator."""

from typing import Optional

import dagster as dg
from dagster_duckdb import DuckDBResource

from corpus_platform.curation.datasets import export_splits, rebuild_splits
from corpus_platform.curation.global_dedup import resolve_clusters
from corpus_platform.defs.curation.resources import CurationSettings
from corpus_platform.defs.partitions import WAREHOUSE_POOL
from corpus_platform.defs.resources import CorpusHome, warehouse
from corpus_platform.defs.operations.assets import ArchiveStorage
from corpus_platform.operations import erasure
from corpus_platform.operations.archive import erase_subject
from corpus_platform.warehouse import replace_rows


class DeleteUserConfig(dg.Config):
    """Give `request_id` (from the API queue: the run config then holds no personal id) or `user_id`."""

    request_id: Optional[str] = None
    user_id: Optional[str] = None
    requested_by: str = "operator"


@dg.op(pool=WAREHOUSE_POOL, tags={"kind": "gdpr"})
def erase_user_data(context: dg.OpExecutionContext, config: DeleteUserConfig, duckdb: DuckDBResource,
                    corpus_home: CorpusHome, curation: CurationSettings, archive: ArchiveStorage) -> dict:
    layout = corpus_home.layout
    queue = layout.home / "requests" / "deletions.jsonl"
    if config.request_id:
        request = erasure.find_request(queue, config.request_id)
        subject, requested_by, requested_at = request["user_id"], request.get("requested_by"), request.get("requested_at")
    elif config.user_id:
        subject, requested_by, requested_at = config.user_id, config.requested_by, None
    else:
        raise dg.Failure(description="give request_id (a queued API request) or user_id")
    request_id = config.request_id or f"manual-{context.run_id}"
    with warehouse(duckdb) as con:
        found = erasure.subject_examples(con, subject)
        texts = [t for ts in found["texts"].to_list() for t in ts]
        deleted = erasure.erase_rows(con, subject, found["example_id"].to_list(), layout.home / "distillation" / "batches")
        files = erasure.scrub_files([layout.landing, layout.state], subject, set(found["source_id"].to_list()))
        deleted["api_index_interactions"] = erasure.scrub_api_index(layout.home / "api" / "state.sqlite3", subject)
        archived, = con.execute("SELECT count(*) FROM corpus.archived_partitions").fetchone()
        if archived:  # archived days hold the person too: an unconfigured archive fails the job rather than skip them
            removed_archived = erase_subject(con, archive.store(), subject, erasure.IDENTITY_FIELDS)
            deleted.update({f"archive_{t}": n for t, n in removed_archived.items()})
        clusters, cluster_decisions = resolve_clusters(con, curation.dedup())  # a removed keeper's duplicates get a new one
        replace_rows(con, [("duplicate_clusters", clusters, "TRUE", []), ("decisions", cluster_decisions, "stage = ?", ["cluster"])])
        split = rebuild_splits(con, curation.dataset_rules(layout.home))
        manifest = export_splits(con, layout.exports, tuple(curation.export_formats), curation.export_think_block)
        removed = erasure.purge_exports(con, layout.exports, texts, keep=manifest["version"])
        report = {"request_id": request_id, "subject_sha256": erasure.subject_hash(subject), "requested_by": requested_by,
                  "requested_at": requested_at, "examples": found.height, "rows_deleted": deleted,
                  "files_rewritten": {str(p).replace(str(layout.home), "$CORPUS_HOME"): n for p, n in files.items()},
                  "exports_removed": removed, "export_version": manifest["version"]}
        erasure.record_audit(con, report)
    if config.request_id:
        erasure.redact_request(queue, config.request_id, report["subject_sha256"])
    stale_adapters = erasure.adapters_trained_on(layout.adapters, removed)
    if stale_adapters:
        context.log.warning(f"adapters trained on erased data (retrain and delete them): {stale_adapters}")
    context.log_event(dg.AssetMaterialization("dataset_splits", metadata={
        "dagster/row_count": split.height, "rebuilt_by": "delete_user_data", "request_id": request_id}))
    context.log_event(dg.AssetMaterialization("training_exports", metadata={
        "dagster/row_count": sum(manifest["counts"].values()), "export_version": manifest["version"],
        "rebuilt_by": "delete_user_data", "request_id": request_id}))
    context.log.info(f"erased request {request_id}: {found.height} examples, {sum(files.values())} file records, "
                     f"{len(removed)} exports removed")
    return {**report, "adapters_trained_on_erased_data": stale_adapters}


@dg.job(description="Erase one user's data (GDPR): every table, landing file, spool and export; exports rebuilt; audit row.")
def delete_user_data():
    erase_user_data()
