"""Exact + near-duplicate detection: MinHash LSH for candidates, exact shingle Jaccard to decide.

    result = find_duplicates(ids, texts, threshold=0.8)
    result.removed        # ids to drop, one document kept per duplicate cluster
    result.duplicate_of   # removed id -> the kept id of its cluster
    result.cluster_of     # id -> cluster id (the kept id) for every document in a cluster
    result.pairs          # DataFrame id_a, id_b, jaccard, kind ("exact" | "near"): the verified edges

Streaming (the CLI): ``index = NearDedupIndex(...); index.add(ids, texts)`` per chunk, then
``index.finish()``. Memory is the band keys (8 bytes x bands per document), one uint32 per
shingle, the exact-duplicate key and the ids; the text of a chunk is dropped once hashed.

Decision rule
    1. Exact duplicates: the normalized text (`normalize.normalize_text`'s rules: NFKC, collapsed
       spaces, stripped; computed by the equivalent, faster `normalized`) hashed with SHA-256 (``exact_hash="sha256"``, what the pipeline's exact dedup
       uses) or with a 128-bit key made of two seeded 64-bit Polars string hashes
       (``"fast128"``, the CLI default; collision odds ~N^2 / 2^129).
    2. Near duplicates among the exact-distinct documents: a pair is a duplicate when the exact
       Jaccard similarity of their 5-word shingle sets (see `minhash`) is >= `threshold`. LSH only
       proposes candidate pairs; every candidate is verified exactly, so a pair below the threshold
       is never merged however its signatures look, and recall is limited only by the LSH S-curve.
    3. Clusters are the connected components of exact + verified near pairs (union-find); the
       document with the smallest id is kept (ids compare as integers when every id is an integer,
       otherwise as strings), so the result does not depend on input order.

Banding (the S-curve)
    With `bands` bands of `rows` MinHash rows each, two documents of Jaccard J share a band key
    (become a candidate) with probability  P(J) = 1 - (1 - J^rows)^bands.  Because candidates are
    verified, the band/row choice only trades missed pairs (1 - P at J = threshold) against
    verification work (P at low J), not precision. For threshold 0.8 the default is 16 bands x 5
    rows = 80 permutations:

        J      0.30     0.50    0.70    0.75    0.80    0.85    0.90    0.95
        P(J)   0.038    0.40    0.93    0.98    0.9983  0.99994 1.0000  1.0000

    i.e. a pair at exactly J = 0.80 is missed with probability 0.17 %, one at 0.85 with 0.006 %,
    while a random pair at J = 0.3 becomes a candidate 3.8 % of the time (then rejected by the
    exact check). 5 rows keeps the S-curve's midpoint, (1/16)^(1/5) ~ 0.57, well below the
    threshold; datasketch's MinHashLSH(0.8, 128) puts it near 0.8 and misses half of the pairs at
    0.80-0.85, while datatrove's 14 x 8 (midpoint ~0.72, no verification) misses 8 % at 0.80 and
    merges many pairs at 0.6-0.75. For other thresholds `choose_bands` keeps J^rows ~ 1/3 at the
    threshold and adds bands until P(threshold) >= 0.998.
    In a band bucket of more than `bucket_cap` documents (boilerplate), each member is paired with
    the bucket's smallest-id member and with its id-order successor instead of all pairs.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from corpus_platform.curation.minhash import (
    MinHasher,
    band_keys,
    candidate_pairs,
    jaccard_pairs,
    shingle_hashes,
)
from corpus_platform.curation.normalize import nfkc

EXACT_HASHES = ("fast128", "sha256")


def normalized(texts: pl.Series) -> pl.Series:
    """`normalize.normalize_text`, the same output (a test holds them equal), cheaper: NFKC only for the
    non-ASCII texts (normalize.nfkc, no per-text Python check), and the whitespace-run rewrite only where
    it changes something (a run of 2+ or a non-space blank)."""
    t = nfkc(texts.cast(pl.Utf8).fill_null("").alias("t"))
    return (
        t.str.replace_all("\r\n?", "\n")
        .str.replace_all("[\u200b\ufeff]", "")
        .str.replace_all(r"[^\S\n]{2,}|[^\S\n ]", " ")
        .str.replace_all(r" ?\n ?", "\n")
        .str.replace_all(r"\n{3,}", "\n\n")
        .str.strip_chars()
    )


def choose_bands(threshold: float, recall: float = 0.998) -> tuple[int, int]:
    """(bands, rows): rows with threshold^rows closest to 1/3, then the fewest bands reaching
    `recall` = P(candidate) at the threshold."""
    if not 0.0 < threshold < 1.0:
        raise ValueError("threshold must be in (0, 1)")
    rows = max(1, round(math.log(1 / 3) / math.log(threshold)))
    bands = math.ceil(math.log(1.0 - recall) / math.log(1.0 - threshold**rows))
    return bands, rows


@dataclass
class DedupResult:
    removed: list[str]
    duplicate_of: dict[str, str]
    cluster_of: dict[str, str]
    pairs: pl.DataFrame
    stats: dict = field(default_factory=dict)

    @property
    def exact_removed(self) -> int:
        return self.stats["exact_removed"]

    @property
    def near_removed(self) -> int:
        return self.stats["near_removed"]

    @property
    def clusters(self) -> int:
        return self.stats["clusters"]


class NearDedupIndex:
    """Accumulates documents chunk by chunk; `finish` clusters them all."""

    def __init__(
        self,
        threshold: float = 0.8,
        bands: int | None = None,
        rows: int | None = None,
        seed: int = 1,
        exact_hash: str = "fast128",
        exact_only: bool = False,
        bucket_cap: int = 64,
    ):
        if exact_hash not in EXACT_HASHES:
            raise ValueError(f"exact_hash must be one of {EXACT_HASHES}")
        if (bands is None) != (rows is None):
            raise ValueError("give both bands and rows, or neither")
        self.threshold = threshold
        self.bands, self.rows = (bands, rows) if bands is not None else choose_bands(threshold)
        self.hasher = MinHasher(self.bands * self.rows, seed)
        self.exact_hash = exact_hash
        self.exact_only = exact_only
        self.bucket_cap = bucket_cap
        self._ids: list[pl.Series] = []
        self._exact: list[pl.DataFrame] = []
        self._keys: list[np.ndarray] = []
        self._shingles: list[np.ndarray] = []
        self._offsets: list[np.ndarray] = []
        self.n = 0

    def add(self, ids, texts) -> None:
        """Hash one chunk of documents (ids and texts: sequences or Polars Series)."""
        self._append(self._process(ids, texts))

    def add_stream(self, chunks: Iterable, prepare: Callable | None = None, workers: int = 2) -> None:
        """Add chunks from an iterator, hashing up to `workers` chunks at once in threads (Polars
        and NumPy release the GIL). `prepare(chunk) -> (ids, texts)` runs in the worker too (e.g.
        JSON parsing); without it each chunk is an (ids, texts) pair. Chunks are added in order."""
        prepare = prepare or (lambda c: c)
        if workers <= 1:
            for chunk in chunks:
                self.add(*prepare(chunk))
            return
        threads, self.hasher.threads = self.hasher.threads, 1  # the chunk threads fill the cores
        try:
            with ThreadPoolExecutor(workers) as pool:
                pending: deque = deque()
                for chunk in chunks:
                    pending.append(pool.submit(lambda c: self._process(*prepare(c)), chunk))
                    if len(pending) >= workers:
                        self._append(pending.popleft().result())
                while pending:
                    self._append(pending.popleft().result())
        finally:
            self.hasher.threads = threads

    def _process(self, ids, texts) -> tuple:
        ids = pl.Series("id", ids) if not isinstance(ids, pl.Series) else ids
        texts = pl.Series("text", texts) if not isinstance(texts, pl.Series) else texts
        if ids.len() != texts.len():
            raise ValueError("ids and texts differ in length")
        norm = normalized(texts)
        exact = self._exact_keys(norm)
        if self.exact_only:
            return ids.cast(pl.Utf8).alias("id"), exact, None, None, None
        hashes, offsets = shingle_hashes(norm)
        del norm
        keys = band_keys(self.hasher.signatures(hashes, offsets), self.bands, self.rows)
        return ids.cast(pl.Utf8).alias("id"), exact, keys, hashes, offsets

    def _append(self, processed: tuple) -> None:
        ids, exact, keys, hashes, offsets = processed
        self._ids.append(ids)
        self._exact.append(exact)
        self.n += ids.len()
        if keys is not None:
            self._keys.append(keys)
            self._shingles.append(hashes)
            self._offsets.append(offsets)

    def _exact_keys(self, norm: pl.Series) -> pl.DataFrame:
        if self.exact_hash == "sha256":
            from corpus_platform.curation.hashing import sha256_hex

            return pl.DataFrame({"k": sha256_hex(norm)})
        return pl.DataFrame({"k": norm.hash(seed=0x0DD5_EED1), "k2": norm.hash(seed=0x1234_5678_9ABC)})

    # -- finishing -------------------------------------------------------------------------------

    def _get_shingles(self, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Concatenated shingle hashes and offsets for sorted global document numbers `docs`."""
        starts = np.cumsum([0] + [o.size - 1 for o in self._offsets])
        parts, lens = [], []
        for c, (h, off) in enumerate(zip(self._shingles, self._offsets)):
            lo, hi = np.searchsorted(docs, [starts[c], starts[c + 1]])
            if lo == hi:
                continue
            local = docs[lo:hi] - starts[c]
            s, ln = off[local], off[local + 1] - off[local]
            out_off = np.cumsum(ln) - ln
            parts.append(h[np.arange(int(ln.sum())) + np.repeat(s - out_off, ln)])
            lens.append(ln)
        ln = np.concatenate(lens) if lens else np.zeros(0, np.int64)
        offsets = np.zeros(ln.size + 1, np.int64)
        np.cumsum(ln, out=offsets[1:])
        return (np.concatenate(parts) if parts else np.zeros(0, np.uint32)), offsets

    def finish(self) -> DedupResult:
        n = self.n
        ids = pl.concat(self._ids) if self._ids else pl.Series("id", [], pl.Utf8)
        rank = _id_rank(ids)  # rank[i]: position of document i in id order
        by_rank = np.empty(n, np.int64)
        by_rank[rank] = np.arange(n)
        exact = pl.concat(self._exact) if self._exact else pl.DataFrame({"k": []})
        keycols = exact.columns
        rep = (
            exact.with_columns(pl.Series("r", rank))
            .select(pl.col("r").min().over(keycols).alias("rep"))["rep"]
            .to_numpy()
        )  # rep[i]: rank of the smallest-id document with i's normalized text
        is_rep = rep == rank
        edges_u = [rep[~is_rep]]
        edges_v = [rank[~is_rep]]
        near = pl.DataFrame(schema={"a": pl.Int64, "b": pl.Int64, "jaccard": pl.Float64})
        n_candidates = 0
        if not self.exact_only and n:
            lengths = np.concatenate([np.diff(o) for o in self._offsets])
            eligible = np.flatnonzero(is_rep[by_rank] & (lengths[by_rank] > 0))  # ranks, ascending
            rows = by_rank[eligible]
            columns = (np.concatenate([k[j] for k in self._keys])[rows] for j in range(self.bands))
            pairs = eligible[candidate_pairs(columns, cap=self.bucket_cap)]  # rank pairs, a < b
            n_candidates = len(pairs)
            docs = by_rank[pairs]
            lo = np.minimum(docs[:, 0], docs[:, 1])
            hi = np.maximum(docs[:, 0], docs[:, 1])
            jac = jaccard_pairs(self._get_shingles, np.stack([lo, hi], axis=1)) if len(pairs) else np.zeros(0)
            ok = jac >= self.threshold
            near = pl.DataFrame({"a": pairs[ok, 0], "b": pairs[ok, 1], "jaccard": jac[ok]})
            edges_u.append(pairs[ok, 0])
            edges_v.append(pairs[ok, 1])
        root = _components(n, np.concatenate(edges_u), np.concatenate(edges_v))  # min rank per component
        in_cluster = np.bincount(root, minlength=n)[root] > 1
        removed_r = np.flatnonzero(root != np.arange(n))  # ranks, ascending = id order
        ids_by_rank = ids.gather(by_rank) if n else ids
        removed = ids_by_rank.gather(removed_r).to_list()
        kept_of = ids_by_rank.gather(root[removed_r]).to_list()
        members = np.flatnonzero(in_cluster)
        cluster_of = dict(zip(ids_by_rank.gather(members).to_list(), ids_by_rank.gather(root[members]).to_list()))
        exact_pairs = pl.DataFrame({"a": rep[~is_rep], "b": rank[~is_rep]})
        pairs_df = pl.concat(
            [
                exact_pairs.with_columns(pl.lit(1.0).alias("jaccard"), pl.lit("exact").alias("kind")),
                near.with_columns(pl.lit("near").alias("kind")),
            ]
        ).sort("a", "b")
        pairs_df = pairs_df.select(
            ids_by_rank.gather(pairs_df["a"]).alias("id_a"),
            ids_by_rank.gather(pairs_df["b"]).alias("id_b"),
            "jaccard",
            "kind",
        )
        exact_removed = int((~is_rep).sum())
        stats = {
            "documents": n,
            "exact_removed": exact_removed,
            "near_removed": len(removed) - exact_removed,
            "clusters": int(np.unique(root[in_cluster]).size),
            "candidate_pairs": n_candidates,
            "verified_pairs": near.height,
            "bands": self.bands,
            "rows": self.rows,
            "threshold": self.threshold,
        }
        return DedupResult(removed, dict(zip(removed, kept_of)), cluster_of, pairs_df, stats)


def _id_rank(ids: pl.Series) -> np.ndarray:
    """Position of each document in id order (integers numerically when all ids are integers)."""
    if ids.len() == 0:
        return np.zeros(0, np.int64)
    as_int = ids.cast(pl.Int64, strict=False)
    key = as_int if as_int.null_count() == 0 and ids.str.contains(r"^[+-]?\d+$").all() else ids
    order = pl.DataFrame({"k": key, "i": pl.int_range(0, ids.len(), eager=True)}).sort("k", "i", maintain_order=True)["i"]
    rank = np.empty(ids.len(), np.int64)
    rank[order.to_numpy()] = np.arange(ids.len())
    return rank


def _components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """For each node, the smallest node of its connected component (union-find via scipy)."""
    if n == 0:
        return np.zeros(0, np.int64)
    if u.size == 0:
        return np.arange(n)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(u.size, np.int8), (u, v)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    smallest = np.full(label.max() + 1, n, np.int64)
    np.minimum.at(smallest, label, np.arange(n))
    return smallest[label]


def find_duplicates(
    ids,
    texts,
    threshold: float = 0.8,
    bands: int | None = None,
    rows: int | None = None,
    seed: int = 1,
    exact_hash: str = "sha256",
    exact_only: bool = False,
    chunk_size: int = 50_000,
) -> DedupResult:
    """Exact + near duplicates of an in-memory collection (see the module docstring)."""
    ids = pl.Series("id", ids) if not isinstance(ids, pl.Series) else ids
    texts = pl.Series("text", texts) if not isinstance(texts, pl.Series) else texts
    if ids.len() != texts.len():
        raise ValueError("ids and texts differ in length")
    index = NearDedupIndex(threshold, bands, rows, seed, exact_hash, exact_only)
    for start in range(0, ids.len(), chunk_size):
        index.add(ids.slice(start, chunk_size), texts.slice(start, chunk_size))
    return index.finish()
