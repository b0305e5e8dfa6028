"""Near-dedup benchmark: `corpus dedup` vs datatrove's MinHash vs datasketch MinHashLSH.

    python benchmarks/run_dedup.py --n 100000 [--tools corpus,datatrove,datasketch] [--workers 2]

For each N: builds benchmarks/work/corpus-N (build_corpus.py) unless present, runs each tool as
its own process tree, timed from process start to exit (imports and file reading included), with
peak memory = the largest sum of RSS over the process and all its descendants, polled every
50 ms (shared pages of forked workers are counted once per process, which overstates a little
for datatrove's workers). Then scores the removed ids against truth.json (score.py) and writes
benchmarks/results/dedup-N.json and the table benchmarks/results/dedup.md (all N found).

datatrove runs in benchmarks/work/datatrove-venv, created on first use with
`pip install datatrove==0.10.1 'xxhash<4' spacy regex tokenizers orjson`; its input is the same
corpus split into `--workers` shards (so each signature/filter task has a file), done before
timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work"
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))
from score import score  # noqa: E402

DT_VENV = WORK / "datatrove-venv"
DT_PACKAGES = ["datatrove==0.10.1", "xxhash<4", "spacy", "regex", "tokenizers", "orjson"]
TOOLS = ("corpus", "datatrove", "datasketch")


def measure(cmd: list[str], log: Path, env: dict | None = None) -> dict:
    """Run `cmd`; wall seconds and peak RSS (MB) of the whole process tree."""
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        ps = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                procs = [ps] + ps.children(recursive=True)
                rss = 0
                for p in procs:
                    try:
                        rss += p.memory_info().rss
                    except psutil.Error:
                        pass
                peak = max(peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.05)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}), see {log}")
    return {"wall_s": round(wall, 2), "peak_mb": round(peak / 2**20, 1)}


def ensure_datatrove() -> Path:
    py = DT_VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(DT_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *DT_PACKAGES, "psutil"], check=True)
    return py


def shard(corpus: Path, out_dir: Path, parts: int) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    if len(list(out_dir.glob("*.jsonl"))) == parts:
        return
    lines = corpus.read_bytes().splitlines(keepends=True)
    size = -(-len(lines) // parts)
    for k in range(parts):
        (out_dir / f"part-{k:02d}.jsonl").write_bytes(b"".join(lines[k * size : (k + 1) * size]))


def run_tool(tool: str, n: int, corpus_dir: Path, workers: int) -> dict:
    corpus = corpus_dir / "corpus.jsonl"
    run_dir = WORK / f"run-{tool}-{n}"
    if run_dir.exists():
        subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    run_dir.mkdir(parents=True)
    removed = run_dir / "removed.txt"
    log = run_dir / "log.txt"
    if tool == "corpus":
        exe = Path(sys.executable).parent / "corpus"
        cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "corpus_platform.cli"]),
               "dedup", str(corpus), "--removed", str(removed)]
        params = "exact 128-bit + LSH 16x5 (80 perms) + exact Jaccard >= 0.8"
    elif tool == "datatrove":
        py = ensure_datatrove()
        shards = corpus_dir / f"shards-{workers}"
        shard(corpus, shards, workers)
        cmd = [str(py), str(HERE / "datatrove_minhash.py"), str(shards), str(run_dir / "dt"), str(removed),
               "--workers", str(workers)]
        params = f"MinhashConfig() defaults: 5-grams, 14 buckets x 8 hashes; {workers} workers"
    elif tool == "datasketch":
        cmd = [sys.executable, str(HERE / "datasketch_lsh.py"), str(corpus), str(removed)]
        params = "MinHashLSH(threshold=0.8, num_perm=128), query-then-insert"
    else:
        raise SystemExit(f"unknown tool {tool}")
    print(f"[{n}] {tool}: {' '.join(cmd)}", flush=True)
    m = measure(cmd, log)
    truth = json.loads((corpus_dir / "truth.json").read_text())
    ids = {line.strip() for line in open(removed) if line.strip()}
    result = {"tool": tool, "params": params, **m, **score(truth, ids)}
    print(f"[{n}] {tool}: {m['wall_s']} s, {m['peak_mb']} MB, near recall {result['near_recall']}, "
          f"hard negatives removed {result['hard_negatives_removed']}", flush=True)
    return result


def write_table() -> None:
    rows = []
    for f in sorted(RESULTS.glob("dedup-*.json"), key=lambda p: int(p.stem.split("-")[1])):
        data = json.loads(f.read_text())
        for r in data["runs"]:
            b = r["near_recall_by_jaccard"]
            dt = next((x for x in data["runs"] if x["tool"] == "datatrove"), None)
            speed = f"{dt['wall_s'] / r['wall_s']:.1f}x" if dt else "-"
            rows.append(
                f"| {data['n']:,} | {r['tool']} | {r['wall_s']:.1f} | {speed} | {r['near_recall']:.4f} "
                f"({b['0.80-0.85']:.3f} / {b['0.85-0.90']:.3f} / {b['0.90-0.95']:.3f}) | {r['exact_recall']:.4f} | "
                f"{100 * r['hard_negatives_removed']:.1f} % | {r['unplanned_removed']} ({r['unplanned_removed_pct']:.4f} %) | "
                f"{r['peak_mb']:.0f} MB |"
            )
    head = (
        "# Near-duplicate detection benchmark\n\n"
        "Generated by `benchmarks/run_dedup.py` (see benchmarks/README.md). Wall = whole process tree, "
        "start to exit; peak = largest summed RSS of the tree. Speed-up is datatrove's wall / the tool's.\n\n"
        "| N | tool | wall s | speed-up vs datatrove | near-dup recall (0.80-0.85 / 0.85-0.90 / 0.90-0.95) "
        "| exact-dup recall | hard negatives removed | unplanned removals | peak memory |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    (RESULTS / "dedup.md").write_text(head + "\n".join(rows) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[100_000])
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for n in a.n:
        corpus_dir = WORK / f"corpus-{n}"
        if not (corpus_dir / "truth.json").exists():
            subprocess.run([sys.executable, str(HERE / "build_corpus.py"), "--n", str(n), "--seed", str(a.seed),
                            "--out", str(corpus_dir)], check=True)
        out = RESULTS / f"dedup-{n}.json"
        previous = {r["tool"]: r for r in json.loads(out.read_text())["runs"]} if out.exists() else {}
        for tool in a.tools.split(","):
            previous[tool] = run_tool(tool, n, corpus_dir, a.workers)
        runs = [previous[t] for t in TOOLS if t in previous]
        machine = {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                   "python": platform.python_version(), "load_avg_at_end": os.getloadavg()}
        out.write_text(json.dumps({"n": n, "machine": machine, "runs": runs}, indent=2))
        write_table()
        print((RESULTS / "dedup.md").read_text())


if __name__ == "__main__":
    main()
