"""The verdict journal: an append-only JSONL file under CORPUS_HOME/state/review/ that the review page writes.

Why a journal and not the warehouse: DuckDB has one writer per file, and Dagster runs hold the warehouse
while they materialize. The page never writes the warehouse; it appends one line per verdict (one
`os.write` under an exclusive `flock`, shared with the capture logger), and the next materialization of
`dataset_splits` or `review_queue` imports the journal into `corpus.review_verdicts`. The journal is the
record; the table is its import (rebuilt from it, so a line erased here is gone there too).

Each line names the reviewed example's author fields (`subject`, copied from its raw metadata), so the
user-data deletion job, which scrubs every JSONL file under CORPUS_HOME/state/ of records naming its
subject, removes a person's verdicts (edited and original responses included) with the rest of their data.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from corpus_platform.capture.durable import append_line, encode_line
from corpus_platform.capture.logger import uuid7_hex
from corpus_platform.operations.erasure import IDENTITY_FIELDS  # the fields that name a person
from corpus_platform.settings import Layout

VERDICTS = ("keep", "reject", "edit")
RECORD_TYPE = "review_verdict"
MAX_REASON_CHARS = 500
MAX_RESPONSE_CHARS = 50_000


def journal_path(home: Path) -> Path:
    return Layout(Path(home)).state / "review" / "verdicts.jsonl"


def reason_rule(reason: str | None) -> str:
    """The decision rule of a reviewer's rejection: `reviewer:<reason as a slug>`."""
    slug = re.sub(r"[^a-z0-9]+", "_", (reason or "").strip().lower()).strip("_")[:60]
    return f"reviewer:{slug or 'unspecified'}"


def identity_of(metadata: str | dict | None) -> dict[str, str]:
    """The person-naming fields of an example's metadata (top level), for the erasure scrub."""
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            return {}
    if not isinstance(metadata, dict):
        return {}
    return {f: str(metadata[f]) for f in IDENTITY_FIELDS if metadata.get(f) not in (None, "")}


def _utc(at: datetime | None) -> datetime:
    at = at or datetime.now(timezone.utc)
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def make_verdict(*, example_id: str, source: str, day: date | str, verdict: str, reviewer: str,
                 original_response: str | None, reason: str | None = None, edited_response: str | None = None,
                 subject: dict[str, str] | None = None, at: datetime | None = None) -> dict[str, Any]:
    """A validated journal record; raises ValueError with a message fit for the reviewer."""
    at = _utc(at)
    reason = (reason or "").strip() or None
    reviewer = (reviewer or "").strip()
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}")
    if not reviewer:
        raise ValueError("name the reviewer")
    if len(reviewer) > 100:
        raise ValueError("reviewer name is too long (100 characters at most)")
    if verdict == "reject" and not reason:
        raise ValueError("a rejection needs a reason")
    if reason and len(reason) > MAX_REASON_CHARS:
        raise ValueError(f"reason is too long ({MAX_REASON_CHARS} characters at most)")
    if verdict == "edit":
        if edited_response is None or not edited_response.strip():
            raise ValueError("an edit needs the new response text")
        if len(edited_response) > MAX_RESPONSE_CHARS:
            raise ValueError(f"edited response is too long ({MAX_RESPONSE_CHARS} characters at most)")
        if edited_response == original_response:
            raise ValueError("the edited response is the same as the original: use Keep")
    else:
        edited_response = None
    return {
        "type": RECORD_TYPE,
        "verdict_id": uuid7_hex(at),
        "example_id": example_id,
        "source": source,
        "date": str(day),
        "verdict": verdict,
        "reason": reason,
        "edited_response": edited_response,
        "original_response": original_response,
        "reviewer": reviewer,
        "reviewed_at": at.replace(tzinfo=None).isoformat(timespec="microseconds"),
        "subject": dict(subject or {}),
    }


def append_verdict(path: Path, record: dict[str, Any], *, fsync: bool = True) -> None:
    """Append one verdict durably (fsync by default: a reviewer's work is not redone cheaply)."""
    append_line(path, encode_line(record), fsync=fsync)


def _valid(record: Any) -> bool:
    return (isinstance(record, dict) and record.get("type") == RECORD_TYPE and record.get("verdict") in VERDICTS
            and all(isinstance(record.get(k), str) and record.get(k) for k in
                    ("verdict_id", "example_id", "source", "date", "reviewer", "reviewed_at")))


def read_verdicts(path: Path) -> list[dict[str, Any]]:
    """Every well-formed record of the journal in file order; a torn or foreign line is skipped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if _valid(record):
            out.append(record)
    return out


def latest_by_example(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The latest verdict per (example_id, source, date): the last by (reviewed_at, verdict_id)."""
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in records:
        key = (r["example_id"], r["source"], r["date"])
        if key not in latest or (r["reviewed_at"], r["verdict_id"]) >= (latest[key]["reviewed_at"], latest[key]["verdict_id"]):
            latest[key] = r
    return latest
