"""One benchmark run of the curation pipeline, in its own process (run_pipeline.py measures the tree).

    python benchmarks/pipeline_stages.py MODE --n N --days D --out DIR

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
(replace_rows); each stage's time includes its reads and writes. CurationSettings() defaults: PII
masking on, no NER, no LLM judge, the default toxicity backend. Writes DIR/<mode>.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# run_pipeline.py points PIPELINE_SRC at a snapshot of corpus_platform/ and sql/ taken when it started, so
# the runs it compares run the same code while the working tree changes under them.
sys.path.insert(0, os.environ.get("PIPELINE_SRC") or str(HERE.parent))

import polars as pl  # noqa: E402

from corpus_platform.curation.datasets import rebuild_splits  # noqa: E402
from corpus_platform.curation.filter_stage import run_filter_stage  # noqa: E402
from corpus_platform.curation.global_dedup import index_partition, resolve_clusters  # noqa: E402
from corpus_platform.curation.scoring import score_examples  # noqa: E402
from corpus_platform.defs.curation.resources import CurationSettings  # noqa: E402
from corpus_platform.schema import EXAMPLE_SCHEMA  # noqa: E402
from corpus_platform.warehouse import connect, query, read_partition, replace_rows  # noqa: E402
from pipeline_corpus import corpus_file, day_after, partitions, read_docs, to_examples  # noqa: E402

STAGES = ("filter", "dedup", "score", "clusters", "splits")
OUTPUT_TABLES = {  # what must be identical between an incremental run and a full rebuild
    "dataset_splits": "SELECT * FROM corpus.dataset_splits",
    "duplicate_clusters": "SELECT * FROM corpus.duplicate_clusters",
    "decisions": "SELECT * EXCLUDE (decided_at) FROM corpus.decisions",
    "near_duplicate_pairs": "SELECT * FROM corpus.near_duplicate_pairs",
    "scored_examples": "SELECT example_id, source, date, content_hash, quality_score, score_detail FROM corpus.scored_examples",
}


def peak_rss_mb() -> float:
    """The process's peak RSS since start, or since the last reset_peak() (Linux VmHWM)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> None:
    """Forget the peak of reading the benchmark corpus (not the pipeline's): Linux resets VmHWM on '5'."""
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


class Clock:
    """Seconds and input rows per stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.rows: dict[str, int] = defaultdict(int)
        self.parts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._cpu0 = time.process_time()

    def start(self) -> float:
        self._cpu0 = time.process_time()
        return time.perf_counter()

    def add(self, stage: str, start: float, rows: int) -> None:
        self.seconds[stage] += time.perf_counter() - start
        self.cpu[stage] += time.process_time() - self._cpu0
        self.rows[stage] += rows

    def report(self) -> dict:
        stages = {s: {"seconds": round(self.seconds[s], 3), "cpu_s": round(self.cpu[s], 3), "rows_in": self.rows[s],
                      "rows_per_s": round(self.rows[s] / self.seconds[s]) if self.seconds[s] else None,
                      **{k: round(v, 3) for k, v in self.parts[s].items()}}
                  for s in STAGES if s in self.seconds}
        return {"stages": stages, "total_s": round(sum(self.seconds[s] for s in STAGES), 3),
                "total_cpu_s": round(sum(self.cpu[s] for s in STAGES), 3)}


def load_raw(con, examples: pl.DataFrame) -> float:
    start = time.perf_counter()
    for day, source in partitions(examples):
        part = examples.filter((pl.col("date") == day) & (pl.col("source") == source))
        replace_rows(con, [("raw_examples", part, "date = ? AND source = ?", [day, source])])
    return time.perf_counter() - start


def _stage(con, clock: Clock, stage: str, upstream: str, table: str, day, source, compute) -> None:
    start = clock.start()
    incoming = read_partition(con, upstream, day, source)
    read = time.perf_counter()
    kept, decisions, *extra = compute(incoming)
    computed = time.perf_counter()
    replace_rows(con, [(table, kept, "date = ? AND source = ?", [day, source]),
                       ("decisions", decisions, "stage = ? AND date = ? AND source = ?", [stage, day, source]),
                       *(extra[0] if extra else [])])
    clock.parts[stage]["read_s"] += read - start  # where a stage's wall goes: warehouse read, compute, write
    clock.parts[stage]["compute_s"] += computed - read
    clock.parts[stage]["write_s"] += time.perf_counter() - computed
    clock.add(stage, start, incoming.height)


def run_partition(con, clock: Clock, curation: CurationSettings, day, source) -> None:
    """filtered_examples -> deduplicated_examples -> scored_examples of one partition."""
    fsettings, dsettings, ssettings = curation.filter_stage(), curation.dedup(), curation.scoring()
    _stage(con, clock, "filter", "raw_examples", "filtered_examples", day, source,
           lambda df: run_filter_stage(df.select(list(EXAMPLE_SCHEMA)), source, fsettings, {}))

    def dedup(df: pl.DataFrame) -> tuple:
        r = index_partition(df, con, day, source, dsettings)
        touches = "(date_a = ? AND source_a = ?) OR (date_b = ? AND source_b = ?)"
        return r.kept, r.decisions, [("minhash_bands", r.bands, "date = ? AND source = ?", [day, source]),
                                     ("near_duplicate_pairs", r.pairs, touches, [day, source, day, source])]

    _stage(con, clock, "dedup", "filtered_examples", "deduplicated_examples", day, source, dedup)
    _stage(con, clock, "score", "deduplicated_examples", "scored_examples", day, source,
           lambda df: score_examples(df, ssettings))


def run_global(con, clock: Clock, curation: CurationSettings, home: Path) -> None:
    """duplicate_clusters, then dataset_splits (the judge is off: it adds no decision)."""
    start = clock.start()
    clusters, decisions = resolve_clusters(con, curation.dedup())
    replace_rows(con, [("duplicate_clusters", clusters, "TRUE", []), ("decisions", decisions, "stage = ?", ["cluster"])])
    clock.add("clusters", start, int(query(con, "SELECT count(*) AS n FROM corpus.scored_examples")["n"][0]))
    start = clock.start()
    split = rebuild_splits(con, curation.dataset_rules(home))
    clock.add("splits", start, split.height)


def run_library(con, keys: list, curation: CurationSettings, home: Path) -> dict:
    clock = Clock()
    for day, source in keys:
        run_partition(con, clock, curation, day, source)
    run_global(con, clock, curation, home)
    return clock.report()


def dump_outputs(con, folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
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


def mode_incremental(args, home: Path) -> dict:
    base, new, path = corpus(args.n, args.days)
    curation = CurationSettings()
    n_base, base_keys, new_keys = base.height, partitions(base), partitions(new)
    with connect(home / "warehouse.duckdb") as con:
        load_s = load_raw(con, base)
        del base  # the stages read the warehouse, as the assets do: the input frame is not held
        reset_peak()
        base_report = run_library(con, base_keys, curation, home)
        base_peak = peak_rss_mb()
        load_new_s = load_raw(con, new)
        new_report = run_library(con, new_keys, curation, home)
        counts = dump_outputs(con, Path(args.out) / "incremental")
    return {"corpus": path, "base_docs": n_base, "new_docs": new.height, "partitions": len(base_keys),
            "load_s": round(load_s, 2), "library": base_report, "library_peak_rss_mb": round(base_peak, 1),
            "new_day_load_s": round(load_new_s, 2), "new_day": new_report, "outputs": counts}


def mode_full(args, home: Path) -> dict:
    base, new, path = corpus(args.n, args.days)
    both = pl.concat([base, new])
    del base, new
    docs, keys = both.height, partitions(both)
    with connect(home / "warehouse.duckdb") as con:
        load_s = load_raw(con, both)
        del both
        reset_peak()
        report = run_library(con, keys, CurationSettings(), home)
        counts = dump_outputs(con, Path(args.out) / "full")
    return {"corpus": path, "docs": docs, "partitions": len(keys), "load_s": round(load_s, 2),
            "full": report, "peak_rss_mb": round(peak_rss_mb(), 1), "outputs": counts}


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
    args = ap.parse_args()
    home = Path(args.out) / f"home-{args.mode}"
    if home.exists():
        raise SystemExit(f"{home} exists: run_pipeline.py gives each run a fresh folder")
    home.mkdir(parents=True)
    result = {"incremental": mode_incremental, "full": mode_full, "dagster": mode_dagster}[args.mode](args, home)
    import corpus_platform

    result["code"] = str(Path(corpus_platform.__file__).parent)
    (Path(args.out) / f"{args.mode}.json").write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
