"""A persistent, per-API daily quota ledger, so a backfill stops *before* it spends a quota it does not have.

Why a ledger of our own: the YouTube Data API grants 10,000 units per project and day and reports
exhaustion only after the fact (403 quotaExceeded), while one backfill run can easily ask for more.
Every call is charged here *before* it is sent (a failed or retried request costs units too), so the
check and the charge are one SQLite transaction: two runs on the same UTC day, even in two processes,
share one budget and never overshoot it together.

The ledger lives under `CORPUS_HOME/state/quota/ledger.sqlite`, one row per (api, UTC day, call).
Days are UTC days of the *call*, not of the partition being fetched.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable

# Units per call of the YouTube Data API v3 (developers.google.com/youtube/v3/determine_quota_cost).
YOUTUBE_COSTS: dict[str, int] = {"search.list": 100, "videos.list": 1}
YOUTUBE_DAILY_UNITS = 10_000


def utc_today() -> date:
    return datetime.now(timezone.utc).date()


class QuotaExhausted(RuntimeError):
    """The next call does not fit in today's budget; nothing was sent. `fetched` says what was kept."""

    def __init__(self, api: str, day: date, used: int, limit: int, needed: int, call: str, *, detail: str = "",
                 fetched: dict[str, int] | None = None, kept_in: str = ""):
        self.api, self.day, self.used, self.limit, self.needed, self.call = api, day, used, limit, needed, call
        self.detail, self.fetched, self.kept_in = detail, dict(fetched or {}), kept_in
        msg = (f"{api} quota for {day.isoformat()} (UTC) is spent: {used} of {limit} units used, "
               f"the next call ({call}, {needed} units) does not fit" + (f" ({detail})" if detail else ""))
        if fetched is not None:
            msg += ("; fetched so far: " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in fetched.items())
                    + (f", kept in {kept_in}" if kept_in else "")
                    + "; the rest resumes on a later UTC day: rerun it after the quota resets")
        super().__init__(msg)

    def resumable(self, fetched: dict[str, int], kept_in: str) -> "QuotaExhausted":
        """The same stop, saying what the run kept (spool + checkpoint) for the next day's run."""
        return QuotaExhausted(self.api, self.day, self.used, self.limit, self.needed, self.call, detail=self.detail,
                              fetched=fetched, kept_in=kept_in)


_DDL = """
CREATE TABLE IF NOT EXISTS usage (
    api   TEXT NOT NULL,
    day   TEXT NOT NULL,
    call  TEXT NOT NULL,
    units INTEGER NOT NULL DEFAULT 0,
    calls INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (api, day, call)
)
"""


class QuotaLedger:
    """Units charged per (api, UTC day, call) in SQLite; `charge` refuses a call that would exceed `limit`."""

    def __init__(self, path: Path, *, today: Callable[[], date] = utc_today):
        self.path = Path(path)
        self.today = today
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.execute(_DDL)

    @classmethod
    def under(cls, state_root: Path, **kwargs: Any) -> "QuotaLedger":
        """The ledger of a state folder (CORPUS_HOME/state): `<state_root>/quota/ledger.sqlite`."""
        return cls(Path(state_root) / "quota" / "ledger.sqlite", **kwargs)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)  # explicit transactions below
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def used(self, api: str, day: date | None = None) -> int:
        day = day or self.today()
        with closing(self._connect()) as db:
            (units,) = db.execute("SELECT COALESCE(SUM(units), 0) FROM usage WHERE api = ? AND day = ?",
                                  (api, day.isoformat())).fetchone()
        return int(units)

    def breakdown(self, api: str, day: date | None = None) -> dict[str, dict[str, int]]:
        """{call: {"units", "calls"}} charged on `day` (today by default)."""
        day = day or self.today()
        with closing(self._connect()) as db:
            rows = db.execute("SELECT call, units, calls FROM usage WHERE api = ? AND day = ? ORDER BY call",
                              (api, day.isoformat())).fetchall()
        return {call: {"units": units, "calls": calls} for call, units, calls in rows}

    def charge(self, api: str, call: str, units: int, *, limit: int) -> int:
        """Record `units` for one `call` if they fit under `limit` today; returns units used after it.

        Raises QuotaExhausted (and records nothing) when they do not fit."""
        day = self.today()
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")  # the check and the charge are one write transaction
            try:
                (used,) = db.execute("SELECT COALESCE(SUM(units), 0) FROM usage WHERE api = ? AND day = ?",
                                     (api, day.isoformat())).fetchone()
                if used + units > limit:
                    raise QuotaExhausted(api, day, int(used), limit, units, call)
                db.execute(
                    "INSERT INTO usage (api, day, call, units, calls) VALUES (?, ?, ?, ?, 1) "
                    "ON CONFLICT (api, day, call) DO UPDATE SET units = units + excluded.units, calls = calls + 1",
                    (api, day.isoformat(), call, units),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return int(used) + units

    def mark_exhausted(self, api: str, *, limit: int, reason: str = "server:quotaExceeded") -> None:
        """The server said the quota is gone (another client used it): book the rest of today's budget."""
        day = self.today()
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            (used,) = db.execute("SELECT COALESCE(SUM(units), 0) FROM usage WHERE api = ? AND day = ?",
                                 (api, day.isoformat())).fetchone()
            if used < limit:
                db.execute(
                    "INSERT INTO usage (api, day, call, units, calls) VALUES (?, ?, ?, ?, 1) "
                    "ON CONFLICT (api, day, call) DO UPDATE SET units = units + excluded.units, calls = calls + 1",
                    (api, day.isoformat(), reason, limit - used),
                )
            db.execute("COMMIT")
