"""datatrove 0.10.1 MinHash dedup with its defaults (runs in benchmarks/work/datatrove-venv).

    python datatrove_minhash.py SHARD_DIR WORK_DIR REMOVED.txt [--workers 2]

The four stages of datatrove's minhash example: signatures (one task per input shard), buckets
(one task per bucket, 14), cluster (1 task), filter (one task per shard, removed documents
written by the exclusion writer). MinhashConfig() defaults: 5-gram shingles, 14 buckets x 8
hashes, 64-bit xxhash, seed 1. The ids of the excluded documents are written to REMOVED.txt.
"""

import argparse
import gzip
import json
from pathlib import Path

from datatrove.executor.local import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers.jsonl import JsonlWriter


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("shards", type=Path)
    ap.add_argument("work", type=Path)
    ap.add_argument("removed", type=Path)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    shards = sorted(a.shards.glob("*.jsonl"))
    tasks = len(shards)
    config = MinhashConfig()
    w = a.work
    logs = str(w / "logs")
    common = dict(workers=a.workers, start_method="fork", skip_completed=False)
    s1 = LocalPipelineExecutor(
        pipeline=[JsonlReader(str(a.shards)), MinhashDedupSignature(output_folder=str(w / "signatures"), config=config)],
        tasks=tasks, logging_dir=f"{logs}/signatures", **common,
    )
    s2 = LocalPipelineExecutor(
        pipeline=[MinhashDedupBuckets(input_folder=str(w / "signatures"), output_folder=str(w / "buckets"), config=config)],
        tasks=config.num_buckets, logging_dir=f"{logs}/buckets", **common,
    )
    s3 = LocalPipelineExecutor(
        pipeline=[MinhashDedupCluster(input_folder=str(w / "buckets"), output_folder=str(w / "remove_ids"), config=config)],
        tasks=1, logging_dir=f"{logs}/clusters", **common,
    )
    s4 = LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(a.shards)),
            MinhashDedupFilter(input_folder=str(w / "remove_ids"),
                               exclusion_writer=JsonlWriter(str(w / "removed"), compression=None)),
        ],
        tasks=tasks, logging_dir=f"{logs}/filter", **common,
    )
    for stage in (s1, s2, s3, s4):
        stage.run()
    with open(a.removed, "w") as out:
        for f in sorted((w / "removed").glob("*.jsonl*")):
            opener = gzip.open if f.suffix == ".gz" else open
            with opener(f, "rt") as fh:
                for line in fh:
                    out.write(json.loads(line)["id"] + "\n")


if __name__ == "__main__":
    main()
