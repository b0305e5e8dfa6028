"""Erase one person's data from everywhere the platform keeps it: every warehouse table, the landing
files, the connectors' spools, and any export that held it (the exports are rebuilt without it).

A person is matched by exact id in the fields that name who wrote something: `user_id`, `author`,
`prompt_author`, `tweet_author` (metadata and raw records alike). Feedback records about the person's
interactions go with them. Adapters already trained on the data cannot be un-trained: they are listed
for the operator, not deleted.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from corpus_platform.warehouse import query

IDENTITY_FIELDS = ("user_id", "author", "prompt_author", "tweet_author", "userName", "screen_name", "username")
EXAMPLE_TABLES = ("raw_examples", "filtered_examples", "deduplicated_examples", "scored_examples", "dataset_splits", "decisions",
                  "minhash_bands", "duplicate_clusters", "example_embeddings", "review_queue", "review_verdicts",
                  "reviewed_examples")


def subject_hash(subject: str) -> str:
    return hashlib.sha256(subject.encode("utf-8")).hexdigest()


def subject_examples(con: duckdb.DuckDBPyConnection, subject: str) -> pl.DataFrame:
    """The subject's examples (example_id, source_id, texts) as the raw table holds them."""
    match = " OR ".join(f"json_extract_string(metadata, '$.{f}') = $s" for f in IDENTITY_FIELDS)
    return con.execute(
        f"SELECT DISTINCT example_id, source_id, [m.content FOR m IN messages] AS texts FROM corpus.raw_examples WHERE {match}",
        {"s": subject},
    ).pl()


def erase_rows(con: duckdb.DuckDBPyConnection, subject: str, example_ids: list[str],
               distillation_batches: Path | None = None) -> dict[str, int]:
    """Delete the subject's rows from every table in one transaction; returns rows deleted per table."""
    deleted: dict[str, int] = {}
    con.register("_erase", pl.DataFrame({"example_id": example_ids}, schema={"example_id": pl.Utf8}).to_arrow())
    needle = json.dumps(subject)
    try:
        con.execute("BEGIN TRANSACTION")
        # Teacher answers and distilled examples derive from the person's instructions (before scored rows go).
        from corpus_platform.distillation.erasure import erase_distillation

        deleted.update({f"distillation_{k}": n for k, n in
                        erase_distillation(con, example_ids, distillation_batches).items()})
        # Judge verdicts are keyed by content hash and their rationale may quote the text.
        n, = con.execute("""SELECT count(*) FROM corpus.judgments WHERE content_hash IN (
            SELECT content_hash FROM corpus.deduplicated_examples WHERE example_id IN (SELECT example_id FROM _erase))""").fetchone()
        con.execute("""DELETE FROM corpus.judgments WHERE content_hash IN (
            SELECT content_hash FROM corpus.deduplicated_examples WHERE example_id IN (SELECT example_id FROM _erase))""")
        deleted["judgments"] = n
        for table in EXAMPLE_TABLES:
            n, = con.execute(f"SELECT count(*) FROM corpus.{table} WHERE example_id IN (SELECT example_id FROM _erase)").fetchone()
            con.execute(f"DELETE FROM corpus.{table} WHERE example_id IN (SELECT example_id FROM _erase)")
            deleted[table] = n
        n, = con.execute("SELECT count(*) FROM corpus.near_duplicate_pairs WHERE id_a IN (SELECT example_id FROM _erase) "
                         "OR id_b IN (SELECT example_id FROM _erase)").fetchone()
        con.execute("DELETE FROM corpus.near_duplicate_pairs WHERE id_a IN (SELECT example_id FROM _erase) "
                    "OR id_b IN (SELECT example_id FROM _erase)")
        deleted["near_duplicate_pairs"] = n
        # Quarantined input is raw text: match the id as a JSON string value of an identity field.
        patterns = [f'%"{f}": {needle}%' for f in IDENTITY_FIELDS] + [f'%"{f}":{needle}%' for f in IDENTITY_FIELDS]
        where = " OR ".join("raw LIKE ?" for _ in patterns)
        n, = con.execute(f"SELECT count(*) FROM corpus.quarantine WHERE {where}", patterns).fetchone()
        con.execute(f"DELETE FROM corpus.quarantine WHERE {where}", patterns)
        deleted["quarantine"] = n
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("_erase")
    return deleted


def _names_subject(value: Any, subject: str, interactions: set[str]) -> bool:
    if isinstance(value, dict):
        if any(value.get(f) == subject for f in IDENTITY_FIELDS):
            return True
        if value.get("type") == "feedback" and value.get("interaction_id") in interactions:
            return True
        return any(_names_subject(v, subject, interactions) for v in value.values() if isinstance(v, (dict, list)))
    if isinstance(value, list):
        return any(_names_subject(v, subject, interactions) for v in value)
    return False


def _rewrite(path: Path, keep: bytes) -> None:
    tmp = path.with_name(f".{path.name}.erase-{os.getpid()}")
    tmp.write_bytes(gzip.compress(keep) if path.name.endswith(".gz") else keep)
    os.replace(tmp, path)


def scrub_files(roots: list[Path], subject: str, interactions: set[str]) -> dict[str, int]:
    """Rewrite JSON/JSONL(.gz) files under `roots` without the subject's records; returns records removed per file."""
    removed: dict[str, int] = {}
    for root in roots:
        if not root.exists():
            continue
        for path in sorted(p for p in root.rglob("*") if p.is_file() and ".json" in p.name):
            raw = path.read_bytes()
            try:
                data = gzip.decompress(raw) if path.name.endswith(".gz") else raw
            except (OSError, EOFError):
                continue  # an unreadable gzip holds no parseable record (it is quarantined as a whole)
            if subject.encode() not in data and not any(i.encode() in data for i in interactions):
                continue
            if ".jsonl" in path.name:
                kept, n = [], 0
                for line in data.splitlines(keepends=True):
                    try:
                        drop = _names_subject(json.loads(line), subject, interactions)
                    except ValueError:
                        drop = subject.encode() in line  # an unparseable line that names the subject goes too
                    n += drop
                    if not drop:
                        kept.append(line)
                if n:
                    _rewrite(path, b"".join(kept))
                    removed[str(path)] = n
            else:
                try:
                    records = json.loads(data)
                except ValueError:
                    continue
                if isinstance(records, list):
                    kept_records = [r for r in records if not _names_subject(r, subject, interactions)]
                    if len(kept_records) < len(records):
                        _rewrite(path, json.dumps(kept_records, ensure_ascii=False).encode())
                        removed[str(path)] = len(records) - len(kept_records)
    return removed


def purge_exports(con: duckdb.DuckDBPyConnection, exports_root: Path, texts: list[str], keep: str) -> list[str]:
    """Delete every export version except `keep` whose files contain any of the subject's texts."""
    needles = {t.encode("utf-8") for t in texts if t and len(t) >= 8}
    needles |= {json.dumps(t, ensure_ascii=False)[1:-1].encode("utf-8") for t in texts if t and len(t) >= 8}
    removed: list[str] = []
    if not exports_root.exists():
        return removed
    for version_dir in sorted(p for p in exports_root.iterdir() if p.is_dir() and p.name != keep):
        blob = b"".join(f.read_bytes() for f in version_dir.rglob("*") if f.is_file())
        if version_dir.name.startswith(".tmp") or any(n in blob for n in needles):
            shutil.rmtree(version_dir)
            con.execute("DELETE FROM corpus.export_files WHERE export_version = ?", [version_dir.name])
            removed.append(version_dir.name)
    return removed


def adapters_trained_on(adapters_root: Path, export_versions: list[str]) -> list[str]:
    """Adapters whose lineage names one of the removed exports: the operator decides whether to retrain."""
    found = []
    for lineage in sorted(adapters_root.glob("*/data_version.json")) if adapters_root.exists() else []:
        if json.loads(lineage.read_text()).get("export_version") in export_versions:
            found.append(lineage.parent.name)
    return found


def record_audit(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    con.execute(
        """INSERT INTO corpus.deletion_audit (request_id, subject_sha256, requested_by, requested_at, completed_at,
           examples, rows_deleted, files_rewritten, exports_removed, export_version)
           VALUES ($request_id, $subject_sha256, $requested_by, $requested_at, current_timestamp, $examples,
                   $rows_deleted, $files_rewritten, $exports_removed, $export_version)""",
        {**row, "rows_deleted": json.dumps(row["rows_deleted"]), "files_rewritten": json.dumps(row["files_rewritten"]),
         "exports_removed": json.dumps(row["exports_removed"])},
    )


def all_text(con: duckdb.DuckDBPyConnection) -> str:
    """Every value of every corpus table as text: what a 'no trace left' audit searches."""
    tables = [r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'corpus' AND table_type = 'BASE TABLE'").fetchall()]
    return "\n".join(str(query(con, f"SELECT * FROM corpus.{t}").rows()) for t in tables)


def scrub_api_index(path: Path, subject: str) -> int:
    """Remove the subject from the capture API's index (interactions, their feedback and idempotency replies)."""
    import sqlite3

    if not path.exists():
        return 0
    con = sqlite3.connect(path, timeout=30)
    try:
        con.execute("PRAGMA secure_delete = ON")  # overwrite freed pages: no residue in the file
        with con:
            ids = [r[0] for r in con.execute("SELECT interaction_id FROM interactions WHERE user_id = ?", (subject,))]
            for chunk in range(0, len(ids), 500):
                part = ids[chunk:chunk + 500]
                marks = ",".join("?" * len(part))
                con.execute(f"DELETE FROM feedback WHERE interaction_id IN ({marks})", part)
                con.execute(f"DELETE FROM idempotency WHERE ref IN ({marks})", part)
            con.execute("DELETE FROM interactions WHERE user_id = ?", (subject,))
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(ids)
    finally:
        con.close()


def find_request(queue: Path, request_id: str) -> dict[str, Any]:
    """A deletion request queued by the capture API (`requests/deletions.jsonl`)."""
    if queue.exists():
        for line in queue.read_text(encoding="utf-8").splitlines():
            try:
                request = json.loads(line)
            except ValueError:
                continue
            if request.get("request_id") == request_id:
                return request
    raise KeyError(f"no deletion request {request_id} in {queue}")


def redact_request(queue: Path, request_id: str, subject_sha256: str) -> None:
    """Once processed, a queued request keeps only the subject's hash. The rewrite holds the same flock
    as the API's appender, which reopens the replaced file, so no request being queued meanwhile is lost;
    the line count stays the same (the queue sensor's cursor counts lines)."""
    import fcntl

    if not queue.exists():
        return
    fd = os.open(queue, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        out = []
        for line in queue.read_bytes().splitlines(keepends=True):
            try:
                request = json.loads(line)
            except ValueError:
                out.append(line)
                continue
            if isinstance(request, dict) and request.get("request_id") == request_id:
                request = {**request, "user_id": None, "subject_sha256": subject_sha256, "status": "done"}
                line = (json.dumps(request, sort_keys=True) + "\n").encode()
            out.append(line)
        tmp = queue.with_name(f".{queue.name}.tmp-{os.getpid()}")
        tmp.write_bytes(b"".join(out))
        os.replace(tmp, queue)
    finally:
        os.close(fd)
