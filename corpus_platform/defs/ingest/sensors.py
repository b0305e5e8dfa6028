"""landing_files_sensor: new or changed files under landing/<source>/<YYYY-MM-DD>/ request that
partition's curation run. The cursor keeps one digest per partition folder, so each file triggers once."""

import hashlib
import json
from datetime import date, datetime, timezone
from pathlib import Path

import dagster as dg

from corpus_platform.defs.operations.jobs import curate_partition_job
from corpus_platform.defs.partitions import partition_key
from corpus_platform.defs.resources import CorpusHome
from corpus_platform.settings import FILE_SOURCES, start_date


def _visible_files(folder: Path) -> list[Path]:
    """Files a writer has finished: hidden and temporary names are still being written."""
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith((".tmp", ".part"))
    )


def folder_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in _visible_files(folder):
        st = p.stat()
        h.update(f"{p.relative_to(folder)}\x1f{st.st_size}\x1f{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def scan_landing(landing: Path, seen: dict[str, str], first_day: date, last_day: date) -> tuple[list[tuple[str, str, str]], dict[str, str], list[str]]:
    """(partitions to run as (day, source, digest), new cursor, skipped folder messages)."""
    to_run, cursor, skipped = [], dict(seen), []
    for source in FILE_SOURCES:
        root = landing / source
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            try:
                day = date.fromisoformat(folder.name)
            except ValueError:
                skipped.append(f"{folder}: not a YYYY-MM-DD folder")
                continue
            if not first_day <= day <= last_day:
                skipped.append(f"{folder}: outside the partition range {first_day}..{last_day}")
                continue
            if not _visible_files(folder):
                continue
            digest = folder_digest(folder)
            key = f"{source}|{day.isoformat()}"
            if seen.get(key) != digest:
                to_run.append((day.isoformat(), source, digest))
                cursor[key] = digest
    return to_run, cursor, skipped


@dg.sensor(job=curate_partition_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.STOPPED)
def landing_files_sensor(context: dg.SensorEvaluationContext, corpus_home: CorpusHome) -> dg.SensorResult:
    seen = json.loads(context.cursor) if context.cursor else {}
    today = datetime.now(timezone.utc).date()
    to_run, cursor, skipped = scan_landing(corpus_home.layout.landing, seen, date.fromisoformat(start_date()), today)
    for message in skipped:
        context.log.warning(f"ignored {message}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(partition_key=partition_key(day, source), run_key=f"{source}|{day}|{digest}",
                          tags={"corpus/trigger": "landing_files"})
            for day, source, digest in to_run
        ],
        cursor=json.dumps(cursor, sort_keys=True),
    )
