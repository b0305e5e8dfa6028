"""quality.generic_share splits only the texts that hold a generic phrase: the same shares as splitting
every text and checking every sentence."""

from __future__ import annotations

import random

import polars as pl
import pytest

from corpus_platform.curation.quality import GENERIC_PHRASES, SENTENCE, generic_share

ATOMS = ["As an AI language model", "I HOPE THIS HELPS", "great question", "Hope this helps!", ".", "!", "?", "\n", " ",
         "word", "ΑΣ", "σ", "İ", "...", "42", "I'm sorry, but I cannot", "feel free to ask"]


def every_sentence(text: pl.Expr, phrases: tuple[str, ...]) -> pl.Expr:
    sentences = text.str.extract_all(SENTENCE)
    generic = sentences.list.eval(
        pl.element().str.to_lowercase().str.contains_any([p.lower() for p in phrases]).cast(pl.Int32)).list.sum()
    return (generic / sentences.list.len().clip(lower_bound=1)).cast(pl.Float64)


@pytest.mark.parametrize("phrases", [GENERIC_PHRASES, ("hope", "σας")])
def test_generic_share_equals_checking_every_sentence(phrases):
    rng = random.Random(2)
    texts = ["".join(rng.choice(ATOMS) + rng.choice(["", " ", ". "]) for _ in range(rng.randint(0, 10))) for _ in range(3000)]
    df = pl.DataFrame({"t": [*texts, None, ""]})
    got = df.select(generic_share(pl.col("t"), phrases))["t"]
    assert got.equals(df.select(every_sentence(pl.col("t"), phrases))["t"])
    assert 0.2 < (got > 0).mean() < 0.9
