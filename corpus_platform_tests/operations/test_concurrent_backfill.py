"""A backfill as an operator runs it: every source x day of `curate_partition`, submitted with
`dagster job backfill` to an instance configured by the shipped dagster.yaml (queued run coordinator,
4 runs at once), dequeued by `dagster-daemon run` and executed by the multiprocess executor (one
process per step, forked from a forkserver). The live sources fetch from the local fakes, the file
sources read the demo corpus.

Asserted: every run succeeds; never more than 4 runs in progress and never two DuckDB sessions on the
warehouse at once (the file lock's trace: CORPUS_WAREHOUSE_LOCK_TRACE), while steps of different runs
did overlap; every step ran in its own process; and every warehouse table holds, partition by partition
and row by row, what a serial in-process run of the same partitions wrote into a second home.

Scale: all six sources x CORPUS_OPS_BACKFILL_DAYS days, 14 by default (84 runs, the issue's backfill).
Under the former one-slot pool it took about an hour on 2 cores (11 steps per partition, each holding
the slot through process start and a polled hand-off); the file lock is held only while a step has the
warehouse open."""

from __future__ import annotations

import os
import re
import time
from collections import Counter

import dagster as dg
import yaml
from dagster._core.storage.tags import BACKFILL_ID_TAG

from corpus_platform.definitions import make_definitions
from corpus_platform.defs.partitions import corpus_partitions, partition_key
from corpus_platform.demo.run import QUIET
from corpus_platform.settings import REPO_ROOT, SOURCES, Layout
from corpus_platform.warehouse_lock import TRACE_ENV
from corpus_platform_tests.operations import _harness as h

DAYS = int(os.environ.get("CORPUS_OPS_BACKFILL_DAYS", "14"))
SHIPPED = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
MAX_RUNS = SHIPPED["concurrency"]["runs"]["max_concurrent_runs"]


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end at t closes before a start at t opens)."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def serial_reference(home, day_list, monkeypatch) -> dict:
    """The same partitions one after another, in process, on a second home: the expected tables."""
    h.prepare_home(home)
    h.land_file_sources(home, day_list)
    with h.LiveFakes(day_list) as fakes:
        for k, v in fakes.env().items():
            monkeypatch.setenv(k, v)
        defs = make_definitions(home, sources=h.live_resources_from_env())
        job = defs.resolve_job_def("curate_partition")
        # an in-memory instance: the reference's tables matter, not its event log (SQLite commits of ~50 events a
        # run were most of its time)
        with dg.DagsterInstance.ephemeral() as instance:
            failed = [(str(d), s) for d in day_list for s in SOURCES
                      if not job.execute_in_process(partition_key=partition_key(d, s), instance=instance, run_config=QUIET,
                                                    raise_on_error=False).success]
    assert not failed, f"the serial reference run failed for {failed}"
    return h.snapshot(Layout(home).warehouse)


def step_intervals(instance: dg.DagsterInstance, run_id: str) -> tuple[list[tuple[float, float]], int, list[str]]:
    """(start, end) of every step of the run, the number of step processes launched, failed steps."""
    starts, spans, workers, failed = {}, [], 0, []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type_value
        if kind == "STEP_WORKER_STARTING":
            workers += 1
        elif kind == "STEP_START":
            starts[event.step_key] = entry.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            spans.append((starts.pop(event.step_key), entry.timestamp))
            if kind == "STEP_FAILURE":
                failed.append(event.step_key)
    return spans, workers, failed


def test_backfill_of_every_source_and_day_through_the_daemon_matches_a_serial_run(tmp_path, monkeypatch):
    day_list = h.days(DAYS)
    keys = [f"{d}|{s}" for d in day_list for s in SOURCES]
    assert set(keys) <= set(corpus_partitions.get_partition_keys()), "the days must be partitions of the job"
    home, dagster_home = h.prepare_home(tmp_path / "backfill")
    assert (dagster_home / "dagster.yaml").resolve() == (REPO_ROOT / "dagster.yaml").resolve()
    h.land_file_sources(home, day_list)
    # the instance's SQLite storages are created here, once: a daemon and a CLI creating them at the same
    # moment can both stamp the schema version, after which neither starts ("more than one head")
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    with h.LiveFakes(day_list) as fakes:
        trace = tmp_path / "warehouse-lock.trace"
        env = h.child_env(home, {**fakes.env(), TRACE_ENV: str(trace)})
        daemon = h.start_daemon(env, tmp_path / "daemon.log")
        try:
            t1 = time.monotonic()
            cli = h.dagster_cli("job", "backfill", "-m", h.LOCATION_MODULE, "-d", str(REPO_ROOT), "-j", "curate_partition",
                                "--partitions", ",".join(keys), "--noprompt", env=env)
            assert cli.returncode == 0, cli.stdout[-2000:] + cli.stderr[-4000:]
            backfill_id = re.search(r"Launched backfill job `([^`]+)`", cli.stdout).group(1)
            runs_filter = dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id})
            # the serial reference runs here, in this process and its own home, while the daemon works through
            # the queue: the backfill spends most of its time starting processes, under one core on average
            t0 = time.monotonic()
            expected = serial_reference(tmp_path / "serial", day_list, monkeypatch)
            serial_s = time.monotonic() - t0

            def finished():
                records = instance.get_run_records(runs_filter)
                if daemon.poll() is not None:
                    raise AssertionError(f"dagster-daemon exited {daemon.returncode}: {(tmp_path / 'daemon.log').read_text()[-3000:]}")
                return records if len(records) == len(keys) and all(r.dagster_run.is_finished for r in records) else None

            records = h.wait_for(finished, timeout=float(os.environ.get("CORPUS_OPS_BACKFILL_TIMEOUT", 600 + 60 * len(keys))),
                                 interval=2, what=f"{len(keys)} backfill runs to finish")
            backfill_s = time.monotonic() - t1
        finally:
            h.stop(daemon)

    statuses = Counter(r.dagster_run.status.value for r in records)
    by_key = {r.dagster_run.tags["dagster/partition"]: r for r in records}
    assert sorted(by_key) == sorted(keys)
    steps, workers, failed_steps = [], 0, {}
    for r in records:
        spans, launched, failed = step_intervals(instance, r.dagster_run.run_id)
        steps += spans
        workers += launched
        if failed:
            failed_steps[r.dagster_run.tags["dagster/partition"]] = failed
    runs_at_once = max_overlap([(r.start_time, r.end_time) for r in records])
    steps_at_once = max_overlap(steps)
    holds = [tuple(map(float, line.split()[1:])) for line in trace.read_text().splitlines()]
    sessions_at_once = max_overlap([(a, b) for a, b, _ in holds])
    held_s, waited_s = sum(b - a for a, b, _ in holds), sum(w for _, _, w in holds)
    per_run = sorted(r.end_time - r.start_time for r in records)
    print(f"\nbackfill of {len(keys)} partitions: serial reference {serial_s:.0f}s (during the backfill), backfill {backfill_s:.0f}s; "
          f"runs at once {runs_at_once}, steps at once {steps_at_once}, warehouse sessions at once {sessions_at_once} "
          f"({len(holds)} sessions, held {held_s:.0f}s, waited {waited_s:.0f}s); {len(steps)} steps in {workers} "
          f"processes; run wall median {per_run[len(per_run) // 2]:.1f}s; {dict(statuses)}")

    assert statuses == {"SUCCESS": len(keys)}, (dict(statuses), failed_steps)
    assert 2 <= runs_at_once <= MAX_RUNS  # overlapping runs, and the queue's limit held
    assert steps_at_once >= 2  # steps of different runs overlapped ...
    assert sessions_at_once == 1 and len(holds) >= len(steps)  # ... but DuckDB had one session at a time
    assert workers == len(steps)  # the multiprocess executor: a process per step

    actual = h.snapshot(Layout(home).warehouse)
    assert sorted(actual) == sorted(expected)
    for table in expected:
        assert len(actual[table]) == len(expected[table]), table
        assert actual[table] == expected[table], f"corpus.{table} differs from the serial run"
    per_partition = h.partition_counts(Layout(home).warehouse)
    assert per_partition == h.partition_counts(Layout(tmp_path / "serial").warehouse)
    for table in h.PARTITION_TABLES:
        if table != "quarantine":  # live sources quarantine nothing here
            assert set(per_partition[table]) == {(str(d), s) for d in day_list for s in SOURCES}, table
