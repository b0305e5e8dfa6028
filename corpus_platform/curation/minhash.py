"""Vectorized shingling, MinHash signatures, LSH banding and exact Jaccard verification.

Everything here works on whole batches of documents with Polars (tokenizing, word hashing) and
NumPy (shingle hashing, permutations, minima, band keys, set intersection); nothing loops over
documents or shingles in Python.

Tokenization (`shingle_hashes`)
    text -> lowercase (Unicode) -> maximal runs of regex ``\\w`` (Unicode letters, marks, digits,
    underscore: Polars' Rust regex) -> words. "It's an e-mail!" gives ``it s an e mail``.
    A *shingle* is a run of 5 consecutive words; a document with 1 to 4 words has one shingle, its
    whole word sequence; a document with no word has no shingle (only exact dedup sees it).
    Near-duplicate similarity is the Jaccard similarity of the two documents' shingle *sets*.

Hashing
    Words are hashed with Polars' 64-bit `Series.hash` (fixed seed: deterministic for a given
    Polars version, not promised across Polars releases, so persisted signatures must be rebuilt
    on a Polars upgrade). A shingle hash combines its word hashes position-wise
    (sum of h_j * K_j mod 2^64 with odd constants K_j, plus a salt for the word count) and keeps the
    high 32 bits: a uint32 per shingle, 4 bytes of memory each. Two distinct
    shingles collide with probability 2^-32, which moves a Jaccard value by ~1e-6 in expectation.

MinHash (`MinHasher`)
    datasketch's default ``affine32`` scheme, bit for bit: each input hash is pre-mixed with the
    32-bit MurmurHash3 finalizer, then permutation k maps it to ``a_k * h + b_k mod 2^32``
    (a_k odd, so a bijection), with (a, b) drawn from ``np.random.RandomState(seed)`` exactly as
    datasketch does. So ``MinHasher(p, s).signatures(...)[i]`` equals the ``hashvalues`` of
    ``datasketch.MinHash(p, seed=s, hashfunc=int)`` updated with document i's shingle hashes.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl

SHINGLE_SIZE = 5
WORD_PATTERN = r"\w+"
WORD_HASH_SEED = 0x5EED_C0DE

_U64 = np.uint64
_M64 = (_U64(0xFF51AFD7ED558CCD), _U64(0xC4CEB9FE1A85EC53))
_M32 = (np.uint32(0x85EBCA6B), np.uint32(0xC2B2AE35))
# Odd multipliers for word positions 0..4 and for the word count.
_POS = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
     0xA0761D6478BD642F, 0xE7037ED1A0B428DB],
    dtype=np.uint64,
)
_LEN_SALT = np.array([(k * int(_POS[5])) & (2**64 - 1) for k in range(6)], dtype=np.uint64)
_THREADS = max(1, min(2, os.cpu_count() or 1))


def fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3 64-bit finalizer (a bijection), in place on a uint64 array."""
    x ^= x >> _U64(33)
    x *= _M64[0]
    x ^= x >> _U64(33)
    x *= _M64[1]
    x ^= x >> _U64(33)
    return x


def fmix32(x: np.ndarray) -> np.ndarray:
    """MurmurHash3 32-bit finalizer (what datasketch's affine32 applies to every input hash)."""
    x = x.astype(np.uint32, copy=True)
    x ^= x >> np.uint32(16)
    x *= _M32[0]
    x ^= x >> np.uint32(13)
    x *= _M32[1]
    x ^= x >> np.uint32(16)
    return x


def tokenize(texts: pl.Series) -> pl.Series:
    """list[str] of words per document (lowercase, runs of \\w)."""
    return texts.cast(pl.Utf8).fill_null("").str.to_lowercase().str.extract_all(WORD_PATTERN)


def shingle_hashes(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(uint32 shingle hashes of all documents concatenated, int64 offsets of length n+1).

    Document i owns ``hashes[offsets[i]:offsets[i+1]]`` (a multiset: repeats are kept, they do
    not change a minimum and `jaccard_pairs` works on sets)."""
    lists = tokenize(texts)
    lengths = lists.list.len().fill_null(0).to_numpy().astype(np.int64)
    n = lengths.size
    words = lists.explode(empty_as_null=False, keep_nulls=False)
    h = words.hash(seed=WORD_HASH_SEED).to_numpy() if words.len() else np.zeros(0, np.uint64)
    word_off = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=word_off[1:])
    counts = np.where(lengths >= SHINGLE_SIZE, lengths - (SHINGLE_SIZE - 1), np.minimum(lengths, 1))
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    total = int(offsets[-1])
    if total == 0:
        return np.zeros(0, np.uint32), offsets
    w = h.size
    # Position-wise combination at every word position (contiguous slices, no gathers).
    pad = np.concatenate([h, np.zeros(SHINGLE_SIZE - 1, np.uint64)])
    acc = h * _POS[0]
    for j in range(1, SHINGLE_SIZE):
        acc += pad[j : j + w] * _POS[j]
    acc += _LEN_SALT[SHINGLE_SIZE]
    doc = np.repeat(np.arange(n, dtype=np.int64), counts)
    start = np.arange(total, dtype=np.int64) - offsets[doc] + word_off[doc]
    out = acc[start]
    short = np.flatnonzero((lengths > 0) & (lengths < SHINGLE_SIZE))
    if short.size:  # one shingle = the whole (1..4 word) sequence
        k = lengths[short]
        s = word_off[short]
        comb = np.zeros(short.size, np.uint64)
        for j in range(SHINGLE_SIZE - 1):
            take = j < k
            comb[take] += h[s[take] + j] * _POS[j]
        comb += _LEN_SALT[k]
        out[offsets[short]] = comb
    return (out >> _U64(32)).astype(np.uint32), offsets


class MinHasher:
    """MinHash signatures (uint32, datasketch ``affine32``-compatible) for many documents at once."""

    def __init__(self, num_perm: int = 128, seed: int = 1):
        if num_perm < 1:
            raise ValueError("num_perm must be positive")
        self.num_perm = num_perm
        self.seed = seed
        self.threads = _THREADS
        gen = np.random.RandomState(seed)
        self.a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
        self.b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)

    @property
    def permutations(self) -> np.ndarray:
        """(2, num_perm) uint32, the layout of datasketch's ``MinHash.permutations``."""
        return np.array([self.a, self.b])

    def signature(self, hashes: np.ndarray) -> np.ndarray:
        """Signature of one document from its uint32 shingle hashes."""
        return self.signatures(np.asarray(hashes, np.uint32), np.array([0, len(hashes)], np.int64))[0]

    def signatures(self, hashes: np.ndarray, offsets: np.ndarray, block: int = 8192) -> np.ndarray:
        """(n_docs, num_perm) uint32; a document without shingles gets all 0xFFFFFFFF (empty).

        Works on blocks of whole documents of about `block` shingles, permutation-major
        ((num_perm, shingles) products, about 2.5 MB: cache-resident), minima per document with
        ``np.minimum.reduceat`` along the contiguous axis."""
        n = offsets.size - 1
        sig = np.full((n, self.num_perm), np.uint32(0xFFFFFFFF), np.uint32)
        if n == 0 or hashes.size == 0:
            return sig
        mixed = fmix32(hashes)
        cuts = [0]
        targets = np.searchsorted(offsets, np.arange(block, int(offsets[-1]), block), side="right") - 1
        for t in targets:
            if t > cuts[-1]:
                cuts.append(int(t))
        cuts.append(n)
        spans = list(zip(cuts[:-1], cuts[1:]))
        a, b = self.a[:, None], self.b[:, None]

        def work(part: list[tuple[int, int]]) -> None:
            for d0, d1 in part:
                lo, hi = int(offsets[d0]), int(offsets[d1])
                if hi == lo:
                    continue
                ph = np.multiply(a, mixed[None, lo:hi])
                ph += b
                nonempty = np.flatnonzero(offsets[d0 + 1 : d1 + 1] > offsets[d0:d1])
                sig[d0 + nonempty] = np.minimum.reduceat(ph, offsets[d0 + nonempty] - lo, axis=1).T

        if self.threads > 1 and len(spans) > 1:
            half = len(spans) // 2
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(work, [spans[:half], spans[half:]]))
        else:
            work(spans)
        return sig


def candidate_probability(jaccard, bands: int, rows: int):
    """P(two documents of Jaccard J share at least one band key) = 1 - (1 - J^rows)^bands."""
    return 1.0 - (1.0 - np.asarray(jaccard, dtype=float) ** rows) ** bands


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(bands, n_docs) uint64: band j's `rows` signature values hashed into one 64-bit key
    (band-major, so one band of many chunks concatenates contiguously)."""
    if bands * rows > signatures.shape[1]:
        raise ValueError("bands * rows exceeds the signature length")
    n = signatures.shape[0]
    keys = np.empty((bands, n), np.uint64)
    for j in range(bands):
        acc = keys[j]
        acc[:] = ((j + 1) * int(_POS[SHINGLE_SIZE])) & (2**64 - 1)
        for t in range(rows):
            acc ^= signatures[:, j * rows + t].astype(np.uint64)
            fmix64(acc)
    return keys


def _pairs_in_groups(members: np.ndarray, starts: np.ndarray, sizes: np.ndarray, cap: int) -> np.ndarray:
    """(k, 2) member pairs: all pairs in groups up to `cap` members; in a bigger group each member
    is paired with the group's first member and with its successor (members are in rank order)."""
    out = []
    small = sizes <= cap
    for m in np.unique(sizes[small]):
        st = starts[small & (sizes == m)]
        block = members[st[:, None] + np.arange(m)[None, :]]
        i, j = np.triu_indices(int(m), 1)
        out.append(np.stack([block[:, i].ravel(), block[:, j].ravel()], axis=1))
    for st, m in zip(starts[~small], sizes[~small]):
        g = members[st : st + m]
        out.append(np.stack([np.repeat(g[0], m - 1), g[1:]], axis=1))
        out.append(np.stack([g[1:-1], g[2:]], axis=1))
    return np.concatenate(out) if out else np.zeros((0, 2), np.int64)


def candidate_pairs(keys, cap: int = 64) -> np.ndarray:
    """Distinct (u, v) row pairs, u < v, that share a band key in any band.

    `keys`: a (bands, n) array or an iterable of per-band (n,) uint64 arrays. Row order is the
    tie-break order of big buckets (put rows in id order for order-independent results). Each band
    is one sort of ``key_high_bits | row`` (the row number in the low bits), then runs of equal
    high bits are the buckets."""
    found = []
    n = 0
    for col in keys:
        n = col.size
        if n < 2:
            break
        bits = max(1, int(n - 1).bit_length())
        low = _U64((1 << bits) - 1)
        packed = np.sort((col & ~low) | np.arange(n, dtype=np.uint64))
        grp = packed >> _U64(bits)
        same = grp[1:] == grp[:-1]
        if not same.any():
            continue
        edge = np.flatnonzero(np.diff(np.concatenate([[False], same, [False]]).astype(np.int8)))
        starts, ends = edge[0::2], edge[1::2] + 1
        members = (packed & low).astype(np.int64)
        found.append(_pairs_in_groups(members, starts, ends - starts, cap))
    if not found:
        return np.zeros((0, 2), np.int64)
    p = np.concatenate(found)
    n = _U64(n)
    code = np.unique(np.minimum(p[:, 0], p[:, 1]).astype(np.uint64) * n + np.maximum(p[:, 0], p[:, 1]).astype(np.uint64))
    return np.stack([(code // n).astype(np.int64), (code % n).astype(np.int64)], axis=1)


def jaccard_pairs(get_shingles, pairs: np.ndarray, batch: int = 16384) -> np.ndarray:
    """Exact Jaccard of shingle *sets* for each (u, v) pair.

    `get_shingles(docs)` returns (concatenated uint32 hashes, offsets) for an array of document
    numbers. Per batch: the involved documents' shingles become sorted unique keys
    ``local_doc << 32 | hash``; each element of u's set is looked up as ``local_v << 32 | hash``
    (binary search); the hits per pair are the intersection."""
    out = np.zeros(len(pairs), np.float64)
    for start in range(0, len(pairs), batch):
        _verify_batch(get_shingles, pairs[start : start + batch], out[start : start + batch])
    return out


def _verify_batch(get_shingles, pairs: np.ndarray, out: np.ndarray) -> None:
    docs, inv = np.unique(pairs, return_inverse=True)
    inv = inv.reshape(-1, 2)
    hashes, offsets = get_shingles(docs)
    local = np.repeat(np.arange(docs.size, dtype=np.uint64), np.diff(offsets))
    keys = np.unique((local << _U64(32)) | hashes.astype(np.uint64))
    bounds = np.searchsorted(keys, np.arange(docs.size + 1, dtype=np.uint64) << _U64(32))
    size = np.diff(bounds)
    u, v = inv[:, 0], inv[:, 1]
    swap = size[u] > size[v]  # probe with the smaller set
    u, v = np.where(swap, v, u), np.where(swap, u, v)
    n_probe = size[u]
    pair_of = np.repeat(np.arange(len(pairs)), n_probe)
    pos = np.arange(int(n_probe.sum())) - np.repeat(np.cumsum(n_probe) - n_probe, n_probe) + np.repeat(bounds[u], n_probe)
    probe = (np.repeat(v.astype(np.uint64), n_probe) << _U64(32)) | (keys[pos] & _U64(0xFFFFFFFF))
    at = np.searchsorted(keys, probe)
    at[at == keys.size] = 0
    inter = np.bincount(pair_of[keys[at] == probe], minlength=len(pairs)).astype(np.float64)
    union = size[u] + size[v] - inter
    np.divide(inter, union, out=out, where=union > 0)
