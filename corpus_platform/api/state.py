"""The API's small SQLite state under CORPUS_HOME/api/: idempotency keys and an index of what it wrote.

Why SQLite: idempotency must survive restarts and hold across uvicorn workers, and WAL SQLite gives
cross-process transactions with no server. The landing files stay the data; the index only answers
"which app owns this interaction, on which day" (feedback routing and ownership) and the stats.

Idempotency: a request first reserves (key id, Idempotency-Key) with a hash of its canonical body and
the id it will write under; after the durable append the stored response is set. A retry with the same
body replays it; a different body is a conflict. A reservation left pending by a crash is taken over
after STALE_SECONDS under the same id, so a line written before the crash is at worst repeated with the
same interaction id, which the conversations source reads once (it quarantines the repeat).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

STALE_SECONDS = 30.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    key_id TEXT NOT NULL, idem_key TEXT NOT NULL, request_hash TEXT NOT NULL, ref TEXT NOT NULL,
    state TEXT NOT NULL, reserved_at REAL NOT NULL, status INTEGER, response TEXT,
    PRIMARY KEY (key_id, idem_key)
);
CREATE TABLE IF NOT EXISTS interactions (
    interaction_id TEXT PRIMARY KEY, app_id TEXT, user_id TEXT NOT NULL, day TEXT NOT NULL, key_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS interactions_user ON interactions (user_id, app_id);
CREATE TABLE IF NOT EXISTS feedback (
    feedback_id TEXT PRIMARY KEY, interaction_id TEXT NOT NULL, app_id TEXT, kind TEXT NOT NULL, day TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Reservation:
    outcome: str  # new | replay | conflict | in_progress
    ref: str = ""
    status: int = 0
    response: Any = None


class State:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._con().executescript(SCHEMA)  # idempotent DDL; executescript manages its own transaction

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        con = self._con()
        con.execute("BEGIN IMMEDIATE")  # take the write lock up front: no upgrade deadlock between workers
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def reserve(self, key_id: str, idem_key: str, request_hash: str, new_ref: str) -> Reservation:
        now = time.time()
        with self._tx() as con:
            row = con.execute(
                "SELECT request_hash, ref, state, reserved_at, status, response FROM idempotency "
                "WHERE key_id = ? AND idem_key = ?", (key_id, idem_key)).fetchone()
            if row is None:
                con.execute("INSERT INTO idempotency VALUES (?, ?, ?, ?, 'pending', ?, NULL, NULL)",
                            (key_id, idem_key, request_hash, new_ref, now))
                return Reservation("new", new_ref)
            stored_hash, ref, state, reserved_at, status, response = row
            if stored_hash != request_hash:
                return Reservation("conflict")
            if state == "done":
                return Reservation("replay", ref, status, json.loads(response))
            if now - reserved_at < STALE_SECONDS:
                return Reservation("in_progress")
            con.execute("UPDATE idempotency SET reserved_at = ? WHERE key_id = ? AND idem_key = ?", (now, key_id, idem_key))
            return Reservation("new", ref)

    def release(self, key_id: str, idem_key: str) -> None:
        """Drop a reservation whose write failed before anything was appended, so a retry starts fresh."""
        with self._tx() as con:
            con.execute("DELETE FROM idempotency WHERE key_id = ? AND idem_key = ? AND state = 'pending'", (key_id, idem_key))

    def finish(self, key_id: str, idem_key: str | None, status: int, response: Any, *, interaction: tuple | None = None,
               feedback: tuple | None = None) -> None:
        """Record what was written (index rows) and, with an Idempotency-Key, its response, in one transaction."""
        with self._tx() as con:
            if interaction:
                con.execute("INSERT OR IGNORE INTO interactions VALUES (?, ?, ?, ?, ?)", interaction)
            if feedback:
                con.execute("INSERT OR IGNORE INTO feedback VALUES (?, ?, ?, ?, ?)", feedback)
            if idem_key is not None:
                con.execute("UPDATE idempotency SET state = 'done', status = ?, response = ? WHERE key_id = ? AND idem_key = ?",
                            (status, json.dumps(response), key_id, idem_key))

    def interaction(self, interaction_id: str) -> tuple[str | None, str, str] | None:
        """(app_id, user_id, day) of an interaction written through the API."""
        row = self._con().execute("SELECT app_id, user_id, day FROM interactions WHERE interaction_id = ?",
                                  (interaction_id,)).fetchone()
        return tuple(row) if row else None

    def stats(self, app_id: str | None, all_apps: bool) -> dict[str, Any]:
        con = self._con()
        where, args = ("", ()) if all_apps else ("WHERE app_id IS ?", (app_id,))
        n, users = con.execute(f"SELECT count(*), count(DISTINCT user_id) FROM interactions {where}", args).fetchone()
        by_day = dict(con.execute(f"SELECT day, count(*) FROM interactions {where} GROUP BY day ORDER BY day", args).fetchall())
        kinds = dict(con.execute(f"SELECT kind, count(*) FROM feedback {where} GROUP BY kind ORDER BY kind", args).fetchall())
        out: dict[str, Any] = {"interactions": n, "users": users, "feedback": sum(kinds.values()),
                               "feedback_by_kind": kinds, "interactions_by_day": by_day}
        if all_apps:
            out["interactions_by_app"] = {a or "": c for a, c in con.execute(
                "SELECT app_id, count(*) FROM interactions GROUP BY app_id ORDER BY app_id").fetchall()}
        return out
