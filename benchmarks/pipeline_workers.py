"""The partition stages of the pipeline benchmark in worker processes that share the warehouse by its lock.

One task is one (day, source) partition: filter -> dedup -> score in order, as the three partitioned assets
run. A task holds the warehouse (corpus_platform.warehouse_lock, a new DuckDB connection each time, as a
Dagster step does) only to read its upstream partition and to write its result; the stage that just wrote
reads the next stage's upstream in the same session. Filtering and scoring read nothing else, and dedup is
split in two (global_dedup.prepare_partition outside the lock, commit_partition inside it, written in the
same session), so two workers compute on two cores while at most one of them uses the warehouse.
Partitions of a day may finish in any order: the dedup keep rule is order-independent and
duplicate_clusters resolves globally; run_pipeline.py checks the outputs against a one-worker run.

Each worker's own figures come back with its task: per stage the wall split into lock wait / read /
compute / (dedup: index lookups under the lock) / write, CPU seconds (process_time, every thread), rows.
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import duckdb

from corpus_platform.curation.filter_stage import run_filter_stage
from corpus_platform.curation.decisions import stage_writes
from corpus_platform.curation.global_dedup import commit_partition, index_writes, prepare_partition
from corpus_platform.curation.scoring import score_examples
from corpus_platform.defs.curation.resources import CurationSettings
from corpus_platform.schema import EXAMPLE_SCHEMA
from corpus_platform.warehouse import read_partition, replace_rows
from corpus_platform.warehouse_lock import warehouse_lock

PARTITION_STAGES = ("filter", "dedup", "score")
PARTS = ("wait_s", "read_s", "compute_s", "index_s", "write_s")
# DuckDB's buffer pool defaults to 80 % of the machine's memory and keeps what a session read; two workers
# each caching the band index and the partitions they read passed 2 GB together at 1M. A cap makes it evict.
DUCKDB_CONFIG = {"memory_limit": "256MB"}


def peak_rss_mb() -> float:
    """The process's peak RSS since start, or since the last reset (Linux VmHWM)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Marks:
    """Wall and CPU seconds since the previous mark, charged to (stage, part)."""

    def __init__(self) -> None:
        self.parts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.rows: dict[str, int] = defaultdict(int)
        self._t, self._c = time.perf_counter(), time.process_time()

    def mark(self, stage: str, part: str) -> None:
        t, c = time.perf_counter(), time.process_time()
        self.parts[stage][part] += t - self._t
        self.parts[stage]["cpu_s"] += c - self._c
        self._t, self._c = t, c


@contextmanager
def session(db: str, marks: Marks, stage: str):
    """The warehouse for one block: its lock (waiting charged to `stage`), a fresh connection, then a
    checkpoint and close. The main process migrated it once (the Dagster resource does too)."""
    with warehouse_lock(db):
        marks.mark(stage, "wait_s")
        con = duckdb.connect(db, config=DUCKDB_CONFIG)
        try:
            yield con
        finally:
            con.close()


@lru_cache(maxsize=1)
def _settings():
    curation = CurationSettings()
    return curation.filter_stage(), curation.dedup(), curation.scoring()


def _write(con, stage: str, table: str, kept, decisions, day, source, extra=()) -> None:
    replace_rows(con, [*stage_writes(table, stage, kept, decisions, day, source), *extra])
    con.execute("CHECKPOINT")  # what closing the connection would do, charged to the write


_started = False


def partition_task(db: str, day, source: str) -> dict:
    """filtered_examples -> deduplicated_examples -> scored_examples of one partition."""
    global _started
    startup = 0.0 if _started else time.process_time()  # a fresh worker's imports, before its first task
    _started = True
    fs, ds, ss = _settings()
    m = Marks()
    with session(db, m, "filter") as con:
        incoming = read_partition(con, "raw_examples", day, source)
    m.mark("filter", "read_s")
    m.rows["filter"] = incoming.height
    kept, decisions = run_filter_stage(incoming.select(list(EXAMPLE_SCHEMA)), source, fs, {})
    m.mark("filter", "compute_s")
    with session(db, m, "filter") as con:
        _write(con, "filter", "filtered_examples", kept, decisions, day, source)
        m.mark("filter", "write_s")
        incoming = read_partition(con, "filtered_examples", day, source)
    m.mark("dedup", "read_s")
    m.rows["dedup"] = incoming.height
    prepared = prepare_partition(incoming, day, source, ds)
    m.mark("dedup", "compute_s")
    with session(db, m, "dedup") as con:
        r = commit_partition(prepared, con)  # reads the other partitions: under the lock, written with it
        m.mark("dedup", "index_s")
        _write(con, "dedup", "deduplicated_examples", r.kept, r.decisions, day, source, index_writes(r, day, source))
        m.mark("dedup", "write_s")
        incoming = read_partition(con, "deduplicated_examples", day, source)
    m.mark("score", "read_s")
    m.rows["score"] = incoming.height
    kept, decisions = score_examples(incoming, ss)
    m.mark("score", "compute_s")
    with session(db, m, "score") as con:
        _write(con, "score", "scored_examples", kept, decisions, day, source)
    m.mark("score", "write_s")
    return {"parts": {s: dict(v) for s, v in m.parts.items()}, "rows": dict(m.rows), "peak_rss_mb": peak_rss_mb(),
            "startup_cpu_s": startup}


def pool(workers: int) -> ProcessPoolExecutor | None:
    """`workers` spawned processes (None for one worker: the partitions run in the calling process). They
    live as long as the pool, so a later run (the new day) finds their models loaded, as a long-lived
    executor's would be."""
    if workers <= 1:
        return None
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def run_partitions(db: str, keys: list, executor: ProcessPoolExecutor | None) -> dict:
    """Every partition's three stages, in `executor`'s processes (None: in this process). Returns the
    stages' summed figures, the wall from the first submission to the last result, and the CPU seconds:
    this process's, every task's, and the imports of workers that started during the run."""
    start, cpu0 = time.perf_counter(), time.process_time()
    if executor is None:
        results = [partition_task(db, day, source) for day, source in keys]
    else:
        results = list(executor.map(partition_task, [db] * len(keys), *zip(*keys)))
    wall = time.perf_counter() - start
    startup = sum(r["startup_cpu_s"] for r in results) if executor is not None else 0.0  # in-process: no start
    cpu = time.process_time() - cpu0 + startup
    if executor is not None:
        cpu += sum(v["cpu_s"] for r in results for v in r["parts"].values())
    stages: dict[str, dict] = {}
    for stage in PARTITION_STAGES:
        parts = defaultdict(float)
        for r in results:
            for k, v in r["parts"].get(stage, {}).items():
                parts[k] += v
        rows = sum(r["rows"].get(stage, 0) for r in results)
        seconds = sum(parts[p] for p in PARTS)
        stages[stage] = {"seconds": round(seconds, 3), "cpu_s": round(parts["cpu_s"], 3), "rows_in": rows,
                         "rows_per_s": round(rows / seconds) if seconds else None,
                         **{p: round(parts[p], 3) for p in PARTS if p in parts}}
    return {"stages": stages, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "worker_startup_cpu_s": round(startup, 3),
            "worker_peak_rss_mb": round(max((r["peak_rss_mb"] for r in results), default=0.0), 1)}
