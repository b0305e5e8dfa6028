"""Build the near-dedup benchmark corpus from the real text under ../shared/data.

    python benchmarks/build_corpus.py --n 100000 --out benchmarks/work/corpus-100000

Writes OUT/corpus.jsonl ({"id", "text"}, ids "d0000000".. in file order) and OUT/truth.json.

1. Real texts (Alpaca instruction/input/output, Dolly instruction/answer, HH-RLHF turns, GoEmotions
   Reddit comments, Davidson tweets, the langid test sentences, Glaive human/gpt turns) are split
   into sentences; short sentences are merged with their neighbours (>= 5 words), long ones cut
   into windows of <= 30 words: the *pieces*. Pieces are deduplicated on their word sequence.
2. A base document is 4 or more pieces (4 + Geometric(1/5) - 1: mean 8, ~120 words) taken in turn
   from successive seeded shuffles of the piece pool, so two base documents share at most a few
   pieces and, with every piece 5..30 words, two of them stay far below Jaccard 0.8.
3. Planted documents, each from a different base document (its "original"):
   - exact (2 % of N): a copy, half byte-identical, half with whitespace-only changes (the same
     text once normalized: NFKC, collapsed spaces, stripped);
   - near (3 %): random word substitutions / insertions / deletions until the *measured* 5-word
     shingle Jaccard with the original falls at a target drawn uniformly from [0.80, 0.95];
   - hard negative (1 %): the same with targets in [0.50, 0.70].
   Jaccard is measured with the dedup library's tokenizer (lowercase, runs of \\w, 5-word shingles,
   Python sets of word tuples: no hashing), and a planted document whose measurement falls outside
   its band is re-drawn from another original.
4. All documents are shuffled, then numbered: ids are in file order, so "keep the smallest id"
   and "keep the first seen" keep the same document.
truth.json: {"n", "seed", "pieces", "planted": [{"id", "kind", "original", "jaccard"}]}.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from corpus_platform.curation.minhash import tokenize  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
WORD = re.compile(r"\w+")
SENT = re.compile(r"(?<=[.!?])\s+|\n+")
MIN_WORDS, MAX_WORDS = 5, 30
BANDS = {"near": (0.80, 0.95), "hard_negative": (0.50, 0.70)}


def real_texts() -> list[str]:
    out: list[str] = []
    for r in json.load(open(DATA / "alpaca-2k" / "alpaca_data_2k.json")):
        out += [r["instruction"], r["input"], r["output"]]
    for line in open(DATA / "dolly-sample" / "dolly_151.jsonl"):
        r = json.loads(line)
        m = re.search(r"### Instruction:\n(.*?)\n\n### Response:", r["prompt"], re.S)
        out += [m.group(1) if m else r["prompt"], r["answer"]]
    with gzip.open(DATA / "hh-rlhf-harmless-base-test" / "test.jsonl.gz", "rt") as f:
        for line in f:
            r = json.loads(line)
            for side in ("chosen", "rejected"):
                out += re.split(r"\n\n(?:Human|Assistant): ", r[side])
    for split in ("train", "dev", "test"):
        with gzip.open(DATA / "goemotions-reddit" / f"{split}.tsv.gz", "rt") as f:
            out += [line.split("\t", 1)[0] for line in f]
    with gzip.open(DATA / "tweets-hate-offensive" / "labeled_data.csv.gz", "rt") as f:
        out += [row["tweet"] for row in csv.DictReader(f)]
    with gzip.open(DATA / "langid-testdata" / "langid_20langs_10k.jsonl.gz", "rt") as f:
        out += [r["text"] for r in map(json.loads, f) if r["kind"] == "sentences"]
    for conv in json.load(open(DATA / "sharegpt-style" / "glaive_toolcall_en_demo.json")):
        out += [t["value"] for t in conv["conversations"] if t["from"] in ("human", "gpt")]
    return [t for t in out if t and t.strip()]


def pieces(texts: list[str]) -> list[str]:
    seen: set[tuple[str, ...]] = set()
    out: list[str] = []

    def emit(s: str) -> None:
        key = tuple(WORD.findall(s.lower()))
        if len(key) >= MIN_WORDS and key not in seen:
            seen.add(key)
            out.append(s)

    for text in texts:
        buf: list[str] = []
        for sent in SENT.split(text):
            for tok in sent.split():
                buf.append(tok)
                if len(buf) >= 25:  # long sentence: windows of 25 whitespace tokens
                    emit(" ".join(buf))
                    buf = []
            if len(WORD.findall(" ".join(buf))) >= MIN_WORDS:
                emit(" ".join(buf))
                buf = []
        if buf:
            emit(" ".join(buf))
    return out


def shingles(text: str) -> set:
    w = WORD.findall(text.lower())
    if len(w) < 5:
        return {tuple(w)} if w else set()
    return set(zip(w, w[1:], w[2:], w[3:], w[4:]))


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def edit_until(text: str, lo: float, hi: float, vocab: list[str], rng: random.Random) -> str | None:
    """Word edits until J(original, edited) is within 0.01 of a target ~ U(lo, hi) (and in [lo, hi]).

    Edits that overshoot below the window are rejected; half of the edits hit the first or last
    five words, which removes fewer shingles, so a short document can still reach a target."""
    target = rng.uniform(lo, hi)
    floor, ceiling = max(lo, target - 0.01), min(hi, target + 0.01)
    base = shingles(text)
    toks = text.split()
    cur = 1.0
    for _ in range(600):
        if len(toks) < 8:
            return None
        # several edits at once while far from the target, one at a time near it
        k = max(1, int((cur - target) * len(base) / 12))
        trial = list(toks)
        for _ in range(k):
            n = len(trial)
            if rng.random() < 0.5:
                i = rng.randrange(n)
            else:
                i = rng.randrange(min(5, n)) if rng.random() < 0.5 else n - 1 - rng.randrange(min(5, n))
            op = rng.random()
            if op < 0.5:
                trial[i] = rng.choice(vocab)
            elif op < 0.75:
                trial.insert(i, rng.choice(vocab))
            elif n > 8:
                del trial[i]
        j = jaccard(base, shingles(" ".join(trial)))
        if j < floor:
            continue
        toks, cur = trial, j
        if cur <= ceiling:
            return " ".join(toks)
    return None


def whitespace_variant(text: str, rng: random.Random) -> str:
    toks = text.split(" ")
    if len(toks) > 2:
        i = rng.randrange(1, len(toks))
        toks[i] = " " + toks[i]
    return " ".join(toks) + rng.choice(["\n", " ", "  \n"])


def polars_jaccard(pairs: list[tuple[str, str]]) -> list[float]:
    import polars as pl

    a = tokenize(pl.Series([p[0] for p in pairs])).to_list()
    b = tokenize(pl.Series([p[1] for p in pairs])).to_list()

    def sh(w):
        if len(w) < 5:
            return {tuple(w)} if w else set()
        return set(zip(w, w[1:], w[2:], w[3:], w[4:]))

    return [jaccard(sh(x), sh(y)) for x, y in zip(a, b)]


def build(n: int, seed: int, out: Path) -> dict:
    t0 = time.time()
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    pool = pieces(real_texts())
    vocab = sorted({w for p in pool[:20000] for w in WORD.findall(p.lower()) if w.isalpha() and w.isascii()})
    n_exact, n_near, n_hard = round(0.02 * n), round(0.03 * n), round(0.01 * n)
    n_base = n - n_exact - n_near - n_hard
    ks = 3 + nrng.geometric(0.2, n_base)
    order = np.concatenate([nrng.permutation(len(pool)) for _ in range(int(ks.sum()) // len(pool) + 1)])
    ends = np.cumsum(ks)
    base = [" ".join(pool[i] for i in order[e - k : e]) for e, k in zip(ends, ks)]
    print(f"pool {len(pool)} pieces, {n_base} base docs ({time.time() - t0:.1f}s)", flush=True)

    originals = iter(nrng.permutation(n_base).tolist())
    planted: list[dict] = []  # {"text", "kind", "original"(index), "jaccard"}
    for _ in range(n_exact):
        o = next(originals)
        text = base[o] if rng.random() < 0.5 else whitespace_variant(base[o], rng)
        planted.append({"text": text, "kind": "exact", "original": o, "jaccard": 1.0})
    for kind, count in (("near", n_near), ("hard_negative", n_hard)):
        lo, hi = BANDS[kind]
        made: list[dict] = []
        while len(made) < count:
            batch = []
            while len(batch) < count - len(made):
                o = next(originals)
                t = edit_until(base[o], lo, hi, vocab, rng)
                if t is not None:
                    batch.append({"text": t, "kind": kind, "original": o})
            js = polars_jaccard([(base[p["original"]], p["text"]) for p in batch])
            for p, j in zip(batch, js):
                if lo <= j <= hi:
                    p["jaccard"] = j
                    made.append(p)
        planted += made
        print(f"{kind}: {count} planted ({time.time() - t0:.1f}s)", flush=True)

    texts = base + [p["text"] for p in planted]
    perm = nrng.permutation(len(texts))  # perm[new position] = old index
    new_pos = np.empty(len(texts), np.int64)
    new_pos[perm] = np.arange(len(texts))
    ident = [f"d{i:07d}" for i in range(len(texts))]
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "corpus.jsonl", "w") as f:
        buf = io.StringIO()
        for pos, old in enumerate(perm):
            buf.write(json.dumps({"id": ident[pos], "text": texts[old]}, ensure_ascii=False))
            buf.write("\n")
            if pos % 50000 == 49999:
                f.write(buf.getvalue())
                buf = io.StringIO()
        f.write(buf.getvalue())
    truth = {
        "n": len(texts), "seed": seed, "pieces": len(pool),
        "planted": [
            {"id": ident[new_pos[n_base + k]], "kind": p["kind"], "original": ident[new_pos[p["original"]]],
             "jaccard": round(p["jaccard"], 6)}
            for k, p in enumerate(planted)
        ],
    }
    (out / "truth.json").write_text(json.dumps(truth))
    print(f"wrote {len(texts)} documents to {out} ({time.time() - t0:.1f}s)", flush=True)
    return truth


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    build(a.n, a.seed, a.out)


if __name__ == "__main__":
    main()
