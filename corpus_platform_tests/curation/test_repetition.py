"""repetition_stats over many texts at once: each text's n-gram statistics equal a per-text Python count
(the same n-gram in another text never counts, n-grams never run across texts), in input order."""

from __future__ import annotations

import random
import re
from collections import Counter

import polars as pl
import pytest

from corpus_platform.curation.repetition import repetition_stats
from corpus_platform_tests.curation.test_filters_quality import ref_dup  # datatrove's greedy duplicate n-gram chars

VOCAB = ["cat", "sat", "on", "the", "mat", "dog", ",", ".", "up"]


def ref_top(words: list[str], n: int) -> int:
    """Characters of the most frequent n-gram seen twice or more (ties: the one seen first) times its count."""
    grams = Counter(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
    if not grams:
        return 0
    gram, k = grams.most_common(1)[0]  # most_common is stable: ties keep first-seen order
    return len(gram) * k if k >= 2 else 0


def texts(seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(300):
        words = [rng.choice(VOCAB[: rng.randint(3, len(VOCAB))]) for _ in range(rng.choice([2, 8, 20, 60]))]
        if words and rng.random() < 0.5:  # plant a repeated run
            a = rng.randrange(len(words))
            words[a:a] = words[a:a + rng.randint(2, 12)] * rng.randint(1, 3)
        out.append(" ".join(words))
    return [*out, out[0], "up up up up", "up up up up"]  # repeated texts, overlapping runs, the frame's end


@pytest.mark.parametrize("seed", [1, 2])
def test_n_gram_statistics_match_a_per_text_count(seed):
    sample = texts(seed)
    top, dup = ((2, 0.2), (3, 0.2), (4, 0.2)), ((2, 0.0), (5, 0.0), (8, 0.0))  # threshold 0: every dup is exact
    stats = repetition_stats(pl.Series(sample), top=top, dup=dup, min_words=3)
    assert stats.height == len(sample)
    planted = 0
    for text, row in zip(sample, stats.iter_rows(named=True)):
        words = re.findall(r"\w+|[^\w\s]+", text)
        long_enough = sum(bool(re.search(r"\w", w)) for w in words) >= 3
        for n, _ in top:
            assert row[f"top_{n}_gram"] == pytest.approx(ref_top(words, n) / max(len(text), 1) if long_enough else 0.0)
        for n, _ in dup:
            assert row[f"dup_{n}_gram"] == pytest.approx(ref_dup(words, n) / max(len(text), 1) if long_enough else 0.0)
        planted += row["dup_5_gram"] > 0
    assert planted > 30  # the sample does exercise repeats


def test_short_texts_get_zero_n_gram_statistics_but_their_line_statistics():
    stats = repetition_stats(pl.Series(["a b a b\na b a b", None, ""]), min_words=50)
    assert stats["top_2_gram"].to_list() == [0.0, 0.0, 0.0]
    assert stats["dup_line_frac"].to_list() == [0.5, 0.0, 0.0]


def test_tokens_given_by_the_caller_give_the_same_statistics():
    from corpus_platform.curation.repetition import TOKEN

    sample = pl.Series([*texts(3), None])
    given = repetition_stats(sample, min_words=3, tokens=sample.fill_null("").str.extract_all(TOKEN))
    assert given.equals(repetition_stats(sample, min_words=3))
    assert given["top_2_gram"].max() > 0
