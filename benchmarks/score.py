"""Score a set of removed ids against truth.json (see build_corpus.py).

Every planted document X has its own original O (no original has two planted derivatives), so a
planted pair {O, X} is *collapsed* when O or X is removed, whichever a tool chose to keep.
- exact-dup recall: collapsed exact pairs / exact pairs;
- near-dup recall: collapsed near pairs / near pairs, overall and per measured-Jaccard bucket;
- hard negatives removed: collapsed hard-negative pairs / hard-negative pairs (a false merge);
- unplanned removals: removed ids that are not explained by a planted pair, i.e. removed base
  documents with no planted derivative, plus the second member when both of a pair are removed.

    python benchmarks/score.py truth.json removed.txt
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BUCKETS = [(0.80, 0.85), (0.85, 0.90), (0.90, 0.95)]


def score(truth: dict, removed: set[str]) -> dict:
    n = truth["n"]
    stats = {"exact": [0, 0], "near": [0, 0], "hard_negative": [0, 0]}
    buckets = {f"{lo:.2f}-{hi:.2f}": [0, 0] for lo, hi in BUCKETS}
    explained = 0
    planted_ids = set()
    for p in truth["planted"]:
        planted_ids.update((p["id"], p["original"]))
        hit = p["id"] in removed or p["original"] in removed
        both = p["id"] in removed and p["original"] in removed
        s = stats[p["kind"]]
        s[0] += hit
        s[1] += 1
        if p["kind"] != "hard_negative":
            explained += hit and not both
        if p["kind"] == "near":
            for lo, hi in BUCKETS:
                if lo <= p["jaccard"] < hi or (hi == 0.95 and p["jaccard"] == hi):
                    b = buckets[f"{lo:.2f}-{hi:.2f}"]
                    b[0] += hit
                    b[1] += 1
    hard_removed = stats["hard_negative"][0]
    unplanned = len(removed) - explained - hard_removed

    def rate(a):
        return round(a[0] / a[1], 4) if a[1] else None

    return {
        "documents": n,
        "removed": len(removed),
        "exact_recall": rate(stats["exact"]),
        "near_recall": rate(stats["near"]),
        "near_recall_by_jaccard": {k: rate(v) for k, v in buckets.items()},
        "near_pairs_by_jaccard": {k: v[1] for k, v in buckets.items()},
        "hard_negatives_removed": rate(stats["hard_negative"]),
        "unplanned_removed": unplanned,
        "unplanned_removed_pct": round(100.0 * unplanned / n, 4),
        "unplanned_examples": sorted(removed - planted_ids)[:20],
    }


def main(argv: list[str] | None = None) -> None:
    truth_path, removed_path = (argv or sys.argv[1:])[:2]
    truth = json.loads(Path(truth_path).read_text())
    removed = {line.strip() for line in open(removed_path) if line.strip()}
    print(json.dumps(score(truth, removed), indent=2))


if __name__ == "__main__":
    main()
