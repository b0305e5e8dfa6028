"""The warehouse file lock: one DuckDB session at a time across processes, shared within a process,
handed on as soon as it is released, and never released by a forked child."""

import multiprocessing as mp
import os
import threading
import time

import duckdb

from corpus_platform.warehouse import connect
from corpus_platform.warehouse_lock import TRACE_ENV, warehouse_lock


def _hold_and_write(db: str, hold_s: float, ready, label: str) -> None:
    with connect(db) as con:  # the same lock every Dagster step takes through defs.resources.warehouse
        ready.set()
        con.execute("CREATE TABLE IF NOT EXISTS t (label VARCHAR, written DOUBLE)")
        con.execute("INSERT INTO t VALUES (?, ?)", [label, time.time()])
        time.sleep(hold_s)


def test_a_second_process_waits_for_the_first_and_never_fails_on_duckdbs_lock(tmp_path):
    db = str(tmp_path / "w.duckdb")
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    first = ctx.Process(target=_hold_and_write, args=(db, 1.5, ready, "first"))
    first.start()
    assert ready.wait(60)
    # without the lock DuckDB refuses at once: the file is open read-write in the other process
    try:
        duckdb.connect(db).close()
        raise AssertionError("DuckDB let a second process open the file")
    except duckdb.IOException as e:
        assert "lock" in str(e).lower()
    start = time.monotonic()
    with warehouse_lock(db) as waited:
        with duckdb.connect(db) as con:
            rows = con.execute("SELECT label FROM t").fetchall()
    assert rows == [("first",)]
    assert waited > 0.5 and time.monotonic() - start >= waited  # it blocked, then got the file
    first.join(30)
    assert first.exitcode == 0


def test_nested_blocks_and_threads_of_one_process_share_one_lock(tmp_path):
    db = str(tmp_path / "w.duckdb")
    spawn = mp.get_context("spawn")
    seen, probes = [], []

    def probe() -> str:  # another process trying the flock without waiting
        out = spawn.Queue()
        p = spawn.Process(target=_try_lock, args=(db, out))
        p.start()
        p.join(60)
        return out.get(timeout=5)

    def scenario() -> None:
        with warehouse_lock(db):
            with warehouse_lock(db):  # nested in the same thread
                probes.append(probe())
            t = threading.Thread(target=lambda: seen.append(_hold(db)))
            t.start()
            t.join(5)
            seen.append(not t.is_alive())  # a thread of the holding process did not wait for its own process
            probes.append(probe())  # still held after the nested block and the thread left
        probes.append(probe())  # released when the outermost block left

    runner = threading.Thread(target=scenario, daemon=True)
    runner.start()
    runner.join(120)
    assert not runner.is_alive(), "a nested block or a thread deadlocked on the process's own lock"
    assert seen == [True, True]
    assert probes == ["blocked", "blocked", "acquired"]


def _hold(db: str) -> bool:
    with warehouse_lock(db):
        return True


def _try_lock(db: str, out) -> None:
    import fcntl

    fd = os.open(f"{db}.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        out.put("acquired")
    except BlockingIOError:
        out.put("blocked")


def _forked_child_uses_lock_and_exits(db: str) -> None:
    with warehouse_lock(db):  # the child's own state: it starts with nothing held
        pass


def test_a_forked_child_does_not_release_its_parents_lock(tmp_path):
    db = str(tmp_path / "w.duckdb")
    fork, spawn = mp.get_context("fork"), mp.get_context("spawn")
    with warehouse_lock(db):
        child = fork.Process(target=_forked_child_uses_lock_and_exits, args=(db,))
        child.start()
        child.join(0.5)
        assert child.is_alive(), "the forked child took the lock its parent holds"
        out = spawn.Queue()
        probe = spawn.Process(target=_try_lock, args=(db, out))
        probe.start()
        assert out.get(timeout=60) == "blocked"  # still the parent's
        probe.join(30)
    child.join(30)  # released by the parent: the child gets it and exits
    assert child.exitcode == 0


def test_the_trace_records_each_hold(tmp_path, monkeypatch):
    db = str(tmp_path / "w.duckdb")
    trace = tmp_path / "trace"
    monkeypatch.setenv(TRACE_ENV, str(trace))
    for _ in range(3):
        with warehouse_lock(db):
            with warehouse_lock(db):
                pass
    lines = trace.read_text().splitlines()
    assert len(lines) == 3  # nested holds are one session
    pid, acquired, released, waited = lines[0].split()
    assert int(pid) == os.getpid() and float(released) >= float(acquired) and float(waited) >= 0
