"""What the read endpoints compute: a user's interactions, training readiness, the deletion queue.

A user's interactions are read from the landing files (the captured data itself, ingested or not), newest
day first. Readiness reads the DuckDB warehouse read-only when it exists, since that is what curation
produced; otherwise the landing files through the source readers, i.e. what the next curation run would
read. Every answer says where its numbers came from.
"""

from __future__ import annotations

import gzip
import json
import threading
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from corpus_platform.capture.durable import append_line, encode_line
from corpus_platform.capture.logger import uuid7_hex

POSITIVE = "thumbs_up"
WEIGHTS = {"volume": 0.5, "coverage": 0.2, "approval": 0.3}
FORMULA = ("score = 100 * (0.5 * min(1, total_interactions / target) + 0.2 * with_feedback / total_interactions"
           " + 0.3 * positive_feedback / with_feedback); a ratio with a zero denominator counts 0")


def _day_folders(root: Path) -> list[tuple[date, Path]]:
    found = []
    for p in root.iterdir() if root.is_dir() else []:
        try:
            found.append((date.fromisoformat(p.name), p))
        except ValueError:
            continue
    return sorted(found, reverse=True)


def _records(folder: Path) -> Iterator[dict]:
    """Every JSON object line of a day folder's finished .jsonl/.jsonl.gz files; unreadable lines are skipped
    here (the conversations source quarantines them with a reason)."""
    for path in sorted(folder.rglob("*")):
        name = path.name
        if name.startswith(".") or not name.endswith((".jsonl", ".jsonl.gz")) or not path.is_file():
            continue
        try:
            data = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
        except (OSError, EOFError):
            continue
        for line in data.splitlines():
            try:
                record = json.loads(line, parse_constant=_no_constant)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN/Infinity: the conversations source quarantines such lines


def _same(value: Any, wanted: str) -> bool:
    return value is not None and not isinstance(value, (dict, list, bool)) and str(value) == wanted


def user_interactions(landing: Path, user_id: str, app_id: str | None, limit: int) -> list[dict[str, Any]]:
    """The user's interactions (raw records plus their feedback records), newest first; `app_id` None = any app."""
    out: list[dict[str, Any]] = []
    for day, folder in _day_folders(landing):
        mine: dict[str, dict[str, Any]] = {}
        feedback: list[dict] = []
        for r in _records(folder):
            if r.get("type") == "feedback":
                feedback.append(r)
            elif _same(r.get("user_id"), user_id) and (app_id is None or r.get("app_id") == app_id):
                iid = str(r.get("interaction_id"))
                mine.setdefault(iid, {"day": day.isoformat(), "record": r, "feedback": []})
        for f in feedback:
            if (item := mine.get(str(f.get("interaction_id")))) is not None:
                item["feedback"].append(f)
        out += sorted(mine.values(), key=lambda i: str(i["record"].get("timestamp")), reverse=True)
        if len(out) >= limit:
            break
    return out[:limit]


def queue_deletion(path: Path, user_id: str, app_id: str | None, key_id: str, role: str, *, fsync: bool = False,
                   request_id: str | None = None) -> dict[str, Any]:
    """Append a user-data deletion request (the key's id, never its secret); the deletion job consumes the queue."""
    now = datetime.now(timezone.utc)
    request = {
        "type": "user_deletion", "request_id": request_id or uuid7_hex(now), "user_id": user_id,
        "app_id": app_id,  # None: every app's data of this user (admin keys only)
        "requested_by": key_id, "role": role, "requested_at": now.isoformat(timespec="seconds"), "status": "queued",
    }
    append_line(path, encode_line(request), fsync=fsync)
    return request


def deletion_requests(path: Path, app_id: str | None = None) -> int:
    if not path.exists():
        return 0
    n = 0
    for line in path.read_bytes().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        n += app_id is None or r.get("app_id") == app_id
    return n


# ---- readiness ----

_cache: dict[tuple[str, str], tuple[tuple, dict[str, int]]] = {}
_cache_lock = threading.Lock()


def _folder_fingerprint(folder: Path) -> tuple:
    return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()))


def _count_batch(batch) -> dict[str, int]:
    counts = {"total_interactions": batch.examples.height, "with_feedback": 0, "positive_feedback": 0}
    kinds: dict[str, int] = {}
    for m in batch.examples["metadata"].to_list():
        fb = json.loads(m).get("feedback")
        if fb is None:
            continue
        counts["with_feedback"] += 1
        kind = fb.get("kind") if isinstance(fb, dict) else fb if isinstance(fb, str) else None
        kinds[str(kind)] = kinds.get(str(kind), 0) + 1
        counts["positive_feedback"] += kind == POSITIVE
    return {**counts, **{f"kind:{k}": v for k, v in kinds.items()}}


def _landing_counts(landing_root: Path, source: str) -> tuple[dict[str, int], int]:
    """Counts over every day folder, through the same reader curation uses; cached per folder fingerprint."""
    from corpus_platform.sources.registry import read_source

    total: dict[str, int] = {}
    days = 0
    for day, folder in _day_folders(landing_root / source):
        fp = _folder_fingerprint(folder)
        with _cache_lock:
            hit = _cache.get((source, str(folder)))
        if hit and hit[0] == fp:
            counts = hit[1]
        else:
            try:
                counts = _count_batch(read_source(source, folder, day))
            except Exception:  # a folder without readable files (or a connector source) counts nothing
                counts = {}
            with _cache_lock:
                _cache[(source, str(folder))] = (fp, counts)
        days += bool(counts.get("total_interactions"))
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v
    return total, days


WAREHOUSE_SQL = """
WITH f AS (
    SELECT json_extract(metadata, '$.feedback') AS fb FROM corpus.raw_examples WHERE source = ?
), k AS (
    SELECT fb, CASE WHEN json_type(fb) = 'OBJECT' THEN fb ->> '$.kind'
                    WHEN json_type(fb) = 'VARCHAR' THEN fb ->> '$' END AS kind FROM f
)
SELECT count(*), count(*) FILTER (WHERE fb IS NOT NULL AND json_type(fb) <> 'NULL'),
       count(*) FILTER (WHERE kind = ?) FROM k
"""


def _warehouse_counts(path: Path, source: str) -> dict[str, Any]:
    from corpus_platform.warehouse import connect

    with connect(path, read_only=True) as con:  # waits for a run's session instead of failing on DuckDB's lock
        total, with_fb, positive = con.execute(WAREHOUSE_SQL, [source, POSITIVE]).fetchone()
        days = con.execute("SELECT count(DISTINCT date) FROM corpus.raw_examples WHERE source = ?", [source]).fetchone()[0]
        curated, mean_q = con.execute(
            "SELECT count(*), avg(quality_score) FROM corpus.scored_examples WHERE source = ?", [source]).fetchone()
    return {"total_interactions": total, "with_feedback": with_fb, "positive_feedback": positive, "days": days,
            "curated_examples": curated, "mean_quality": round(mean_q, 3) if mean_q is not None else None}


def readiness(home: Path, source: str, target: int) -> dict[str, Any]:
    warehouse = home / "warehouse.duckdb"
    out: dict[str, Any] = {"source": source}
    counts: dict[str, Any] | None = None
    if warehouse.exists():
        try:
            counts = _warehouse_counts(warehouse, source)
            out["from"] = "warehouse"
            out["detail"] = f"{warehouse} (read-only): corpus.raw_examples, curated = corpus.scored_examples"
        except Exception as e:  # locked by a running curation, or not migrated yet
            out["warehouse_error"] = type(e).__name__
    if counts is None:
        landing, days = _landing_counts(home / "landing", source)
        kinds = {k.removeprefix("kind:"): v for k, v in landing.items() if k.startswith("kind:")}
        counts = {k: landing.get(k, 0) for k in ("total_interactions", "with_feedback", "positive_feedback")}
        counts.update(days=days, feedback_by_kind=kinds)
        out["from"] = "landing"
        out["detail"] = f"{home / 'landing' / source}: every day folder, read as curation would (not yet curated)"
    n, f, p = counts["total_interactions"], counts["with_feedback"], counts["positive_feedback"]
    components = {
        "volume": round(min(1.0, n / target), 4) if target > 0 else 0.0,
        "coverage": round(f / n, 4) if n else 0.0,
        "approval": round(p / f, 4) if f else 0.0,
    }
    score = round(100 * sum(WEIGHTS[k] * v for k, v in components.items()), 1)
    return {**out, **counts, "target": target, "components": components, "score": score, "formula": FORMULA}
