"""Curation pipeline benchmark: per-stage throughput, peak memory, Dagster's overhead, incremental cost.

    python benchmarks/run_pipeline.py --n 100000 [--days 10] [--modes incremental,full,dagster,serial] [--dagster-n 100000]
                                      [--workers 2]

For each N, three runs, each its own process tree (pipeline_stages.py; wall and peak memory measured as in
run_dedup.py: summed RSS of the tree polled every 50 ms, plus the process's own ru_maxrss):
  incremental  N documents (benchmark corpus, see pipeline_corpus.py) as `days` days x 6 sources through
               filter -> dedup index -> score per partition, then duplicate_clusters and dataset_splits:
               the library-mode figures; then a new day of N/100 documents, processed alone (its three
               partition stages + clusters + splits): the incremental figures.
  full         the same N + N/100 documents from scratch: the full rebuild the new day is compared with.
  dagster      the N documents through `dg.materialize` (one run per partition, then one run of
               duplicate_clusters + dataset_splits): overhead = Dagster's wall - library mode's wall.
  serial       `incremental` with one worker (the partitions in the driver process): its outputs must equal
               those of the --workers run.
Library mode runs the partitions on --workers processes (default 2, pipeline_workers.py).
The final dataset_splits, duplicate_clusters, decisions (without decided_at), near_duplicate_pairs and
scored_examples of `incremental` and `full` must be identical (sorted frames compared); the exit status
is 1 if they are not. Results: benchmarks/results/pipeline.json (one entry per N, kept across runs) and
benchmarks/results/pipeline.md. Loading raw_examples (ingest) is timed apart and not counted in stages.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from pipeline_report import targets, write_table  # noqa: E402
from run_dedup import measure  # noqa: E402

WORK = HERE / "work"
RESULTS = HERE / "results"
MODES = ("incremental", "full", "dagster")  # also "serial": incremental on one worker, compared with it


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def snapshot(out: Path) -> dict:
    """Extract corpus_platform/ and sql/ of the HEAD commit to out/src: every run of this benchmark imports
    that copy, so the runs compared (incremental vs full, library vs Dagster) run one committed version of
    the code while other work changes (or half-changes) the working tree. Returns the commit, whether the
    working tree differed from it there (those changes are not measured), and a digest of the copy."""
    src = out / "src"
    src.mkdir(parents=True)
    git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()  # noqa: E731
    commit = git("rev-parse", "--short", "HEAD")
    archive = subprocess.run(["git", "archive", "--format=tar", commit, "corpus_platform", "sql"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    digest = hashlib.sha256()
    for f in sorted(p for p in src.rglob("*") if p.is_file()):
        digest.update(str(f.relative_to(src)).encode() + b"\0" + f.read_bytes())
    return {"commit": commit, "uncommitted_changes_not_measured": bool(git("status", "--porcelain", "--", "corpus_platform", "sql")),
            "snapshot_sha256": digest.hexdigest()[:16], "snapshot": str(src.relative_to(ROOT))}


def run_mode(mode: str, n: int, days: int, out: Path, src: Path, workers: int = 2) -> dict:
    tag, workers = (mode, workers) if mode != "serial" else ("serial", 1)
    cmd = [sys.executable, str(HERE / "pipeline_stages.py"), "incremental" if mode == "serial" else mode, "--n", str(n),
           "--days", str(days), "--out", str(out), "--workers", str(workers), "--tag", tag]
    print(f"[{n}] {mode}: {' '.join(cmd)}", flush=True)
    before = load()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PIPELINE_SRC": str(src)}
    tree = measure(cmd, out / f"{tag}.log", env=env)
    result = json.loads((out / f"{tag}.json").read_text())
    result.update(process_wall_s=tree["wall_s"], process_peak_mb=tree["peak_mb"], load_before=before, load_after=load())
    print(f"[{n}] {mode}: {tree['wall_s']} s process wall, {tree['peak_mb']} MB peak, load {before} -> {load()}", flush=True)
    return result


def compare(out: Path, first: str = "incremental", second: str = "full") -> dict:
    """Each output table of one run vs another (the incremental run vs the full rebuild; one worker vs
    two), sorted on every column. The keys say "incremental" and "full" for either pair."""
    verdict = {}
    for f in sorted((out / second).glob("*.parquet")):
        a, b = pl.read_parquet(out / first / f.name), pl.read_parquet(f)
        a, b = a.sort(a.columns, nulls_last=True), b.sort(b.columns, nulls_last=True)
        same = a.columns == b.columns and a.equals(b)
        verdict[f.stem] = {"identical": bool(same), "rows_incremental": a.height, "rows_full": b.height}
        if not same and a.columns == b.columns:
            verdict[f.stem]["only_incremental"] = a.join(b, on=a.columns, how="anti", nulls_equal=True).height
            verdict[f.stem]["only_full"] = b.join(a, on=a.columns, how="anti", nulls_equal=True).height
    return verdict


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--dagster-n", type=int, default=None, help="N for the Dagster run (default: --n, at most 100,000)")
    ap.add_argument("--workers", type=int, default=2, help="processes running partitions in library mode")
    ap.add_argument("--merge", action="store_true",
                    help="re-run only --modes and keep the entry's other runs (e.g. the full rebuild again on a quieter machine)")
    ap.add_argument("--table-only", action="store_true", help="rewrite pipeline.md from pipeline.json and exit")
    args = ap.parse_args(argv)
    if args.table_only:
        data = json.loads((RESULTS / "pipeline.json").read_text())
        for e in data["runs"].values():
            e["targets"] = targets(e)
        (RESULTS / "pipeline.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(write_table(data, RESULTS / "pipeline.md"))
        return 0
    modes = [m for m in args.modes.split(",") if m]
    key = str(args.n) if args.days == 10 else f"{args.n}-{args.days}d"  # results keep one entry per (N, days)
    out = WORK / f"pipeline-{key}"
    path = RESULTS / "pipeline.json"
    data = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    if args.merge and key in data["runs"] and out.exists():
        return merge(args, key, out, data)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    entry: dict = {"n": args.n, "days": args.days, "sources": 6, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
                   "settings": "CurationSettings() defaults: PII masking, no NER, no LLM judge, default toxicity backend",
                   "workers": args.workers, "code": snapshot(out)}
    src = out / "src"
    for mode in modes:
        if mode == "dagster":
            dn = args.dagster_n or min(args.n, 100_000)
            dout = out if dn == args.n else WORK / f"pipeline-{dn}-dagster"
            if dout != out:
                shutil.rmtree(dout, ignore_errors=True)
                dout.mkdir(parents=True)
            entry["dagster"] = run_mode("dagster", dn, args.days, dout, src)
            if dn != args.n:
                entry["dagster_library"] = run_mode("incremental", dn, args.days, dout, src)  # its library figures
        else:
            entry[mode] = run_mode(mode, args.n, args.days, out, src, args.workers)
    if "incremental" in entry and "full" in entry:
        entry["identical"] = compare(out)
    if "incremental" in entry and "serial" in entry:  # the same run on one worker: the same outputs
        entry["identical_serial"] = compare(out, "incremental", "serial")
    return finish(args, key, entry, out, data)


def merge(args, key: str, out: Path, data: dict) -> int:
    """Re-run some modes of an entry with the code snapshot it ran (out/src), keeping its other runs."""
    entry = data["runs"][key]
    src = out / "src"
    for mode in [m for m in args.modes.split(",") if m]:
        if mode == "dagster":
            raise SystemExit("--merge re-runs incremental, full or serial only")
        shutil.rmtree(out / f"home-{mode}", ignore_errors=True)
        shutil.rmtree(out / mode, ignore_errors=True)
        entry[mode] = run_mode(mode, args.n, args.days, out, src, args.workers)
        entry[mode]["rerun"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    entry.pop("identical", None)
    entry.pop("identical_serial", None)
    if "incremental" in entry and "full" in entry:
        entry["identical"] = compare(out)
    if "incremental" in entry and "serial" in entry:
        entry["identical_serial"] = compare(out, "incremental", "serial")
    return finish(args, key, entry, out, data)


def finish(args, key: str, entry: dict, out: Path, data: dict) -> int:
    entry["targets"] = targets(entry)
    entry["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "pipeline.json"
    data["runs"][key] = entry
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    table = write_table(data, RESULTS / "pipeline.md")
    print(table)
    bad = [t for t, v in (entry.get("identical", {}) | {f"{k} (1 vs {args.workers} workers)": v for k, v in
                                                       entry.get("identical_serial", {}).items()}).items() if not v["identical"]]
    if bad:
        print(f"NOT IDENTICAL (incremental vs full rebuild): {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
