"""kill -9 at random points (seeded) of real runs, then rerun: the tables end identical to an
uninterrupted run, with no lost and no doubled rows, and no half-written export or adapter directory
is ever visible.

- during a live fetch: `curate_partition` for reddit and for synthetic, killed while a request of the
  fake API hangs (twice, at seeded requests); nothing reaches the warehouse, the rerun resumes from the
  spool and asks for nothing twice;
- during the DuckDB write: `curate_partition` killed inside the warehouse transaction of a seeded
  write (after its DELETE, before or after its INSERT, or at a seeded delay after it began), first on
  an empty warehouse, then on one that already holds the partition: every table always equals the
  uninterrupted run's (or holds nothing of the partition yet);
- during training and during the adapter's save: `train_lora` killed after a seeded step, then while its
  files are being written; the adapters folder, listed every millisecond throughout, never shows an
  incomplete directory; the rerun resumes from the checkpoint and ships the same adapter as an
  uninterrupted run;
- during an export: `write_exports` killed at seeded delays; the exports folder never shows an export
  without its manifest, and LATEST never names one.
"""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import date

import dagster as dg
import pytest

from corpus_platform.definitions import make_definitions
from corpus_platform.defs.partitions import partition_key
from corpus_platform.demo.run import QUIET
from corpus_platform.settings import Layout
from corpus_platform_tests.operations import _harness as h

SEED = 20260107
DAY = date(2026, 1, 5)


def run_in_process(home, source, monkeypatch, fakes=None) -> None:
    if fakes is not None:
        for k, v in fakes.env().items():
            monkeypatch.setenv(k, v)
    defs = make_definitions(home, sources=h.live_resources_from_env() if fakes is not None else None)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("curate_partition").execute_in_process(
            partition_key=partition_key(DAY, source), instance=instance, run_config=QUIET, raise_on_error=False)
    assert result.success


def warehouse_rows(home) -> dict[str, list[tuple]]:
    path = Layout(home).warehouse
    return h.snapshot(path) if path.exists() else {}


def partition_rows(snap: dict[str, list[tuple]]) -> int:
    return sum(len(rows) for rows in snap.values())


# --- during fetch -----------------------------------------------------------------------------------
@pytest.mark.parametrize("source", ["reddit", "synthetic"])
def test_sigkill_during_fetch_then_rerun_gives_identical_tables(tmp_path, monkeypatch, source):
    rng = random.Random(f"{SEED}|{source}")
    n = 8  # reddit: threads of the day (one /comments request each); synthetic: items (one completion each)
    topics = tuple(f"topic number {i}" for i in range(n))
    with h.LiveFakes([DAY], per_day=n, synthetic_topics=topics) as fakes:
        run_in_process(tmp_path / "reference", source, monkeypatch, fakes)
    expected = warehouse_rows(tmp_path / "reference")
    assert len(expected["raw_examples"]) == (2 * n if source == "reddit" else n)

    home = tmp_path / "crashed"
    h.prepare_home(home)
    kills = sorted(rng.sample(range(2, n), 2))  # the k-th request of the partition hangs, twice
    with h.LiveFakes([DAY], per_day=n, synthetic_topics=topics) as fakes:
        env = h.child_env(home, fakes.env())
        fetched_before = 0
        for k in kills:
            server = fakes.reddit if source == "reddit" else fakes.openai
            server.release = threading.Event()
            if source == "reddit":
                from corpus_platform_tests.sources.fakes import Fault

                server.hang_reached.clear()
                server.faults[:] = [Fault(r"^/comments/", "hang", after=k - 1 - fetched_before)]
                arrived = server.hang_reached
            else:
                from corpus_platform_tests.sources.fakes.openai_server import BLOCK

                server.arrived = threading.Event()
                server.plan(*([None] * (k - 1 - fetched_before)), BLOCK)
                arrived = server.arrived
            child = h.Child("curate", str(home), DAY.isoformat(), source, env=env)
            try:
                assert arrived.wait(120), f"the run never reached request {k}: {child.stderr}"
            finally:
                child.kill()
            server.release.set()
            spool = Layout(home).state / source / DAY.isoformat() / "items.jsonl"
            fetched_before = len(spool.read_text().splitlines())
            assert fetched_before == k - 1  # what was paid for before the kill is on disk
            assert partition_rows(warehouse_rows(home)) == 0  # and nothing reached the warehouse
        if source == "reddit":
            fakes.reddit.faults.clear()
        else:
            fakes.openai._plan.clear()
        assert h.Child("curate", str(home), DAY.isoformat(), source, env=env).finish() == "ok"
        if source == "reddit":
            ok = fakes.reddit.counts(ok_only=True)
            asked = {p: c for p, c in ok.items() if p.startswith("GET /comments/")}
            assert len(asked) == n and set(asked.values()) == {1}  # no thread was fetched twice
        else:
            prompts = [b["messages"][1]["content"] for _, b in fakes.openai.requests]
            assert len(prompts) == n + len(kills) and len(set(prompts)) == n  # only the hung ones were asked again
    assert warehouse_rows(home) == expected


# --- during the DuckDB write ------------------------------------------------------------------------
def land_large_partition(home, rows: int = 1500) -> None:
    """The demo corpus for DAY plus `rows` Alpaca records, so the writes take long enough to land in."""
    h.land_file_sources(home, [DAY])
    records = [{"instruction": f"Question {i}: how many legs do {i} spiders and {i + 1} ants have together?",
                "input": "", "output": f"Spiders have eight legs and ants have six, so {i} spiders and {i + 1} ants "
                                       f"have {8 * i + 6 * (i + 1)} legs together."} for i in range(rows)]
    path = Layout(home).landing_dir("public", DAY.isoformat()) / "bulk.json"
    path.write_text(json.dumps(records))


def test_sigkill_inside_the_warehouse_write_never_leaves_partial_rows(tmp_path, monkeypatch):
    rng = random.Random(SEED)
    reference = tmp_path / "reference"
    land_large_partition(reference)
    run_in_process(reference, "public", monkeypatch)
    expected = warehouse_rows(reference)
    assert len(expected["raw_examples"]) > 1500

    home = tmp_path / "crashed"
    land_large_partition(home)
    env = h.child_env(home)
    log: list[str] = []

    def killed_at(n: int, mode: str, delay: float = 0.0) -> None:
        """Kill inside the n-th write: held before its INSERT (its DELETE done), held after it (uncommitted),
        or `delay` seconds after it began without holding (wherever the run got to by then)."""
        hold = ["--pause", str(n)] + (["--after"] if mode == "after" else []) if mode != "delay" else []
        child = h.Child("curate", str(home), DAY.isoformat(), "public", *hold, env=env)
        try:
            marker = child.wait_for(f"WRITE {n} ")
            if mode == "delay":
                time.sleep(delay)
            else:
                child.wait_for("PAUSED")
        finally:
            child.kill()
        log.append(f"{marker} {mode}" + (f" {delay * 1000:.0f}ms" if mode == "delay" else " insert"))

    # 1. a first materialization killed in its first write (raw_examples, old rows deleted, new not inserted)
    killed_at(1, "before")
    assert partition_rows(warehouse_rows(home)) == 0
    # 2. the same, uninterrupted: how many writes a run makes
    child = h.Child("curate", str(home), DAY.isoformat(), "public", env=env)
    assert child.finish() == "ok"
    writes = [line for line in child.seen if line.startswith("WRITE ")]
    assert warehouse_rows(home) == expected
    # 3. rematerializations killed inside seeded writes: the partition's rows are the complete old ones
    #    (equal to the new ones: same input), never a mix, a gap or a double
    for mode in ("before", "after", "delay") * 2:
        killed_at(rng.randint(1, len(writes)), mode, rng.uniform(0, 0.05))
        assert warehouse_rows(home) == expected, log[-1]
    # 4. the rerun after the last kill
    assert h.Child("curate", str(home), DAY.isoformat(), "public", env=env).finish() == "ok"
    assert warehouse_rows(home) == expected
    print("\nkilled at: " + "; ".join(log))


# --- during training and the adapter's save ----------------------------------------------------------
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "training_config.json", "metrics.json", "loss_curves.png",
                 "README.md")


def _train_spec(tiny_model_dir, root) -> dict:
    from corpus_platform_tests.conftest import _arithmetic, _write_chat_jsonl

    root.mkdir(parents=True, exist_ok=True)
    train = _write_chat_jsonl(root / "train.jsonl", _arithmetic(32))
    val = _write_chat_jsonl(root / "val.jsonl", _arithmetic(4, start=100))
    return {"model": str(tiny_model_dir), "train": str(train), "val": str(val),
            "config": dict(rank=4, alpha=8, dropout=0.0, learning_rate=1e-2, warmup_ratio=0.0, per_device_batch_size=4,
                           gradient_accumulation_steps=1, max_steps=12, eval_steps=2, max_seq_len=64,
                           early_stopping_patience=0)}


def _tensors(path):
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


def test_sigkill_during_training_and_save_resumes_and_never_shows_a_partial_adapter(tiny_model_dir, tmp_path):
    rng = random.Random(SEED)
    spec = _train_spec(tiny_model_dir, tmp_path / "data")
    env = h.child_env(tmp_path / "home", {"WANDB_MODE": "disabled"})
    reference = {**spec, "out": str(tmp_path / "reference" / "adapters" / "20260105T000000Z-abc")}
    assert h.Child("train", json.dumps(reference), env=env).finish(600) == "ok"

    adapters = tmp_path / "home" / "adapters"
    out = adapters / "20260105T000000Z-abc"
    crashed = {**spec, "out": str(out)}
    kill_step = rng.choice([3, 5, 7, 9])  # after a checkpoint (every 2 steps) and before the last
    def temps() -> list:
        """The finished adapter's temp dirs (whatever they are called), oldest first."""
        found = []
        for p in adapters.iterdir():
            if p.name != out.name and out.name in p.name and ".tmp-" in p.name:
                try:
                    found.append((p.stat().st_mtime, p))
                except FileNotFoundError:  # renamed into place meanwhile
                    pass
        return [p for _, p in sorted(found)]

    with h.DirWatcher(adapters, ADAPTER_FILES) as watcher:
        # 1. killed mid-training
        child = h.Child("train", json.dumps(crashed), env=env)
        try:
            child.wait_for(f"STEP {kill_step}", 600)
        finally:
            child.kill()
        assert list((adapters / ".work" / out.name).glob("checkpoint-*")) and not out.exists()
        # 2. killed at a seeded moment of the save: its temp dir exists, the model card is not written yet
        child = h.Child("train", json.dumps(crashed), env=env)
        try:
            h.wait_for(temps, 600, 0.002, "the adapter's temp dir")
            time.sleep(rng.uniform(0, 0.05))
        finally:
            child.kill()
        resumed_from = next(line for line in child.seen if line.startswith("STEP "))
        assert "CARD" not in child.seen and not out.exists()
        # 3. killed mid-save, held where the weights and metrics are written and the card is next
        child = h.Child("train", json.dumps(crashed), "--pause", env=env)
        try:
            child.wait_for("PAUSED", 600)
            assert all((temps()[-1] / f).exists() for f in ("adapter_model.safetensors", "metrics.json"))
        finally:
            child.kill()
        assert not out.exists()
        # 4. the rerun
        child = h.Child("train", json.dumps(crashed), env=env)
        assert child.finish(600) == "ok", child.stderr
    metrics = json.loads(child.seen[-2].split(" ", 1)[1])
    assert watcher.listings > 100 and not watcher.violations, watcher.violations[:5]
    assert sorted(p.name for p in adapters.iterdir()) == [out.name]  # no temp dir or checkpoint left behind
    assert all((out / f).exists() for f in ADAPTER_FILES)
    assert int(resumed_from.split()[1]) == kill_step  # the second attempt resumed from the checkpoint before the kill
    # the last run found training ended in checkpoint-12 and replayed steps 11-12 from checkpoint-10
    assert metrics["steps"] == 12 and metrics["resumed_from_step"] == 10
    ref_tensors, tensors = _tensors(tmp_path / "reference" / "adapters" / "20260105T000000Z-abc"), _tensors(out)
    assert sorted(tensors) == sorted(ref_tensors)
    worst = max(float((tensors[k] - ref_tensors[k]).abs().max()) for k in tensors)
    print(f"\nkilled after step {kill_step}, twice mid-save, rerun resumed from step {metrics['resumed_from_step']}; "
          f"largest weight difference to the uninterrupted adapter {worst:.2e}; {watcher.listings} listings")
    assert worst < 1e-5


# --- during an export -------------------------------------------------------------------------------
def test_sigkill_during_export_never_shows_a_partial_export(tmp_path):
    rng = random.Random(SEED)
    root = tmp_path / "exports"
    env = h.child_env(tmp_path)
    with h.DirWatcher(root, ("manifest.json",), pointers=("LATEST",)) as watcher:
        for _ in range(3):
            child = h.Child("export", str(root), "6000", env=env)
            try:
                child.wait_for("EXPORT", 120)
                time.sleep(rng.uniform(0.05, 0.6))
            finally:
                child.kill()
        child = h.Child("export", str(root), "6000", env=env)
        assert child.finish(300) == "ok"
    visible = [p.name for p in root.iterdir() if not p.name.startswith(".")]
    assert len(visible) == 2 and "LATEST" in visible  # one export and its pointer
    assert any(name.startswith(".tmp-") for name in watcher.seen)  # the kills did land mid-write
    assert not list(root.glob(".tmp-*"))  # and the next writer removed what the killed ones left
    assert watcher.listings > 100 and not watcher.violations, watcher.violations[:5]
