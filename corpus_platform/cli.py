"""`corpus` command line.

    corpus dedup INPUT.jsonl[.gz] --removed OUT.txt [--id-field id] [--text-field text]
                 [--threshold 0.8] [--exact-only] [--pairs PAIRS.tsv]

`dedup` streams the JSONL in blocks (memory follows the number of documents and shingles, not the
text), drops exact duplicates of the normalized text (128-bit key: two seeded 64-bit Polars
hashes; the Dagster pipeline uses SHA-256) and near duplicates whose 5-word-shingle Jaccard is
>= --threshold (MinHash LSH candidates, each verified exactly; see
`corpus_platform.curation.near_dedup`). It writes the ids it would drop, one per line in id
order, keeping the smallest id of every duplicate cluster, and prints the counts.
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def jsonl_blocks(path: Path, block_bytes: int = 4 << 20) -> Iterator[bytes]:
    """The file (gzip when it ends in .gz) as blocks of whole lines."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        rest = b""
        while True:
            data = f.read(block_bytes)
            if not data:
                if rest.strip():
                    yield rest
                return
            buf = rest + data
            cut = buf.rfind(b"\n") + 1
            rest = buf[cut:]
            if cut and buf[:cut].strip():
                yield buf[:cut]


def parse_block(block: bytes, id_field: str, text_field: str):
    """(ids, texts) of a block of JSON lines; ids as strings, a missing or null text as ""."""
    import polars as pl

    df = pl.read_ndjson(io.BytesIO(block), schema={id_field: pl.Utf8, text_field: pl.Utf8})
    if df[id_field].null_count():
        raise SystemExit(f"a line has no {id_field!r} field")
    return df[id_field], df[text_field].fill_null("")


def cmd_dedup(args: argparse.Namespace) -> int:
    from corpus_platform.curation.near_dedup import NearDedupIndex

    t0 = time.perf_counter()
    index = NearDedupIndex(threshold=args.threshold, exact_hash="fast128", exact_only=args.exact_only)
    index.add_stream(jsonl_blocks(args.input), lambda b: parse_block(b, args.id_field, args.text_field))
    result = index.finish()
    with open(args.removed, "w") as f:
        f.writelines(f"{i}\n" for i in result.removed)
    if args.pairs:
        result.pairs.write_csv(args.pairs, separator="\t")
    s = result.stats
    print(f"documents: {s['documents']}")
    print(f"exact duplicates removed: {s['exact_removed']}")
    print(f"near duplicates removed: {s['near_removed']}")
    print(f"clusters: {s['clusters']}")
    if not args.exact_only:
        print(f"candidate pairs: {s['candidate_pairs']} (verified >= {args.threshold}: {s['verified_pairs']})")
    print(f"seconds: {time.perf_counter() - t0:.2f}")
    return 0


def _jaccard(value: str) -> float:
    x = float(value)
    if not 0.0 < x < 1.0:
        raise argparse.ArgumentTypeError("must be in (0, 1)")
    return x


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corpus", description="corpus_platform command line tools")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("dedup", help="exact + near-duplicate detection on a JSONL file",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path, help="JSONL file (.gz allowed), one document per line")
    p.add_argument("--id-field", default="id")
    p.add_argument("--text-field", default="text")
    p.add_argument("--removed", type=Path, required=True, help="write the dropped ids here, one per line")
    p.add_argument("--threshold", type=_jaccard, default=0.8, help="5-word-shingle Jaccard (default 0.8)")
    p.add_argument("--exact-only", action="store_true", help="only exact duplicates of the normalized text")
    p.add_argument("--pairs", type=Path, help="also write the verified pairs (id_a, id_b, jaccard, kind) as TSV")
    p.set_defaults(func=cmd_dedup)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
