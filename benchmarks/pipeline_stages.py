"""One benchmark run of the curation pipeline, in its own process (run_pipeline.py measures the tree).

    python benchmarks/pipeline_stages.py MODE --n N --days D --out DIR [--workers 2]

MODE
  incremental  N documents as D days into a fresh warehouse, every stage per partition, clusters and
               splits (the library-mode figures); then a new day of N/100 documents: its three partition
               stages, clusters and splits (the incremental figures). Final tables -> DIR/incremental/.
  full         the same N + N/100 documents processed from scratch (the full rebuild). -> DIR/full/.
  dagster      the N documents loaded into raw_examples, then every partition's filtered -> deduplicated
               -> scored through `dg.materialize` on a Dagster instance, then duplicate_clusters and
               dataset_splits; the resources are make_definitions(home)'s.

Library mode calls the units the assets call, the way `_run_stage` does: read the upstream partition
(read_partition), compute, replace the stage's partition and its decision rows in one transaction
(replace_rows); each stage's time includes its reads and writes. Partitions run on --workers processes
(default 2; pipeline_workers.py) that hold the warehouse lock only to read and write; raw_examples is
loaded by a child process (timed apart), clusters and splits run in this one. CurationSettings()
defaults: PII masking on, no NER, no LLM judge, the default toxicity backend. Writes DIR/<mode>.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# run_pipeline.py points PIPELINE_SRC at a snapshot of corpus_platform/ and sql/ taken when it started, so
# the runs it compares run the same code while the working tree changes under them.
sys.path.insert(0, os.environ.get("PIPELINE_SRC") or str(HERE.parent))

import polars as pl  # noqa: E402

from corpus_platform.curation.datasets import rebuild_splits  # noqa: E402
from corpus_platform.curation.global_dedup import cluster_writes, resolve_clusters  # noqa: E402
from corpus_platform.defs.curation.resources import CurationSettings  # noqa: E402
from corpus_platform.warehouse import connect, query, replace_rows  # noqa: E402
from pipeline_corpus import FIRST_DAY, corpus_file, day_after, partitions, read_docs, to_examples  # noqa: E402
from pipeline_workers import Marks, peak_rss_mb, pool, run_partitions, session  # noqa: E402

STAGES = ("filter", "dedup", "score", "clusters", "splits")
OUTPUT_TABLES = {  # what must be identical between an incremental run and a full rebuild
    "dataset_splits": "SELECT * FROM corpus.dataset_splits",
    "duplicate_clusters": "SELECT * FROM corpus.duplicate_clusters",
    "decisions": "SELECT * EXCLUDE (decided_at) FROM corpus.decisions",
    "near_duplicate_pairs": "SELECT * FROM corpus.near_duplicate_pairs",
    "scored_examples": "SELECT example_id, source, date, content_hash, quality_score, score_detail FROM corpus.scored_examples",
}


def load_raw(con, examples: pl.DataFrame) -> float:
    start = time.perf_counter()
    for day, source in partitions(examples):
        part = examples.filter((pl.col("date") == day) & (pl.col("source") == source))
        replace_rows(con, [("raw_examples", part, "date = ? AND source = ?", [day, source])])
    return time.perf_counter() - start


def load_task(db: str, n: int, days: int, which: str) -> dict:
    """Load raw_examples from the benchmark corpus, one day at a time (as ingest writes it), in a child
    process so that reading the corpus is not counted as the pipeline's memory. which: base (n documents
    over `days` days), new (n // 100 documents on the next day), both."""
    extra = max(1, n // 100)
    path = corpus_file(n + extra)
    bounds = [-(-d * n // days) for d in range(days + 1)]  # first document of each day: k * days // n == d
    chunks = [(a, b - a, None) for a, b in zip(bounds, bounds[1:]) if b > a]
    new = [(n, extra, FIRST_DAY + timedelta(days=days))]  # day_after(base)
    chunks = {"base": chunks, "new": new, "both": chunks + new}[which]
    docs, keys, load_s = 0, [], 0.0
    with connect(db) as con:
        for start, count, override in chunks:
            examples = to_examples(read_docs(path, start, count), n=n, days=days, day_override=override)
            load_s += load_raw(con, examples)
            docs, keys = docs + examples.height, keys + partitions(examples)
    return {"corpus": str(path.relative_to(HERE.parent)), "docs": docs, "keys": sorted(set(keys)), "load_s": round(load_s, 2)}


def load(db: Path, args, which: str) -> dict:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as one:
        return one.submit(load_task, str(db), args.n, args.days, which).result()


def run_global(db: str) -> dict:
    """duplicate_clusters, then dataset_splits (the judge is off: it adds no decision), in this process."""
    curation, home = CurationSettings(), Path(db).parent
    m = Marks()
    with session(db, m, "clusters") as con:
        m.mark("clusters", "read_s")
        clusters, decisions = resolve_clusters(con, curation.dedup())
        replace_rows(con, cluster_writes(clusters, decisions))
        m.rows["clusters"] = int(query(con, "SELECT count(*) AS n FROM corpus.scored_examples")["n"][0])
        m.mark("clusters", "compute_s")
    with session(db, m, "splits") as con:
        m.mark("splits", "read_s")
        m.rows["splits"] = rebuild_splits(con, curation.dataset_rules(home)).height
        m.mark("splits", "compute_s")
    out = {}
    for stage in ("clusters", "splits"):
        p = m.parts[stage]
        seconds = sum(v for k, v in p.items() if k != "cpu_s")
        out[stage] = {"seconds": round(seconds, 3), "cpu_s": round(p["cpu_s"], 3), "rows_in": m.rows[stage],
                      "rows_per_s": round(m.rows[stage] / seconds) if seconds else None}
    return out


def run_library(db: Path, keys: list, executor) -> dict:
    """Every partition's stages (pipeline_workers.py), then clusters and splits. total_s is the wall from
    the first partition to the end of splits; a stage's `seconds` sum its time over the workers."""
    start = time.perf_counter()
    part = run_partitions(str(db), keys, executor)
    cpu0 = time.process_time()
    glob = run_global(str(db))
    stages = {**part["stages"], **glob}
    return {"stages": stages, "total_s": round(time.perf_counter() - start, 3),
            "total_cpu_s": round(part["cpu_s"] + time.process_time() - cpu0, 3),
            "partitions_wall_s": part["wall_s"], "worker_startup_cpu_s": part["worker_startup_cpu_s"],
            "stage_seconds_sum": round(sum(s["seconds"] for s in stages.values()), 3),
            "worker_peak_rss_mb": part["worker_peak_rss_mb"]}


def dump_outputs(db: Path, folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    with connect(db, read_only=True) as con:
        for name, sql in OUTPUT_TABLES.items():
            df = query(con, sql)
            df.write_parquet(folder / f"{name}.parquet")
            counts[name] = df.height
    return counts


def corpus(n: int, days: int) -> tuple[pl.DataFrame, pl.DataFrame, str]:
    """(base: n documents over `days` days, new day: n // 100 documents on the next day, corpus file)."""
    extra = max(1, n // 100)
    path = corpus_file(n + extra)
    base = to_examples(read_docs(path, 0, n), n=n, days=days)
    new = to_examples(read_docs(path, n, extra), n=n, days=days, day_override=day_after(base))
    return base, new, str(path.relative_to(HERE.parent))


def _peak(report: dict) -> float:
    """The largest single process of the run: this one (VmHWM; it never holds the corpus) or a worker."""
    return round(max(peak_rss_mb(), report["worker_peak_rss_mb"]), 1)


def mode_incremental(args, home: Path) -> dict:
    db = home / "warehouse.duckdb"
    with connect(db):
        pass  # migrated once, here: the workers' sessions do not migrate (the Dagster resource does it once too)
    base = load(db, args, "base")
    executor = pool(args.workers)
    try:
        base_report = run_library(db, base["keys"], executor)
        base_peak = _peak(base_report)
        new = load(db, args, "new")
        new_report = run_library(db, new["keys"], executor)
    finally:
        if executor is not None:
            executor.shutdown()
    counts = dump_outputs(db, Path(args.out) / args.tag)
    return {"corpus": base["corpus"], "base_docs": base["docs"], "new_docs": new["docs"], "partitions": len(base["keys"]),
            "workers": args.workers, "load_s": base["load_s"], "library": base_report, "library_peak_rss_mb": base_peak,
            "new_day_load_s": new["load_s"], "new_day": new_report, "outputs": counts}


def mode_full(args, home: Path) -> dict:
    db = home / "warehouse.duckdb"
    with connect(db):
        pass
    both = load(db, args, "both")
    executor = pool(args.workers)
    try:
        report = run_library(db, both["keys"], executor)
    finally:
        if executor is not None:
            executor.shutdown()
    counts = dump_outputs(db, Path(args.out) / args.tag)
    return {"corpus": both["corpus"], "docs": both["docs"], "partitions": len(both["keys"]), "workers": args.workers,
            "load_s": both["load_s"], "full": report, "peak_rss_mb": _peak(report), "outputs": counts}


def mode_dagster(args, home: Path) -> dict:
    import dagster as dg

    from corpus_platform.defs.curation import assets as A
    from corpus_platform.defs.partitions import partition_key
    from corpus_platform.definitions import make_definitions

    base, _, path = corpus(args.n, args.days)
    with connect(home / "warehouse.duckdb") as con:
        load_s = load_raw(con, base)
    keys = partitions(base)
    del base
    defs = make_definitions(home, curation=CurationSettings())
    resources = {k: v for k, v in defs.resources.items() if k in ("duckdb", "curation", "corpus_home")}
    per_partition = [A.filtered_examples, A.deduplicated_examples, A.scored_examples]
    timings = {"partition_runs_s": 0.0, "global_run_s": 0.0}
    cpu0 = time.process_time()
    with dg.instance_for_test() as instance:
        start = time.perf_counter()
        for day, source in keys:
            r = dg.materialize(per_partition, partition_key=str(partition_key(day, source)), instance=instance,
                               resources=resources, raise_on_error=True)
            assert r.success
        timings["partition_runs_s"] = time.perf_counter() - start
        start = time.perf_counter()
        r = dg.materialize([A.duplicate_clusters, A.dataset_splits], instance=instance, resources=resources)
        assert r.success
        timings["global_run_s"] = time.perf_counter() - start
    timings["cpu_s"] = time.process_time() - cpu0
    return {"corpus": path, "docs": args.n, "partitions": len(keys), "load_s": round(load_s, 2),
            "dagster": {k: round(v, 3) for k, v in timings.items()}
            | {"total_s": round(timings["partition_runs_s"] + timings["global_run_s"], 3)},
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("incremental", "full", "dagster"))
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--out", required=True)
    ap.add_argument("--workers", type=int, default=2, help="processes running partitions (1: this process)")
    ap.add_argument("--tag", default=None, help="name of the output folder and JSON (default: the mode)")
    args = ap.parse_args()
    args.tag = args.tag or args.mode
    home = Path(args.out) / f"home-{args.tag}"
    if home.exists():
        raise SystemExit(f"{home} exists: run_pipeline.py gives each run a fresh folder")
    home.mkdir(parents=True)
    result = {"incremental": mode_incremental, "full": mode_full, "dagster": mode_dagster}[args.mode](args, home)
    import corpus_platform

    result["code"] = str(Path(corpus_platform.__file__).parent)
    (Path(args.out) / f"{args.tag}.json").write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
