"""Decontamination: drop examples that share a long word n-gram (13 by default) with an evaluation set.

A benchmark answer that also sits in the training data makes the benchmark measure memory. The
evaluation files are the user's (JSONL, JSON arrays or plain text); every string in a record is
evaluation text. N-grams are hashed with the same vectorized scheme as the MinHash shingles (Polars
word hashes combined position-wise into 64 bits), so a corpus of millions of words is checked
with sorts and binary searches, not Python loops. Evaluation texts shorter than n words cannot be
matched by an n-gram and are left out of the index (counted in `EvalIndex.too_short`): a one-word
answer such as "Paris" would otherwise flag every example that says it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from corpus_platform.curation.minhash import tokenize
from corpus_platform.curation.pii import string_leaves

_SEED = 0xDEC0_0DE5
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _position_constants(n: int) -> np.ndarray:
    rng = np.random.RandomState(n)
    return (rng.randint(1, 2**62, size=n + 1, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1))


def ngram_hashes(texts: pl.Series, n: int = 13) -> tuple[np.ndarray, np.ndarray]:
    """(uint64 n-gram hashes of all texts concatenated, offsets of length len(texts)+1)."""
    lists = tokenize(texts)
    lengths = lists.list.len().fill_null(0).to_numpy().astype(np.int64)
    words = lists.explode(empty_as_null=False, keep_nulls=False)
    h = words.hash(seed=_SEED).to_numpy() if words.len() else np.zeros(0, np.uint64)
    k = _position_constants(n)
    word_off = np.zeros(lengths.size + 1, np.int64)
    np.cumsum(lengths, out=word_off[1:])
    counts = np.where(lengths >= n, lengths - (n - 1), np.minimum(lengths, 1))
    offsets = np.zeros(lengths.size + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    total = int(offsets[-1])
    if total == 0:
        return np.zeros(0, np.uint64), offsets
    doc = np.repeat(np.arange(lengths.size), counts)
    start = np.arange(total) - offsets[doc] + word_off[doc]
    span = np.minimum(lengths[doc], n)  # words in this n-gram (short texts: all of them)
    acc = np.full(total, _MIX, np.uint64) * k[n]
    for j in range(n):
        take = j < span
        acc[take] += h[start[take] + j] * k[j]
    acc += span.astype(np.uint64) * _MIX
    return acc, offsets


def load_eval_texts(paths: list[Path]) -> pl.DataFrame:
    """(ref "file:line", text) for every string in every record of the evaluation files."""
    refs, texts = [], []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"decontamination file not found: {path}")
        raw = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            records = json.loads(raw)
            items = enumerate(records if isinstance(records, list) else [records], 1)
        elif path.suffix == ".jsonl":
            items = ((i, json.loads(line)) for i, line in enumerate(raw.splitlines(), 1) if line.strip())
        else:
            items = ((i, line) for i, line in enumerate(raw.splitlines(), 1) if line.strip())
        for i, record in items:
            for s in string_leaves(record):
                refs.append(f"{path.name}:{i}")
                texts.append(s)
    return pl.DataFrame({"ref": refs, "text": texts}, schema={"ref": pl.Utf8, "text": pl.Utf8})


@dataclass
class EvalIndex:
    """Sorted n-gram hashes of the evaluation texts and, for each, the first record that has it."""
    hashes: np.ndarray
    refs: np.ndarray
    n: int
    too_short: int = 0

    @classmethod
    def build(cls, evals: pl.DataFrame, n: int = 13) -> "EvalIndex":
        long_enough = tokenize(evals["text"]).list.len() >= n
        too_short = int((~long_enough).sum())
        evals = evals.filter(long_enough)
        hashes, offsets = ngram_hashes(evals["text"], n)
        owner = np.repeat(np.arange(evals.height), np.diff(offsets))
        order = np.lexsort((owner, hashes))
        hashes, owner = hashes[order], owner[order]
        first = np.concatenate([[True], hashes[1:] != hashes[:-1]]) if hashes.size else np.zeros(0, bool)
        refs = evals["ref"].to_numpy()[owner[first]] if hashes.size else np.zeros(0, object)
        return cls(hashes[first], refs, n, too_short)


def find_contaminated(df: pl.DataFrame, index: EvalIndex) -> pl.DataFrame:
    """example_id, source, date, shared (number of n-grams shared), ref (an evaluation record it shares with)
    for each example of `df` (with `messages`) that shares at least one n-gram with the evaluation set."""
    text = df.select(pl.col("messages").list.eval(pl.element().struct.field("content")).list.join("\n").alias("t"))["t"]
    hashes, offsets = ngram_hashes(text, index.n)
    empty = pl.DataFrame(schema={"example_id": pl.Utf8, "source": pl.Utf8, "date": pl.Date, "shared": pl.Int64, "ref": pl.Utf8})
    if index.hashes.size == 0 or hashes.size == 0:
        return empty
    at = np.searchsorted(index.hashes, hashes).clip(0, index.hashes.size - 1)
    hit = index.hashes[at] == hashes
    doc = np.repeat(np.arange(df.height), np.diff(offsets))
    shared = np.bincount(doc[hit], minlength=df.height)
    first_ref = np.full(df.height, None, object)
    hit_docs, first_pos = np.unique(doc[hit], return_index=True)
    first_ref[hit_docs] = index.refs[at[hit][first_pos]]
    found = np.flatnonzero(shared > 0)
    if found.size == 0:
        return empty
    return df.select("example_id", "source", "date").select(pl.all().gather(found)).with_columns(
        pl.Series("shared", shared[found].astype(np.int64)), pl.Series("ref", first_ref[found].tolist(), dtype=pl.Utf8))
