"""Near-dedup library: MinHash vs datasketch, exact verification, recall on a planted corpus."""

from __future__ import annotations

import random
import re

import numpy as np
import polars as pl
import pytest
from datasketch import MinHash

from corpus_platform.curation.minhash import (
    MinHasher,
    band_keys,
    candidate_pairs,
    candidate_probability,
    jaccard_pairs,
    shingle_hashes,
)
from corpus_platform.curation.near_dedup import NearDedupIndex, choose_bands, find_duplicates, normalized
from corpus_platform.curation.normalize import normalize_text

WORD = re.compile(r"\w+")


def vocabulary(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = set()
    while len(words) < n:
        words.add("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))))
    return sorted(words)


def shingle_set(text: str) -> set:
    w = WORD.findall(text.lower())
    return {tuple(w)} if 0 < len(w) < 5 else set(zip(w, w[1:], w[2:], w[3:], w[4:]))


def jaccard(a: str, b: str) -> float:
    x, y = shingle_set(a), shingle_set(b)
    return len(x & y) / len(x | y)


def tail_variant(n_shingles: int, m: int, tag: str) -> tuple[str, str]:
    """Two documents of `n_shingles` shingles each whose last `m` words differ: exact Jaccard
    (n_shingles - m) / (n_shingles + m), all words distinct."""
    words = [f"w{tag}x{i}" for i in range(n_shingles + 4)]
    other = words[: len(words) - m] + [f"v{tag}x{i}" for i in range(m)]
    return " ".join(words), " ".join(other)


# -- shingles and signatures ---------------------------------------------------------------------


def test_shingles_tokenization_and_counts():
    texts = pl.Series(["It's an e-mail!", "IT S AN E MAIL", "one two three", "", "!!! ...", None,
                       " ".join(f"w{i}" for i in range(12))])
    h, off = shingle_hashes(texts)
    counts = np.diff(off).tolist()
    assert counts == [1, 1, 1, 0, 0, 0, 8]  # 5 words -> 1 shingle; <5 words -> 1; none -> 0; 12 -> 8
    assert h[off[0]] == h[off[1]]  # case and punctuation do not matter
    assert h[off[2]] != h[off[0]]
    h2, off2 = shingle_hashes(texts)
    assert (h == h2).all() and (off == off2).all()  # deterministic


def test_signatures_equal_datasketch_affine32():
    rng = np.random.default_rng(1)
    sets = [rng.integers(0, 2**32, size=k, dtype=np.uint64).astype(np.uint32) for k in (1, 7, 300, 0, 50)]
    offsets = np.concatenate([[0], np.cumsum([s.size for s in sets])]).astype(np.int64)
    hasher = MinHasher(num_perm=96, seed=42)
    sig = hasher.signatures(np.concatenate(sets), offsets, block=64)  # small blocks: many spans
    for i, s in enumerate(sets):
        m = MinHash(num_perm=96, seed=42, hashfunc=int)
        for x in s:
            m.update(int(x))
        assert (sig[i] == m.hashvalues).all()
    assert (hasher.permutations == MinHash(num_perm=96, seed=42).permutations).all()


@pytest.mark.parametrize("j", [0.2, 0.5, 0.8, 0.9])
def test_signature_estimates_within_minhash_error(j):
    # A = [0, n), B = [s, s + n): |A & B| = n - s, |A | B| = n + s.
    n = 2000
    s = round(n * (1 - j) / (1 + j))
    true_j = (n - s) / (n + s)
    a = np.arange(n, dtype=np.uint32) * np.uint32(2654435761)
    b = np.arange(s, s + n, dtype=np.uint32) * np.uint32(2654435761)
    num_perm = 256
    hasher = MinHasher(num_perm, seed=3)
    sig = hasher.signatures(np.concatenate([a, b]), np.array([0, n, 2 * n]))
    ours = float((sig[0] == sig[1]).mean())
    ma, mb = MinHash(num_perm, seed=3, hashfunc=int), MinHash(num_perm, seed=3, hashfunc=int)
    ma.update_batch(a.tolist())
    mb.update_batch(b.tolist())
    sigma = (true_j * (1 - true_j) / num_perm) ** 0.5
    assert abs(ours - true_j) <= 4 * sigma
    assert ours == pytest.approx(ma.jaccard(mb), abs=1e-12)  # same sketch, same estimate


def test_s_curve_and_default_bands():
    assert choose_bands(0.8) == (16, 5)
    assert candidate_probability(0.8, 16, 5) > 0.998
    assert candidate_probability(0.3, 16, 5) < 0.05
    for t in (0.5, 0.7, 0.9):
        b, r = choose_bands(t)
        assert candidate_probability(t, b, r) >= 0.998


def test_candidate_pairs_and_exact_jaccard():
    a, b = tail_variant(179, 21, "p")  # J = 158 / 200 = 0.79
    c, d = tail_variant(181, 19, "q")  # J = 162 / 200 = 0.81
    h, off = shingle_hashes(pl.Series([a, b, c, d]))

    def get(docs):
        lens = off[docs + 1] - off[docs]
        return np.concatenate([h[off[i] : off[i + 1]] for i in docs]), np.concatenate([[0], np.cumsum(lens)])

    jac = jaccard_pairs(get, np.array([[0, 1], [2, 3], [0, 2]]))
    assert jac.tolist() == [0.79, 0.81, 0.0]
    keys = band_keys(MinHasher(80).signatures(h, off), 16, 5)
    pairs = {tuple(p) for p in candidate_pairs(keys).tolist()}
    assert (0, 1) in pairs and (2, 3) in pairs and (0, 2) not in pairs


# -- decisions -------------------------------------------------------------------------------------


def test_verification_is_exact_at_the_threshold():
    a, b = tail_variant(179, 21, "a")  # 0.79: kept
    c, d = tail_variant(181, 19, "c")  # 0.81: removed
    e, f = tail_variant(180, 20, "e")  # 0.80 exactly: removed (>=)
    assert [jaccard(a, b), jaccard(c, d), jaccard(e, f)] == [0.79, 0.81, 0.8]
    res = find_duplicates(["a", "b", "c", "d", "e", "f"], [a, b, c, d, e, f], threshold=0.8)
    assert res.removed == ["d", "f"]
    assert res.duplicate_of == {"d": "c", "f": "e"}
    near = res.pairs.filter(pl.col("kind") == "near")
    assert sorted(zip(near["id_a"], near["id_b"], near["jaccard"])) == [("c", "d", 0.81), ("e", "f", 0.8)]
    assert res.stats["candidate_pairs"] >= 3  # the 0.79 pair was a candidate and was rejected


def test_exact_duplicates_always_removed():
    ids = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]
    texts = ["hello", "hello", "  hello \n", "!!!", "!!!", "", None, "a b c d e f g", "a  b c d e f g",
             "ｈｅｌｌｏ"]  # full-width: NFKC folds it to "hello"
    for exact_hash in ("sha256", "fast128"):
        res = find_duplicates(ids, texts, exact_hash=exact_hash)
        assert set(res.removed) == {"2", "3", "5", "7", "9", "10"}
        assert res.duplicate_of["10"] == "1" and res.duplicate_of["7"] == "6" and res.duplicate_of["9"] == "8"
        assert res.stats["exact_removed"] == 6 and res.stats["near_removed"] == 0


def test_smallest_id_is_kept_numeric_or_string():
    text = "the same words in the same order every time"
    assert find_duplicates(["10", "9", "100"], [text] * 3).removed == ["10", "100"]  # 9 < 10 < 100
    assert find_duplicates(["b10", "b9", "a"], [text] * 3).removed == ["b10", "b9"]  # as strings
    assert find_duplicates([10, 9, 100], [text] * 3).duplicate_of == {"10": "9", "100": "9"}


def test_normalized_equals_normalize_text():
    texts = pl.Series(["a\t b", " x\u00a0y ", "ｆｕｌｌ\r\nwidth \n\n\n\n z", "\ufeffbom\u200b", "ﬁ ligature",
                       "tab\tonly", "a \n b", "", None, "x  \t\n\t y", "plain text.", "emoji 👍🏽 ok"])
    ref = pl.DataFrame({"t": texts.fill_null("")}).select(normalize_text(pl.col("t")))["t"]
    assert normalized(texts).to_list() == ref.to_list()


# -- a planted corpus --------------------------------------------------------------------------


def edit(text: str, lo: float, hi: float, vocab: list[str], rng: random.Random) -> tuple[str, float] | None:
    """Random word substitutions until lo <= J <= target ~ U(lo, hi); None when stuck."""
    target = rng.uniform(lo, hi)
    toks = text.split()
    for _ in range(300):
        trial = list(toks)
        i = rng.randrange(len(trial)) if rng.random() < 0.5 else rng.choice([0, 1, 2, -1, -2, -3])
        trial[i] = rng.choice(vocab)
        j = jaccard(text, " ".join(trial))
        if j >= lo:
            toks = trial
            if j <= target:
                return " ".join(toks), j
    return None


def make_planted():
    """1,880 random-word documents + 40 exact copies, 60 near duplicates (J 0.80-0.95) and 20 hard
    negatives (J 0.50-0.70), each of a different original; ids unrelated to list position."""
    rng = random.Random(11)
    vocab = vocabulary(4000, 5)
    base = [" ".join(rng.choice(vocab) for _ in range(rng.randint(25, 160))) for _ in range(1880)]
    docs = list(base)
    truth = []  # (kind, original index, planted index, jaccard)
    originals = iter(rng.sample(range(len(base)), 400))
    for kind, count, lo, hi in (("exact", 40, 1, 1), ("near", 60, 0.80, 0.95), ("hard", 20, 0.50, 0.70)):
        made = 0
        while made < count:
            o = next(originals)
            out = (base[o], 1.0) if kind == "exact" else edit(base[o], lo, hi, vocab, rng)
            if out is not None:
                truth.append((kind, o, len(docs), out[1]))
                docs.append(out[0])
                made += 1
    order = list(range(len(docs)))
    rng.shuffle(order)
    ids = [f"doc{order[i]:05d}" for i in range(len(docs))]  # ids unrelated to list position
    return ids, docs, truth


@pytest.fixture(scope="module")
def planted():
    return make_planted()


def check(res, planted):
    ids, docs, truth = planted
    removed = set(res.removed)
    hit = {k: 0 for k in ("exact", "near", "hard")}
    explained = 0
    for kind, o, p, _ in truth:
        h = ids[o] in removed or ids[p] in removed
        hit[kind] += h
        explained += h
    assert hit["exact"] == 40
    assert hit["near"] >= 0.98 * 60
    assert hit["hard"] == 0
    assert len(removed) == explained  # nothing unplanned


def test_recall_on_planted_corpus(planted):
    ids, docs, truth = planted
    assert all(0.80 <= j <= 0.95 for k, _, _, j in truth if k == "near")
    res = find_duplicates(ids, docs)
    check(res, planted)
    assert res.stats["candidate_pairs"] > res.stats["verified_pairs"]  # hard negatives: proposed, rejected
    for a, b, j, _ in res.pairs.filter(pl.col("kind") == "near").iter_rows():
        assert j >= 0.8 and jaccard(docs[ids.index(a)], docs[ids.index(b)]) == pytest.approx(j)


def test_result_independent_of_input_order_and_chunking(planted):
    ids, docs, _ = planted
    ref = find_duplicates(ids, docs)
    perm = list(range(len(ids)))
    random.Random(3).shuffle(perm)
    shuffled = find_duplicates([ids[i] for i in perm], [docs[i] for i in perm], chunk_size=333)
    assert shuffled.removed == ref.removed
    assert shuffled.duplicate_of == ref.duplicate_of
    assert shuffled.cluster_of == ref.cluster_of
    assert shuffled.pairs.sort("id_a", "id_b").equals(ref.pairs.sort("id_a", "id_b"))
    index = NearDedupIndex(exact_hash="sha256")
    index.add_stream(((ids[s : s + 500], docs[s : s + 500]) for s in range(0, len(ids), 500)), workers=2)
    assert index.finish().removed == ref.removed


def test_big_buckets_still_cluster():
    vocab = vocabulary(500, 9)
    rng = random.Random(2)
    body = " ".join(rng.choice(vocab) for _ in range(120))
    texts = [f"{body} tail{i}" for i in range(150)]  # 150 docs, pairwise J ~0.98: buckets > cap
    res = find_duplicates([f"{i:03d}" for i in range(150)], texts)
    assert res.removed == [f"{i:03d}" for i in range(1, 150)]
    assert set(res.cluster_of.values()) == {"000"}


def test_exact_only_skips_near():
    a, b = tail_variant(181, 19, "z")
    res = find_duplicates(["1", "2", "3"], [a, b, a], exact_only=True)
    assert res.removed == ["3"]
