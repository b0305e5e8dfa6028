"""Reference: datasketch MinHashLSH(threshold=0.8, num_perm=128), one document at a time.

    python datasketch_lsh.py CORPUS.jsonl REMOVED.txt

Shingles as in the library under test (lowercase, runs of \\w, 5-word shingles, whole sequence
for shorter documents) encoded as UTF-8 bytes with datasketch's default hash and scheme. A
document is removed when the index already holds a candidate for it (first seen is kept);
otherwise it is inserted. No verification: LSH candidates are taken as duplicates.
"""

import json
import re
import sys

from datasketch import MinHash, MinHashLSH

WORD = re.compile(r"\w+")


def shingles(text: str) -> set[bytes]:
    w = WORD.findall(text.lower())
    if len(w) < 5:
        return {" ".join(w).encode()} if w else set()
    return {" ".join(w[i : i + 5]).encode() for i in range(len(w) - 4)}


def main() -> None:
    corpus, removed_path = sys.argv[1:3]
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    removed = []
    with open(corpus) as f:
        for line in f:
            doc = json.loads(line)
            m = MinHash(num_perm=128)
            sh = shingles(doc["text"])
            if not sh:
                continue
            m.update_batch(sh)
            if lsh.query(m):
                removed.append(doc["id"])
            else:
                lsh.insert(doc["id"], m)
    with open(removed_path, "w") as out:
        out.writelines(i + "\n" for i in removed)


if __name__ == "__main__":
    main()
